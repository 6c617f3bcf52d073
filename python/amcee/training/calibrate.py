"""Per-exit thresholds (and optional temperatures) chosen on validation data.

``amcee calibrate`` picks the entropy thresholds of a model's early exits on
the validation split of the paper split:

* ``max_loss_pp``: the largest compute saving (expected MACs from exit shares,
  docs/dataset-and-network.md) whose accuracy is at most ``max_loss_pp`` percentage
  points below the final exit's (the backbone alone) on validation;
* ``target_compute``: the most accurate point whose expected compute is at most
  that fraction of the backbone's.

The search is a full grid over per-exit candidate thresholds for up to three
early exits, coordinate descent beyond.  Optionally (``give_up``) it also
searches per-exit give-up entropies (a frame that unsure leaves early: very
noisy frames, where the deeper layers are not expected to do better), under
the same accuracy budget.  Candidates are entropy quantiles of
each exit, so the grid follows where the frames are.  Optionally
(``class_thresholds``) a greedy search then grows one threshold per early
exit and predicted class under the same budget (search_class_thresholds).

Temperature scaling (optional) fits one scalar T per exit on validation NLL.
It is baked into the exported file by dividing the weight and bias of every
head's last Linear layer by T, which divides the logits by T; the exit rule and
the runtime block stay unchanged.  Argmax predictions do not change.
"""
import itertools
import math
import os
import tempfile

import numpy as np

from ..data.dataset import labels_for_model, split_indices
from ..data.files import load_dataset
from ..inference.engine import EarlyExitEngine
from ..inference.model_file import EXIT_OFF, SNR_TABLE_KEY, thresholds_to_json
from ..inference.snr_table import estimate_snr_db, validate_snr_table
from ..network.export import rewrite_metadata, write_model_file
from .exit_simulation import entropy10, exit_shares, expected_macs, pick_by_exit, simulate_exits
from .evaluate import HIGH_SNR_DB
from .time_costs import TIMING_BATCH, exit_paths, measure_engine_path_costs, path_of

GRID_POINTS = {1: 400, 2: 60, 3: 24}
#: Smaller threshold grids when give-up values are searched too (one grid per give-up combination).
GIVE_UP_GRID_POINTS = {1: 100, 2: 20, 3: 8}
#: Give-up candidates: these entropy quantiles of each exit (and "off").
GIVE_UP_QUANTILES = (0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)
MAX_FULL_GRID_EXITS = 3
#: Thresholds per exit in the refinement after a joint grid.
REFINE_POINTS = 400
#: Rounds of coordinate descent (the refinement, and the search beyond MAX_FULL_GRID_EXITS).
DESCENT_ROUNDS = 3
#: Class-threshold search: a step passes this fraction of the frames
#: predicted as the class that are still below its threshold (at least one).
CLASS_STEPS = 50
#: Class-threshold search: it starts from these multiples of the per-exit thresholds.
CLASS_STARTS = (0.0, 0.25, 0.5, 0.75)
#: How much more a class step's progress towards a per-SNR ceiling bound
#: counts than its compute saving, while the bound is not met.
CEILING_WEIGHT = 10.0


# ----------------------------------------------------------- temperatures
def softmax_t(logp, temperature):
    z = logp / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logp, labels, temperature):
    z = logp / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def fit_temperature(probs, labels, lo=0.05, hi=20.0, iterations=60):
    """T minimising the NLL of softmax(log p / T) -- log p equals the logits up to
    a per-row constant, which softmax ignores.  Golden-section search on log T."""
    logp = np.log(np.clip(probs.astype(np.float64), 1e-38, None))
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logp, labels, math.exp(c)), nll(logp, labels, math.exp(d))
    for _ in range(iterations):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logp, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logp, labels, math.exp(d))
    return math.exp((a + b) / 2)


def apply_temperatures(all_probs, temperatures):
    logp = np.log(np.clip(all_probs.astype(np.float64), 1e-38, None))
    return np.stack([softmax_t(logp[k], t) for k, t in enumerate(temperatures)]).astype(np.float32)


