"""A rare important class, and the long-tail methods' pieces that are not losses.

- :func:`subsample_class`: the rare-class variant of a dataset (``TrainConfig.rare_class``):
  one class's *training* images cut to a fraction, seeded; validation and test images stay
  balanced, as in the long-tail literature.
- :func:`effective_number_weights` and :class:`DeferredReweighting`: deferred re-weighting
  (DRW, Cao et al., NeurIPS 2019; ``TrainConfig.drw``): class weights from the effective
  number of samples, switched on for the last epochs of training.
- :func:`posthoc_logit_adjustment`: post-hoc logit adjustment (Menon et al., ICLR 2021), which
  for one rare class among equally frequent ones is threshold moving (:func:`equivalent_bias`).

The losses (LDAM's margins, the logit-adjusted loss) are in :mod:`camri_utils.losses`.

Example:
    >>> import numpy as np
    >>> from camri_utils import imbalance
    >>> y = np.repeat(np.arange(3), 100)
    >>> _, y_rare = imbalance.subsample_class(y, y, {"class": 1, "fraction": 0.1}, seed=0, n_classes=3)
    >>> np.bincount(y_rare).tolist()
    [100, 10, 100]
    >>> imbalance.effective_number_weights([100, 10, 100], beta=0.99).round(3).tolist()
    [0.348, 2.305, 0.348]
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np

from camri_utils import losses

__all__ = ["check_rare_class", "check_drw", "subsample_class", "effective_number_weights", "DeferredReweighting",
           "posthoc_logit_adjustment", "equivalent_bias", "DRW_BETA"]

DRW_BETA = 0.9999  # the authors' beta (kaidic/LDAM-DRW)


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return (isinstance(value, (numbers.Real, np.floating)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def check_rare_class(value):
    """``TrainConfig.rare_class`` checked: None (every training image kept) or
    ``{"class": c, "fraction": f}`` with a class index ``c >= 0`` and ``0 < f <= 1`` (whether
    ``c`` is a class of the dataset is checked when the data is loaded)."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"class", "fraction"}:
        raise ValueError(f"rare_class must be None or {{'class': c, 'fraction': f}} (e.g. {{'class': 6, "
                         f"'fraction': 0.1}}: class 6 keeps 10% of its training images); got {value!r}.")
    c, f = value["class"], value["fraction"]
    if not _is_int(c) or c < 0:
        raise ValueError(f"rare_class['class'] must be a class index (an integer >= 0); got {c!r}.")
    if not _is_real(f) or not 0 < f <= 1:
        raise ValueError(f"rare_class['fraction'] must be a number in (0, 1] (the share of the class's training "
                         f"images kept); got {f!r}.")
    return {"class": int(c), "fraction": float(f)}


def check_drw(value, epochs):
    """``TrainConfig.drw`` checked: None (no re-weighting) or ``{"start_epoch": e, "beta": b}``
    with ``0 <= e < epochs`` (epochs counted from 0: weights from epoch ``e`` on) and
    ``0 <= b < 1`` (default :data:`DRW_BETA`; 0 gives equal weights)."""
    if value is None:
        return None
    if not isinstance(value, dict) or "start_epoch" not in value or not set(value) <= {"start_epoch", "beta"}:
        raise ValueError(f"drw must be None or {{'start_epoch': e, 'beta': b}} (beta optional, default {DRW_BETA}); "
                         f"got {value!r}.")
    e, b = value["start_epoch"], value.get("beta", DRW_BETA)
    if not _is_int(e) or not 0 <= e < epochs:
        raise ValueError(f"drw['start_epoch'] must be an integer in [0, epochs={epochs}) (epochs count from 0); "
                         f"got {e!r}.")
    if not _is_real(b) or not 0 <= b < 1:
        raise ValueError(f"drw['beta'] must be a number in [0, 1) (the authors use {DRW_BETA}); got {b!r}.")
    return {"start_epoch": int(e), "beta": float(b)}


