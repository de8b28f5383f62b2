"""Angular-margin losses (NormFace, SphereFace, CosFace, ArcFace, CAMRI) and re-weighted
cross-entropy baselines (WCE, real-world-weight cross-entropy).

The margin losses take ``y_pred`` = cosines between the L2-normalised feature and the
L2-normalised class weights (the output of :class:`camri_utils.layers.CosineHead`). For a sample
of class ``t`` with angle ``theta_t`` to its own class weight, the logits fed to softmax
cross-entropy are::

    target logit:      s * (cos(m1[t] * theta_t + m2[t]) - m3[t])
    non-target logits: s * cos(theta_k),   k != t

with one margin vector per kind of margin (``m1`` multiplicative, ``m2`` additive angular,
``m3`` additive cosine). Every member of the family is a choice of these vectors, and each named
loss declares the one its ``margin`` argument sets:

=====================  ========================================  =============================
loss                   margins                                   default where phi > pi
=====================  ========================================  =============================
NormalizedSoftmax      m1 = 1, m2 = 0, m3 = 0                    (never happens)
SphereFace             m1 = m for every class                    monotonic psi (its paper)
ArcFace                m2 = m for every class                    monotonic (insightface)
CosFace                m3 = m for every class                    (never happens)
CAMRI                  m2 = m_c for the important classes c      the paper's formula
AngularMarginLoss      any m1, m2, m3 (scalars or per class)     the formula as written
=====================  ========================================  =============================

``phi = m1 * theta + m2``; past pi the formula's target logit rises again as the feature turns
away from its class, and ``monotonic=True`` replaces it there by a decreasing continuation.

Training practice for margins that do not converge: ``easy_margin=True`` (ArcFace's "easy
margin") applies the margin only where ``cos(theta_t) > 0``; :class:`ScheduledMarginLoss`
scales every margin by a factor in [0, 1] that a callback changes between epochs (a softmax
warm-up, a margin ramped in; ``TrainConfig.margin_schedule``). Both are off by default.

The loss itself is :func:`angular_margin_logits` (a pure function) followed by softmax
cross-entropy; the classes hold the hyperparameters. The margin is computed in float32 whatever
the compute dtype, and the angle is recovered without ``acos`` (whose gradient is infinite at
cos = +-1), so loss and gradients stay finite everywhere.

Labels: class indices, shape (batch,) or (batch, 1), or label rows (batch, n_classes) that are
one-hot or soft (label smoothing, mixup). A soft row weights each class's margin by its label
mass, and the cross-entropy is taken against the row. Bad labels (outside [0, n_classes), not
whole numbers, rows that are not distributions) raise a ``ValueError`` in eager calls; inside a
compiled TensorFlow function they fail the step with an ``InvalidArgumentError`` that says the
same. Where assertions cannot run (XLA, which compiles them away; other Keras backends) the bad
sample's loss is NaN, so the run does not go on silently.

Cosines: eager calls reject NaN and values outside [-1, 1] (logits passed by mistake). Inside a
compiled function a NaN cosine (a diverged model) passes through to a NaN loss, as in Keras' own
losses; ``keras.callbacks.TerminateOnNaN`` stops such a run.
"""

from __future__ import annotations

import inspect
import math
import numbers

import keras
import numpy as np
from keras import ops

from camri_utils import checks

__all__ = [
    "AngularMarginLoss",
    "NormalizedSoftmaxLoss",
    "SphereFaceLoss",
    "CosFaceLoss",
    "ArcFaceLoss",
    "CAMRILoss",
    "WeightedCrossEntropy",
    "RealWorldWeightedCrossEntropy",
    "LogitAdjustedLoss",
    "ClassReweightedLoss",
    "ScheduledMarginLoss",
    "check_class_counts",
    "ldam_margins",
    "log_priors",
    "margin_cosine",
    "angular_margin_logits",
    "sparse_labels",
    "MAX_SCALE",
]

_PACKAGE = "camri_utils"
# sin(theta) is floored at sqrt(_SIN2_FLOOR) so that d theta / d cos stays finite at cos = +-1;
# the resulting change of theta (1e-8 rad) is far below float32 resolution of the loss.
_SIN2_FLOOR = 1e-16
# Beyond this the logits overflow float32 (scale * cos, then exp): 1e4 is far above any useful value.
MAX_SCALE = 1e4
# Cosines come clipped to [-1, 1] from the head; anything beyond this is not a cosine (logits?).
_COSINE_SLACK = 1e-3

# The three margin slots: the value that means "no margin", the allowed range
# (low, high, high included?) and what the margin is, for error messages.
_SLOTS = {
    "m1": (1.0, (1.0, math.inf, False), "a multiplicative angular margin"),
    "m2": (0.0, (0.0, math.pi, False),
           "radians: an additive angular margin of pi or more turns every target angle past pi"),
    "m3": (0.0, (0.0, 2.0, True), "an additive cosine margin"),
}


# --------------------------------------------------------------------------------------------
# Hyperparameters (checked on Python values, at construction and by the functions)
# --------------------------------------------------------------------------------------------
def _check_scale(scale):
    if (isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale)
            or not 0 < scale <= MAX_SCALE):
        raise ValueError(
            f"scale must be a finite number in (0, {MAX_SCALE:g}] (typical values 8 to 64); got {scale!r}."
        )
    return float(scale)