# ----------------------------------------------------------- the search
class Evaluator:
    """Accuracy and expected compute of simulated early exit at given thresholds.

    With ``snrs`` every point also carries the lowest per-SNR compute ceiling
    (``min_snr_ceiling``); with ``favour_snr`` its objective is the compute
    of the frames at or above that SNR only (``objective_compute``), else of
    all frames."""

    def __init__(self, all_probs, labels, costs, backbone_macs, give_up=None, snrs=None, favour_snr=None):
        self.give_up = give_up
        self.predictions = all_probs.argmax(2)                         # [K, N]
        self.correct = self.predictions == labels[None]
        self.entropies = np.stack([entropy10(p) for p in all_probs])  # [K, N]
        self.costs = np.asarray(costs, dtype=np.float64)
        self.backbone_macs = float(backbone_macs)
        self.final_accuracy = float(self.correct[-1].mean())
        self.num_exits, self.num_classes = all_probs.shape[0], all_probs.shape[2]
        self.snr_index = self.num_snrs = self.favoured = self.high_snr = None
        if snrs is not None:
            _, self.snr_index = np.unique(np.asarray(snrs), return_inverse=True)
            self.num_snrs = int(self.snr_index.max()) + 1
            high = np.asarray(snrs) >= HIGH_SNR_DB - 1e-6
            if high.any():
                self.high_snr = high
                self.final_accuracy_high_snr = float(self.correct[-1][high].mean())
        if favour_snr is not None:
            if snrs is None:
                raise ValueError("favour_snr needs the frames' SNRs")
            self.favoured = np.asarray(snrs) >= favour_snr
            if not self.favoured.any():
                raise ValueError(f"no frame at SNR >= {favour_snr} dB to favour "
                                 f"(highest: {float(np.max(snrs)):g} dB)")

    def point(self, thresholds):
        exits = simulate_exits(self.entropies, thresholds, self.give_up, self.predictions)
        shares = exit_shares(exits, self.num_exits)
        macs = expected_macs(shares, self.costs)
        right = pick_by_exit(self.correct, exits)
        accuracy = float(right.mean())
        high_snr_loss = None
        if self.high_snr is not None:
            high_snr_loss = 100 * (self.final_accuracy_high_snr - float(right[self.high_snr].mean()))
        give_up = [None if g is None or math.isinf(g) else float(g)
                   for g in (self.give_up or [None] * len(thresholds))]
        objective = macs
        if self.favoured is not None:
            objective = expected_macs(exit_shares(exits[self.favoured], self.num_exits), self.costs)
        min_snr_ceiling = None
        if self.snr_index is not None:
            counts = np.bincount(self.snr_index * self.num_exits + exits,
                                 minlength=self.num_snrs * self.num_exits).reshape(self.num_snrs, -1)
            per_snr_macs = counts @ self.costs / np.maximum(counts.sum(1), 1)
            min_snr_ceiling = self.backbone_macs / float(per_snr_macs.max())
        return {"thresholds": thresholds_to_json(thresholds), "give_up": give_up, "accuracy": accuracy,
                "accuracy_loss_pp": 100 * (self.final_accuracy - accuracy),
                "high_snr_accuracy_loss_pp": high_snr_loss,
                "exit_shares": shares.tolist(), "expected_macs": macs,
                "compute_fraction": macs / self.backbone_macs,
                "compute_ceiling": self.backbone_macs / macs,
                "objective_compute": objective / self.backbone_macs,
                "min_snr_ceiling": min_snr_ceiling}

    def candidates(self, k, points):
        """0 (almost no frame exits), then entropy quantiles of exit k, each moved
        halfway to the next larger entropy so that float rounding in the
        exported model cannot flip a frame sitting exactly on a threshold."""
        values = np.unique(self.entropies[k].astype(np.float64))
        qs = np.quantile(values, np.linspace(0, 1, points)[1:])
        pos = np.minimum(np.searchsorted(values, qs, side="right"), len(values) - 1)
        upper = np.where(values[pos] > qs, values[pos], qs + 1e-3)
        return np.unique(np.concatenate([[0.0], (qs + upper) / 2]))

    def give_up_candidates(self, k):
        """Off (inf), then high entropy quantiles of exit k: frames this unsure
        leave early, where the deeper layers are not expected to help."""
        qs = np.quantile(self.entropies[k].astype(np.float64), GIVE_UP_QUANTILES)
        return [math.inf] + sorted(set(float(q) + 1e-6 for q in qs))


def within_budget(p, max_loss_pp, max_loss_high_snr_pp=None):
    """Whether point ``p`` loses at most ``max_loss_pp`` percentage points of
    the final exit's accuracy, and at most ``max_loss_high_snr_pp`` of its
    accuracy on the frames at >= HIGH_SNR_DB (where a live strong signal's
    frames are: a budget over all SNRs alone can spend itself there)."""
    if p["accuracy_loss_pp"] > max_loss_pp + 1e-9:
        return False
    return max_loss_high_snr_pp is None or p["high_snr_accuracy_loss_pp"] <= max_loss_high_snr_pp + 1e-9


