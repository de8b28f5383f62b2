"""Angular-margin losses (NormFace, SphereFace, CosFace, ArcFace, CAMRI) and re-weighted
cross-entropy baselines (WCE, real-world-weight cross-entropy).

The margin losses take ``y_pred`` = cosines between the L2-normalised feature and the
L2-normalised class weights (the output of :class:`camri_utils.layers.CosineHead`). For a sample
of class ``t`` with angle ``theta_t`` to its own class weight, the logits fed to softmax
cross-entropy are::

    target logit:      s * (cos(m1[t] * theta_t + m2[t]) - m3[t])
    non-target logits: s * cos(theta_k),   k != t

with one margin vector per kind of margin (``m1`` multiplicative, ``m2`` additive angular,
``m3`` additive cosine). Every member of the family is a choice of these vectors:

=====================  ======================================================
loss                   margins
=====================  ======================================================
NormalizedSoftmax      m1 = 1, m2 = 0, m3 = 0
SphereFace             m1 = m for every class
ArcFace                m2 = m for every class
CosFace                m3 = m for every class
CAMRI                  m2 = m_c for the important classes c, 0 for the others
=====================  ======================================================

The margin is computed in float32 whatever the compute dtype, and the angle is recovered
without ``acos`` (whose gradient is infinite at cos = +-1), so loss and gradients stay finite
everywhere.
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np
from keras import ops

__all__ = [
    "AngularMarginLoss",
    "NormalizedSoftmaxLoss",
    "SphereFaceLoss",
    "CosFaceLoss",
    "ArcFaceLoss",
    "CAMRILoss",
    "WeightedCrossEntropy",
    "RealWorldWeightedCrossEntropy",
    "sparse_labels",
]

_PACKAGE = "camri_utils"
# sin(theta) is floored at sqrt(_SIN2_FLOOR) so that d theta / d cos stays finite at cos = +-1;
# the resulting change of theta (1e-8 rad) is far below float32 resolution of the loss.
_SIN2_FLOOR = 1e-16


# --------------------------------------------------------------------------------------------
# Validation helpers (run once, at construction time, on Python values)
# --------------------------------------------------------------------------------------------
def _check_n_classes(n_classes):
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2; got {n_classes!r}.")
    return int(n_classes)


def _check_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(
            f"scale must be a finite number > 0 (typical values 8 to 64); got {scale!r}."
        )
    return float(scale)


def _margin_vector(name, value, n_classes, low, high, high_inclusive=False, hint=""):
    """A float or a per-class sequence -> float or tuple, each entry checked against its range."""
    if isinstance(value, (list, tuple, np.ndarray)):
        values = [v for v in np.asarray(value, dtype=object).ravel()]
        if n_classes is None:
            raise ValueError(
                f"{name} is given per class ({len(values)} values) but n_classes is not set; "
                "pass n_classes or give a single float."
            )
        if len(values) != n_classes:
            raise ValueError(
                f"{name} has {len(values)} values but n_classes is {n_classes}; give one value "
                "per class or a single float."
            )
    else:
        values = [value]
    checked = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number; got {v!r}.")
        upper_ok = v <= high if high_inclusive else v < high
        if v < low or not upper_ok:
            bracket = "]" if high_inclusive else ")"
            raise ValueError(f"{name} must be in [{low:g}, {high:g}{bracket}{hint}; got {v!r}.")
        checked.append(float(v))
    return tuple(checked) if len(checked) > 1 or isinstance(value, (list, tuple, np.ndarray)) else checked[0]


def _check_important_classes(important_classes, n_classes):
    if isinstance(important_classes, (numbers.Integral, np.integer)) and not isinstance(important_classes, bool):
        classes = [important_classes]
    elif isinstance(important_classes, (list, tuple, np.ndarray)):
        classes = list(np.asarray(important_classes, dtype=object).ravel())
    else:
        raise ValueError(
            "important_classes must be a class index (int) or a sequence of class indices; "
            f"got {important_classes!r}."
        )
    if not classes:
        raise ValueError("important_classes is empty; name at least one class index.")
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, (numbers.Integral, np.integer)):
            raise ValueError(f"important_classes must hold integers; got {c!r}.")
        if not 0 <= c < n_classes:
            raise ValueError(
                f"important class {int(c)} is outside [0, {n_classes}) (n_classes={n_classes}); "
                "class indices start at 0."
            )
    if len(set(int(c) for c in classes)) != len(classes):
        raise ValueError(f"important_classes has duplicates: {[int(c) for c in classes]}.")
    return tuple(int(c) for c in classes)


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------
def sparse_labels(y_true, n_classes):
    """Integer labels of shape (batch,) from integer labels (batch,) / (batch, 1) or one-hot
    labels (batch, n_classes). Raises ``ValueError`` for any other shape."""
    y_true = ops.convert_to_tensor(y_true)
    shape = tuple(y_true.shape)
    rank = len(shape)
    if rank == 1 or (rank == 2 and shape[-1] == 1 and n_classes != 1):
        labels = ops.reshape(y_true, (-1,))
    elif rank == 2 and shape[-1] == n_classes:
        labels = ops.argmax(y_true, axis=-1)
    else:
        raise ValueError(
            f"labels of shape {shape} do not match predictions with {n_classes} classes: give "
            f"integer labels of shape (batch,) or (batch, 1), or one-hot labels of shape "
            f"(batch, {n_classes})."
        )
    labels = ops.cast(labels, "int32")
    _check_label_values(labels, n_classes)
    return labels


def _check_label_values(labels, n_classes):
    # Only possible when the values are known (eager calls); inside a compiled graph the shape
    # checks above are what we can do.
    try:
        values = np.asarray(ops.convert_to_numpy(labels))
    except Exception:  # symbolic tensor inside a traced function
        return
    if values.size and (values.min() < 0 or values.max() >= n_classes):
        bad = values[(values < 0) | (values >= n_classes)]
        raise ValueError(
            f"label {int(bad[0])} is outside [0, {n_classes}); labels must be class indices "
            f"0..{n_classes - 1}."
        )


def _check_batch(y_true, y_pred):
    n_true, n_pred = y_true.shape[0], y_pred.shape[0]
    if n_true is not None and n_pred is not None and n_true != n_pred:
        raise ValueError(
            f"labels have batch size {n_true} but predictions have batch size {n_pred}; they "
            "must describe the same samples."
        )


def _n_classes_of(y_pred):
    if len(y_pred.shape) != 2 or y_pred.shape[-1] is None:
        raise ValueError(
            f"predictions must have shape (batch, n_classes) with a known n_classes; got "
            f"{tuple(y_pred.shape)}."
        )
    return int(y_pred.shape[-1])


# --------------------------------------------------------------------------------------------
# The angular-margin family
# --------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=_PACKAGE)
class AngularMarginLoss(keras.losses.Loss):
    """Softmax cross-entropy on cosines with margins on the target logit.

    The target logit of a sample of class ``t`` is ``s * (cos(m1[t] * theta_t + m2[t]) - m3[t])``
    and every other logit is ``s * cos(theta_k)``.

    Args:
        scale: ``s`` > 0, the radius of the hypersphere the logits live on.
        m1: multiplicative angular margin (>= 1), a float or one value per class.
        m2: additive angular margin in radians, in [0, pi), a float or one value per class.
        m3: additive cosine margin, in [0, 2], a float or one value per class.
        n_classes: number of classes; required when a margin is given per class, and then
            checked against the predictions.
        monotonic: ``False`` (default) uses the formula above as written, so the target logit
            *rises* again once ``m1 * theta + m2`` passes pi. ``True`` replaces it there by a
            decreasing continuation: ArcFace's ``cos(theta) - m2 sin(m2) - m3`` for classes with
            ``m1 = 1``, SphereFace's ``(-1)^k cos(m1 theta + m2) - 2k - m3`` (k = floor of
            ``(m1 theta + m2) / pi``) for the others.
        reduction, name, dtype: as for any Keras loss.

    Example:
        >>> loss = AngularMarginLoss(scale=16.0, m2=0.2)           # ArcFace
        >>> model.compile(optimizer="adam", loss=loss)             # model ends in a CosineHead
    """

    def __init__(self, scale=30.0, m1=1.0, m2=0.0, m3=0.0, n_classes=None, monotonic=False,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.n_classes = None if n_classes is None else _check_n_classes(n_classes)
        self.scale = _check_scale(scale)
        self.m1 = _margin_vector("m1", m1, self.n_classes, 1.0, math.inf,
                                 hint=" (a multiplicative margin)")
        self.m2 = _margin_vector("m2", m2, self.n_classes, 0.0, math.pi,
                                 hint=" radians: an additive angular margin of pi or more "
                                      "turns every target angle past pi")
        self.m3 = _margin_vector("m3", m3, self.n_classes, 0.0, 2.0, high_inclusive=True,
                                 hint=" (an additive cosine margin)")
        self.monotonic = bool(monotonic)

    # -- the hooks ------------------------------------------------------------------------
    def _per_sample(self, margin, labels):
        """Margin of each sample's own class, shape (batch,), float32."""
        if isinstance(margin, tuple):
            return ops.take(ops.convert_to_tensor(np.asarray(margin, "float32")), labels)
        return ops.zeros_like(labels, dtype="float32") + margin

    def target_cosine(self, cos_t, labels):
        """The margin-adjusted cosine ``cos(m1 theta + m2) - m3`` of the target class."""
        sin_t = ops.sqrt(ops.maximum((1.0 - cos_t) * (1.0 + cos_t), _SIN2_FLOOR))
        theta = ops.arctan2(sin_t, cos_t)
        m1 = self._per_sample(self.m1, labels)
        m2 = self._per_sample(self.m2, labels)
        m3 = self._per_sample(self.m3, labels)
        phi = m1 * theta + m2
        target = ops.cos(phi) - m3
        if self.monotonic:
            arcface = cos_t - m2 * ops.sin(m2) - m3
            k = ops.floor(phi / math.pi)
            sphereface = (1.0 - 2.0 * ops.mod(k, 2.0)) * ops.cos(phi) - 2.0 * k - m3
            fallback = ops.where(ops.equal(m1, 1.0), arcface, sphereface)
            target = ops.where(phi > math.pi, fallback, target)
        return target

    # -- the public surface ----------------------------------------------------------------
    def _prepare(self, y_true, cosine):
        cosine = ops.convert_to_tensor(cosine)
        n_classes = _n_classes_of(cosine)
        if self.n_classes is not None and n_classes != self.n_classes:
            raise ValueError(
                f"predictions have {n_classes} classes but the loss was built with "
                f"n_classes={self.n_classes}."
            )
        y_true = ops.convert_to_tensor(y_true)
        _check_batch(y_true, cosine)
        labels = sparse_labels(y_true, n_classes)
        cosine = ops.clip(ops.cast(cosine, "float32"), -1.0, 1.0)
        one_hot = ops.one_hot(labels, n_classes, dtype="float32")
        return labels, one_hot, cosine

    def logits(self, y_true, cosine):
        """The margin-adjusted, scaled logits (batch, n_classes) that the loss feeds to softmax
        cross-entropy, in float32."""
        labels, one_hot, cosine = self._prepare(y_true, cosine)
        return self._logits(labels, one_hot, cosine)

    def _logits(self, labels, one_hot, cosine):
        cos_t = ops.sum(cosine * one_hot, axis=-1)
        target = self.target_cosine(cos_t, labels)
        adjusted = cosine + one_hot * ops.expand_dims(target - cos_t, -1)
        return self.scale * adjusted

    def call(self, y_true, y_pred):
        labels, one_hot, cosine = self._prepare(y_true, y_pred)
        logits = self._logits(labels, one_hot, cosine)
        return ops.categorical_crossentropy(one_hot, logits, from_logits=True)

    def _base_config(self):
        return keras.losses.Loss.get_config(self)

    def get_config(self):
        config = self._base_config()
        config.update(scale=self.scale, m1=self.m1, m2=self.m2, m3=self.m3,
                      n_classes=self.n_classes, monotonic=self.monotonic)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NormalizedSoftmaxLoss(AngularMarginLoss):
    """Normalised softmax (L2-constrained softmax / NormFace): logits ``s * cos(theta)``, no margin.

    Example:
        >>> loss = NormalizedSoftmaxLoss(scale=16.0)
        >>> loss([0, 1], [[0.9, 0.1], [0.2, 0.8]])
    """

    def __init__(self, scale=16.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(scale=scale, reduction=reduction, name=name, dtype=dtype)

    def get_config(self):
        config = self._base_config()
        config.update(scale=self.scale)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SphereFaceLoss(AngularMarginLoss):
    """SphereFace (A-Softmax) on normalised features: target logit ``s * cos(m * theta)``.

    SphereFace's own formulation makes the target logit monotonic with
    ``psi = (-1)^k cos(m theta) - 2k``; pass ``monotonic=True`` for that.

    Args:
        margin: the multiplicative margin ``m`` >= 1 (SphereFace uses integers, typically 4).
        scale: ``s`` > 0 (the normalised variant needs a scale since the feature norm is gone).
    """

    def __init__(self, margin=4.0, scale=30.0, monotonic=False,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(scale=scale, m1=_margin_vector("margin", margin, None, 1.0, math.inf),
                         monotonic=monotonic, reduction=reduction, name=name, dtype=dtype)

    @property
    def margin(self):
        return self.m1

    def get_config(self):
        config = self._base_config()
        config.update(margin=self.m1, scale=self.scale, monotonic=self.monotonic)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CosFaceLoss(AngularMarginLoss):
    """CosFace (large-margin cosine loss): target logit ``s * (cos(theta) - m)``.

    Args:
        margin: the cosine margin ``m`` in [0, 2] (typically 0.35).
        scale: ``s`` > 0 (typically 30 to 64).
    """

    def __init__(self, margin=0.35, scale=30.0, reduction="sum_over_batch_size", name=None,
                 dtype=None):
        super().__init__(scale=scale,
                         m3=_margin_vector("margin", margin, None, 0.0, 2.0, high_inclusive=True),
                         reduction=reduction, name=name, dtype=dtype)

    @property
    def margin(self):
        return self.m3

    def get_config(self):
        config = self._base_config()
        config.update(margin=self.m3, scale=self.scale)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ArcFaceLoss(AngularMarginLoss):
    """ArcFace (additive angular margin) for every class: target logit ``s * cos(theta + m)``.

    Args:
        margin: the angular margin ``m`` in radians, in [0, pi) (typically 0.5).
        scale: ``s`` > 0 (typically 30 to 64).
        monotonic: ``False`` uses ``cos(theta + m)`` everywhere, as written in the paper;
            ``True`` uses ArcFace's fallback ``cos(theta) - m sin(m)`` where ``theta + m > pi``.

    Example:
        >>> model.compile(optimizer="adam", loss=ArcFaceLoss(margin=0.5, scale=30.0))
    """

    def __init__(self, margin=0.5, scale=30.0, monotonic=False,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        margin = _margin_vector("margin", margin, None, 0.0, math.pi,
                                hint=" radians: an additive angular margin of pi or more "
                                     "turns every target angle past pi")
        super().__init__(scale=scale, m2=margin, monotonic=monotonic,
                         reduction=reduction, name=name, dtype=dtype)

    @property
    def margin(self):
        return self.m2

    def get_config(self):
        config = self._base_config()
        config.update(margin=self.m2, scale=self.scale, monotonic=self.monotonic)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CAMRILoss(AngularMarginLoss):
    """CAMRI loss (Nishiyama et al., IJCNN 2022): an additive angular margin on the important
    class(es) only.

    For a sample of class ``t`` the target logit is ``s * cos(theta_t + m_t)`` with ``m_t`` the
    margin of ``t`` if it is an important class and 0 otherwise; all other logits are
    ``s * cos(theta_k)``. Samples of unimportant classes therefore see normalised softmax, and
    the important class is pushed deeper inside its own region: its recall rises.

    Args:
        n_classes: number of classes.
        important_classes: a class index, or a sequence of distinct class indices.
        margin: angular margin in radians, in [0, pi): a float for all important classes, or a
            sequence with one margin per important class (same order). The paper writes it as
            ``m_deno * pi / 64``.
        scale: ``s`` > 0 (the paper uses 8 or 16 on CIFAR-10).
        monotonic: ``False`` (default) is the paper's formula exactly; ``True`` uses ArcFace's
            fallback ``cos(theta) - m sin(m)`` where ``theta + m > pi``.

    Example:
        >>> loss = CAMRILoss(n_classes=10, important_classes=3, margin=4 * math.pi / 64, scale=16)
        >>> model.compile(optimizer="adam", loss=loss)   # model ends in a CosineHead(10)
    """

    def __init__(self, n_classes, important_classes, margin=math.pi / 16, scale=16.0,
                 monotonic=False, reduction="sum_over_batch_size", name=None, dtype=None):
        n_classes = _check_n_classes(n_classes)
        important = _check_important_classes(important_classes, n_classes)
        if isinstance(margin, (list, tuple, np.ndarray)):
            margins = list(np.asarray(margin, dtype=object).ravel())
            if len(margins) != len(important):
                raise ValueError(
                    f"margin has {len(margins)} values but there are {len(important)} important "
                    "classes; give one margin per important class, or a single float."
                )
        else:
            margins = [margin] * len(important)
        margins = [
            _margin_vector("margin", m, None, 0.0, math.pi,
                           hint=" radians: an additive angular margin of pi or more turns every "
                                "target angle past pi")
            for m in margins
        ]
        per_class = [0.0] * n_classes
        for c, m in zip(important, margins):
            per_class[c] = m
        super().__init__(scale=scale, m2=tuple(per_class), n_classes=n_classes,
                         monotonic=monotonic, reduction=reduction, name=name, dtype=dtype)
        self.important_classes = important
        self.margins = tuple(margins)
        # Keep the arguments as given (int or list) so get_config round-trips exactly.
        self._important_arg = important[0] if isinstance(important_classes, (numbers.Integral, np.integer)) else list(important)
        self._margin_arg = self.margins[0] if not isinstance(margin, (list, tuple, np.ndarray)) else list(self.margins)

    def get_config(self):
        config = self._base_config()
        config.update(n_classes=self.n_classes, important_classes=self._important_arg,
                      margin=self._margin_arg, scale=self.scale, monotonic=self.monotonic)
        return config


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


def _check_weights_match(weights, n_classes, name):
    if len(weights) != n_classes:
        raise ValueError(f"{name} has {len(weights)} values but predictions have {n_classes} classes.")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedCrossEntropy(keras.losses.Loss):
    """Class-weighted softmax cross-entropy: ``-w[t] log p_t`` for a sample of class ``t``,
    averaged over the batch (the same as Keras' ``class_weight``, but part of the loss).

    Args:
        class_weights: one weight >= 0 per class.
        from_logits: ``True`` (default) if ``y_pred`` are logits, ``False`` for probabilities.

    Example:
        >>> w = [1.0] * 10; w[3] = 2.0
        >>> model.compile(optimizer="adam", loss=WeightedCrossEntropy(w))
    """

    def __init__(self, class_weights, from_logits=True, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = _weight_vector("class_weights", class_weights)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        n_classes = _n_classes_of(y_pred)
        _check_weights_match(self.class_weights, n_classes, "class_weights")
        _check_batch(ops.convert_to_tensor(y_true), y_pred)
        labels = sparse_labels(y_true, n_classes)
        log_p = _log_probs(y_pred, self.from_logits)
        one_hot = ops.one_hot(labels, n_classes, dtype="float32")
        w = ops.take(ops.convert_to_tensor(np.asarray(self.class_weights, "float32")), labels)
        return -w * ops.sum(one_hot * log_p, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=list(self.class_weights), from_logits=self.from_logits)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RealWorldWeightedCrossEntropy(keras.losses.Loss):
    """Categorical real-world-weight cross-entropy (Ho & Wookey, 2019), "CRWWCE" in the CAMRI
    paper. For softmax probabilities ``p`` and one-hot labels ``y``::

        loss = -sum_k [ fn_weights[k] * y_k * log(p_k) + fp_weights[k] * (1 - y_k) * log(1 - p_k) ]

    The first term is weighted cross-entropy (the cost of missing class k, a false negative);
    the second penalises probability put on a wrong class k (a false positive of k).

    Args:
        fn_weights: one false-negative weight >= 0 per class.
        fp_weights: one false-positive weight >= 0 per class.
        from_logits: ``True`` (default) if ``y_pred`` are logits, ``False`` for probabilities.

    Example:
        >>> fn = [1.0] * 10; fn[3] = 4.0          # missing a cat costs four times as much
        >>> loss = RealWorldWeightedCrossEntropy(fn, fp_weights=[1.0] * 10)
    """

    def __init__(self, fn_weights, fp_weights, from_logits=True,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn_weights = _weight_vector("fn_weights", fn_weights)
        self.fp_weights = _weight_vector("fp_weights", fp_weights, len(self.fn_weights))
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        n_classes = _n_classes_of(y_pred)
        _check_weights_match(self.fn_weights, n_classes, "fn_weights")
        _check_batch(ops.convert_to_tensor(y_true), y_pred)
        labels = sparse_labels(y_true, n_classes)
        log_p = _log_probs(y_pred, self.from_logits)
        # log(1 - p), floored at log(epsilon) so it stays finite when a probability reaches 1.
        eps = keras.config.epsilon()
        log_not_p = ops.log(ops.clip(1.0 - ops.exp(log_p), eps, 1.0))
        one_hot = ops.one_hot(labels, n_classes, dtype="float32")
        fn = ops.convert_to_tensor(np.asarray(self.fn_weights, "float32"))
        fp = ops.convert_to_tensor(np.asarray(self.fp_weights, "float32"))
        per_class = fn * one_hot * log_p + fp * (1.0 - one_hot) * log_not_p
        return -ops.sum(per_class, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(fn_weights=list(self.fn_weights), fp_weights=list(self.fp_weights),
                      from_logits=self.from_logits)
        return config
