"""Independent float64 NumPy versions of the formulas, written from the papers (acos, not the
library's atan2), for the tests to compare against."""

import numpy as np


def as_int_labels(labels):
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1)
    return y.reshape(-1).astype(np.int64)


def margin_logits(cos, labels, scale, m1=1.0, m2=0.0, m3=0.0, monotonic=False, easy_margin=False):
    """s*(cos(m1*theta+m2)-m3) at the target, s*cos elsewhere; margins scalar or per class.
    easy_margin (insightface's arcface): the target keeps cos(theta) where cos(theta) <= 0."""
    cos = np.clip(np.asarray(cos, np.float64), -1.0, 1.0)
    y = as_int_labels(labels)
    n, c = cos.shape
    per_class = lambda m: np.broadcast_to(np.asarray(m, np.float64), (c,))[y]
    a, b, d = per_class(m1), per_class(m2), per_class(m3)
    cos_t = cos[np.arange(n), y]
    theta = np.arccos(cos_t)
    phi = a * theta + b
    target = np.cos(phi) - d
    if monotonic:
        for i in range(n):
            if phi[i] > np.pi:
                if a[i] == 1.0:  # ArcFace: cos(theta) - m sin(m)
                    target[i] = cos_t[i] - b[i] * np.sin(b[i]) - d[i]
                else:  # SphereFace: (-1)^k cos(phi) - 2k
                    k = np.floor(phi[i] / np.pi)
                    target[i] = (-1.0) ** k * np.cos(phi[i]) - 2 * k - d[i]
    if easy_margin:
        target = np.where(cos_t > 0, target, cos_t)
    logits = scale * cos.copy()
    logits[np.arange(n), y] = scale * target
    return logits


def soft_margin_logits(cos, rows, scale, m1=1.0, m2=0.0, m3=0.0, monotonic=False, easy_margin=False):
    """Label rows (one-hot or soft): every column k gets s*(cos_k + y_k*(target_k - cos_k)), with
    target_k = cos(m1[k]*theta_k + m2[k]) - m3[k] (the authors' layer, column-wise)."""
    cos = np.clip(np.asarray(cos, np.float64), -1.0, 1.0)
    rows = np.asarray(rows, np.float64)
    a, b, d = (np.broadcast_to(np.asarray(m, np.float64), (cos.shape[1],)) for m in (m1, m2, m3))
    theta = np.arccos(cos)
    phi = a * theta + b
    target = np.cos(phi) - d
    if monotonic:
        k = np.floor(phi / np.pi)
        fallback = np.where(a == 1.0, cos - b * np.sin(b) - d, (-1.0) ** k * np.cos(phi) - 2 * k - d)
        target = np.where(phi > np.pi, fallback, target)
    if easy_margin:
        target = np.where(cos > 0, target, cos)
    return scale * (cos + rows * (target - cos))


def soft_ce(logits, rows):
    return -(np.asarray(rows, np.float64) * log_softmax(logits)).sum(axis=1)


def softmax_ce(logits, labels):
    y = as_int_labels(labels)
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y]


def camri_per_sample(cos, labels, n_classes, important, margins, scale, monotonic=False, easy_margin=False):
    m2 = np.zeros(n_classes)
    m2[list(important)] = margins
    return softmax_ce(margin_logits(cos, labels, scale, m2=m2, monotonic=monotonic, easy_margin=easy_margin), labels)


def log_softmax(logits):
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def weighted_ce(logits, labels, weights):
    y = as_int_labels(labels)
    return -np.asarray(weights, np.float64)[y] * log_softmax(logits)[np.arange(len(y)), y]


def rwwce(logits, labels, fn, fp):
    y = as_int_labels(labels)
    p = np.exp(log_softmax(logits))
    onehot = np.eye(p.shape[1])[y]
    terms = np.asarray(fn) * onehot * np.log(p) + np.asarray(fp) * (1 - onehot) * np.log(1 - p)
    return -terms.sum(axis=1)
