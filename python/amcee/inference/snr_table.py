"""The SNR-conditioned exit table: per-frame thresholds chosen by the frame's SNR.

A model file's metadata may hold ``snr_table`` (model_file.SNR_TABLE_KEY) (written by ``amcee calibrate
--snr-aware``, training.calibrate.calibrate_snr_table):

    {"edges_db": [e1, ..., e(B-1)],       # increasing; B bins
     "thresholds": [bin 0, ..., bin B-1], # each as the file's "thresholds":
                                          # per early exit a number or one per class
     "give_up": [bin 0, ..., bin B-1]}    # each as the file's "give_up" (null = off)

Bin 0 holds the frames with SNR < e1, bin i those with e(i) <= SNR < e(i+1),
the last bin those with SNR >= e(B-1).  A frame with an SNR value is held to
its bin's thresholds and give-up values; a frame without one (NaN) to the
model's plain thresholds.  A give-up value of 0 at the first exit sends every
frame of the bin out of the first exit (every entropy is >= 0): the frames
below the table's floor (``floor_db``), where the deeper layers classify no
better, leave at the first exit.

The rule stays per frame: the thresholds a frame gets depend only on its own
SNR value, so its exit and class depend only on the frame, its SNR and the
settings, never on the other frames of its batch (exit_rule.leaves_per_row).
"""
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..frames import to_complex
from .model_file import (SNR_TABLE_KEY, ModelFileError, give_up_to_json, thresholds_to_json, validate_give_up,
                         validate_thresholds)
#: Most bins a table may have.
MAX_BINS = 256


class SnrTableError(ValueError):
    """A table that does not fit the model or is malformed."""


@dataclass(frozen=True)
class SnrTable:
    edges_db: tuple     # B-1 increasing finite numbers
    thresholds: tuple   # B items, each validated thresholds (model_file.validate_thresholds)
    give_up: tuple      # B items, each validated give-up values (inf = off)

    @property
    def num_bins(self):
        return len(self.thresholds)

    @property
    def floor_db(self):
        """The SNR below which every frame leaves at the first exit (the upper
        edge of the lowest bins whose first give-up value is 0), or None."""
        floor = None
        for b, g in enumerate(self.give_up):
            if g[0] != 0.0 or b == len(self.edges_db):
                break
            floor = self.edges_db[b]
        return floor

    def bins(self, snr_db):
        """Bin index of each SNR value; -1 for NaN (no value)."""
        snr = np.asarray(snr_db, dtype=np.float64)
        index = np.searchsorted(np.asarray(self.edges_db, dtype=np.float64), snr, side="right")
        return np.where(np.isnan(snr), -1, index)

    def to_json(self):
        return {"edges_db": [float(e) for e in self.edges_db],
                "thresholds": [thresholds_to_json(t) for t in self.thresholds],
                "give_up": [give_up_to_json(g) for g in self.give_up]}


def validate_snr_table(value, num_exits, num_classes):
    """An SnrTable from its JSON form (None -> None); SnrTableError names the problem."""
    if value is None:
        return None
    if isinstance(value, SnrTable):
        value = value.to_json()
    if not isinstance(value, dict) or set(value) != {"edges_db", "thresholds", "give_up"}:
        raise SnrTableError("snr_table must be an object with edges_db, thresholds and give_up")
    edges, thresholds, give_up = value["edges_db"], value["thresholds"], value["give_up"]
    if not all(isinstance(v, list) for v in (edges, thresholds, give_up)):
        raise SnrTableError("snr_table's edges_db, thresholds and give_up must be lists")
    if not 1 <= len(thresholds) <= MAX_BINS or len(give_up) != len(thresholds) \
            or len(edges) != len(thresholds) - 1:
        raise SnrTableError(f"snr_table has {len(edges)} edges, {len(thresholds)} threshold rows and "
                            f"{len(give_up)} give-up rows: B bins need B-1 edges and B rows of each "
                            f"(1 <= B <= {MAX_BINS})")
    if any(isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) for e in edges) \
            or any(b <= a for a, b in zip(edges, edges[1:])):
        raise SnrTableError(f"snr_table's edges_db must be finite and increasing, got {edges}")
    try:
        rows_t = tuple(validate_thresholds(t, num_exits, num_classes) for t in thresholds)
        rows_g = tuple(validate_give_up(g, num_exits) for g in give_up)
    except (TypeError, ValueError) as exc:
        raise SnrTableError(f"snr_table: {exc}") from None
    return SnrTable(edges_db=tuple(float(e) for e in edges), thresholds=rows_t, give_up=rows_g)


def model_snr_table(loaded):
    """The SNR table of a loaded model file (model_file.LoadedModel), or None;
    a malformed one is a ModelFileError naming the file."""
    try:
        return validate_snr_table(loaded.meta.get(SNR_TABLE_KEY), loaded.num_exits, len(loaded.classes))
    except SnrTableError as exc:
        raise ModelFileError(f"{loaded.path}: metadata field {SNR_TABLE_KEY} is malformed ({exc})") from None


def rule_tensors(table, plain_thresholds, plain_give_up, num_classes, device="cpu"):
    """(thresholds [B+1, K-1, C], give-up [B+1, K-1]): the table's bins, then
    the plain rule's row for frames without an SNR value (bin -1)."""
    rows = list(table.thresholds) + [plain_thresholds]
    t = [[list(v) if isinstance(v, tuple) else [v] * num_classes for v in row] for row in rows]
    g = list(table.give_up) + [plain_give_up]
    return (torch.tensor(t, dtype=torch.float32, device=device),
            torch.tensor(g, dtype=torch.float32, device=device))


def estimate_snr_db(frames):
    """The module's per-frame SNR estimate (dB; amcee_python.estimate_snr_db,
    the code of the amcee.snr_estimator block) of complex64 [N, L] or RML
    float32 [N, 2, L] frames."""
    from ..amcee_python import estimate_snr_db as estimate

    frames = np.asarray(frames)
    if not np.iscomplexobj(frames):
        if frames.ndim != 3 or frames.shape[1] != 2:
            raise ValueError(f"frames must be complex [N, L] or float [N, 2, L], got shape {frames.shape}")
        frames = to_complex(frames)
    return np.asarray(estimate(np.ascontiguousarray(frames, dtype=np.complex64)), dtype=np.float64)