def _better(a, b, objective):
    """Is point a preferred to b?  Ties broken by accuracy, then compute."""
    if b is None:
        return True
    key = (("objective_compute", "accuracy", "compute_fraction") if objective == "compute"
           else ("accuracy", "compute_fraction"))
    sign = {"objective_compute": -1, "compute_fraction": -1, "accuracy": 1}
    ka = tuple(sign[k] * a[k] for k in key)
    kb = tuple(sign[k] * b[k] for k in key)
    return ka > kb


def _bar(progress, total, what, unit="point"):
    """A progress bar on stderr (shown on a terminal only) for one stage of the search."""
    from tqdm import tqdm

    return tqdm(total=total, desc=f"calibrate: {what}", unit=unit, disable=None if progress else True,
                dynamic_ncols=True)


def search(ev, max_loss_pp=None, target_compute=None, points=None, give_up=False, min_snr_ceiling=None,
           progress=False, max_loss_high_snr_pp=None):
    """(best point, all evaluated points) under the constraint.  With
    ``give_up`` the give-up entropies are searched too (a threshold grid per
    give-up combination); otherwise the evaluator's give-up values stay.
    ``min_snr_ceiling`` (needs an evaluator with SNRs) also requires every
    SNR's compute ceiling to be at least that (1.0: no SNR slower than the
    backbone alone by compute).  ``max_loss_high_snr_pp`` (with
    ``max_loss_pp``; needs SNRs): also the budget at >= HIGH_SNR_DB.
    ``progress``: bars on stderr."""
    if (max_loss_pp is None) == (target_compute is None):
        raise ValueError("give exactly one of max_loss_pp and target_compute")
    if max_loss_pp is not None and max_loss_pp < 0:
        raise ValueError(f"max_loss_pp must be >= 0, got {max_loss_pp}")
    if max_loss_high_snr_pp is not None:
        if max_loss_pp is None or not max_loss_high_snr_pp >= 0:
            raise ValueError(f"max_loss_high_snr_pp must be >= 0 and goes with max_loss_pp, "
                             f"got {max_loss_high_snr_pp}")
        if ev.high_snr is None:
            raise ValueError(f"max_loss_high_snr_pp needs frames with SNRs >= {HIGH_SNR_DB:g} dB")
    if target_compute is not None and not 0 < target_compute <= 1:
        raise ValueError(f"target_compute must be a fraction in (0, 1], got {target_compute}")
    n_early = ev.num_exits - 1
    if n_early < 1:
        raise ValueError("the model has no early exit: nothing to calibrate")

    if min_snr_ceiling is not None:
        if not min_snr_ceiling > 0:
            raise ValueError(f"min_snr_ceiling must be > 0, got {min_snr_ceiling}")
        if ev.snr_index is None:
            raise ValueError("min_snr_ceiling needs the frames' SNRs")

    def feasible(p):
        if min_snr_ceiling is not None and p["min_snr_ceiling"] < min_snr_ceiling - 1e-12:
            return False
        if max_loss_pp is not None:
            return within_budget(p, max_loss_pp, max_loss_high_snr_pp)
        return p["compute_fraction"] <= target_compute + 1e-12

    objective = "compute" if max_loss_pp is not None else "accuracy"
    points = points or (GIVE_UP_GRID_POINTS if give_up else GRID_POINTS).get(n_early, 16)
    grids = [ev.candidates(k, points) for k in range(n_early)]
    give_up_lists = [ev.give_up_candidates(k) for k in range(n_early)] if give_up else []
    give_up_sets = itertools.product(*give_up_lists) if give_up else [ev.give_up]
    full_grid = n_early <= MAX_FULL_GRID_EXITS
    per_give_up = math.prod(map(len, grids)) if full_grid else DESCENT_ROUNDS * sum(map(len, grids))
    evaluated = []
    best = None
    with _bar(progress, per_give_up * math.prod(map(len, give_up_lists)), "grid") as bar:
        for give_up_values in give_up_sets:
            ev.give_up = None if give_up_values is None else list(give_up_values)
            if full_grid:
                combos = itertools.product(*grids)
            else:
                combos = _coordinate_descent(ev, grids, feasible, objective)
            for combo in combos:
                p = ev.point(combo)
                evaluated.append(p)
                if feasible(p) and _better(p, best, objective):
                    best = p
                bar.update()
    if best is None:
        raise ValueError("no thresholds meet the constraint (target compute below what sending "
                         "every frame out of the first exit costs, or a per-SNR ceiling out of reach?)")
    if give_up or n_early > 1:
        best = _refine(ev, best, feasible, objective, evaluated, progress=progress)
    return best, evaluated


