"""Model builders. Every model exposes its feature layer by name (``"feature"``), so that the
angle analysis can read the features, and ends in a head named ``"head"``: a
:class:`CosineHead` (margin losses, outputs cosines) or a dense layer (cross-entropy baselines,
outputs logits). Backbones map images to features; :func:`classifier` puts a head on one."""

from __future__ import annotations

import keras

from camri_utils.layers import CosineHead

__all__ = ["classifier_head", "classifier", "paper_cnn", "small_cnn", "cpu_cnn_backbone", "mlp", "feature_model", "build",
           "MODELS", "CPU_CNNS"]

FEATURE = "feature"
HEAD = "head"


def classifier_head(n_classes, kind="cosine"):
    """``kind="cosine"``: a CosineHead (outputs cosines, for margin losses);
    ``kind="dense"``: a dense layer with bias (outputs logits, for cross-entropy). Both compute
    in float32, also under a mixed-precision policy."""
    if kind == "cosine":
        return CosineHead(n_classes, name=HEAD)
    if kind == "dense":
        return keras.layers.Dense(n_classes, name=HEAD, dtype="float32")
    raise ValueError(f"head kind must be 'cosine' or 'dense'; got {kind!r}.")


def classifier(backbone, n_classes, head="cosine", name=None):
    """``backbone`` (a model from inputs to features, its last layer named ``"feature"``)
    followed by a classifier head."""
    if backbone.layers[-1].name != FEATURE:
        raise ValueError(f"the backbone's last layer must be named {FEATURE!r}; got {backbone.layers[-1].name!r}.")
    outputs = classifier_head(n_classes, head)(backbone.output)
    return keras.Model(backbone.input, outputs, name=name or backbone.name)


def paper_cnn_backbone(input_shape=(32, 32, 3), feature_dim=512):
    """The CAMRI authors' CIFAR-10 network: 13 3x3 convolutions with ReLU and same padding
    (64x3, 128x3, 256x5, 512x2), batch normalisation after the 2nd, 5th, 8th and 11th,
    max-pooling and dropout 0.25 after the 64 and 128 blocks, global average pooling, and a
    dense layer (He normal) with batch normalisation as the feature."""
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    widths = [64] * 3 + [128] * 3 + [256] * 5 + [512] * 2
    for i, width in enumerate(widths, start=1):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        if i in (2, 5, 8, 11):
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        if i in (3, 6):  # end of the 64 and 128 blocks
            x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
            x = keras.layers.Dropout(0.25, name=f"dropout{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(feature_dim, kernel_initializer="he_normal", name="dense_feature")(x)
    features = keras.layers.BatchNormalization(name=FEATURE)(x)
    return keras.Model(inputs, features, name="paper_cnn")


def small_cnn_backbone(input_shape=(28, 28, 1), feature_dim=64):
    """A small CNN for 28x28 gray images: two convolution blocks and a dense feature with
    batch normalisation; an epoch of Fashion-MNIST takes well under a minute on 2 CPU cores."""
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(feature_dim, name="dense_feature")(x)
    features = keras.layers.BatchNormalization(name=FEATURE)(x)
    return keras.Model(inputs, features, name="small_cnn")


def cpu_cnn_backbone(input_shape=(32, 32, 3), feature_dim=128, widths=(32, 64, 128), convs_per_block=1):
    """A VGG-like CNN sized for CPU runs on 32x32 colour images (CIFAR-10, GTSRB): one block
    per width in ``widths``, each ``convs_per_block`` 3x3 convolutions (same padding, batch
    normalisation, ReLU), max-pooling and dropout 0.25 (the authors' regulariser; no data
    augmentation), then a dense feature of ``feature_dim`` units with batch normalisation, as in
    the authors' network."""
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for b, width in enumerate(widths, start=1):
        for c in range(1, convs_per_block + 1):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{b}_{c}")(x)
            x = keras.layers.BatchNormalization(name=f"bn{b}_{c}")(x)
            x = keras.layers.ReLU(name=f"relu{b}_{c}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{b}")(x)
        x = keras.layers.Dropout(0.25, name=f"dropout{b}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(feature_dim, kernel_initializer="he_normal", name="dense_feature")(x)
    features = keras.layers.BatchNormalization(name=FEATURE)(x)
    name = f"cpu_cnn_{'-'.join(map(str, widths))}" + (f"x{convs_per_block}" if convs_per_block > 1 else "")
    return keras.Model(inputs, features, name=name.replace("-", "_"))


def mlp_backbone(input_shape, hidden=(64, 32), feature_dim=2):
    """An MLP (images are flattened) whose feature layer has ``feature_dim`` units (default
    2, for drawing the feature space)."""
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    inputs = keras.Input(tuple(input_shape), name="inputs")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(input_shape) > 1 else inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
    features = keras.layers.Dense(feature_dim, name=FEATURE)(x)
    return keras.Model(inputs, features, name="mlp")


def paper_cnn(input_shape=(32, 32, 3), n_classes=10, feature_dim=512, head="cosine"):
    return classifier(paper_cnn_backbone(input_shape, feature_dim), n_classes, head)


def small_cnn(input_shape=(28, 28, 1), n_classes=10, feature_dim=64, head="cosine"):
    return classifier(small_cnn_backbone(input_shape, feature_dim), n_classes, head)


def mlp(input_shape, n_classes, hidden=(64, 32), feature_dim=2, head="cosine"):
    """A small MLP with a ``feature_dim``-dimensional feature layer and a classifier head."""
    return classifier(mlp_backbone(input_shape, hidden, feature_dim), n_classes, head)


def _cpu_cnn(widths, convs_per_block):
    def build(input_shape=(32, 32, 3), n_classes=10, feature_dim=128, head="cosine"):
        return classifier(cpu_cnn_backbone(input_shape, feature_dim, widths, convs_per_block), n_classes, head)

    build.__doc__ = (f"The CPU-sized CNN with blocks of {'-'.join(map(str, widths))} channels, "
                     f"{convs_per_block} convolution(s) each (:func:`cpu_cnn_backbone`), and a classifier head.")
    return build


# The CPU-scale candidates of Part III's pilots (results/cifar10-pilot, results/gtsrb-pilot), smallest first.
CPU_CNNS = {"cpu_cnn_s": _cpu_cnn((16, 32, 64), 1), "cpu_cnn_m": _cpu_cnn((32, 64, 128), 1),
            "cpu_cnn_mx2": _cpu_cnn((32, 64, 128), 2)}

MODELS = {"paper_cnn": paper_cnn, "small_cnn": small_cnn, "mlp": mlp, **CPU_CNNS}


def build(name, input_shape, n_classes, head="cosine", feature_dim=None):
    """Build model ``name`` (one of :data:`MODELS`) for the given input shape and classes."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODELS)}.")
    kwargs = {} if feature_dim is None else {"feature_dim": feature_dim}
    return MODELS[name](input_shape, n_classes=n_classes, head=head, **kwargs)


def feature_model(model):
    """A model that maps the inputs to the ``"feature"`` layer's output."""
    try:
        layer = model.get_layer(FEATURE)
    except ValueError as exc:
        raise ValueError(f"model {model.name!r} has no layer named {FEATURE!r}.") from exc
    return keras.Model(model.input, layer.output)
