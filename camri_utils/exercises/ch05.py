"""Chapter 5's exercises (CAMRI loss): the declarations; checking is
:mod:`camri_utils.exercises.core`'s. Angles are in radians wherever an answer is a number."""

from __future__ import annotations

import math

import numpy as np

from camri_utils.exercises.core import AnswerError, Custom, Exercise, Function, Mistake


def _loss(name, *args):
    import camri_utils

    return getattr(camri_utils, name)(*args)



def _angles_5(context):
    rng = np.random.default_rng(5)
    rows = []
    for scale, margin in ((16.0, 0.3), (8.0, 0.5), (16.0, 0.1), (4.0, 0.3)):
        theta = rng.uniform(0.2, 2.6, size=4)
        rows.append((theta, scale, margin))
    return rows


def _camri_gradient(theta, scale, margin):
    """dL/dtheta_j of one class-0 sample under CAMRI (class 0 important), by autodiff through
    the library's loss."""
    import tensorflow as tf

    from camri_utils import CAMRILoss

    theta = tf.Variable(np.asarray(theta, np.float32)[None])
    loss = CAMRILoss(theta.shape[1], 0, margin, scale, reduction="sum")
    with tf.GradientTape() as tape:
        value = loss(np.array([0]), tf.cos(theta))
    return tape.gradient(value, theta).numpy()[0].astype(np.float64)


def _closed_gradient(theta, scale, margin, sign=1.0, margin_in_p=True, with_scale=True):
    theta = np.asarray(theta, np.float64)
    target = np.cos(theta[0] + margin) if margin_in_p else np.cos(theta[0])
    logits = scale * np.concatenate([[target], np.cos(theta[1:])])
    p = np.exp(logits - logits.max())
    p /= p.sum()
    s = scale if with_scale else 1.0
    grad = -s * np.sin(theta) * p * sign
    grad[0] = s * np.sin(theta[0] + margin) * (1 - p[0])
    return grad


