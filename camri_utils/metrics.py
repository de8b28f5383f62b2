"""Per-class recall and precision, accuracy, and the important class's recall.

NumPy/scikit-learn functions for evaluating predictions after training, and one Keras metric,
:class:`ImportantClassRecall`, for watching the important class during ``fit``. Predictions
may be class indices or scores (cosines, logits or probabilities: the argmax is taken), so a
margin never enters an evaluation. Scores holding NaN or inf (a diverged model) are an error,
never an argmax that would predict class 0.

Example:
    >>> from camri_utils import metrics
    >>> y_true = [0, 0, 1, 1, 2]
    >>> scores = [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.0, 0.1, 0.9]]
    >>> metrics.accuracy(y_true, scores)
    0.8
    >>> metrics.per_class_recall(y_true, scores)
    array([0.5, 1. , 1. ])
    >>> metrics.confusion_matrix(y_true, scores)
    array([[1, 1, 0],
           [0, 2, 0],
           [0, 0, 1]])
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
import pandas as pd
from keras import ops
from sklearn import metrics as skm

from camri_utils import checks
from camri_utils.losses import sparse_labels

__all__ = [
    "as_labels",
    "accuracy",
    "per_class_recall",
    "per_class_precision",
    "split_metrics",
    "important_class_recall",
    "confusion_matrix",
    "per_class_table",
    "ImportantClassRecall",
]


# Class indices (N,) from indices (N,) / (N, 1) or rows (N, C) (one-hot, soft, or scores: the argmax).
as_labels = checks.class_labels


def _pair(y_true, y_pred, n_classes):
    t = as_labels(y_true, n_classes, "y_true")
    p = as_labels(y_pred, n_classes, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} samples but y_pred has {p.size}.")
    if t.size == 0:
        raise ValueError("no samples: y_true and y_pred are empty.")
    return t, p


def _n_classes(n_classes, y_true, y_pred):
    if n_classes is not None:
        return checks.check_n_classes(n_classes)
    for y in (y_pred, y_true):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            return y.shape[1]
    raise ValueError("n_classes is needed when both y_true and y_pred are class indices.")


def accuracy(y_true, y_pred):
    """Fraction of samples whose predicted class is the true class."""
    t, p = _pair(y_true, y_pred, None)
    return float(skm.accuracy_score(t, p))


def per_class_recall(y_true, y_pred, n_classes=None):
    """Recall of every class (C,): correct predictions of class c / samples of class c
    (0 for a class with no samples)."""
    n_classes = _n_classes(n_classes, y_true, y_pred)
    t, p = _pair(y_true, y_pred, n_classes)
    return skm.recall_score(t, p, labels=np.arange(n_classes), average=None, zero_division=0)


def per_class_precision(y_true, y_pred, n_classes=None):
    """Precision of every class (C,): correct predictions of class c / predictions of class c
    (0 for a class never predicted)."""
    n_classes = _n_classes(n_classes, y_true, y_pred)
    t, p = _pair(y_true, y_pred, n_classes)
    return skm.precision_score(t, p, labels=np.arange(n_classes), average=None, zero_division=0)


def split_metrics(y_true, y_pred, n_classes=None):
    """Accuracy and per-class recall and precision (as lists) of one split: the metrics every
    training result and protocol record stores."""
    n_classes = _n_classes(n_classes, y_true, y_pred)
    return {"accuracy": accuracy(y_true, y_pred),
            "recall": per_class_recall(y_true, y_pred, n_classes).tolist(),
            "precision": per_class_precision(y_true, y_pred, n_classes).tolist()}


def important_class_recall(y_true, y_pred, important_class, n_classes=None):
    """Recall of one class: the quantity CAMRI is meant to raise."""
    n_classes = _n_classes(n_classes, y_true, y_pred)
    c = checks.check_class_index(important_class, n_classes, "important_class")
    return float(per_class_recall(y_true, y_pred, n_classes)[c])


def confusion_matrix(y_true, y_pred, n_classes=None):
    """Counts (C, C): row = true class, column = predicted class."""
    n_classes = _n_classes(n_classes, y_true, y_pred)
    t, p = _pair(y_true, y_pred, n_classes)
    return skm.confusion_matrix(t, p, labels=np.arange(n_classes))


def per_class_table(y_true, y_pred, n_classes=None, important_classes=(), class_names=None):
    """A pandas table, one row per class: name, support, recall, precision, and whether the
    class is important. ``table.attrs["accuracy"]`` holds the overall accuracy."""
    n_classes = _n_classes(n_classes, y_true, y_pred)
    if isinstance(important_classes, (numbers.Integral, np.integer)):
        important_classes = [important_classes]
    important = {checks.check_class_index(c, n_classes, "important class") for c in important_classes}
    if class_names is None:
        class_names = [str(c) for c in range(n_classes)]
    if len(class_names) != n_classes:
        raise ValueError(f"class_names has {len(class_names)} names but there are {n_classes} classes.")
    t, _ = _pair(y_true, y_pred, n_classes)
    table = pd.DataFrame({
        "class": np.arange(n_classes),
        "name": list(class_names),
        "support": np.bincount(t, minlength=n_classes),
        "recall": per_class_recall(y_true, y_pred, n_classes),
        "precision": per_class_precision(y_true, y_pred, n_classes),
        "important": [c in important for c in range(n_classes)],
    }).set_index("class")
    table.attrs["accuracy"] = accuracy(y_true, y_pred)
    return table


@keras.saving.register_keras_serializable(package="camri_utils")
class ImportantClassRecall(keras.metrics.Metric):
    """Recall of one class during training: samples of ``class_id`` whose argmax prediction is
    ``class_id``, over all samples of ``class_id`` seen since the last reset.

    ``y_true``: integer labels (batch,) / (batch, 1) or one-hot (batch, C); ``y_pred``: scores
    (batch, C): cosines, logits or probabilities. The argmax is taken, so margins never count.

    Example:
        >>> import keras
        >>> from camri_utils import CAMRILoss, CosineHead, ImportantClassRecall
        >>> inputs = keras.Input((8,))
        >>> model = keras.Model(inputs, CosineHead(10)(keras.layers.Dense(4)(inputs)))
        >>> model.compile(optimizer="adam", loss=CAMRILoss(10, 3, 0.2, 16),
        ...               metrics=["accuracy", ImportantClassRecall(3, name="recall_cat")])
        >>> recall = ImportantClassRecall(1)
        >>> recall.update_state([1, 1, 0], [[0.1, 0.9], [0.8, 0.2], [0.7, 0.3]])
        >>> float(recall.result())
        0.5
    """

    def __init__(self, class_id, name=None, dtype=None):
        class_id = checks.check_class_index(class_id, name="class_id")
        super().__init__(name=name or f"recall_{class_id}", dtype=dtype)
        self.class_id = class_id
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="true_positives")
        self.positives = self.add_variable(shape=(), initializer="zeros", name="positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        n_classes = y_pred.shape[-1]
        checks.check_class_index(self.class_id, n_classes, "class_id")
        labels = sparse_labels(y_true, n_classes)
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        is_class = ops.cast(ops.equal(labels, self.class_id), self.dtype)
        hit = is_class * ops.cast(ops.equal(predicted, self.class_id), self.dtype)
        if sample_weight is not None:
            w = ops.reshape(ops.cast(sample_weight, self.dtype), (-1,))
            is_class, hit = is_class * w, hit * w
        self.true_positives.assign_add(ops.sum(hit))
        self.positives.assign_add(ops.sum(is_class))

    def result(self):
        return ops.divide_no_nan(self.true_positives, self.positives)

    def get_config(self):
        return {"class_id": self.class_id, "name": self.name, "dtype": self.dtype}
