"""The early-exit rule, in torch: which rows leave an exit.

A row leaves an early exit when the base-10 entropy E of its class
probabilities is at most the exit's threshold (the paper's rule) or at
least its give-up value.  The exported forward (network.architecture,
scripted into every model file) and the engine apply it through these
functions; training.exit_simulation is its numpy twin.

The thresholds are the same for every row of a batch (``leaves``), or each
row has its own (``leaves_per_row``: the SNR-conditioned table,
inference.snr_table).  Either way a row's exit depends only on that row and
its thresholds, never on the other rows of its batch.
"""
import math

import torch
from torch import Tensor


def class_probabilities(logits: Tensor) -> Tensor:
    """softmax(logits, dim=1), computed over dim 0 of the transpose: the
    heads' W @ x^T leaves the transpose contiguous, and over a contiguous
    first dimension of 10 classes softmax is several times faster than over
    the last (docs/performance.md)."""
    return torch.softmax(logits.t(), dim=0).t()


def entropy10(p: Tensor) -> Tensor:
    """Entropy -sum p log10 p per row (0 log 0 = 0), as in the paper."""
    return -torch.xlogy(p, p).sum(dim=1) / math.log(10.0)


def predicted_class(p: Tensor) -> Tensor:
    """Index of each row's largest probability (the first of equal ones, as
    argmax).  torch.max over dim 1 rather than argmax: on the transposed
    layout class_probabilities returns, argmax takes several times longer
    for the same indices (docs/performance.md)."""
    return torch.max(p, dim=1)[1]


def leaves(p: Tensor, e: Tensor, threshold: Tensor, give_up: Tensor) -> Tensor:
    """Rows that leave an early exit: entropy E <= threshold (the paper's
    rule) or E >= give_up.  ``threshold`` is one number for the exit, or one
    per class [C]: then each row is held to the threshold of the class it is
    predicted as (class thresholds, training.calibrate.search_class_thresholds)."""
    if threshold.dim() > 0:
        threshold = threshold.index_select(0, predicted_class(p))
    return (e <= threshold) | (e >= give_up)


def leaves_per_row(p: Tensor, e: Tensor, threshold: Tensor, give_up: Tensor) -> Tensor:
    """leaves with thresholds of each row's own: ``threshold`` [n, C] (one
    per row and predicted class; a number for all classes is repeated over
    them), ``give_up`` [n].  Same comparisons as leaves, so a row given the
    shared values gets leaves' answer bit for bit."""
    threshold = threshold.gather(1, predicted_class(p).unsqueeze(1)).squeeze(1)
    return (e <= threshold) | (e >= give_up)