def search_class_thresholds(ev, best, max_loss_pp, min_snr_ceiling=None, progress=False,
                            max_loss_high_snr_pp=None):
    """Class thresholds (one per early exit and predicted class) under the
    same accuracy budget, with ``best``'s give-up values.

    Why: one entropy threshold per exit cannot tell a frame that the later
    layers will not improve from one they will when both are equally unsure.
    At 20 dB QAM16/QAM64 are a coin flip at every exit (E about 0.3 from V0
    on) while QPSK/8PSK frames with the same E at V0 need V1: with a
    threshold per predicted class the QAM pair can leave at V0.

    A greedy search grows the table from each of CLASS_STARTS times the
    per-exit thresholds of ``best`` (from 0 all the budget is left for class
    steps; from nearer ``best`` a per-SNR ceiling bound is easier to keep).
    Returns the best point found, or ``best`` when none is better."""
    ev.give_up = [math.inf if g is None else g for g in best["give_up"]]
    n_early, n_classes = ev.num_exits - 1, ev.num_classes
    entropies = {(k, c): np.unique(ev.entropies[k][ev.predictions[k] == c].astype(np.float64))
                 for k in range(n_early) for c in range(n_classes)}
    per_exit = np.asarray(best["thresholds"], dtype=np.float64)  # search's point: one per exit
    with _bar(progress, len(CLASS_STARTS), "class thresholds", unit="start") as bar:
        for start in CLASS_STARTS:
            table = np.repeat((start * per_exit)[:, None], n_classes, axis=1)
            point = _grow_class_thresholds(ev, table, entropies, max_loss_pp, min_snr_ceiling,
                                           max_loss_high_snr_pp)
            bar.update()
            # Raising a threshold never raises a frame's cost, so the per-SNR
            # ceilings only grow during the search: the bound is checked at its end.
            if min_snr_ceiling is not None and point["min_snr_ceiling"] < min_snr_ceiling - 1e-12:
                continue
            if within_budget(point, max_loss_pp, max_loss_high_snr_pp) and _better(point, best, "compute"):
                best = point
    return best


def _grow_class_thresholds(ev, table, entropies, max_loss_pp, min_snr_ceiling=None, max_loss_high_snr_pp=None):
    """Greedy steps from ``table``: each raises the one threshold that saves
    the most compute (the objective, plus a tenth of all frames' compute) per
    frame it gets wrong, past 1/CLASS_STEPS of the frames predicted as that
    class still below it; it stops when no step fits the budget.

    With ``min_snr_ceiling``, while the lowest per-SNR ceiling is below it,
    what a step brings the ceiling towards the bound counts CEILING_WEIGHT
    times more: a start below the bound spends its budget there first,
    instead of ending just under the bound with a table that is then
    thrown away."""
    n = ev.correct.shape[1]
    current = ev.point(list(table))

    def shortfall(p):
        return 0.0 if min_snr_ceiling is None else max(0.0, min_snr_ceiling - p["min_snr_ceiling"])
    while True:
        step = None
        for (k, c), values in entropies.items():
            above = values[values > np.float32(table[k, c])]  # as the model compares, in float32
            if not len(above):
                continue
            i = max(1, len(above) // CLASS_STEPS)
            upper = above[i] if i < len(above) else above[-1] + 1e-3
            trial = table.copy()
            trial[k, c] = (above[i - 1] + upper) / 2  # halfway: no frame sits on a threshold
            p = ev.point(list(trial))
            gain = (current["objective_compute"] - p["objective_compute"]
                    + 0.1 * (current["compute_fraction"] - p["compute_fraction"])
                    + CEILING_WEIGHT * (shortfall(current) - shortfall(p)))
            if gain <= 0 or not within_budget(p, max_loss_pp, max_loss_high_snr_pp):
                continue
            score = gain / (max(0.0, current["accuracy"] - p["accuracy"]) * n + 0.5)
            if step is None or score > step[0]:
                step = (score, trial, p)
        if step is None:
            return current
        _, table, current = step


def _refine(ev, best, feasible, objective, evaluated, rounds=DESCENT_ROUNDS, progress=False):
    """Coordinate descent from the grid's best point over REFINE_POINTS
    thresholds per exit, give-up values fixed: the joint grid is coarse when
    several exits (or give-up values) are searched at once."""
    ev.give_up = [math.inf if g is None else g for g in best["give_up"]]
    grids = [ev.candidates(k, REFINE_POINTS) for k in range(ev.num_exits - 1)]
    current = list(best["thresholds"])
    with _bar(progress, rounds * sum(map(len, grids)), "refine") as bar:
        for _ in range(rounds):
            improved = False
            for k, grid in enumerate(grids):
                for t in grid:
                    trial = list(current)
                    trial[k] = float(t)
                    p = ev.point(trial)
                    evaluated.append(p)
                    if feasible(p) and _better(p, best, objective):
                        best, current, improved = p, trial, True
                    bar.update()
            if not improved:
                bar.total = bar.n  # converged before the last round
                bar.refresh()
                break
    return best


def _coordinate_descent(ev, grids, feasible, objective, rounds=DESCENT_ROUNDS):
    """Yield threshold vectors visited by coordinate descent (more than 3 early exits)."""
    current = [0.0] * len(grids)
    for _ in range(rounds):
        for k, grid in enumerate(grids):
            best_t, best_p = current[k], None
            for t in grid:
                trial = list(current)
                trial[k] = float(t)
                yield trial
                p = ev.point(trial)
                if feasible(p) and _better(p, best_p, objective):
                    best_t, best_p = float(t), p
            current[k] = best_t


def pareto_front(points):
    """Points not beaten in both accuracy and compute, by increasing compute."""
    front = []
    for p in sorted(points, key=lambda p: (p["compute_fraction"], -p["accuracy"])):
        if not front or p["accuracy"] > front[-1]["accuracy"]:
            front.append(p)
    return front


def thin(points, limit):
    """At most ``limit`` points spread evenly over the list, first and last kept."""
    if len(points) <= limit:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, limit).round().astype(int))
    return [points[i] for i in keep]