def _check_margin(slot, value, n_values=None, name=None, per="class"):
    """A margin for ``slot``: a float, or ``n_values`` floats (one per ``per``) -> float or tuple."""
    name = name or slot
    _, (low, high, high_included), what = _SLOTS[slot]
    sequence = isinstance(value, (list, tuple, np.ndarray))
    values = list(np.asarray(value, dtype=object).ravel()) if sequence else [value]
    if sequence and n_values is None:
        raise ValueError(f"{name} is given per {per} ({len(values)} values) but n_classes is not set; "
                         "pass n_classes or give a single float.")
    if sequence and len(values) != n_values:
        raise ValueError(f"{name} has {len(values)} values but there are {n_values} {per}es; give one "
                         f"{name} per {per}, or a single float.")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number; got {v!r}.")
        if not (low <= v <= high if high_included else low <= v < high):
            raise ValueError(f"{name} must be in [{low:g}, {high:g}{']' if high_included else ')'} "
                             f"({what}); got {v!r}.")
    return tuple(float(v) for v in values) if sequence else float(value)


# --------------------------------------------------------------------------------------------
# Labels and predictions (tensors)
# --------------------------------------------------------------------------------------------
def _known_values(x):
    """``x`` as NumPy when its values are known (eager), None inside a traced function."""
    try:
        return ops.convert_to_numpy(x)
    except Exception:  # symbolic: TensorFlow and JAX raise different errors for the same thing
        return None


def _assert_in_graph(ok, message, values):
    """Fail a traced TensorFlow function with ``message`` (and the first offending value)
    where ``ok`` is False. XLA compiles asserts away and other backends have none: there the
    callers' NaN losses are what shows the problem."""
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    first_bad = tf.gather(values, tf.argmin(tf.cast(ok, tf.int32)))  # a static shape, for XLA
    tf.debugging.Assert(tf.reduce_all(ok), [message, first_bad])


def _n_classes_of(y_pred):
    if len(y_pred.shape) != 2 or y_pred.shape[-1] is None:
        raise ValueError(
            f"predictions must have shape (batch, n_classes) with a known n_classes; got "
            f"{tuple(y_pred.shape)}."
        )
    return int(y_pred.shape[-1])


def _label_rows(y_true, pred_shape):
    """The labels as (batch, n_classes) float32 rows (one-hot for class indices) and a (batch,)
    mask of the rows that are valid labels, checked against predictions of ``pred_shape``."""
    n_pred, n_classes = pred_shape
    y = ops.convert_to_tensor(y_true)
    n_true = y.shape[0] if len(y.shape) else None
    if n_true is not None and n_pred is not None and n_true != n_pred:
        raise ValueError(f"labels have batch size {n_true} but predictions have batch size {n_pred}; "
                         "they must describe the same samples.")
    kind = checks.label_format(y.shape, n_classes)
    values = _known_values(y)
    if values is not None:  # eager: check in NumPy, with the library's one wording
        if kind == "indices":
            checks.class_labels(values, n_classes)
        else:
            checks.check_label_rows(values)
    y = ops.cast(y, "float32")
    if kind == "indices":
        y = ops.reshape(y, (-1,))
        valid = ops.logical_and(ops.logical_and(y >= 0, y < n_classes), ops.equal(ops.floor(y), y))
        rows = ops.one_hot(ops.cast(y, "int32"), n_classes, dtype="float32")  # invalid -> zeros
        message, shown = (f"a label is outside [0, {n_classes}) or not a whole number: "
                          f"{checks.label_message(n_classes)}. First bad label:"), y
    else:
        rows, sums = y, ops.sum(y, axis=-1)
        valid = ops.logical_and(ops.all(y >= 0, axis=-1), ops.abs(sums - 1.0) <= checks.ROW_SUM_TOLERANCE)
        message, shown = ("label rows must be >= 0 and sum to 1 (one-hot or soft labels). "
                          "First bad row sums to:"), sums
    if values is None:
        _assert_in_graph(valid, message, shown)
    return rows, valid


def _nan_unless(valid, per_sample):
    """Per-sample losses, NaN for invalid labels (only reachable where asserts do not run)."""
    return ops.where(valid, per_sample, float("nan"))


def sparse_labels(y_true, n_classes):
    """Class indices (batch,) int32 from class indices (batch,) / (batch, 1) or label rows
    (batch, n_classes) (their argmax), checked as the losses check them."""
    if n_classes is None:
        raise ValueError("predictions need a known number of classes (their last axis) to read labels.")
    rows, _ = _label_rows(y_true, (None, n_classes))
    return ops.cast(ops.argmax(rows, axis=-1), "int32")


def _cosines(cosine):
    """Cosines as float32 (batch, n_classes), clipped to [-1, 1]. Eager calls reject NaN and
    values that are no cosines; in a traced function a NaN passes through to the loss."""
    cosine = ops.convert_to_tensor(cosine)
    _n_classes_of(cosine)
    values = _known_values(cosine)
    if values is not None:
        if np.isnan(values).any():
            raise ValueError("the cosines contain NaN: the model's features are NaN (a diverged run? "
                             "try a lower learning rate) or the head's input is.")
        if np.abs(values).max(initial=0.0) > 1.0 + _COSINE_SLACK:
            raise ValueError(f"predictions must be cosines in [-1, 1] (the output of a CosineHead); got "
                             f"{values.flat[np.argmax(np.abs(values))]:g}. Logits go to a cross-entropy loss.")
    return ops.clip(ops.cast(cosine, "float32"), -1.0, 1.0)