def subsample_class(x, y, rare_class, seed, n_classes, dataset="the dataset"):
    """``(x, y)`` with the training images of ``rare_class["class"]`` cut to
    ``round(fraction * n)`` (at least 1), chosen by ``seed``; every other image kept, in order.
    ``rare_class=None`` returns ``(x, y)`` unchanged."""
    rare_class = check_rare_class(rare_class)
    if rare_class is None:
        return x, y
    c, fraction = rare_class["class"], rare_class["fraction"]
    if c >= n_classes:
        raise ValueError(f"rare_class['class'] = {c} is not a class of {dataset} (classes 0..{n_classes - 1}).")
    y = np.asarray(y)
    of_class = np.flatnonzero(y == c)
    if of_class.size == 0:
        raise ValueError(f"{dataset} has no training images of class {c} to subsample.")
    n_kept = max(1, int(round(fraction * of_class.size)))
    keep = y != c
    keep[np.random.default_rng(seed).choice(of_class, n_kept, replace=False)] = True
    return x[keep], y[keep]


def effective_number_weights(counts, beta=DRW_BETA):
    """Class weights from the effective number of samples (Cui et al., 2019, as DRW uses them):
    ``(1 - beta) / (1 - beta ** n_j)``, scaled to sum to the number of classes, as the LDAM-DRW
    authors' code does. ``beta = 0`` gives all ones. Float64 array."""
    n = np.asarray(losses.check_class_counts(counts), np.float64)
    if not _is_real(beta) or not 0 <= beta < 1:
        raise ValueError(f"beta must be a number in [0, 1); got {beta!r}.")
    w = (1.0 - beta) / (1.0 - np.power(float(beta), n))
    return w / w.sum() * n.size


class DeferredReweighting(keras.callbacks.Callback):
    """Deferred re-weighting: before ``start_epoch`` the loss's class weights are all 1, from
    ``start_epoch`` on they are ``class_weights``. ``loss`` is a
    :class:`~camri_utils.losses.ClassReweightedLoss`; its weights are a variable, so the
    compiled train step reads the new ones without retracing. Set at the start of every
    epoch, so a resumed run gets the weights of the epoch it resumes at."""

    def __init__(self, loss, class_weights, start_epoch):
        super().__init__()
        if not isinstance(loss, losses.ClassReweightedLoss):
            raise ValueError(f"DeferredReweighting needs a ClassReweightedLoss; got {type(loss).__name__}.")
        self.loss, self.start_epoch = loss, int(start_epoch)
        self.weights = np.asarray(class_weights, "float32")
        if self.weights.shape != tuple(loss.class_weights.shape):
            raise ValueError(f"class_weights has shape {self.weights.shape}; the loss has "
                             f"{tuple(loss.class_weights.shape)}.")

    def on_epoch_begin(self, epoch, logs=None):
        self.loss.class_weights.assign(self.weights if epoch >= self.start_epoch else np.ones_like(self.weights))


def posthoc_logit_adjustment(scores, counts, tau=1.0):
    """Post-hoc logit adjustment: ``z_j - tau * log(pi_j)`` for a trained model's logits ``z``
    (batch, n_classes) and the training class counts. No training. Float64."""
    z = np.asarray(scores, np.float64)
    prior = losses.log_priors(counts)
    if z.ndim != 2 or z.shape[1] != prior.size:
        raise ValueError(f"scores must have shape (n, {prior.size}) for {prior.size} class counts; got {z.shape}.")
    return z - losses._check_tau(tau) * prior


def equivalent_bias(counts, rare, tau=1.0):
    """The threshold bias that post-hoc logit adjustment amounts to when one class ``rare`` is
    rarer and all others are equally frequent: ``tau * log(n_other / n_rare)`` added to the
    rare class's logit (subtracting ``tau * log(pi_j)`` shifts the others by one constant,
    which no argmax sees). Other class counts that differ are no single bias: an error."""
    n = np.asarray(losses.check_class_counts(counts), np.float64)
    if not _is_int(rare) or not 0 <= rare < n.size:
        raise ValueError(f"rare must be a class index in [0, {n.size}); got {rare!r}.")
    others = np.delete(n, rare)
    if np.ptp(others) != 0:
        raise ValueError(f"the classes other than {rare} have different counts ({others.tolist()}): post-hoc "
                         "adjustment moves more than one threshold, so it is no single bias.")
    return losses._check_tau(tau) * float(np.log(others[0] / n[rare]))