def _vanishing_angle(m):
    """Where the library's gradient of an important-class sample changes sign (theta_t in
    (0, pi)): bisection on the sign of the autodiff gradient."""
    import tensorflow as tf

    from camri_utils import CAMRILoss

    loss = CAMRILoss(3, 0, m, 16.0, reduction="sum")
    others = np.cos(np.radians([[100.0, 130.0]])).astype(np.float32)

    def slope(t):
        x = tf.Variable([[t]], dtype=tf.float32)
        with tf.GradientTape() as tape:
            value = loss(np.array([0]), tf.concat([tf.cos(x), others], axis=1))
        return float(tape.gradient(value, x).numpy()[0, 0])

    lo, hi = 0.05, math.pi - 1e-3
    while hi - lo > 1e-6:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if slope(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


def _margins_of(loss, context=None):
    from camri_utils import losses

    if isinstance(loss, type):
        raise AnswerError(f"you passed the class {loss.__name__} itself; build a loss with it.")
    if not isinstance(loss, losses.AngularMarginLoss):
        raise AnswerError(f"your answer must be a CAMRI loss (CAMRILoss); got {type(loss).__name__}.")
    if loss.n_classes not in (None, 3):
        raise AnswerError(f"the chapter's figure has three classes; your loss has n_classes={loss.n_classes}.")
    return np.concatenate([np.broadcast_to(np.asarray(m, np.float64), (3,)) for m in (loss.m1, loss.m2, loss.m3)])


def _two_important(got, context):
    m1, m2, m3 = got[:3], got[3:6], got[6:]
    if np.all(m1 == 1) and np.all(m3 == 0) and m2[0] > 0 and m2[1] > 0 and m2[2] == 0 and m2[0] != m2[1]:
        return None
    return "Classes 1 and 2 (indices 0 and 1) need their own, different additive angular margins, class 3 none."


def _pull_inputs(context):
    return [(t, m3, s) for t in (0.1, 0.5, 1.0, 1.5) for m3, s in ((0.35, 16.0), (0.2, 8.0))]


def _cosface_pull(theta, m3, scale, margin_in_p=True, angular=False, sign=1.0, with_scale=True):
    """Closed forms of the pull on a class-1 sample between W_1 and W_2 (Figure 5.1's setup)
    under an important-class CosFace margin, and the mistakes' variants."""
    sep = 2 * math.pi / 3
    target = math.cos(theta) - (m3 if margin_in_p else 0.0)
    logits = scale * np.array([target, math.cos(sep - theta), math.cos(sep + theta)])
    p = np.exp(logits - logits.max())
    p_t = p[0] / p.sum()
    s = scale if with_scale else 1.0
    return sign * s * math.sin(theta + (m3 if angular else 0.0)) * (1 - p_t)


def _library_pull(theta, m3, scale):
    """The same pull by autodiff through the library's AngularMarginLoss (the other angles held)."""
    import tensorflow as tf

    from camri_utils import AngularMarginLoss

    sep = 2 * math.pi / 3
    loss = AngularMarginLoss(scale=scale, m3=[m3, 0.0, 0.0], n_classes=3, reduction="sum")
    others = np.array([[math.cos(sep - theta), math.cos(sep + theta)]], np.float32)
    x = tf.Variable([[0.0]], dtype=tf.float32)
    with tf.GradientTape() as tape:
        value = loss(np.array([0]), tf.concat([tf.cos(theta + x), others], axis=1))
    return float(tape.gradient(value, x).numpy()[0, 0])


_N_5, _IMPORTANT_5, _MARGIN_5, _SCALE_5 = 10, 3, 0.3, 16.0


def _batches_5(context):
    """Three batches of eight samples: random cosines, and samples of the important class
    nearly opposite their weight (theta + m > pi), where the monotonic fallback acts."""
    rng = np.random.default_rng(55)
    rows = []
    for _ in range(3):
        labels = rng.integers(0, _N_5, size=8)
        labels[:3] = _IMPORTANT_5
        cos = rng.uniform(-1, 1, size=(8, _N_5))
        cos[:2, _IMPORTANT_5] = rng.uniform(-1.0, -0.97, size=2)  # past pi - m
        rows.append((labels, cos))
    return rows


def _library_losses(loss):
    import keras

    def losses(labels, cos):
        return keras.ops.convert_to_numpy(loss(np.asarray(labels), np.asarray(cos, "float32")))
    return losses


def _camri_5(monotonic=True, every_class=False):
    from camri_utils import CAMRILoss

    important = list(range(_N_5)) if every_class else _IMPORTANT_5
    return _library_losses(CAMRILoss(_N_5, important, _MARGIN_5, _SCALE_5, monotonic=monotonic, reduction=None))


def _cosface_5():
    from camri_utils import AngularMarginLoss

    m3 = [_MARGIN_5 if c == _IMPORTANT_5 else 0.0 for c in range(_N_5)]
    return _library_losses(AngularMarginLoss(scale=_SCALE_5, m3=m3, n_classes=_N_5, reduction=None))


_CH5 = [
    Exercise(
        "1",
        "Derive ∂L/∂θ_k for a non-target class k and check it with `tf.GradientTape`. Write "
        "`grad_theta(theta, scale, margin)`: for one sample of class 0 (important, CAMRI margin "
        "`margin`) with angles `theta` (radians, one per class), return ∂L/∂θ_j for every class j (the "
        "target's from the chapter's formula).",
        "∂(-log p_t)/∂ℓ_k = p_k for the logit ℓ_k = s cos θ_k of a class k ≠ t. The p_k are the softmax of the logits the "
        "loss sees (with the margin on the target).",
        "∂(-log p_t)/∂ℓ_k = p_k and ∂ℓ_k/∂θ_k = -s sin θ_k, so ∂L/∂θ_k = -s sin θ_k p_k: a push away from "
        "W_k (turning away from another class lowers the loss). The target's is s sin(θ_t + m)(1 - p_t); "
        "the p's are the softmax of the margin-adjusted logits (`loss.logits`).",
        code="""
import numpy as np

def grad_theta(theta, scale, margin):
    theta = np.asarray(theta, float)
    logits = scale * np.cos(theta)
    logits[0] = scale * np.cos(theta[0] + margin)  # the margin on the target logit
    p = np.exp(logits - logits.max())
    p /= p.sum()
    grad = -scale * np.sin(theta) * p  # the other classes: a push away
    grad[0] = scale * np.sin(theta[0] + margin) * (1 - p[0])
    return grad
""",
        var="grad_theta",
        answer=Function("grad_theta(theta, scale, margin): one value per class", _angles_5, shape=(4,)),
        reference=lambda ctx: _camri_gradient,
        mistakes=(
            Mistake("Wrong sign for the other classes: turning away from W_k lowers the loss, so "
                    "∂L/∂θ_k < 0.", lambda ctx: lambda t, s, m: _closed_gradient(t, s, m, sign=-1.0)),
            Mistake("Your p_k ignore the margin: the probabilities are those of the logits the loss sees "
                    "(the target's is s cos(θ_t + m); see loss.logits).",
                    lambda ctx: lambda t, s, m: _closed_gradient(t, s, m, margin_in_p=False)),
            Mistake("The factor s is missing: the logit is ℓ_k = s cos θ_k.",
                    lambda ctx: lambda t, s, m: _closed_gradient(t, s, m, with_scale=False)),
            Mistake("Your non-target entries are right but the target's is not: the chapter derives "
                    "s sin(θ_t + m)(1 - p_t).",
                    lambda ctx: lambda t, s, m: np.r_[_closed_gradient(t, s, 0.0)[0], _closed_gradient(t, s, m)[1:]],
                    detect=lambda got, ref: (got.size == ref.size
                                             and np.allclose(np.delete(got.reshape(-1, 4), 0, 1),
                                                             np.delete(ref.reshape(-1, 4), 0, 1),
                                                             rtol=1e-3, atol=1e-6))),
        ),
        rtol=1e-3, atol=1e-5,
        assignment="a derivation checked as a function on random angles, scales and margins against "
                   "autodiff: the strongest check in Part I",
    ),
    Exercise(
        "2",
        "For which θ_t does the important class's gradient vanish when m > 0 (with p_t < 1)? Write "
        "`vanishing_angle(m)` in radians, and relate it to the θ + m > π discussion of chapter 3.",
        "∂L/∂θ_t = s sin(θ_t + m)(1 - p_t): where is sin(θ_t + m) zero for θ_t in (0, π)?",
        "At θ_t = π - m, where sin(θ_t + m) = 0 (and, trivially, where p_t = 1). Past π - m the sign "
        "flips and the sample is pushed away from its class: the paper's formula's weak spot, which "
        "`monotonic=True` removes.",
        code="""
import math

def vanishing_angle(m):
    return math.pi - m
""",
        var="vanishing_angle",
        answer=Function("vanishing_angle(m), in radians", lambda ctx: [(m,) for m in (0.1, 0.3, 0.5, 1.0)]),
        reference=lambda ctx: _vanishing_angle,
        mistakes=(
            Mistake("Those are degrees; radians were asked.", lambda ctx: lambda m: 180 - math.degrees(m)),
            Mistake("m/2 is the shift of the decision boundary; the gradient vanishes where "
                    "sin(θ_t + m) = 0.", lambda ctx: lambda m: math.pi - m / 2),
            Mistake("At θ_t = π, sin(θ_t + m) = -sin m is not zero: the gradient has already changed sign.",
                    lambda ctx: lambda m: math.pi),
        ),
        rtol=1e-4,
    ),
    Exercise(
        "3",
        "Make class 2 important as well, with a different margin (three classes, as in Figure 5.1). How "
        "do the two classes' curves in the figure compare? Your answer: the loss.",
        "CAMRILoss takes a list of important classes (0-based) and one margin per important class.",
        "`CAMRILoss(3, [0, 1], [m0, m1], scale)`: each important class follows the pull curve of its own "
        "margin (the larger margin keeps pulling deeper inside its cone); class 3 keeps normalized "
        "softmax's curve.",
        code="""
from camri_utils import CAMRILoss

both = CAMRILoss(3, [0, 1], [0.3, 0.6], 16.0)
""",
        var="both",
        answer=Custom("a CAMRI loss with three classes", _margins_of),
        reference=None,
        accept=_two_important,
        mistakes=(
            Mistake("Classes are 0-based: the chapter's class 1 is index 0, class 2 is index 1 (you gave "
                    "the margin to class 3, index 2).", lambda ctx: _loss("CAMRILoss", 3, [0, 2], [0.3, 0.6], 16.0),
                    detect=lambda got, ref: got[3] > 0 and got[5] > 0 and got[4] == 0),
            Mistake("That is ArcFace: every class has a margin, and class 3 must keep none.",
                    lambda ctx: _loss("ArcFaceLoss", 0.3, 16.0),
                    detect=lambda got, ref: np.all(got[3:6] > 0)),
            Mistake("Give class 2 a margin of its own, different from class 1's.",
                    lambda ctx: _loss("CAMRILoss", 3, [0, 1], 0.3, 16.0),
                    detect=lambda got, ref: got[3] > 0 and got[3] == got[4]),
            Mistake("Class 2 (index 1) has no margin yet.",
                    lambda ctx: _loss("CAMRILoss", 3, 0, 0.3, 16.0),
                    detect=lambda got, ref: got[3] > 0 and got[4] == 0 and got[5] == 0),
        ),
        correct_note="Now redraw Figure 5.1 for both classes and compare their curves.",
    ),
    Exercise(
        "4",
        "(Coursework) Replace the margin by a CosFace-style margin for the important class only "
        "(`AngularMarginLoss(m3=[m3, 0, 0], n_classes=3, scale=s)`) and redraw the gradient. Write "
        "`pull(theta, m3, scale)`: ∂L/∂θ_t of a class-1 sample at angle θ from W_1 on the way to W_2 "
        "(Figure 5.1's setup, the other angles held fixed). What changes?",
        "The target logit is s(cos θ - m_3): differentiate -log p_t with respect to θ. p_t comes from the "
        "margin-lowered target logit.",
        "The pull is s sin θ_t (1 - p_t) with p_t from the lowered target logit s(cos θ_t - m_3): stronger "
        "than normalized softmax's, but without ArcFace's shift of the angle, so it fades near θ_t = 0 "
        "like sin θ_t.",
        code="""
import math
import numpy as np

def pull(theta, m3, scale):
    sep = 2 * math.pi / 3
    logits = scale * np.array([math.cos(theta) - m3, math.cos(sep - theta),
                               math.cos(sep + theta)])
    p = np.exp(logits - logits.max())
    p_t = p[0] / p.sum()
    return scale * math.sin(theta) * (1 - p_t)
""",
        var="pull",
        answer=Function("pull(theta, m3, scale), a number", _pull_inputs),
        reference=lambda ctx: _library_pull,
        mistakes=(
            Mistake("sin(θ + m) is the additive angular margin's pull; CosFace shifts the cosine, not the "
                    "angle.", lambda ctx: lambda t, m3, s: _cosface_pull(t, m3, s, angular=True)),
            Mistake("p_t must come from the margin-lowered target logit s(cos θ - m_3).",
                    lambda ctx: lambda t, m3, s: _cosface_pull(t, m3, s, margin_in_p=False)),
            Mistake("The factor s is missing.", lambda ctx: lambda t, m3, s: _cosface_pull(t, m3, s, with_scale=False)),
            Mistake("Wrong sign: the loss grows as the sample turns away from its weight, so the "
                    "derivative is positive.", lambda ctx: lambda t, m3, s: _cosface_pull(t, m3, s, sign=-1.0)),
        ),
        rtol=2e-3, atol=1e-5,
        assignment="a new loss variant built from the library's parts, its gradient derived and checked "
                   "against autodiff, and a figure to discuss",
    ),
    Exercise(
        "5",
        "Extend the chapter's `camri_plain` to the monotonic form: write `my_camri(labels, cos)`, the "
        "per-sample CAMRI loss for 10 classes, important class 3, m = 0.3 and s = 16, where the target "
        "logit is s cos(θ + m) while θ + m ≤ π and ArcFace's fallback s (cos θ - m sin m) beyond.",
        "Compute both candidates for the target and choose with tf.where (or np.where) on θ + m > π; the "
        "other classes' logits stay s cos θ_k, and only class 3 has a margin.",
        "The target cosine is cos(θ_t + m_t) where θ_t + m_t ≤ π, else cos θ_t - m_t sin m_t: a "
        "decreasing stand-in that never lets turning away raise the target logit (chapter 3). "
        "`CAMRILoss(10, 3, 0.3, 16.0, monotonic=True)` computes the same without acos.",
        code="""
import numpy as np

def my_camri(labels, cos):
    labels, cos = np.asarray(labels), np.asarray(cos, float)
    rows = np.arange(len(labels))
    m = np.where(labels == 3, 0.3, 0.0)
    theta = np.arccos(np.clip(cos[rows, labels], -1.0, 1.0))
    target = np.where(theta + m > np.pi, np.cos(theta) - m * np.sin(m),
                      np.cos(theta + m))
    logits = 16.0 * cos
    logits[rows, labels] = 16.0 * target
    logits -= logits.max(axis=1, keepdims=True)
    return np.log(np.exp(logits).sum(axis=1)) - logits[rows, labels]
""",
        var="my_camri",
        answer=Function("my_camri(labels, cos), one loss per sample", _batches_5, shape=(None,)),
        reference=lambda ctx: _camri_5(),
        mistakes=(
            Mistake("That is the paper's formula, cos(θ + m) everywhere: the fallback past θ + m > π is "
                    "missing (look at the samples of class 3 nearly opposite their weight).",
                    lambda ctx: _camri_5(monotonic=False)),
            Mistake("The margin is on every class: that is ArcFace. CAMRI's margin is on class 3 only.",
                    lambda ctx: _camri_5(every_class=True)),
            Mistake("That subtracts m from the cosine (CosFace's margin); CAMRI adds it to the angle.",
                    lambda ctx: _cosface_5()),
        ),
        rtol=1e-4, atol=1e-4,  # the library computes in float32
        correct_note="Now check that your version and CAMRILoss agree on the gradient too.",
        assignment="a loss written from its formula and checked on batches the student does not see, "
                   "including the θ + m > π case",
    ),
]


def chapters():
    """(stem, title, exercises, objectives, the stems it depends on)."""
    return [("05_camri_loss", "CAMRI loss", _CH5,
        ("write CAMRI as normalized softmax plus an important-class margin",
         "check an implementation against the paper's formula", "derive and check the gradient in the angle"),
        ("03_angular_margins", "04_reweighting_vs_margins"))]
