"""camri_utils: the helper library of the CAMRI book.

Angular-margin losses (NormFace, SphereFace, CosFace, ArcFace, CAMRI) and re-weighted
cross-entropy baselines for Keras 3, the cosine classifier head, metrics for an important
class, and the angle analysis between features and class weights.
"""

__version__ = "0.1.0"

try:
    import keras  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "camri_utils needs Keras 3 and one of its backends. On Colab both are preinstalled; "
        "elsewhere run: pip install 'camri-utils[cpu]' (Keras with TensorFlow CPU), pip install "
        "tensorflow (GPU), or pip install camri-utils jax (JAX backend; set KERAS_BACKEND=jax)."
    ) from exc

from camri_utils.layers import CosineHead  # noqa: E402
from camri_utils.losses import (  # noqa: E402
    AngularMarginLoss,
    ArcFaceLoss,
    CAMRILoss,
    CosFaceLoss,
    NormalizedSoftmaxLoss,
    RealWorldWeightedCrossEntropy,
    SphereFaceLoss,
    WeightedCrossEntropy,
)
from camri_utils.metrics import ImportantClassRecall  # noqa: E402

__all__ = [
    "__version__",
    "CosineHead",
    "AngularMarginLoss",
    "NormalizedSoftmaxLoss",
    "SphereFaceLoss",
    "CosFaceLoss",
    "ArcFaceLoss",
    "CAMRILoss",
    "WeightedCrossEntropy",
    "RealWorldWeightedCrossEntropy",
    "ImportantClassRecall",
]