# --------------------------------------------------------------------------------------------
# The angular-margin family as functions
# --------------------------------------------------------------------------------------------
def margin_cosine(cosine, m1=1.0, m2=0.0, m3=0.0, monotonic=False,
                  easy_margin=False):
    """The margin-adjusted cosine ``cos(m1 * theta + m2) - m3`` of every entry of
    ``cosine``, in float32. Each margin is a float or one value per class (per
    column of ``cosine``).

    ``monotonic=True`` replaces the formula where ``phi = m1 * theta + m2`` passes
    pi (where it would rise again) by a decreasing continuation: ArcFace's
    ``cos(theta) - m2 sin(m2) - m3`` for columns with ``m1 = 1``, SphereFace's
    ``(-1)^k cos(phi) - 2k - m3`` with ``k = floor(phi / pi)`` for the others.
    ``easy_margin=True`` (ArcFace's "easy margin") applies the margin only where
    ``cos(theta) > 0`` and leaves ``cos(theta)`` itself elsewhere, so a feature more
    than 90 degrees from its class weight is pulled back as without a margin. NaN
    cosines give NaN.

    Example:
        >>> import numpy as np
        >>> from camri_utils.losses import margin_cosine
        >>> cos = np.cos(np.radians([[60.0, 170.0]]))
        >>> np.round(margin_cosine(cos, m2=0.5).numpy(), 3)  # cos(theta + 0.5)
        array([[ 0.024, -0.948]], dtype=float32)
        >>> np.round(margin_cosine(cos, m2=0.5, monotonic=True).numpy(), 3)
        array([[ 0.024, -1.225]], dtype=float32)
        >>> # at 170 deg the easy margin leaves the cosine itself
        >>> np.round(margin_cosine(cos, m2=0.5, easy_margin=True).numpy(), 3)
        array([[ 0.024, -0.985]], dtype=float32)
    """
    cosine = ops.clip(ops.cast(ops.convert_to_tensor(cosine), "float32"), -1.0, 1.0)
    n = cosine.shape[-1] if len(cosine.shape) else None
    m1, m2, m3 = (_margin_tensor(_check_margin(slot, m, n))
                  for slot, m in zip(_SLOTS, (m1, m2, m3)))
    return _target_cosine(cosine, m1, m2, m3,
                          checks.check_bool(monotonic, "monotonic"),
                          checks.check_bool(easy_margin, "easy_margin"))


def _target_cosine(cosine, m1, m2, m3, monotonic, easy_margin):
    """:func:`margin_cosine` on clipped float32 cosines with the margins as float32 tensors
    (checked, or scaled by :class:`ScheduledMarginLoss`'s factor)."""
    # theta without acos: sin from the product form (exact near +-1), floored so that
    # d theta / d cos is finite.
    sin = ops.sqrt(ops.maximum((1.0 - cosine) * (1.0 + cosine), _SIN2_FLOOR))
    theta = ops.arctan2(sin, cosine)
    phi = m1 * theta + m2
    target = ops.cos(phi) - m3
    if monotonic:
        arcface = cosine - m2 * ops.sin(m2) - m3
        k = ops.floor(phi / math.pi)
        sphereface = (1.0 - 2.0 * ops.mod(k, 2.0)) * ops.cos(phi) - 2.0 * k - m3
        continuation = ops.where(ops.equal(m1, 1.0), arcface, sphereface)
        target = ops.where(phi > math.pi, continuation, target)
    if easy_margin:
        target = ops.where(cosine > 0.0, target, cosine)
    return target


def _margin_tensor(margin):
    return ops.convert_to_tensor(np.asarray(margin, "float32"))


def _margin_logits(y_true, cosine, scale, m1, m2, m3, monotonic, easy_margin=False, factor=None):
    """(label rows, valid-label mask, logits): what the losses and angular_margin_logits share.
    ``factor`` (a float32 scalar tensor, or None for 1) scales every margin towards none:
    ``m1 -> 1 + f (m1 - 1)``, ``m2 -> f m2``, ``m3 -> f m3``."""
    cosine = _cosines(cosine)
    rows, valid = _label_rows(y_true, cosine.shape)
    n = cosine.shape[-1]
    m1, m2, m3 = (_margin_tensor(_check_margin(slot, m, n)) for slot, m in zip(_SLOTS, (m1, m2, m3)))
    if factor is not None:
        f = ops.cast(factor, "float32")
        m1, m2, m3 = 1.0 + f * (m1 - 1.0), f * m2, f * m3
    target = _target_cosine(cosine, m1, m2, m3, checks.check_bool(monotonic, "monotonic"),
                            checks.check_bool(easy_margin, "easy_margin"))
    # Column-wise: the margin weighted by the label mass (one-hot: only the target column moves).
    return rows, valid, _check_scale(scale) * (cosine + rows * (target - cosine))


def angular_margin_logits(y_true, cosine, scale, m1=1.0, m2=0.0, m3=0.0, monotonic=False, easy_margin=False):
    """The logits the angular-margin losses feed to softmax cross-entropy, float32
    (batch, n_classes): ``s * (cos + y * (margin_cosine(cos) - cos))`` with ``y`` the label rows
    (one-hot for class indices), i.e. ``s * (cos(m1 theta_t + m2) - m3)`` at the target and
    ``s * cos(theta_k)`` elsewhere.

    Args:
        y_true: class indices (batch,) or (batch, 1), or one-hot or soft label rows (batch, C).
        cosine: cosines (batch, C) from a :class:`~camri_utils.layers.CosineHead`.
        scale: ``s``, in (0, 1e4].
        m1, m2, m3, monotonic, easy_margin: as for :func:`margin_cosine`.

    Example:
        >>> import numpy as np
        >>> from camri_utils.losses import angular_margin_logits
        >>> cos = np.array([[0.5, 0.0], [0.0, 0.5]], "float32")
        >>> np.round(angular_margin_logits([0, 1], cos, scale=10.0, m3=0.35).numpy(), 3)
        array([[1.5, 0. ],
               [0. , 1.5]], dtype=float32)
    """
    return _margin_logits(y_true, cosine, scale, m1, m2, m3, monotonic, easy_margin)[2]


