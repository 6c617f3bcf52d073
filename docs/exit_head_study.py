"""Which exit head at V0?  A study on the frozen conv1 of a trained V0+V1 model.

Trains candidate V0 heads on the (frozen) features after conv1 + pool of
CHECKPOINT (4 epochs, Adam with one-cycle lr 3e-3, batch 500, training
split), swaps each in for the model's V0 head, and prints per head: V0's test
accuracy (all SNRs and per class at 20 dB), and the calibrated operating point
(temperatures, thresholds on validation for at most 0.4 pp loss) with its
test loss, compute ceiling overall, at 20 dB and over all frames at
SNR <= -8 dB.  Costs are the MACs of docs/dataset-and-network.md, head
convolutions included.

  PYTHONPATH=build/pytest-pkgroot .venv/bin/python docs/exit_head_study.py \
      --checkpoint runs/v0v1-joint-distill/best.pt --data data/synth_all.npz
"""
import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gnuradio.amcee.data.dataset import paper_split
from gnuradio.amcee.data.files import load_dataset
from gnuradio.amcee.frames import l1_normalize_frames
from gnuradio.amcee.network.architecture import StatsPool, conv_exit_head
from gnuradio.amcee.network.checkpoint import load_checkpoint
from gnuradio.amcee.network.compute_costs import exit_costs, head_macs
from gnuradio.amcee.training.calibrate import Evaluator, apply_temperatures, fit_temperature, search


def candidate_heads(classes):
    """name -> head on [B, 64, 64] features (conv1 + pool)."""
    def conv_head(pool, channels):  # model.conv_exit_head in other sizes, no dropout
        return conv_exit_head(64, 64, classes, 0.0, conv_channels=channels, positions=64 // pool)
    return {
        # per-channel statistics of conv1's features, MLP with a ReLU
        "stats": nn.Sequential(StatsPool(), nn.Linear(192, 128), nn.ReLU(), nn.Linear(128, classes)),
        # the paper's pooling, but a ReLU in the MLP
        "mlp": nn.Sequential(nn.MaxPool1d(4), nn.Flatten(), nn.Linear(1024, 64), nn.ReLU(),
                             nn.Linear(64, classes)),
        "conv16p4": conv_head(4, 16),   # the one shipped as model.conv_exit_head
        "conv24p4": conv_head(4, 24),
        "conv32p4": conv_head(4, 32),
        "conv32p2": conv_head(2, 32),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--heads", nargs="+", default=None)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-loss", type=float, default=0.4)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.data)
    train_idx, val_idx, test_idx = paper_split(ds, seed=0)
    model, _ = load_checkpoint(args.checkpoint)
    model.eval()
    if model.config.exit_layers[:1] != ("pool1",):
        raise SystemExit("the checkpoint's first exit must be V0")
    features = model.blocks[0].segment  # conv1 + pool, frozen

    def frames(idx):
        return torch.from_numpy(l1_normalize_frames(ds.frames[idx]))

    @torch.no_grad()
    def probs(idx, head=None):
        x = frames(idx)
        out = []
        for i in range(0, len(idx), 2000):
            logits = model.exit_logits(x[i:i + 2000])
            if head is not None:
                logits[0] = head(features(x[i:i + 2000]))
            out.append(torch.stack([torch.softmax(z, 1) for z in logits]))
        return torch.cat(out, 1).numpy()

    y_val, y_test, snr_test = ds.labels[val_idx], ds.labels[test_idx], ds.snrs[test_idx]
    costs, backbone = exit_costs(model)
    paper_head = head_macs(model.blocks[0].head, 64)

    def report(name, p_val, p_test, macs):
        delta = macs - paper_head   # every exit after V0 also pays for V0's head
        c = [cost + delta for cost in costs]
        temps = [fit_temperature(p_val[k], y_val) for k in range(len(p_val))]
        p_val, p_test = apply_temperatures(p_val, temps), apply_temperatures(p_test, temps)
        best, _ = search(Evaluator(p_val, y_val, c, backbone), max_loss_pp=args.max_loss)

        def at(mask):
            return Evaluator(p_test[:, mask], y_test[mask], c, backbone).point(best["thresholds"])

        overall, top = at(np.ones(len(y_test), bool)), at(snr_test == snr_test.max())
        low = at(snr_test <= -8)["compute_ceiling"]
        m = snr_test == snr_test.max()
        per_class = [(p_test[0][m].argmax(1) == y_test[m])[y_test[m] == k].mean() for k in range(len(ds.classes))]
        print(f"{name}: head {macs} MACs; V0 test accuracy {100 * (p_test[0].argmax(1) == y_test).mean():.1f} %; "
              f"at {snr_test.max():g} dB per class " + ", ".join(f"{c_} {100 * a:.0f}" for c_, a in zip(ds.classes, per_class)))
        print(f"  <= {args.max_loss} pp on validation: test loss {overall['accuracy_loss_pp']:.2f} pp, "
              f"ceiling {overall['compute_ceiling']:.2f}x, at {snr_test.max():g} dB {top['compute_ceiling']:.2f}x "
              f"(shares {', '.join(f'{100 * s:.1f}' for s in top['exit_shares'])} %), all frames at <= -8 dB {low:.2f}x",
              flush=True)

    p_val, p_test = probs(val_idx), probs(test_idx)
    report("paper head (as trained)", p_val, p_test, paper_head)
    x_train, y_train = frames(train_idx), torch.from_numpy(ds.labels[train_idx])
    heads = candidate_heads(len(ds.classes))
    for name in args.heads or heads:
        head = heads[name]
        steps = args.epochs * math.ceil(len(train_idx) / 500)
        opt = torch.optim.Adam(head.parameters(), 2e-3, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.1)
        head.train()
        for _ in range(args.epochs):
            order = torch.randperm(len(train_idx))
            for i in range(0, len(order), 500):
                batch = order[i:i + 500]
                with torch.no_grad():
                    f = features(x_train[batch])
                loss = F.cross_entropy(head(f), y_train[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        head.eval()
        report(name, probs(val_idx, head), probs(test_idx, head), head_macs(head, 64))


if __name__ == "__main__":
    main()