# ------------------------------------------------------------ model files
def scale_heads(module, temperatures):
    """Divide every head's last Linear layer (weight and bias) by its temperature."""
    import torch

    with torch.no_grad():
        for k, t in enumerate(temperatures):
            head = getattr(module.blocks, str(k)).head
            last = getattr(head, str(len(list(head.children())) - 1))
            last.weight.div_(t)
            last.bias.div_(t)


def calibrate(model_path, data, out_path, max_loss_pp=0.5, target_compute=None, temperature=False,
              split="val", split_seed=0, max_batch=None, points=None, give_up=False,
              favour_snr=None, min_snr_ceiling=None, class_thresholds=False, progress=False,
              max_loss_high_snr_pp=None):
    """Choose thresholds (and temperatures) on ``split`` and write ``out_path``.

    ``class_thresholds``: after the per-exit search, also search one
    threshold per early exit and predicted class (search_class_thresholds;
    with ``max_loss_pp`` only) and keep whichever point saves more.

    ``progress``: a bar per search stage on stderr (on a terminal).

    Returns the calibration record (also stored in the model's metadata)."""
    if target_compute is not None:
        max_loss_pp = None
    engine = EarlyExitEngine(model_path, max_batch=max_batch)
    if class_thresholds and target_compute is not None:
        raise ValueError("class thresholds are searched under an accuracy budget (max_loss_pp), "
                         "not with target_compute")
    ds, rows, labels, all_probs = _split_outputs(engine, data, split, split_seed)
    temperatures = None
    if temperature:
        temperatures = [fit_temperature(all_probs[k], labels) for k in range(engine.num_exits)]
        all_probs = apply_temperatures(all_probs, temperatures)
    # The model's give-up values (if any) stay as they are and take part in the simulation.
    ev = Evaluator(all_probs, labels, engine.meta["exit_macs"], engine.meta["backbone_macs"],
                   give_up=list(engine.give_up), snrs=ds.snrs[rows], favour_snr=favour_snr)
    best, evaluated = search(ev, max_loss_pp=max_loss_pp, target_compute=target_compute, points=points,
                             give_up=give_up, min_snr_ceiling=min_snr_ceiling, progress=progress,
                             max_loss_high_snr_pp=max_loss_high_snr_pp)
    per_exit_choice = best
    if class_thresholds:
        best = search_class_thresholds(ev, best, max_loss_pp, min_snr_ceiling, progress=progress,
                                       max_loss_high_snr_pp=max_loss_high_snr_pp)
    constraint = ({"max_loss_pp": max_loss_pp} if max_loss_pp is not None else {"target_compute": target_compute})
    if max_loss_high_snr_pp is not None:
        constraint["max_loss_high_snr_pp"] = max_loss_high_snr_pp
    record = {
        "method": "grid" if engine.num_exits - 1 <= MAX_FULL_GRID_EXITS else "coordinate-descent",
        "constraint": constraint,
        "favour_snr": favour_snr, "min_snr_ceiling": min_snr_ceiling,
        "data": os.path.abspath(data), "split": split, "split_seed": split_seed, "frames": int(len(labels)),
        "final_exit_accuracy": ev.final_accuracy, "chosen": best,
        "temperatures": temperatures, "previous_thresholds": list(engine.thresholds),
        "give_up_searched": bool(give_up),
        "class_thresholds_searched": bool(class_thresholds),
        "per_exit_choice": per_exit_choice if class_thresholds else None,
        "frontier": [{k: p[k] for k in ("thresholds", "give_up", "accuracy", "compute_fraction")}
                     for p in thin(pareto_front(evaluated), 200)],
    }
    source = model_path
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out_path))) as scratch:
        if temperatures:
            # The scaled weights go to a scratch file, the metadata on top of it
            # into out_path in one atomic write: out_path (maybe the model
            # itself) is never left with scaled heads and the old thresholds.
            loaded = engine.model
            scale_heads(loaded.module, temperatures)
            source = os.path.join(scratch, "scaled.pt")
            write_model_file(loaded.module, loaded.meta, source)
        # An SNR table was fitted to the old thresholds and heads: it goes
        # (calibrate_snr_table fits a new one).
        meta = rewrite_metadata(source, {"thresholds": best["thresholds"], "give_up": best["give_up"],
                                         SNR_TABLE_KEY: None, "calibration": record}, out_path=out_path)
    record["model"] = os.path.abspath(out_path)
    record["model_version"] = meta["model_version"]  # rewrite_metadata's: the short version
    return record