# --------------------------------------------------------------------------------------------
# The angular-margin family as losses
# --------------------------------------------------------------------------------------------
def _arguments(cls):
    """The constructor arguments a loss's config holds (name and reduction come from Keras)."""
    skip = {"self", "reduction", "name", "dtype"}
    return [p for p in inspect.signature(cls.__init__).parameters if p not in skip]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AngularMarginLoss(keras.losses.Loss):
    """Softmax cross-entropy on cosines with margins on the target logit.

    The target logit of a sample of class ``t`` is ``s * (cos(m1[t] * theta_t + m2[t]) - m3[t])``
    and every other logit is ``s * cos(theta_k)`` (see :func:`angular_margin_logits`).

    Args:
        scale: ``s`` in (0, 1e4], the radius of the hypersphere the logits live on.
        m1: multiplicative angular margin (>= 1), a float or one value per class.
        m2: additive angular margin in radians, in [0, pi), a float or one value per class.
        m3: additive cosine margin, in [0, 2], a float or one value per class.
        n_classes: number of classes; required when a margin is given per class, and then
            checked against the predictions.
        monotonic: ``False`` (default) uses the formula above as written, so the target logit
            *rises* again once ``m1 * theta + m2`` passes pi. ``True`` replaces it there by a
            decreasing continuation (see :func:`margin_cosine`).
        easy_margin: ``False`` (default) applies the margins at every angle. ``True`` is
            ArcFace's "easy margin": the margins only where ``cos(theta_t) > 0``, the plain
            cosine beyond 90 degrees, so that a feature far from its class weight (early in
            training, or trapped past ``pi - m``) is pulled back as without a margin.
        reduction, name, dtype: as for any Keras loss.

    The named losses below are this class with one margin set by their ``margin`` argument:
    each declares the slot (``margin_slot``) and everything else is shared.

    Example:
        >>> import numpy as np
        >>> from camri_utils.losses import AngularMarginLoss
        >>> loss = AngularMarginLoss(scale=16.0, m1=1.2, m2=0.2, m3=0.1)  # all three margins at once
        >>> round(float(loss([0, 1], np.array([[0.9, 0.1], [0.2, 0.8]]))), 4)
        0.0074
    """

    margin_slot = None  # named losses: the slot ("m1", "m2" or "m3") their `margin` sets

    def __init__(self, scale=30.0, m1=1.0, m2=0.0, m3=0.0, n_classes=None, monotonic=False,
                 easy_margin=False, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.n_classes = None if n_classes is None else checks.check_n_classes(n_classes)
        self.scale = _check_scale(scale)
        self.m1, self.m2, self.m3 = (_check_margin(slot, m, self.n_classes)
                                     for slot, m in zip(_SLOTS, (m1, m2, m3)))
        self.monotonic = checks.check_bool(monotonic, "monotonic")
        self.easy_margin = checks.check_bool(easy_margin, "easy_margin")

    def _named_margin(self, margin, important_classes=None, n_classes=None):
        """For the named losses: check ``margin`` and return the margin keyword for
        this class's slot. Every class gets it, or only ``important_classes`` (one
        float for all of them, or one per important class; the other classes get no
        margin)."""
        slot = self.margin_slot
        if important_classes is None:
            self._margin = _check_margin(slot, margin, name="margin")
            return {slot: self._margin}
        n_classes = checks.check_n_classes(n_classes)
        self.important_classes = checks.check_important_classes(important_classes,
                                                                n_classes)
        k = len(self.important_classes)
        self._margin = _check_margin(slot, margin, k, name="margin",
                                     per="important class")
        margins = (self._margin if isinstance(self._margin, tuple)
                   else (self._margin,) * k)
        no_margin = _SLOTS[slot][0]
        per_class = [no_margin] * n_classes
        for c, m in zip(self.important_classes, margins):
            per_class[c] = m
        return {slot: tuple(per_class)}

    @property
    def margin(self):
        """The ``margin`` argument of a named loss: a float, or one per important class."""
        if self.margin_slot is None:
            raise AttributeError(f"{type(self).__name__} has no single margin; see m1, m2 and m3.")
        return self._margin

    def _check_classes(self, cosine):
        n_classes = _n_classes_of(ops.convert_to_tensor(cosine))
        if self.n_classes is not None and n_classes != self.n_classes:
            raise ValueError(f"predictions have {n_classes} classes but the loss was built with "
                             f"n_classes={self.n_classes}.")

    def target_cosine(self, cosine):
        """The margin-adjusted cosine ``cos(m1 theta + m2) - m3`` of every column of ``cosine``
        (batch, n_classes), each with its class's margins: what a sample of that class gets as
        its target cosine. No labels needed."""
        self._check_classes(cosine)
        return margin_cosine(cosine, self.m1, self.m2, self.m3, self.monotonic, self.easy_margin)

    def logits(self, y_true, cosine):
        """The margin-adjusted, scaled logits (batch, n_classes) that the loss feeds to softmax
        cross-entropy, in float32."""
        self._check_classes(cosine)
        return angular_margin_logits(y_true, cosine, self.scale, self.m1, self.m2, self.m3, self.monotonic,
                                     self.easy_margin)

    @property
    def has_margin(self):
        """Whether any class has a margin (False: normalized softmax)."""
        return any(np.any(np.asarray(m) != _SLOTS[slot][0]) for slot, m in zip(_SLOTS, (self.m1, self.m2, self.m3)))

    def call(self, y_true, y_pred):
        return self.scaled_call(y_true, y_pred, None)

    def scaled_call(self, y_true, y_pred, margin_factor):
        """The per-sample losses with every margin scaled by ``margin_factor`` (a float32
        scalar tensor in [0, 1]; None: 1): ``m1 -> 1 + f (m1 - 1)``, ``m2 -> f m2``,
        ``m3 -> f m3``, so 0 is normalized softmax at the same scale. What
        :class:`ScheduledMarginLoss` calls."""
        self._check_classes(y_pred)
        rows, valid, logits = _margin_logits(y_true, y_pred, self.scale, self.m1, self.m2, self.m3,
                                             self.monotonic, self.easy_margin, margin_factor)
        return _nan_unless(valid, ops.categorical_crossentropy(rows, logits, from_logits=True))

    def get_config(self):
        config = super().get_config()
        for arg in _arguments(type(self)):
            value = getattr(self, arg)
            config[arg] = list(value) if isinstance(value, tuple) else value
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NormalizedSoftmaxLoss(AngularMarginLoss):
    """Normalised softmax (L2-constrained softmax / NormFace): logits ``s * cos(theta)``, no margin.

    Example:
        >>> from camri_utils.losses import NormalizedSoftmaxLoss
        >>> loss = NormalizedSoftmaxLoss(scale=4.0)
        >>> round(float(loss([0, 1], [[0.9, 0.1], [0.2, 0.8]])), 4)
        0.0634
    """

    def __init__(self, scale=16.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(scale=scale, reduction=reduction, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SphereFaceLoss(AngularMarginLoss):
    """SphereFace (A-Softmax) on normalised features: target logit ``s * psi(theta)``.

    Args:
        margin: the multiplicative margin ``m`` >= 1 (SphereFace uses integers, typically 4).
        scale: ``s`` in (0, 1e4] (the normalised variant needs one since the feature norm is gone).
        monotonic: ``True`` (default) uses SphereFace's
            ``psi(theta) = (-1)^k cos(m theta) - 2k`` on ``[k pi / m, (k+1) pi / m]``, which
            decreases over [0, pi] (as in SphereFace's paper and its reference implementations).
            ``False`` uses ``cos(m theta)`` itself, which is *not* monotonic: for m = 4 it is 1
            at 0, 90 and 180 degrees, so a feature orthogonal to its class scores as well as one
            on it.

    Example:
        >>> from camri_utils.losses import SphereFaceLoss
        >>> orthogonal = [[0.0, -1.0]]                  # a class-0 feature at 90 degrees
        >>> float(SphereFaceLoss(4, 30.0)([0], orthogonal))
        60.0
        >>> float(SphereFaceLoss(4, 30.0, monotonic=False)([0], orthogonal))
        0.0
    """

    margin_slot = "m1"

    def __init__(self, margin=4.0, scale=30.0, monotonic=True,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(scale=scale, monotonic=monotonic, reduction=reduction, name=name, dtype=dtype,
                         **self._named_margin(margin))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CosFaceLoss(AngularMarginLoss):
    """CosFace (large-margin cosine loss): target logit ``s * (cos(theta) - m)``.

    Args:
        margin: the cosine margin ``m`` in [0, 2] (typically 0.35).
        scale: ``s`` in (0, 1e4] (typically 30 to 64).

    Example:
        >>> from camri_utils.losses import CosFaceLoss, NormalizedSoftmaxLoss
        >>> narrow_win = [[0.5, 0.3]]                   # class 0 wins, but by less than the margin
        >>> round(float(NormalizedSoftmaxLoss(30.0)([0], narrow_win)), 4)
        0.0025
        >>> round(float(CosFaceLoss(0.35, 30.0)([0], narrow_win)), 4)
        4.511
    """

    margin_slot = "m3"

    def __init__(self, margin=0.35, scale=30.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(scale=scale, reduction=reduction, name=name, dtype=dtype, **self._named_margin(margin))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ArcFaceLoss(AngularMarginLoss):
    """ArcFace (additive angular margin) for every class: target logit ``s * cos(theta + m)``.

    Args:
        margin: the angular margin ``m`` in radians, in [0, pi) (typically 0.5).
        scale: ``s`` in (0, 1e4] (typically 30 to 64).
        monotonic: ``True`` (default) uses ArcFace's fallback ``cos(theta) - m sin(m)`` where
            ``theta + m > pi``, as insightface and pytorch-metric-learning do, so the target
            logit keeps decreasing. ``False`` uses ``cos(theta + m)`` everywhere, as the formula
            is written (and as CAMRI's default: compare the two with one policy).
        easy_margin: ``True``: the margin only where ``cos(theta) > 0`` (insightface's
            ``easy_margin``; see :class:`AngularMarginLoss`). Default ``False``.

    Example:
        >>> import keras
        >>> from camri_utils.layers import CosineHead
        >>> from camri_utils.losses import ArcFaceLoss
        >>> inputs = keras.Input((8,))
        >>> model = keras.Model(inputs, CosineHead(10)(keras.layers.Dense(4)(inputs)))
        >>> model.compile(optimizer="adam", loss=ArcFaceLoss(margin=0.5, scale=30.0))
    """

    margin_slot = "m2"

    def __init__(self, margin=0.5, scale=30.0, monotonic=True, easy_margin=False,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(scale=scale, monotonic=monotonic, easy_margin=easy_margin, reduction=reduction,
                         name=name, dtype=dtype, **self._named_margin(margin))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CAMRILoss(AngularMarginLoss):
    """CAMRI loss (Nishiyama et al., IJCNN 2022): an additive angular margin on the important
    class(es) only.

    For a sample of class ``t`` the target logit is ``s * cos(theta_t + m_t)`` with ``m_t`` the
    margin of ``t`` if it is an important class and 0 otherwise; all other logits are
    ``s * cos(theta_k)``. Samples of unimportant classes therefore see normalised softmax; an
    important-class sample counts as done only deeper inside its own region, which is meant to
    raise that class's recall. Whether it does, against the same head without the margin
    (:class:`NormalizedSoftmaxLoss`) and against moving CE's threshold, is an empirical
    question, not a property of the formula (the book measures it in chapters 6-9). With every class
    important and one margin it is :class:`ArcFaceLoss` with ``monotonic=False`` (ArcFace's
    own default is ``monotonic=True``).

    Args:
        n_classes: number of classes.
        important_classes: a class index, or a sequence of distinct class indices.
        margin: angular margin in radians, in [0, pi): a float for all important classes, or a
            sequence with one margin per important class (same order). The paper writes it as
            ``m_deno * pi / 64``.
        scale: ``s`` in (0, 1e4] (the paper uses 8 or 16 on CIFAR-10).
        monotonic: ``False`` (default) is the paper's formula exactly, as the authors' code
            computes it, so results reproduce the paper; ``True`` uses ArcFace's fallback
            ``cos(theta) - m sin(m)`` where ``theta + m > pi``.
        easy_margin: ``False`` (default, the paper's loss); ``True`` applies the margin only
            where ``cos(theta) > 0`` (ArcFace's "easy margin", see :class:`AngularMarginLoss`).
            A margin ramped in over the first epochs is a training option instead
            (:class:`ScheduledMarginLoss`, ``TrainConfig.margin_schedule``).

    Example:
        >>> import math
        >>> import keras
        >>> from camri_utils.layers import CosineHead
        >>> from camri_utils.losses import CAMRILoss
        >>> loss = CAMRILoss(n_classes=10, important_classes=3, margin=4 * math.pi / 64, scale=16)
        >>> loss.important_classes, round(loss.margin, 4)
        ((3,), 0.1963)
        >>> inputs = keras.Input((8,))
        >>> model = keras.Model(inputs, CosineHead(10)(keras.layers.Dense(4)(inputs)))
        >>> model.compile(optimizer="adam", loss=loss)

        Every class important: ArcFace with the paper's formula, not ArcFace's default
        (a sample at 172 degrees, past pi - m):

        >>> import numpy as np
        >>> from camri_utils.losses import ArcFaceLoss
        >>> y, cos = np.array([0]), np.array([[-0.99, 0.2, 0.1]], "float32")
        >>> every = float(CAMRILoss(3, [0, 1, 2], 0.5, 8)(y, cos))
        >>> bool(np.isclose(every, float(ArcFaceLoss(0.5, 8, monotonic=False)(y, cos))))
        True
        >>> bool(np.isclose(every, float(ArcFaceLoss(0.5, 8)(y, cos))))
        False
    """

    margin_slot = "m2"

    def __init__(self, n_classes, important_classes, margin=math.pi / 16,
                 scale=16.0, monotonic=False, easy_margin=False,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        margin_kwarg = self._named_margin(margin, important_classes, n_classes)
        super().__init__(scale=scale, n_classes=n_classes, monotonic=monotonic,
                         easy_margin=easy_margin, reduction=reduction, name=name,
                         dtype=dtype, **margin_kwarg)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScheduledMarginLoss(keras.losses.Loss):
    """An angular-margin loss whose margins are scaled by a factor that a callback may change
    between epochs of a compiled model: ``m1 -> 1 + f (m1 - 1)``, ``m2 -> f m2``,
    ``m3 -> f m3`` (``f = 0``: normalized softmax at the loss's scale; ``f = 1``: the loss
    itself). The factor is a non-trainable variable, so the compiled train step reads a new
    value without retracing; :class:`camri_utils.margin_schedule.MarginSchedule` sets it each
    epoch (a softmax warm-up, a margin ramped in: ``TrainConfig.margin_schedule``).

    Args:
        loss: an :class:`AngularMarginLoss` with a margin (or its serialized config).
        margin_factor: the factor's initial value, in [0, 1] (default 1).

    Example:
        >>> from camri_utils.losses import CAMRILoss, ScheduledMarginLoss
        >>> loss = ScheduledMarginLoss(CAMRILoss(2, 0, margin=0.5, scale=8.0), margin_factor=0.0)
        >>> y, cos = [0], [[0.8, 0.6]]
        >>> round(float(loss(y, cos)), 4)  # no margin: normalized softmax, log(1 + e^(8 (0.6 - 0.8)))
        0.1839
        >>> _ = loss.margin_factor.assign(1.0)  # e.g. from a callback, between epochs
        >>> bool(abs(float(loss(y, cos)) - float(CAMRILoss(2, 0, 0.5, 8.0)(y, cos))) < 1e-6)
        True
    """

    def __init__(self, loss, margin_factor=1.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if not isinstance(loss, AngularMarginLoss):
            raise ValueError(f"ScheduledMarginLoss needs an angular-margin loss (CAMRILoss, ArcFaceLoss, ...: an "
                             f"AngularMarginLoss); got {type(loss).__name__}.")
        if not loss.has_margin:
            raise ValueError(f"{type(loss).__name__} here has no margin (m1 = 1, m2 = m3 = 0 for every class): "
                             "scheduling it would change nothing. Schedule a loss with a margin.")
        self.base_loss = loss
        self.margin_factor = keras.Variable(_check_factor(margin_factor), trainable=False, dtype="float32",
                                            name="margin_factor")

    def call(self, y_true, y_pred):
        return self.base_loss.scaled_call(y_true, y_pred, ops.convert_to_tensor(self.margin_factor))

    def get_config(self):
        config = super().get_config()
        config.update(loss=keras.saving.serialize_keras_object(self.base_loss),
                      margin_factor=float(ops.convert_to_numpy(self.margin_factor)))
        return config


def _check_factor(value):
    if (isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating)) or not math.isfinite(value)
            or not 0 <= value <= 1):
        raise ValueError(f"margin_factor must be a number in [0, 1] (0: no margin, 1: the full margin); "
                         f"got {value!r}.")
    return float(value)


# --------------------------------------------------------------------------------------------
# Re-weighted cross-entropy baselines (ordinary logits)
# --------------------------------------------------------------------------------------------
def _weight_vector(name, weights, n_classes=None):
    w = np.asarray(weights, dtype="float64")
    if w.ndim != 1 or w.size < 2:
        raise ValueError(f"{name} must be a 1-D sequence with one weight per class; got shape {w.shape}.")
    if n_classes is not None and w.size != n_classes:
        raise ValueError(f"{name} has {w.size} values but there are {n_classes} classes.")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name} must be finite and >= 0; got {w.tolist()}.")
    return tuple(float(x) for x in w)


def _log_probs(y_pred, from_logits):
    y_pred = ops.cast(y_pred, "float32")
    if from_logits:
        return ops.log_softmax(y_pred, axis=-1)
    eps = keras.config.epsilon()
    return ops.log(ops.clip(y_pred, eps, 1.0))


def _weighted_inputs(y_true, y_pred, weights, name):
    """Check the predictions against the class weights; return (label rows, valid mask)."""
    y_pred = ops.convert_to_tensor(y_pred)
    n_classes = _n_classes_of(y_pred)
    if len(weights) != n_classes:
        raise ValueError(f"{name} has {len(weights)} values but predictions have {n_classes} classes.")
    return _label_rows(y_true, y_pred.shape)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedCrossEntropy(keras.losses.Loss):
    """Class-weighted softmax cross-entropy: ``-w[t] log p_t`` for a sample of class ``t``,
    averaged over the batch (the same as Keras' ``class_weight``, but part of the loss). Soft
    label rows ``y`` give ``-sum_k w[k] y_k log p_k``.

    Args:
        class_weights: one weight >= 0 per class.
        from_logits: ``True`` (default) if ``y_pred`` are logits, ``False`` for probabilities.

    Example:
        >>> import keras
        >>> from camri_utils.losses import WeightedCrossEntropy
        >>> w = [1.0] * 10; w[3] = 2.0
        >>> inputs = keras.Input((8,))
        >>> model = keras.Model(inputs, keras.layers.Dense(10)(inputs))
        >>> model.compile(optimizer="adam", loss=WeightedCrossEntropy(w))
    """

    def __init__(self, class_weights, from_logits=True, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = _weight_vector("class_weights", class_weights)
        self.from_logits = checks.check_bool(from_logits, "from_logits")

    def call(self, y_true, y_pred):
        rows, valid = _weighted_inputs(y_true, y_pred, self.class_weights, "class_weights")
        w = ops.convert_to_tensor(np.asarray(self.class_weights, "float32"))
        per_sample = -ops.sum(w * rows * _log_probs(y_pred, self.from_logits), axis=-1)
        return _nan_unless(valid, per_sample)

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=list(self.class_weights), from_logits=self.from_logits)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RealWorldWeightedCrossEntropy(keras.losses.Loss):
    """Categorical real-world-weight cross-entropy (Ho & Wookey, 2019), "CRWWCE" in the CAMRI
    paper. For softmax probabilities ``p`` and label rows ``y`` (one-hot or soft)::

        loss = -sum_k [ fn_weights[k] * y_k * log(p_k) + fp_weights[k] * (1 - y_k) * log(1 - p_k) ]

    The first term is weighted cross-entropy (the cost of missing class k, a false negative);
    the second penalises probability put on a wrong class k (a false positive of k).

    Args:
        fn_weights: one false-negative weight >= 0 per class.
        fp_weights: one false-positive weight >= 0 per class.
        from_logits: ``True`` (default) if ``y_pred`` are logits, ``False`` for probabilities.

    Example:
        >>> from camri_utils.losses import RealWorldWeightedCrossEntropy
        >>> fn = [1.0] * 3; fn[1] = 4.0          # missing class 1 costs four times as much
        >>> loss = RealWorldWeightedCrossEntropy(fn, fp_weights=[1.0] * 3)
        >>> round(float(loss([1], [[0.0, 0.0, 0.0]])), 4)  # 4 log 3 + 2 log 1.5
        5.2054
    """

    def __init__(self, fn_weights, fp_weights, from_logits=True,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn_weights = _weight_vector("fn_weights", fn_weights)
        self.fp_weights = _weight_vector("fp_weights", fp_weights, len(self.fn_weights))
        self.from_logits = checks.check_bool(from_logits, "from_logits")

    def call(self, y_true, y_pred):
        rows, valid = _weighted_inputs(y_true, y_pred, self.fn_weights, "fn_weights")
        log_p = _log_probs(y_pred, self.from_logits)
        # log(1 - p), floored at log(epsilon) so it stays finite when a probability reaches 1.
        log_not_p = ops.log(ops.clip(1.0 - ops.exp(log_p), keras.config.epsilon(), 1.0))
        fn = ops.convert_to_tensor(np.asarray(self.fn_weights, "float32"))
        fp = ops.convert_to_tensor(np.asarray(self.fp_weights, "float32"))
        per_sample = -ops.sum(fn * rows * log_p + fp * (1.0 - rows) * log_not_p, axis=-1)
        return _nan_unless(valid, per_sample)

    def get_config(self):
        config = super().get_config()
        config.update(fn_weights=list(self.fn_weights), fp_weights=list(self.fp_weights),
                      from_logits=self.from_logits)
        return config


# --------------------------------------------------------------------------------------------
# The long-tail relatives: margins and logit shifts from the training class counts
# --------------------------------------------------------------------------------------------
def check_class_counts(counts, n_classes=None, name="class_counts"):
    """``counts`` checked: one finite count > 0 per class (a prior works too: only ratios
    matter) -> tuple of floats. A class with no training image has no prior and no margin."""
    c = np.asarray(counts, dtype=object)
    if c.ndim != 1 or c.size < 2:
        raise ValueError(f"{name} must be a 1-D sequence with one count per class; got {counts!r}.")
    for v in c:
        if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.number)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be finite numbers > 0 (every class needs training images); "
                             f"got {[float(x) if isinstance(x, numbers.Real) else x for x in c]}.")
    if n_classes is not None and c.size != n_classes:
        raise ValueError(f"{name} has {c.size} values but there are {n_classes} classes.")
    return tuple(float(v) for v in c)


def ldam_margins(counts, max_margin=0.5):
    """LDAM's per-class cosine margins (Cao et al., NeurIPS 2019): ``Delta_j = C / n_j**(1/4)``
    with ``C`` such that the largest (the rarest class's) is ``max_margin``. Float64 array.

    Example:
        >>> from camri_utils.losses import ldam_margins
        >>> ldam_margins([5000, 500], max_margin=0.5).round(4).tolist()
        [0.2812, 0.5]
    """
    n = np.asarray(check_class_counts(counts), np.float64)
    max_margin = _check_margin("m3", max_margin, name="max_margin")
    m = n ** -0.25
    return m * (max_margin / m.max())


def log_priors(counts):
    """``log(pi_j)``, the log of the training class prior ``n_j / sum(n)``, float64."""
    n = np.asarray(check_class_counts(counts), np.float64)
    return np.log(n / n.sum())


def _check_tau(tau):
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not math.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be a finite number >= 0 (1 is the logit-adjustment paper's default); got {tau!r}.")
    return float(tau)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogitAdjustedLoss(keras.losses.Loss):
    """Logit-adjusted softmax cross-entropy (Menon et al., ICLR 2021): cross-entropy on
    ``z_j + tau * log(pi_j)``, with ``pi`` the training class prior. Rare classes get their
    logit lowered during training, so the model must raise it: a margin in logit units of
    ``tau * log(pi_common / pi_rare)``. At test time the logits are used as they are.

    Args:
        class_counts: one training count > 0 per class (or the prior itself).
        tau: the adjustment's strength, >= 0 (0 is plain cross-entropy; 1 the paper's default).

    Example:
        >>> from camri_utils.losses import LogitAdjustedLoss
        >>> loss = LogitAdjustedLoss([900, 100], tau=1.0)
        >>> round(float(loss([1], [[0.0, 0.0]])), 4)  # CE on [log 0.9, log 0.1]: -log 0.1
        2.3026
    """

    def __init__(self, class_counts, tau=1.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_counts = check_class_counts(class_counts)
        self.tau = _check_tau(tau)

    def call(self, y_true, y_pred):
        rows, valid = _weighted_inputs(y_true, y_pred, self.class_counts, "class_counts")
        shift = ops.convert_to_tensor((self.tau * log_priors(self.class_counts)).astype("float32"))
        logits = ops.cast(y_pred, "float32") + shift
        return _nan_unless(valid, ops.categorical_crossentropy(rows, logits, from_logits=True))

    def get_config(self):
        config = super().get_config()
        config.update(class_counts=list(self.class_counts), tau=self.tau)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassReweightedLoss(keras.losses.Loss):
    """Any loss with a weight per class on each sample's loss, averaged as PyTorch's weighted
    cross-entropy does: ``sum_i w[y_i] l_i / sum_i w[y_i]`` over the batch (so the weights
    change the balance between classes, not the loss's size). The weights are a
    non-trainable variable that a callback may change between epochs of a compiled model:
    deferred re-weighting (DRW, see :class:`camri_utils.imbalance.DeferredReweighting`).
    Soft label rows weight each class by its label mass.

    Args:
        loss: the per-sample loss (a Keras loss object or its serialized config); its own
            reduction is not used.
        class_weights: one weight >= 0 per class (all 1: ``loss`` itself).

    Example:
        >>> import keras
        >>> from camri_utils.losses import ClassReweightedLoss
        >>> ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        >>> loss = ClassReweightedLoss(ce, [1.0, 1.0])
        >>> _ = loss.class_weights.assign([1.0, 3.0])  # e.g. from a callback, between epochs
        >>> round(float(loss([0, 1], [[0.0, 0.0], [0.0, 0.0]])), 4)  # log 2, whatever the weights
        0.6931
    """

    def __init__(self, loss, class_weights, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if not isinstance(loss, keras.losses.Loss):
            raise ValueError(f"loss must be a Keras loss object (or its serialized config); got {loss!r}.")
        self.base_loss = loss
        weights = _weight_vector("class_weights", class_weights)
        self.class_weights = keras.Variable(np.asarray(weights, "float32"), trainable=False, dtype="float32",
                                            name="class_weights")

    def call(self, y_true, y_pred):
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        per_sample = self.base_loss.call(y_true, y_pred)
        rows, _ = _weighted_inputs(y_true, y_pred, (1.0,) * self.class_weights.shape[0], "class_weights")
        w = ops.sum(rows * ops.convert_to_tensor(self.class_weights), axis=-1)
        # Dividing by the batch's mean weight makes the mean over the batch a weighted mean.
        return per_sample * w / ops.maximum(ops.mean(w), 1e-12)

    def get_config(self):
        config = super().get_config()
        config.update(loss=keras.saving.serialize_keras_object(self.base_loss),
                      class_weights=ops.convert_to_numpy(self.class_weights).astype(float).tolist())
        return config
