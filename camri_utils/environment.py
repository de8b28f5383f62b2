"""One record of the software and hardware a result was produced with: library, TensorFlow,
Keras and Python versions, machine and devices. Training records, notebook provenance and the
benchmark all store this same record."""

from __future__ import annotations

import os
import platform

__all__ = ["environment", "device_summary", "require_tensorflow"]


def _tensorflow():
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return tf


def require_tensorflow(what):
    """The ``tensorflow`` module, or an ImportError saying that ``what`` (a module or function
    of this library built on ``tf.data``, ``tf.distribute`` or ``tf.summary``) needs it. The
    losses, the cosine head, the metrics and the angle analysis run on any Keras 3 backend."""
    tf = _tensorflow()
    if tf is None:
        raise ImportError(
            f"{what} needs TensorFlow: pip install 'camri-utils[cpu]' (CPU) or pip install "
            "tensorflow (GPU). The losses, CosineHead, metrics and angle analysis work on any "
            "Keras 3 backend without it."
        )
    return tf


def environment():
    """A JSON-ready dict: ``camri_utils``, ``tensorflow`` (None without it), ``keras``,
    ``python``, ``machine``, ``cpu_count`` and ``devices`` (GPU names, or ``["CPU"]``)."""
    import keras

    import camri_utils

    tf = _tensorflow()
    gpus = tf.config.list_physical_devices("GPU") if tf is not None else []
    return {"camri_utils": camri_utils.__version__, "tensorflow": tf.__version__ if tf else None,
            "keras": keras.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "devices": [d.name for d in gpus] or ["CPU"]}


def device_summary(env=None):
    """``"CPU"`` or ``"<n> GPU(s)"`` for an :func:`environment` record."""
    env = env or environment()
    gpus = [d for d in env["devices"] if d != "CPU"]
    return f"{len(gpus)} GPU(s)" if gpus else "CPU"