def _split_outputs(engine, data, split, split_seed):
    """(dataset, rows, their labels in the model's class order, every exit's
    probabilities [K, rows, C]) of the frames of ``split`` that the network
    classifies (finite, not all zero, of a class the model has)."""
    ds = load_dataset(data)
    labels, scored = labels_for_model(ds, engine.classes, engine.frame_len, f"model {engine.model.path}")
    idx = split_indices(ds, split, seed=split_seed)
    idx = idx[scored[idx]]
    all_probs, valid = engine.all_exit_probs(ds.frames[idx])
    return ds, idx[valid], labels[idx[valid]], all_probs[:, valid]


# ------------------------------------------------------ the SNR-aware table
#: Default bin edges of the SNR table (dB): 2 dB bins around the data's SNR
#: grid (-20, -18, ..., 20 dB), open at both ends.
SNR_EDGES_DB = tuple(float(e) for e in range(-19, 20, 2))
#: Multiples of the plain thresholds a bin may take (class tables scaled whole).
SNR_THRESHOLD_SCALES = (0.0, 0.25, 0.5, 0.75, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0)
#: A bin's setting is chosen by its frames right minus this many standard
#: errors of the difference to the plain rule (the square root of the frames
#: whose answer the setting changes): a setting that beats the plain rule on a
#: bin's few hundred validation frames by changing many answers often loses on
#: held-out frames (the figures: docs/snr-aware-exit.md, "Choices").
SNR_FIT_STANDARD_ERRORS = 1.0
#: Per-exit thresholds per exit in a bin's own grid: entropy quantiles of the
#: bin's frames, 2 = the ends (with 0: none, all).  A finer grid fits the
#: validation frames closer and held-out frames worse (docs/snr-aware-exit.md,
#: "Choices").
SNR_GRID_POINTS = 2


def _bin_candidates(plain_t, plain_g, ev, members, n_early):
    """The settings (thresholds, give-up) a bin may take: the plain rule,
    multiples of it, a grid of per-exit thresholds over the bin's own
    entropies, and the give-up settings that send every frame out at an
    early exit (give-up 0 there); and each of them with early exits turned
    off (EXIT_OFF where no give-up value is set: no frame leaves there and
    the exit's head does not run -- at low SNR, where few frames would
    leave, the heads cost more than they save)."""
    def scaled(t, s):
        return tuple(tuple(v * s for v in x) if isinstance(x, tuple) else (x if x == EXIT_OFF else x * s)
                     for x in t)

    out = [(plain_t, plain_g)]
    out += [(scaled(plain_t, s), plain_g) for s in SNR_THRESHOLD_SCALES]
    grids = []
    for k in range(n_early):
        e = np.unique(ev.entropies[k][members].astype(np.float64))
        qs = np.quantile(e, np.linspace(0, 1, SNR_GRID_POINTS)) if len(e) else np.zeros(1)
        grids.append(np.unique(np.concatenate([[0.0], qs + 1e-6])))
    out += [(tuple(float(v) for v in combo), plain_g) for combo in itertools.product(*grids)]
    for k in range(n_early):  # every frame leaves at exit k at the latest
        give = tuple(0.0 if j == k else g for j, g in enumerate(plain_g))
        out.append((plain_t, give))
        out += [(tuple(float(v) for v in combo) + tuple(plain_t[k:]), give)
                for combo in itertools.product(*grids[:k])] if k else []
    with_off = []
    for t, g in out:
        free = [k for k in range(n_early) if math.isinf(g[k]) and t[k] != EXIT_OFF]
        for r in range(len(free) + 1):
            for off in itertools.combinations(free, r):
                with_off.append((tuple(EXIT_OFF if k in off else x for k, x in enumerate(t)), g))
    return list(dict.fromkeys(with_off))


