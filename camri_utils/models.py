"""Model builders. Every model exposes its feature layer by name (``"feature"``) so that the
angle analysis can read the features, and ends in either a :class:`CosineHead` (margin losses)
or an ordinary dense layer (cross-entropy baselines), named ``"head"``."""

from __future__ import annotations

import keras

from camri_utils.layers import CosineHead

__all__ = ["classifier_head", "mlp", "feature_model"]

FEATURE = "feature"
HEAD = "head"


def classifier_head(n_classes, kind="cosine"):
    """``kind="cosine"``: a CosineHead (outputs cosines, for margin losses);
    ``kind="dense"``: a dense layer with bias (outputs logits, for cross-entropy)."""
    if kind == "cosine":
        return CosineHead(n_classes, name=HEAD)
    if kind == "dense":
        return keras.layers.Dense(n_classes, name=HEAD)
    raise ValueError(f"head kind must be 'cosine' or 'dense'; got {kind!r}.")


def mlp(input_dim, n_classes, hidden=(64, 32), feature_dim=2, head="cosine", name="mlp"):
    """A small MLP with a ``feature_dim``-dimensional feature layer (default 2, for drawing
    the feature space) followed by a classifier head."""
    inputs = keras.Input((input_dim,), name="inputs")
    x = inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
    features = keras.layers.Dense(feature_dim, name=FEATURE)(x)
    return keras.Model(inputs, classifier_head(n_classes, head)(features), name=name)


def feature_model(model):
    """A model that maps the inputs to the ``"feature"`` layer's output."""
    try:
        layer = model.get_layer(FEATURE)
    except ValueError as exc:
        raise ValueError(f"model {model.name!r} has no layer named {FEATURE!r}.") from exc
    return keras.Model(model.input, layer.output)
