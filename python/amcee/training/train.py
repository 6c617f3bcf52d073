"""Training of early-exit networks (``amcee train``).

Two schemes:

* ``paper`` -- Algorithm 1 of arXiv 2308.11100 as the paper's code does it:
  the loss of the early exit updates the shared layers and the exit head; the
  loss of the final exit updates only the layers after the branch point.
  With several early exits this generalises to: *the loss of exit k updates
  exactly the segment that ends at exit k and head k*.  It is implemented by
  detaching the features passed from one segment to the next and stepping on
  the sum of the losses: since each parameter then receives the gradient of
  one loss only, one Adam step on the sum equals the paper's separate steps on
  disjoint parameter sets.
* ``joint`` -- BranchyNet: one weighted sum of every exit's loss, gradients
  flow through the whole network (``--exit-weights``, default 1 each).

Data order is a function of (seed, epoch) only (``DistributedSampler``), and
every checkpoint holds the optimiser, scheduler and RNG states, so ``--resume``
continues a stopped run exactly.  Under ``torchrun`` the model is wrapped in
DistributedDataParallel (gloo on CPU, NCCL on GPU); the global batch stays
``--batch-size`` and only rank 0 writes files.
"""
import contextlib
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.utils.data.distributed import DistributedSampler

from ..atomic import FileExistsRefusal, atomic_open
from ..data.dataset import DatasetError, labels_for_model, paper_split, split_indices
from ..data.files import load_dataset
from ..frames import l1_normalize_frames  # the engine's own normalisation: train as we infer
from ..inference.exit_rule import entropy10
from ..inference.model_file import MAX_VERSION_LENGTH, check_model_version
from ..network.architecture import (EXIT_HEADS, LAYER_NAMES, PAPER_STEM_CHANNELS, PAPER_VERSIONS, EarlyExitNet,
                                    InputGain, ModelConfig)
from ..network.checkpoint import load_checkpoint, load_network, save_checkpoint, transfer_weights
from ..network.export import export_model
from .exit_simulation import PAPER_THRESHOLD, exit_shares, simulate_exits

SCHEMES = ("paper", "joint")
SCHEDULES = ("constant", "cosine")
SELECT_METRICS = ("final", "mean")