def setting_costs(path_costs, thresholds, give_up, num_exits):
    """Time of a frame leaving at each exit (array of num_exits) under one
    setting: the heads of the exits it turns off do not run."""
    on = [t != EXIT_OFF or not math.isinf(g) for t, g in zip(thresholds, give_up)]
    return np.array([path_costs[path_of(k, on)] for k in range(num_exits)])


def _choose_bins(options, required_correct, min_speedup=1.0):
    """One option per bin, least total time with at least ``required_correct``
    frames right: the Lagrangian choice (per bin, least time - lam x right)
    at the smallest lam that meets the bound, found by bisection.  Each
    bin's options are [(time, right as scored, index, right)], already
    limited to what the bin may cost."""
    def pick(lam):
        chosen = [min(opts, key=lambda o: (o[0] - lam * o[1], o[0])) for opts in options]
        return chosen, sum(o[1] for o in chosen)

    chosen, right = pick(0.0)
    if right >= required_correct:
        return chosen
    lo, hi = 0.0, 1.0
    while pick(hi)[1] < required_correct:
        hi *= 2
        if hi > 1e9:
            raise ValueError(f"no SNR table reaches the accuracy budget (or the plain rule's accuracy) with no "
                             f"bin slower than the plain rule or than {min_speedup:g}x the backbone: raise "
                             "max_loss_pp or lower min_speedup")
    for _ in range(60):
        mid = (lo + hi) / 2
        if pick(mid)[1] >= required_correct:
            hi = mid
        else:
            lo = mid
    return pick(hi)[0]


def fit_snr_table(ev, snr_est, path_costs, plain_thresholds, plain_give_up, edges_db, max_loss_pp,
                  min_speedup=1.0, progress=False):
    """The SNR table (JSON form) and a summary, from an Evaluator ``ev`` of
    the frames with the time per frame of each exit path ``path_costs``
    (time_costs.measure_engine_path_costs, backbone = 1) and their
    estimated SNRs (calibrate_snr_table).  Each bin takes one of
    _bin_candidates' settings, chosen together (_choose_bins) for the least
    total time with at least the accuracy the budget allows, no bin slower
    than the plain rule nor than 1 / ``min_speedup`` of the backbone; a
    setting's frames right are scored SNR_FIT_STANDARD_ERRORS standard
    errors below their count (the summary's accuracy is the count)."""
    n_early = ev.num_exits - 1
    edges = tuple(float(e) for e in edges_db)
    bins = np.searchsorted(np.asarray(edges), snr_est, side="right")
    bins[np.isnan(snr_est)] = 0  # (the estimator gives a number for every valid frame)
    plain_exits = simulate_exits(ev.entropies, plain_thresholds, plain_give_up, ev.predictions)
    plain_costs = setting_costs(path_costs, plain_thresholds, plain_give_up, ev.num_exits)
    candidates, options = [], []
    with _bar(progress, len(edges) + 1, "SNR bins", unit="bin") as bar:
        for b in range(len(edges) + 1):
            members = np.flatnonzero(bins == b)
            cands = (_bin_candidates(plain_thresholds, plain_give_up, ev, members, n_early) if len(members)
                     else [(plain_thresholds, plain_give_up)])
            limit = min(float(plain_costs[plain_exits[members]].sum()), len(members) / min_speedup) + 1e-9
            opts = []
            entropies, predictions, exit_correct = (a[:, members] for a in (ev.entropies, ev.predictions, ev.correct))
            plain_correct = pick_by_exit(exit_correct, plain_exits[members])
            for i, (t, g) in enumerate(cands):
                exits = simulate_exits(entropies, t, g, predictions)
                time_b = float(setting_costs(path_costs, t, g, ev.num_exits)[exits].sum())
                if time_b <= limit:
                    correct = pick_by_exit(exit_correct, exits)
                    right = int(correct.sum())
                    changed = int(np.count_nonzero(correct != plain_correct))
                    opts.append((time_b, right - SNR_FIT_STANDARD_ERRORS * math.sqrt(changed), i, right))
            if not opts:
                raise ValueError(f"no setting of SNR bin {b} is {min_speedup:g}x the backbone by the measured "
                                 "exit times: lower min_speedup")
            candidates.append(cands)
            options.append(opts)
            bar.update()
    n = len(bins)
    plain_right = int(pick_by_exit(ev.correct, plain_exits).sum())
    # The budget, or the plain rule's accuracy where it loses more on these
    # frames (its thresholds were chosen on other data): no bin may be
    # slower than the plain rule, so no table could do better there.
    required = min(int(math.ceil((ev.final_accuracy - max_loss_pp / 100.0) * n - 1e-9)), plain_right)
    chosen = _choose_bins(options, required, min_speedup)
    table = {"edges_db": list(edges),
             "thresholds": [thresholds_to_json(candidates[b][o[2]][0]) for b, o in enumerate(chosen)],
             "give_up": [[None if math.isinf(g) else g for g in candidates[b][o[2]][1]] for b, o in enumerate(chosen)]}
    right, time_total = sum(o[3] for o in chosen), sum(o[0] for o in chosen)
    summary = {"frames": int(n), "max_loss_pp": max_loss_pp, "min_speedup": min_speedup,
               "final_exit_accuracy": ev.final_accuracy, "accuracy": right / n,
               "accuracy_loss_pp": 100 * (ev.final_accuracy - right / n), "plain_accuracy": plain_right / n,
               "time_fraction": time_total / n, "plain_time_fraction": float(plain_costs[plain_exits].sum()) / n,
               "frames_per_bin": np.bincount(bins, minlength=len(edges) + 1).tolist()}
    return table, summary


