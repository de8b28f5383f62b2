"""The cosine classifier head used by every angular-margin loss, and L2 normalisation (for
tensors, and its float64 NumPy twin for analysis)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from camri_utils import checks

__all__ = ["CosineHead", "l2_normalize", "unit_vectors"]

# Squared-norm floor: keeps a zero vector at zero (instead of NaN) with finite gradients. The
# head computes in float32, where 1e-12 is representable (it would underflow in float16).
_NORM2_FLOOR = 1e-12


def l2_normalize(x, axis=-1):
    """``x / max(||x||, 1e-6)`` along ``axis``: unit vectors, and zero for a zero vector.

    Example:
        >>> from camri_utils.layers import l2_normalize
        >>> l2_normalize([[3.0, 4.0], [0.0, 0.0]]).numpy()
        array([[0.6, 0.8],
               [0. , 0. ]], dtype=float32)
    """
    x = ops.convert_to_tensor(x)
    norm2 = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(norm2, _NORM2_FLOOR))


def unit_vectors(x, axis=-1):
    """:func:`l2_normalize` in float64 NumPy (the same floor, so a zero vector stays zero): for
    analysing features and class weights outside a model.

    Example:
        >>> from camri_utils.layers import unit_vectors
        >>> unit_vectors([[3.0, 4.0], [0.0, 0.0]])
        array([[0.6, 0.8],
               [0. , 0. ]])
    """
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt(np.maximum(np.sum(np.square(x), axis=axis, keepdims=True), _NORM2_FLOOR))


@keras.saving.register_keras_serializable(package="camri_utils")
class CosineHead(keras.layers.Layer):
    """Cosine classifier: ``cos(theta_k) = <z / ||z||, w_k / ||w_k||>`` for every class k.

    The features ``z`` (batch, d) and each column ``w_k`` of the class-weight matrix ``kernel``
    (d, n_classes) are L2-normalised; there is no bias. The output (batch, n_classes) is in
    [-1, 1] and is what the angular-margin losses take as ``y_pred``; ``argmax`` of it is the
    prediction, so at inference the model is an ordinary classifier with no label input.

    The head computes in float32 even under a ``mixed_float16`` policy (its output feeds a
    softmax, and the normalisation would underflow in float16), unless you pass ``dtype``.

    A zero feature vector gives cosine 0 with every class and a finite but large gradient
    (about 1e6 times the incoming one): harmless in float32, but under mixed precision it
    overflows the float16 backbone's gradient, and the loss-scale optimizer skips the step.
    Features that end in batch normalisation, as in the paper's network, avoid exact zeros.

    Args:
        n_classes: number of classes.
        kernel_initializer: initializer of the class weights (default Glorot uniform).
        kernel_regularizer: optional regularizer of the class weights.

    Example:
        >>> import keras
        >>> from camri_utils.layers import CosineHead
        >>> inputs = keras.Input((64,))
        >>> cosines = CosineHead(10)(keras.layers.Dense(32)(inputs))
        >>> model = keras.Model(inputs, cosines)
        >>> model.output_shape
        (None, 10)
    """

    def __init__(self, n_classes, kernel_initializer="glorot_uniform", kernel_regularizer=None,
                 **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.n_classes = checks.check_n_classes(n_classes)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError("CosineHead needs a known feature dimension (last axis of its input).")
        self.kernel = self.add_weight(
            name="kernel",
            shape=(int(input_shape[-1]), self.n_classes),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )

    def normalized_kernel(self):
        """The unit class-weight vectors, shape (d, n_classes): what the angle analysis reads."""
        return l2_normalize(ops.convert_to_tensor(self.kernel), axis=0)

    def call(self, inputs):
        features = l2_normalize(inputs, axis=-1)
        weights = l2_normalize(ops.cast(self.kernel, inputs.dtype), axis=0)
        return ops.clip(ops.matmul(features, weights), -1.0, 1.0)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.n_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_classes=self.n_classes,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