@dataclass
class TrainConfig:
    """Every setting of a run (stored in every checkpoint)."""

    data: str
    out_dir: str
    exits: Tuple[str, ...] = ("V1",)
    exit_head: str = "paper"         # architecture.EXIT_HEADS
    scheme: str = "paper"
    exit_weights: Optional[Tuple[float, ...]] = None  # joint scheme; default 1 per exit
    distill: float = 0.0             # joint scheme: weight of KL(final || early exit) per early exit
    init_from: Optional[str] = None  # start from this checkpoint's weights (fine-tuning)
    freeze_backbone: Optional[str] = None  # keep init_from's backbone as trained through this layer
                                     # (a layer or V0..V3); 'final': all of it and the final exit
    layers: Optional[Tuple[str, ...]] = None  # backbone layers kept; None: init_from's, else the paper's
    stem_channels: Optional[int] = None  # conv1's width; None: init_from's, else the paper's 64
    teacher: Optional[str] = None    # checkpoint or model file whose final exit the final exit also matches
    teacher_weight: float = 0.0      # weight of KL(teacher's final || final exit)
    epochs: int = 50                 # the paper's code
    batch_size: int = 500            # the paper's code (global batch under DDP)
    lr: float = 1e-4                 # the paper's code (Adam)
    weight_decay: float = 5e-4       # the paper's code (Adam's L2 term)
    schedule: str = "constant"       # the paper's code; 'cosine' = warmup + cosine decay
    warmup_epochs: float = 0.0
    dropout: float = 0.5
    patience: int = 0                # epochs without improvement before stopping; 0 = never
    select: Optional[str] = None     # best.pt by val accuracy of the final exit or mean of exits;
                                     # None: final, or mean when the final exit is frozen
    seed: int = 0
    split_seed: int = 0
    train_fraction: float = 1.0      # stratified subset of the training split, for quick studies
    val_fraction: float = 1.0        # stratified subset of the validation split (per-epoch metrics)
    compile: bool = False            # torch.compile the training forward (experimental)
    device: str = "cpu"
    threads: int = 0
    eval_batch: int = 4096
    threshold: float = PAPER_THRESHOLD
    calibrate_max_loss: Optional[float] = None  # calibrate thresholds on validation at the end
    model_version: Optional[str] = None  # short name; default: the run folder's name
    description: str = ""               # what the model is, in words (stored beside the version)
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.exits = tuple(self.exits)
        if self.layers is not None:
            self.layers = tuple(self.layers)
        if self.teacher_weight < 0 or bool(self.teacher_weight) != bool(self.teacher):
            raise ValueError(f"teacher_weight must be > 0 with a teacher and 0 without, got "
                             f"{self.teacher_weight} with teacher {self.teacher!r}")
        if self.model_version is not None:
            self.model_version = check_model_version(self.model_version)
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {self.scheme!r}; use one of {', '.join(SCHEMES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}")
        if self.exit_head not in EXIT_HEADS:
            raise ValueError(f"unknown exit head {self.exit_head!r}; use one of {', '.join(EXIT_HEADS)}")
        if isinstance(self.freeze_backbone, bool):  # checkpoints of runs before the layer could be named
            self.freeze_backbone = "final" if self.freeze_backbone else None
        if self.select is None:
            self.select = "mean" if self.freeze_backbone == "final" else "final"
        if self.select not in SELECT_METRICS:
            raise ValueError(f"unknown --select {self.select!r}; use one of {', '.join(SELECT_METRICS)}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        for name in ("train_fraction", "val_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.distill < 0 or (self.distill and self.scheme != "joint"):
            raise ValueError(f"distill must be >= 0 and needs the joint scheme, got {self.distill} "
                             f"with scheme {self.scheme!r}")
        if self.calibrate_max_loss is not None and not self.exits:
            raise ValueError("calibrate needs an early exit to set thresholds for; the backbone alone "
                             "(exits none) has none")
        if self.freeze_backbone:
            self._check_frozen_backbone()
        if self.patience < 0 or self.warmup_epochs < 0:
            raise ValueError("patience and warmup_epochs must be >= 0")
        if self.exit_weights is not None:
            self.exit_weights = tuple(float(w) for w in self.exit_weights)
            if len(self.exit_weights) != len(self.exits) + 1:
                raise ValueError(f"exit_weights needs {len(self.exits) + 1} values (one per exit, final "
                                 f"included), got {len(self.exit_weights)}")
            if any(w < 0 for w in self.exit_weights) or not any(self.exit_weights):
                raise ValueError(f"exit_weights must be >= 0 and not all zero, got {self.exit_weights}")
            if self.scheme != "joint":
                raise ValueError("exit_weights apply to the joint scheme only (the paper scheme gives "
                                 "every block its own loss)")

    def _check_frozen_backbone(self):
        """A frozen backbone is a trained one; frozen whole, with early exits to
        train on it and nothing that could only change the final exit."""
        if not self.init_from:
            raise ValueError("--freeze-backbone needs --init-from: the trained backbone to freeze")
        if self.freeze_backbone != "final":
            return
        if not self.exits:
            raise ValueError("--freeze-backbone trains the early exits, and there are none (--exits none)")
        if self.teacher:
            raise ValueError("--teacher trains the final exit, which --freeze-backbone keeps as it is")
        if self.select == "final":
            raise ValueError("--select final cannot tell epochs apart when the final exit is frozen; "
                             "use --select mean")

    def loss_weights(self):
        return self.exit_weights or (1.0,) * (len(self.exits) + 1)

    def to_dict(self):
        return dataclasses.asdict(self)


# --------------------------------------------------------------------- data

def stratified_subset(idx, labels, snrs, fraction, seed):
    """The same ``fraction`` of every (class, SNR) group of ``idx`` (sorted)."""
    if fraction >= 1:
        return idx
    rng = np.random.default_rng(seed + 7919)
    keys = labels[idx].astype(np.int64) * 100003 + np.round(snrs[idx] * 10).astype(np.int64)
    keep = []
    for key in np.unique(keys):
        members = rng.permutation(idx[keys == key])
        keep.append(members[:max(1, int(round(len(members) * fraction)))])
    return np.sort(np.concatenate(keep))


class NormalizedFrames:
    """The frames ``frames[rows]`` as L1-normalised tensors, read when indexed.

    Training and validation index batches of it, so that only a batch of
    frames is in memory at a time: a dataset file whose frames are mapped,
    not read (RadioML 2018.01A's 21 GB, data/radioml2018.py), trains in the
    memory of its labels and one batch.  The normalisation is the engine's
    own: train as we infer."""

    def __init__(self, frames, rows):
        self.frames = frames
        self.rows = np.asarray(rows, np.int64)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        if isinstance(key, torch.Tensor):
            key = key.numpy()
        return torch.from_numpy(l1_normalize_frames(np.asarray(self.frames[self.rows[key]], np.float32)))


@dataclass
class Splits:
    classes: tuple
    train: Tuple[NormalizedFrames, torch.Tensor]
    val: Tuple[NormalizedFrames, torch.Tensor]
    val_snrs: np.ndarray
    sizes: dict


def load_splits(config):
    ds = load_dataset(config.data)
    train_idx, val_idx, test_idx = paper_split(ds, seed=config.split_seed)
    train_idx = stratified_subset(train_idx, ds.labels, ds.snrs, config.train_fraction, config.split_seed)
    val_idx = stratified_subset(val_idx, ds.labels, ds.snrs, config.val_fraction, config.split_seed + 1)
    tensors = {}
    for name, idx in (("train", train_idx), ("val", val_idx)):
        tensors[name] = (NormalizedFrames(ds.frames, idx), torch.from_numpy(ds.labels[idx]))
    return Splits(classes=tuple(ds.classes), train=tensors["train"], val=tensors["val"],
                  val_snrs=ds.snrs[val_idx],
                  sizes={"train": len(train_idx), "val": len(val_idx), "test": len(test_idx),
                         "frame_len": ds.frame_length})


# --------------------------------------------------------------- schemes
class TrainingForward(nn.Module):
    """Every exit's logits, the module DDP wraps (DDP only hooks forward()).

    ``detach_between_blocks`` is the paper scheme: a segment's output enters the
    next segment detached, so the later loss cannot reach earlier layers.
    """

    def __init__(self, model: EarlyExitNet, detach_between_blocks: bool, frozen=()):
        super().__init__()
        self.model = model
        self.detach_between_blocks = detach_between_blocks
        self.frozen = tuple(frozen)  # a plain tuple: the modules stay registered under model only

    def train(self, mode=True):
        # Frozen modules stay in eval mode: BatchNorm keeps the trained running
        # statistics and the final exit's dropout is off, so the final exit the
        # early exits learn from is the one that will answer at inference.
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def forward(self, x):
        outputs = []
        for block in self.model.blocks:
            x, logits = block(x)
            outputs.append(logits)
            if self.detach_between_blocks:
                x = x.detach()
        return outputs


def freeze_backbone(model, through="final"):
    """Stop training the backbone layers up to and including ``through`` (a
    layer name or paper version), or with ``final`` every segment and the last
    head; returns the frozen modules.  Frozen whole, the early-exit heads only
    learn when a frame can leave: the answers at the final exit stay those of
    the trained backbone.  Frozen through the stem, the features the backbone
    learnt alone stay what every exit reads, while the later layers still
    learn to serve the early exits."""
    if through == "final":
        frozen = [block.segment for block in model.blocks] + [model.blocks[-1].head]
    else:
        names = list(model.config.layers)
        layer = PAPER_VERSIONS.get(through, through)
        if layer not in names:
            raise ValueError(f"--freeze-backbone {through}: not a layer of this backbone; use final, "
                             f"a paper version or one of {', '.join(names)}")
        layers = [module for block in model.blocks for module in block.segment
                  if not isinstance(module, InputGain)]
        frozen = layers[:names.index(layer) + 1]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def scheme_loss(losses, config, logits=None, teacher_logits=None):
    """Scalar to step on.  Paper: plain sum (each block only sees its own loss,
    see the module docstring).  Joint: the weighted sum, plus optional
    self-distillation: each early exit also matches the final exit's
    (detached) distribution, so that its confidence says "the final exit
    would agree", which is what thresholds calibrated against the final exit
    reward."""
    weights = (1.0,) * len(losses) if config.scheme == "paper" else config.loss_weights()
    total = sum(w * l for w, l in zip(weights, losses))
    if config.distill and logits is not None and len(logits) > 1:
        target = torch.softmax(logits[-1].detach(), dim=1)
        for z in logits[:-1]:
            total = total + config.distill * F.kl_div(F.log_softmax(z, dim=1), target, reduction="batchmean")
    if teacher_logits is not None:
        # Knowledge distillation from another network (a pruned backbone from
        # its unpruned source): the final exit also matches its distribution.
        total = total + config.teacher_weight * F.kl_div(
            F.log_softmax(logits[-1], dim=1), torch.softmax(teacher_logits, dim=1), reduction="batchmean")
    return total


def make_optimizer(model, config):
    # Only what trains (--freeze-backbone leaves the backbone out).
    trained = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(trained, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer, config, steps_per_epoch):
    total = max(1, config.epochs * steps_per_epoch)
    warmup = int(config.warmup_epochs * steps_per_epoch)

    def factor(step):
        if config.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ------------------------------------------------------------ distribution
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self):
        return self.world > 1

    @property
    def is_main(self):
        return self.rank == 0


def init_distributed(device):
    """Join the torchrun process group if there is one (env:// rendezvous)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_sum(values, d, device):
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if d.enabled:
        dist.all_reduce(t)
    return t.tolist()


def broadcast_flag(flag, d, device):
    if not d.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


# ------------------------------------------------------------------ RNG state
def rng_state():
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


# ------------------------------------------------------------ epoch loops
def _progress(iterable, enabled, **kwargs):
    if not enabled:
        return contextlib.nullcontext(iterable)
    from tqdm import tqdm

    return tqdm(iterable, mininterval=1.0 if os.isatty(2) else 30.0, dynamic_ncols=True, **kwargs)


def batch_indices(sampler, per_rank_batch):
    """Index batches of one epoch (the sampler's order, cut into batches)."""
    order = torch.tensor(list(iter(sampler)), dtype=torch.long)
    return list(torch.split(order, per_rank_batch))


def train_one_epoch(forward, optimizer, scheduler, data, sampler, config, d, device, epoch, num_exits,
                    teacher=None):
    """One pass over the training data; returns averaged loss and accuracy per exit."""
    x_all, y_all = data
    per_rank_batch = max(1, config.batch_size // d.world)
    batches = batch_indices(sampler, per_rank_batch)
    forward.train()
    k = num_exits
    sums = [0.0] * (2 * k + 1)  # loss per exit, correct per exit, frames
    with _progress(batches, config.progress and d.is_main, desc=f"epoch {epoch}", unit="batch") as bar:
        for i, idx in enumerate(bar):
            x = x_all[idx].to(device, non_blocking=True)
            y = y_all[idx].to(device, non_blocking=True)
            logits = forward(x)
            losses = [F.cross_entropy(z, y) for z in logits]
            teacher_logits = None
            if teacher is not None:
                with torch.no_grad():
                    teacher_logits = teacher.exit_logits(x)[-1]
            loss = scheme_loss(losses, config, logits, teacher_logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            n = len(y)
            with torch.no_grad():
                for j, (z, l) in enumerate(zip(logits, losses)):
                    sums[j] += float(l) * n
                    sums[k + j] += float((z.argmax(1) == y).sum())
            sums[-1] += n
            if hasattr(bar, "set_postfix") and (i % 20 == 0 or i == len(batches) - 1):
                frames = max(1.0, sums[-1])
                bar.set_postfix(loss=f"{sum(sums[:k]) / frames:.3f}",
                                acc="/".join(f"{sums[k + j] / frames:.3f}" for j in range(k)))
    totals = all_reduce_sum(sums, d, device)
    frames = max(1.0, totals[-1])
    return {"train_loss": [totals[j] / frames for j in range(k)],
            "train_acc": [totals[k + j] / frames for j in range(k)]}


@torch.no_grad()
def evaluate(model, data, snrs, config, device, thresholds=None):
    """Loss and accuracy per exit, and the early-exit result at ``thresholds``
    (simulated from all exits, the rule of the engine)."""
    x_all, y_all = data
    model.eval()
    k = model.num_exits
    losses = np.zeros(k)
    probs = [[] for _ in range(k)]
    for start in range(0, len(y_all), config.eval_batch):
        x = x_all[start:start + config.eval_batch].to(device)
        y = y_all[start:start + config.eval_batch].to(device)
        for j, logits in enumerate(model.exit_logits(x)):
            losses[j] += float(F.cross_entropy(logits, y, reduction="sum"))
            probs[j].append(torch.softmax(logits.float(), 1).cpu())
    probs = torch.stack([torch.cat(p) for p in probs])  # [K, N, C]
    labels = y_all.numpy()
    correct = (probs.argmax(2).numpy() == labels[None])
    n = max(1, len(labels))
    result = {"val_loss": (losses / n).tolist(), "val_acc": correct.mean(axis=1).tolist()}
    if k > 1:
        entropies = torch.stack([entropy10(p) for p in probs]).numpy()
        t = [config.threshold] * (k - 1) if thresholds is None else list(thresholds)
        exits = simulate_exits(entropies, t)
        result["val_early_exit_acc"] = float(correct[exits, np.arange(len(labels))].mean())
        result["val_exit_shares"] = exit_shares(exits, k).tolist()
        top = snrs >= np.max(snrs) - 1e-6
        result["val_exit_shares_top_snr"] = exit_shares(exits[top], k).tolist()
    return result


def selection_metric(metrics, config):
    acc = metrics["val_acc"]
    return acc[-1] if config.select == "final" else float(np.mean(acc))


# ------------------------------------------------------------------ the run
def run_name(config):
    return os.path.basename(os.path.normpath(config.out_dir)) or "run"


def run_model_version(config):
    """The version written into the run's model: ``model_version``, else the
    run folder's name (a version has no spaces: they become '-')."""
    return config.model_version or "-".join(run_name(config).split())[:MAX_VERSION_LENGTH]


def train(config, resume=None):
    """Train as ``config`` says; returns the summary dict (rank 0) or None."""
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but torch.cuda.is_available() is False")
    d = init_distributed(device)
    if device.type == "cuda" and d.enabled:
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    if not resume and d.is_main:
        refuse_earlier_run(config.out_dir)
    # Weight decay drives the weights of filters that stopped mattering, and
    # their Adam moments, below float32's smallest normal number; on x86
    # every operation on such a number is many times slower, and a long run
    # slows down epoch after epoch (docs/default-model/README.md).  Flushed
    # to zero, they change nothing else.
    flushing = device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        summary = _train(config, resume, d, device)
        if d.enabled:
            # All ranks leave together: a rank that tore down gloo while rank 0
            # was still exporting could abort ("terminate called without an
            # active exception"; docs/performance.md, Measurements behind the code).
            dist.barrier()
        return summary
    finally:
        if flushing:
            torch.set_flush_denormal(False)  # torch's default, for the rest of the process
        if d.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _train(config, resume, d, device):
    seed_everything(config.seed)  # the same initial weights on every rank
    splits = load_splits(config)
    if config.init_from and (config.layers is None or config.stem_channels is None):
        # A pruned or narrowed backbone stays so: its shape comes with its weights.
        source = load_checkpoint(config.init_from, map_location="cpu")[0].config
        config.layers = source.layers if config.layers is None else config.layers
        config.stem_channels = source.stem_channels if config.stem_channels is None else config.stem_channels
    model_config, model, forward = _build_model(config, splits, d, device)
    teacher = None
    if config.teacher:
        teacher, teacher_classes = load_network(config.teacher)
        check_network_fits(f"--teacher {config.teacher}", teacher, teacher_classes, model, splits.classes)
        teacher = teacher.to(device)
    optimizer = make_optimizer(model, config)
    sampler = DistributedSampler(range(len(splits.train[1])), num_replicas=d.world, rank=d.rank,
                                 shuffle=True, seed=config.seed, drop_last=False)
    steps_per_epoch = math.ceil(math.ceil(len(splits.train[1]) / d.world) / max(1, config.batch_size // d.world))
    scheduler = make_scheduler(optimizer, config, steps_per_epoch)

    if resume:
        start_epoch, history, best, bad_epochs, train_seconds = _resume(resume, model, optimizer, scheduler, d,
                                                                        splits.classes)
    else:
        start_epoch, history, best, bad_epochs, train_seconds = 1, [], -1.0, 0, 0.0
        _start_fresh(config, model, d, splits.classes)

    metrics_path = os.path.join(config.out_dir, "metrics.jsonl")
    if d.is_main:
        os.makedirs(config.out_dir, exist_ok=True)
        with atomic_open(os.path.join(config.out_dir, "config.json")) as f:
            json.dump({"train": config.to_dict(), "model": model_config.to_dict(),
                       "sizes": splits.sizes, "world_size": d.world}, f, indent=1)
        # A resumed run's metrics are the checkpoint's history: lines a killed
        # run wrote after its last checkpoint are dropped, no epoch is twice.
        _write_metrics(metrics_path, history)
    stopped_early = False
    for epoch in range(start_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        metrics = train_one_epoch(forward, optimizer, scheduler, splits.train, sampler, config, d, device,
                                  epoch, model.num_exits, teacher)
        train_time = time.perf_counter() - t0
        states = _gather_rng(d)
        if d.is_main:
            metrics.update(evaluate(model, splits.val, splits.val_snrs, config, device))
        improved = False
        if d.is_main:
            metric = selection_metric(metrics, config)
            improved = metric > best
            best = max(best, metric)
            bad_epochs = 0 if improved else bad_epochs + 1
            train_seconds += time.perf_counter() - t0
            metrics.update(epoch=epoch, lr=optimizer.param_groups[0]["lr"], epoch_seconds=train_time,
                           seconds_with_eval=time.perf_counter() - t0, select_metric=metric,
                           best_metric=best)
            history.append(metrics)
            _write_metrics(metrics_path, history)
            state = dict(train_config=config.to_dict(), optimizer_state=optimizer.state_dict(),
                         scheduler_state=scheduler.state_dict(), epoch=epoch, rng=states,
                         best_metric=best, bad_epochs=bad_epochs, history=history,
                         train_seconds=train_seconds, world_size=d.world,
                         model_version=run_model_version(config), description=config.description)
            save_checkpoint(os.path.join(config.out_dir, "last.pt"), model, splits.classes, **state)
            if improved:
                save_checkpoint(os.path.join(config.out_dir, "best.pt"), model, splits.classes, **state)
            _print_epoch(metrics)
        stop = d.is_main and config.patience and bad_epochs >= config.patience
        if broadcast_flag(stop, d, device):
            stopped_early = True
            break

    if not d.is_main:
        return None
    return finish(config, splits, history, train_seconds, stopped_early)


def _build_model(config, splits, d, device):
    """(model config, model, training forward): the forward is what DDP wraps
    and torch.compile compiles; the model is what checkpoints hold."""
    model_config = ModelConfig(exits=config.exits, num_classes=len(splits.classes),
                               frame_len=splits.sizes["frame_len"], dropout=config.dropout,
                               exit_head=config.exit_head, layers=config.layers or LAYER_NAMES,
                               stem_channels=config.stem_channels or PAPER_STEM_CHANNELS)
    model = EarlyExitNet(model_config).to(device)
    frozen = freeze_backbone(model, config.freeze_backbone) if config.freeze_backbone else ()
    forward = TrainingForward(model, detach_between_blocks=config.scheme == "paper", frozen=frozen)
    if d.enabled:
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        # Fuses BatchNorm/ReLU/pooling, memory-bound ops that take about half of
        # an eager CPU step; one extra compilation for the epoch's last batch.
        # Off by default: on a shared CPU its OpenMP threads suffer more than
        # eager ones (docs/performance.md, Measurements behind the code).
        forward = torch.compile(forward)
    return model_config, model, forward


def check_network_fits(path, network, network_classes, model, classes):
    """A network continued, fine-tuned or taught from on a dataset (a
    checkpoint, or a teacher's checkpoint or model file) must have been made
    for the dataset's frame length and class list (names and order)."""
    saved = tuple(str(c) for c in network_classes or ())
    length = network.config.frame_len
    if length != model.config.frame_len or saved != tuple(classes):
        raise DatasetError(f"{path} was trained on frames of {length} samples and classes {', '.join(saved)}; "
                           f"the dataset has frames of {model.config.frame_len} samples and classes "
                           f"{', '.join(classes)}")


def _resume(resume, model, optimizer, scheduler, d, classes):
    """Load a checkpoint's weights, optimiser, schedule and this rank's RNG
    states; returns (first epoch to run, history, best metric, epochs without
    improvement, training seconds so far)."""
    saved, state = load_checkpoint(resume, map_location="cpu")
    check_network_fits(resume, saved, state.get("classes"), model, classes)
    model.load_state_dict(state["model_state"])
    optimizer.load_state_dict(state["optimizer_state"])
    scheduler.load_state_dict(state["scheduler_state"])
    set_rng_state(state["rng"][d.rank] if isinstance(state["rng"], list) else state["rng"])
    return (int(state["epoch"]) + 1, list(state["history"]), float(state["best_metric"]),
            int(state.get("bad_epochs", 0)), float(state.get("train_seconds", 0.0)))


def _start_fresh(config, model, d, classes):
    """A new run: --init-from's weights where they fit, then per-rank dropout."""
    if config.init_from:
        init, state = load_checkpoint(config.init_from, map_location="cpu")
        check_network_fits(config.init_from, init, state.get("classes"), model, classes)
        # Layers are matched by backbone position and exit, so another exit
        # list or head kind can start from a trained backbone.
        fresh = transfer_weights(init, model)
        if fresh and d.is_main:
            heads = sorted({".".join(k.split(".")[:3]) if k.startswith("head.") else k.split(".")[0]
                            for k in fresh})
            print(f"--init-from {config.init_from}: new (not in it): {', '.join(heads)}", flush=True)
    torch.manual_seed(config.seed + d.rank)  # dropout differs per rank, weights do not


def _write_metrics(path, history):
    """metrics.jsonl, one line per epoch of ``history``, written whole (atomic.py)."""
    with atomic_open(path) as f:
        f.writelines(json.dumps(metrics) + "\n" for metrics in history)


def refuse_earlier_run(out_dir):
    """A new run (no --resume) goes into an empty or new folder: one that holds
    files is an earlier run whose checkpoints, model and metrics it would replace."""
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsRefusal(
            f"--out {out_dir} already holds files (an earlier run?): continue it with --resume "
            f"{os.path.join(out_dir, 'last.pt')}, or give an empty or new folder")


def _gather_rng(d):
    """RNG states of every rank (a list under DDP, one dict otherwise)."""
    state = rng_state()
    if not d.enabled:
        return state
    states = [None] * d.world
    dist.all_gather_object(states, state)
    return states


def _print_epoch(m):
    parts = [f"epoch {m['epoch']}", f"{m['epoch_seconds']:.0f}s",
             "train acc " + "/".join(f"{a:.3f}" for a in m["train_acc"]),
             "val acc " + "/".join(f"{a:.3f}" for a in m["val_acc"])]
    if "val_early_exit_acc" in m:
        parts.append(f"early-exit {m['val_early_exit_acc']:.3f} shares "
                     + "/".join(f"{s:.2f}" for s in m["val_exit_shares"]))
    print(" | ".join(parts), flush=True)


def finish(config, splits, history, train_seconds, stopped_early):
    """Export best.pt as the run's TorchScript model and write summary.json."""
    best_path = os.path.join(config.out_dir, "best.pt")
    model, state = load_checkpoint(best_path)
    version = run_model_version(config)
    best_epoch = int(state["epoch"])
    summary = {
        "run": run_name(config), "model_version": version, "scheme": config.scheme,
        "exits": list(model.config.exit_names), "epochs_run": len(history), "best_epoch": best_epoch,
        "stopped_early": stopped_early, "train_seconds": round(train_seconds, 1),
        "best_val_acc": state["history"][-1]["val_acc"],
        "sizes": splits.sizes, "data": os.path.abspath(config.data), "split_seed": config.split_seed,
    }
    model_path = os.path.join(config.out_dir, "model.pt")
    export_model(model, model_path, splits.classes, config.threshold, version,
                 extra={"training": summary}, description=config.description)
    summary["model"] = model_path
    if config.calibrate_max_loss is not None:
        from .calibrate import calibrate

        record = calibrate(model_path, config.data, model_path, max_loss_pp=config.calibrate_max_loss,
                           split_seed=config.split_seed)
        summary["calibration"] = record["chosen"]
    with atomic_open(os.path.join(config.out_dir, "summary.json")) as f:
        json.dump(summary, f, indent=1)
    return summary


def test_only(checkpoint, data, split="test", split_seed=None, device="cpu", threshold=PAPER_THRESHOLD):
    """Metrics of a checkpoint on one split of a dataset (``--test-only``)."""
    model, state = load_checkpoint(checkpoint)
    cfg = state.get("train_config", {})
    seed = cfg.get("split_seed", 0) if split_seed is None else split_seed
    ds = load_dataset(data)
    labels, scored = labels_for_model(ds, [str(c) for c in state.get("classes") or ()], model.config.frame_len,
                                      f"checkpoint {checkpoint}")
    idx = split_indices(ds, split, seed=seed)
    idx = idx[scored[idx]]
    tensors = (NormalizedFrames(ds.frames, idx), torch.from_numpy(labels[idx]))
    config = TrainConfig(data=data, out_dir=".", exits=model.config.exits, threshold=threshold)
    model.to(torch.device(device))
    result = {key.replace("val_", "", 1): value for key, value in
              evaluate(model, tensors, ds.snrs[idx], config, torch.device(device)).items()}
    result.update(split=split, frames=len(idx), checkpoint=checkpoint, epoch=state.get("epoch"))
    return result
