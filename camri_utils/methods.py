"""The one list of methods: every loss the library trains with, and the post-hoc baseline.

Each :class:`Method` says how to build its loss, which classifier head it needs, whether it
depends on the important class, and how it is shown (label, colour, marker). Training, the
protocol, the plots and the chapters read this registry; adding a method is one entry here.

Example:
    >>> from camri_utils import methods
    >>> m = methods.get("camri")
    >>> m.label, m.head, m.class_specific
    ('CAMRI', 'cosine', True)
    >>> loss = m.build_loss(10, [3], {"margin": 0.2, "scale": 16.0})
    >>> type(loss).__name__, loss.important_classes
    ('CAMRILoss', (3,))
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from camri_utils import losses

__all__ = ["Method", "REGISTRY", "VARIANTS", "get", "by_label", "trainable", "style"]


def _ce(n_classes, important, params):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, **params)


def _per_class(n_classes, important, weight, name):
    if not important:
        raise ValueError(f"{name} with a 'weight' needs important_classes: the weight is theirs.")
    w = [1.0] * n_classes
    for c in important:
        w[c] = float(weight)
    return w


def _wce(n_classes, important, params):
    params = dict(params)
    if "weight" in params:  # the protocol's form: one weight for the important class(es), 1 elsewhere
        params["class_weights"] = _per_class(n_classes, important, params.pop("weight"), "WCE")
    return losses.WeightedCrossEntropy(**params)


def _crwwce(n_classes, important, params):
    params = dict(params)
    if "weight" in params:  # false-negative weight of the important class(es); all other weights 1
        params["fn_weights"] = _per_class(n_classes, important, params.pop("weight"), "CRWWCE")
        params.setdefault("fp_weights", [1.0] * n_classes)
    return losses.RealWorldWeightedCrossEntropy(**params)


def _camri(n_classes, important, params):
    if not important:
        raise ValueError("CAMRI needs important_classes (a class index or a list of them).")
    return losses.CAMRILoss(n_classes=n_classes, important_classes=list(important), **params)


def _ldam(n_classes, important, params):
    params = dict(params)
    counts = params.pop("class_counts")
    unknown = set(params) - {"max_margin", "scale"}
    if unknown:
        raise ValueError(f"LDAM takes max_margin and scale (and the class counts); got {sorted(unknown)}.")
    margins = losses.ldam_margins(losses.check_class_counts(counts, n_classes), params.get("max_margin", 0.5))
    # LDAM is the angular-margin loss with a cosine margin (m3) per class: no class of its own.
    return losses.AngularMarginLoss(scale=params.get("scale", 30.0), m3=margins.tolist(), n_classes=n_classes,
                                    name="ldam")


def _logit_adjusted(n_classes, important, params):
    params = dict(params)
    losses.check_class_counts(params.get("class_counts"), n_classes)
    return losses.LogitAdjustedLoss(**params)


def _plain(cls):
    return lambda n_classes, important, params: cls(**params)


@dataclass(frozen=True)
class Method:
    """One method. ``key`` names it in configs (``TrainConfig.loss``), ``label`` in tables,
    records and figures. ``loss_factory(n_classes, important_classes, params)`` builds its loss;
    None for a post-hoc method, which trains nothing and re-reads another method's scores."""

    key: str
    label: str
    head: str  # "dense" (logits) or "cosine" (a CosineHead: cosines)
    class_specific: bool  # does a run depend on which class is important?
    color: str
    marker: str
    loss_factory: object = None
    description: str = ""
    needs_class_counts: bool = False  # its loss depends on the training class counts
    margin: bool = False  # its loss is an angular margin (TrainConfig.margin_schedule can switch it on)

    @property
    def posthoc(self):
        return self.loss_factory is None

    def build_loss(self, n_classes, important_classes=(), params=None, class_counts=None):
        """The loss with ``params``; ``class_counts`` (training images per class, which
        :func:`camri_utils.training.train` passes from the training labels) go to the methods
        that need them (``needs_class_counts``), as the loss parameter ``class_counts``."""
        if self.posthoc:
            raise ValueError(f"{self.label} is post-hoc: it trains nothing and has no loss.")
        params = dict(params or {})
        if self.needs_class_counts:
            if class_counts is not None:
                if "class_counts" in params:
                    raise ValueError(f"{self.label}: class_counts is set from the training labels; remove it from "
                                     "the loss parameters.")
                params["class_counts"] = [int(n) for n in class_counts]
            elif "class_counts" not in params:
                raise ValueError(f"{self.label} needs the training class counts (class_counts).")
        return self.loss_factory(n_classes, tuple(important_classes), params)


