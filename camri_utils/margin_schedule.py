"""A margin switched on during training: a softmax warm-up, or a margin ramped in
(``TrainConfig.margin_schedule``).

A margin loss can fail to converge when the margin acts from the first step: features that start
far from their class weight get a target logit that the margin has lowered further (past
``pi - m`` the paper's formula even pushes them away), and in few dimensions many do. Practitioners
train the first epochs without the margin, or raise it from 0 over the first epochs. One schedule
covers both: ``{"start_epoch": e, "ramp_epochs": r}`` (epochs counted from 0) multiplies every
margin by

    f(t) = 0                          for t < e           (no margin: normalized softmax)
    f(t) = min(1, (t - e) / r)        for t >= e, r > 0   (a linear ramp, full from epoch e + r)
    f(t) = 1                          for t >= e, r = 0   (the full margin from epoch e)

so ``{"start_epoch": 10, "ramp_epochs": 0}`` is a 10-epoch warm-up and ``{"start_epoch": 0,
"ramp_epochs": 20}`` a ramp over the first 20 epochs. The loss is a
:class:`~camri_utils.losses.ScheduledMarginLoss`; :class:`MarginSchedule` sets its factor at the
start of every epoch (so a resumed run gets the factor of the epoch it resumes at), as
:class:`~camri_utils.imbalance.DeferredReweighting` switches class weights.

Example:
    >>> from camri_utils import margin_schedule
    >>> schedule = margin_schedule.check_margin_schedule({"start_epoch": 2, "ramp_epochs": 4}, epochs=10)
    >>> [margin_schedule.margin_factor(t, schedule) for t in range(8)]
    [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
"""

from __future__ import annotations

import numbers

import keras
import numpy as np

from camri_utils import losses

__all__ = ["check_margin_schedule", "margin_factor", "MarginSchedule", "scheduled_loss"]

_KEYS = ("start_epoch", "ramp_epochs")


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_margin_schedule(value, epochs):
    """``TrainConfig.margin_schedule`` checked: None (the full margin from the first step) or
    ``{"start_epoch": e, "ramp_epochs": r}`` (``ramp_epochs`` optional, default 0) with
    integers ``e, r >= 0``, ``e + r >= 1`` (else nothing is scheduled) and ``e + r < epochs``
    (the full margin is reached in a trained epoch)."""
    if value is None:
        return None
    if not isinstance(value, dict) or "start_epoch" not in value or not set(value) <= set(_KEYS):
        raise ValueError("margin_schedule must be None or {'start_epoch': e, 'ramp_epochs': r} (ramp_epochs "
                         "optional, default 0; e.g. {'start_epoch': 10}: no margin in the first 10 epochs); "
                         f"got {value!r}.")
    e, r = value["start_epoch"], value.get("ramp_epochs", 0)
    for name, v in (("start_epoch", e), ("ramp_epochs", r)):
        if not _is_int(v) or v < 0:
            raise ValueError(f"margin_schedule[{name!r}] must be an integer >= 0 (epochs, counted from 0); got {v!r}.")
    if e + r == 0:
        raise ValueError("margin_schedule {'start_epoch': 0, 'ramp_epochs': 0} schedules nothing (the full margin "
                         "from the first epoch): use margin_schedule=None.")
    if not e + r < epochs:
        raise ValueError(f"margin_schedule reaches the full margin at epoch start_epoch + ramp_epochs = {e + r}, "
                         f"but epochs={epochs} trains epochs 0..{epochs - 1}: end the ramp earlier or train longer.")
    return {"start_epoch": int(e), "ramp_epochs": int(r)}


def margin_factor(epoch, schedule):
    """The factor on every margin in epoch ``epoch`` (counted from 0) under a checked
    ``schedule`` (None: 1)."""
    if schedule is None:
        return 1.0
    e, r = schedule["start_epoch"], schedule["ramp_epochs"]
    if epoch < e:
        return 0.0
    return 1.0 if r == 0 else min(1.0, (epoch - e) / r)


def scheduled_loss(loss):
    """The :class:`~camri_utils.losses.ScheduledMarginLoss` in ``loss``: itself, or the loss
    a :class:`~camri_utils.losses.ClassReweightedLoss` re-weights (a schedule and DRW
    together); else a ValueError."""
    inner = loss.base_loss if isinstance(loss, losses.ClassReweightedLoss) else loss
    if not isinstance(inner, losses.ScheduledMarginLoss):
        raise ValueError(f"MarginSchedule needs a ScheduledMarginLoss (or a ClassReweightedLoss of one); got "
                         f"{type(inner).__name__}.")
    return inner


class MarginSchedule(keras.callbacks.Callback):
    """Sets the margin factor of ``loss`` (a :class:`~camri_utils.losses.ScheduledMarginLoss`,
    or a :class:`~camri_utils.losses.ClassReweightedLoss` of one) to
    :func:`margin_factor` at the start of every epoch."""

    def __init__(self, loss, schedule, epochs):
        super().__init__()
        self.loss = scheduled_loss(loss)
        self.schedule = check_margin_schedule(schedule, epochs)
        if self.schedule is None:
            raise ValueError("MarginSchedule needs a schedule ({'start_epoch': e, 'ramp_epochs': r}); got None.")

    def on_epoch_begin(self, epoch, logs=None):
        self.loss.margin_factor.assign(margin_factor(epoch, self.schedule))