def calibrate_snr_table(model_path, data, out_path, max_loss_pp=0.5, split="val", split_seed=0,
                        edges_db=SNR_EDGES_DB, min_speedup=1.0, max_batch=None, repeats=15, progress=False):
    """Fit the SNR-conditioned exit table (inference.snr_table) on ``split``
    and write it into ``out_path`` (``amcee calibrate --snr-aware``).

    Each frame's SNR is the module's estimate (snr_table.estimate_snr_db,
    the estimator block's code), not the dataset's: that is what the frames
    will carry in a flowgraph.  The frames are binned at ``edges_db``, and
    the bins' settings are chosen together (fit_snr_table) for the least
    expected time -- the engine's time per exit path measured on this
    machine, one thread (time_costs.measure_engine_path_costs; an exit a bin
    turns off costs no head) -- with the overall accuracy at most ``max_loss_pp``
    percentage points below the final exit's (the plain calibration's
    budget) or, where the plain rule loses more on these frames, at least
    the plain rule's accuracy.  No bin may cost more than the plain rule on
    its frames, nor more than 1 / ``min_speedup`` of the backbone's time.
    The model's thresholds and give-up values (the plain rule, for frames
    without an SNR value) stay.

    Returns the record (also stored in the calibration record's ``snr_table``)."""
    if max_loss_pp is None or max_loss_pp < 0:
        raise ValueError(f"max_loss_pp must be >= 0, got {max_loss_pp}")
    if not min_speedup > 0:
        raise ValueError(f"min_speedup must be > 0, got {min_speedup}")
    engine = EarlyExitEngine(model_path, max_batch=max_batch)
    if engine.num_exits < 2:
        raise ValueError("the model has no early exit: nothing to calibrate")
    validate_snr_table({"edges_db": [float(e) for e in edges_db], "thresholds": [0.0] * (len(edges_db) + 1),
                        "give_up": [None] * (len(edges_db) + 1)}, engine.num_exits, len(engine.classes))
    ds, rows, labels, all_probs = _split_outputs(engine, data, split, split_seed)
    frames = ds.frames[rows]
    snr_est = estimate_snr_db(frames)
    # Per frame of each exit path, backbone = 1: timed on 4 x TIMING_BATCH frames (stable ratios).
    path_costs = measure_engine_path_costs(engine, frames[:4 * TIMING_BATCH], repeats=repeats)
    every_head = setting_costs(path_costs, [0.0] * (engine.num_exits - 1), [math.inf] * (engine.num_exits - 1),
                                engine.num_exits)
    ev = Evaluator(all_probs, labels, every_head, 1.0)
    table, summary = fit_snr_table(ev, snr_est, path_costs, engine.model.default_thresholds,
                                   engine.model.default_give_up, edges_db, max_loss_pp, min_speedup, progress)
    table = validate_snr_table(table, engine.num_exits, len(engine.classes))
    record = {"data": os.path.abspath(data), "split": split, "split_seed": split_seed,
              "snr": "estimated (snr_table.estimate_snr_db)", **summary,
              "exit_time_costs": every_head.tolist(),
              "exit_path_costs": [{"exit": k, "heads_before": list(heads), "time": path_costs[(k, heads)]}
                                  for k, heads in exit_paths(engine.num_exits)],
              "floor_db": table.floor_db}
    calibration = dict(engine.meta.get("calibration") or {})
    calibration["snr_table"] = record
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    meta = rewrite_metadata(model_path, {SNR_TABLE_KEY: table.to_json(), "calibration": calibration},
                            out_path=out_path)
    record["model"] = os.path.abspath(out_path)
    record["model_version"] = meta["model_version"]
    return record