REGISTRY = {m.key: m for m in [
    Method("ce", "CE", "dense", False, "black", "s", _ce, "softmax cross-entropy, dense head with bias"),
    Method("normsoftmax", "NormSoftmax", "cosine", False, "tab:gray", "P", _plain(losses.NormalizedSoftmaxLoss),
           "normalized softmax: CAMRI's head and scale without a margin (the control)"),
    Method("sphereface", "SphereFace", "cosine", False, "tab:olive", "*", _plain(losses.SphereFaceLoss), margin=True),
    Method("cosface", "CosFace", "cosine", False, "tab:cyan", "h", _plain(losses.CosFaceLoss), margin=True),
    Method("arcface", "ArcFace", "cosine", False, "tab:blue", "^", _plain(losses.ArcFaceLoss),
           "additive angular margin on every class", margin=True),
    Method("camri", "CAMRI", "cosine", True, "tab:red", "o", _camri,
           "additive angular margin on the important class only", margin=True),
    Method("wce", "WCE", "dense", True, "tab:green", "v", _wce, "cross-entropy weighted towards the important class"),
    Method("crwwce", "CRWWCE", "dense", True, "tab:purple", "D", _crwwce,
           "real-world-weight cross-entropy (Ho & Wookey): missing the important class costs w, "
           "every false positive 1"),
    Method("ldam", "LDAM", "cosine", False, "tab:pink", "<", _ldam,
           "label-distribution-aware margin (Cao et al., 2019): a cosine margin on every class's target logit, "
           "proportional to n_j^(-1/4), the largest (max_margin) on the rarest class", needs_class_counts=True,
           margin=True),
    Method("logit_adjusted", "Logit-adjusted CE", "dense", False, "teal", ">", _logit_adjusted,
           "logit-adjusted loss (Menon et al., 2021): cross-entropy on z_j + tau log(prior_j) during training",
           needs_class_counts=True),
    Method("threshold", "CE + threshold", "dense", True, "tab:orange", "X", None,
           "post-hoc: a bias added to the important class's CE logit, chosen on validation data"),
    Method("normsoftmax_threshold", "NormSoftmax + threshold", "cosine", True, "tab:brown", "x", None,
           "post-hoc: a bias added to the important class's normalized-softmax logit"),
    Method("posthoc_adjustment", "CE + logit adjustment", "dense", False, "gold", "d", None,
           "post-hoc logit adjustment (Menon et al., 2021): CE's logits minus tau log(prior_j), no training; with "
           "one rare class among equally frequent ones it IS CE + threshold, at the bias tau log(n_other / n_rare) "
           "(camri_utils.imbalance.equivalent_bias)"),
]}


def get(key):
    """The method registered as ``key``, with an error that lists the keys."""
    try:
        return REGISTRY[key]
    except KeyError:
        raise ValueError(f"unknown method {key!r}; choose one of {list(REGISTRY)}.") from None


# Table rows that are one method trained another way: {row label: (the method's label, colour,
# marker)}. LDAM with deferred re-weighting is reported as its own row (Cao et al. do).
VARIANTS = {"LDAM-DRW": ("LDAM", "mediumvioletred", "4")}


def by_label(label):
    """The method whose display label is ``label`` (records store labels; a row label of
    :data:`VARIANTS` gives the method it is a variant of)."""
    label = VARIANTS.get(label, (label,))[0]
    for m in REGISTRY.values():
        if m.label == label:
            return m
    raise ValueError(f"no method labelled {label!r}; labels: {[m.label for m in REGISTRY.values()]}.")


def trainable():
    """Keys of the methods that train a model (all but the post-hoc ones)."""
    return [k for k, m in REGISTRY.items() if not m.posthoc]


def style(label):
    """(colour, marker) of the method labelled ``label``; grey crosses for anything unknown."""
    if label in VARIANTS:
        return VARIANTS[label][1:]
    try:
        m = by_label(label)
    except ValueError:
        return "0.5", "x"
    return m.color, m.marker
