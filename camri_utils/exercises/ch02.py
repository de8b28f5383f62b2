"""Chapter 2's exercises (normalized softmax): the declarations; checking is
:mod:`camri_utils.exercises.core`'s. Angles are in radians wherever an answer is a number."""

from __future__ import annotations

import math

import numpy as np

from camri_utils.exercises.core import Exercise, Function, Mistake, Number, Values


def _p_max(scale, n_classes):
    from camri_utils import theory

    return float(theory.max_probability(scale, n_classes))


def _simplex_cosine(n_classes):
    from camri_utils import theory

    return float(theory.simplex_cosines(n_classes)[0, 1])



_P_C = [(0.6, 2), (0.9, 2), (0.5, 10), (0.9, 10), (0.99, 10), (0.999, 10), (0.9, 43), (0.99, 50), (0.99, 1000)]


def _min_scale(p, c):
    from camri_utils import theory

    return float(theory.min_scale(p, c))


def _single_sample_p(scale=1.0, n_classes=10):
    """p_t of a sample on its weight when every other weight points opposite (cos = -1),
    from the library's loss."""
    import keras

    from camri_utils import NormalizedSoftmaxLoss

    cos = np.full((1, n_classes), -1.0, "float32")
    cos[0, 0] = 1.0
    loss = NormalizedSoftmaxLoss(scale)(np.array([0]), cos)
    return float(np.exp(-keras.ops.convert_to_numpy(loss)))


def _arcface_scale(p=0.99, n_classes=1000, margin=0.5):
    """The scale at which ArcFace's loss of a sample on its weight (the other weights a simplex)
    equals -log p: bisection on the library's loss (it decreases with the scale)."""
    import keras

    from camri_utils import ArcFaceLoss

    cos = np.full((1, n_classes), -1.0 / (n_classes - 1), "float32")
    cos[0, 0] = 1.0

    def loss(s):
        return float(keras.ops.convert_to_numpy(ArcFaceLoss(margin, s)(np.array([0]), cos)))

    lo, hi = 1.0, 200.0
    while hi - lo > 1e-7:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if loss(mid) > -math.log(p) else (lo, mid)
    return 0.5 * (lo + hi)


_MANY_CLASSES = (10**3, 10**4, 10**5)


def _arcface_scales():
    return [_arcface_scale(n_classes=c) for c in _MANY_CLASSES]


_SCALES_2 = np.arange(1, 41)


def _losses_on_weight(others=0.0, label=0, scaled=True):
    import keras

    from camri_utils import NormalizedSoftmaxLoss

    cos = np.full((1, 10), others, "float32")
    cos[0, 0] = 1.0
    out = []
    for s in _SCALES_2:
        loss = NormalizedSoftmaxLoss(float(s) if scaled else 1.0)
        out.append(float(keras.ops.convert_to_numpy(loss(np.array([label]), cos))))
    return np.array(out)


def _simplex_losses():
    from camri_utils import theory

    return -np.log(theory.max_probability(_SCALES_2.astype(float), 10))


def _softmax(logits):
    e = np.exp(logits - np.max(logits))
    return e / e.sum()


def _normalized_gradient(z, weights, t, scale, project=True, divide=True, normalise_w=True):
    """d L / d z of normalized softmax (float64): the Jacobian of z / |z| is (I - u u^T) / |z|.
    ``project``, ``divide`` and ``normalise_w`` make the mistakes."""
    z, weights = np.asarray(z, float), np.asarray(weights, float)
    u = z / np.linalg.norm(z)
    w = weights / np.linalg.norm(weights, axis=0) if normalise_w else weights
    g = _softmax(scale * (u @ w)) - np.eye(w.shape[1])[t]
    dL_du = scale * w @ g
    out = dL_du - u * (u @ dL_du) if project else dL_du
    return out / np.linalg.norm(z) if divide else out


def _normalized_inputs(context):
    rng = np.random.default_rng(12)
    rows = [(rng.normal(size=3) * r, rng.normal(size=(3, 4)) * n, int(rng.integers(4)), s)
            for r, n, s in ((1.0, 1.0, 1.0), (5.0, 2.0, 8.0), (0.2, 0.5, 16.0), (30.0, 1.0, 4.0))]
    return rows


_CH2 = [
    Exercise(
        "1",
        "Show that p_max is a logistic function of s C/(C - 1) and derive s_min from it. Write "
        "`s_min(p, C)`: the smallest scale at which normalized softmax can reach probability p with C "
        "classes.",
        "Divide the numerator and the denominator of p_max by e^s, set the result to p and solve for s.",
        "p_max = 1 / (1 + (C - 1) e^{-s - s/(C-1)}) = 1 / (1 + (C - 1) e^{-s C/(C-1)}). Setting it to p: "
        "e^{s C/(C-1)} = (C - 1) p/(1 - p), hence s = (C - 1)/C · log((C - 1) p/(1 - p)), which is "
        "`theory.min_scale(p, C)`.",
        code="""
import numpy as np

def s_min(p, C):
    return (C - 1) / C * np.log((C - 1) * p / (1 - p))
""",
        var="s_min",
        answer=Function("s_min(p, C), a number", lambda ctx: _P_C),
        reference=lambda ctx: _min_scale,
        mistakes=(
            Mistake("You left out the factor (C - 1)/C: the exponent is s·C/(C - 1), not s.",
                    lambda ctx: lambda p, C: math.log((C - 1) * p / (1 - p))),
            Mistake("Each of the C - 1 other classes adds a term e^{-s/(C-1)}: the factor C - 1 belongs "
                    "inside the logarithm.", lambda ctx: lambda p, C: (C - 1) / C * math.log(p / (1 - p))),
            Mistake("The factor is (C - 1)/C, not C/(C - 1).",
                    lambda ctx: lambda p, C: C / (C - 1) * math.log((C - 1) * p / (1 - p))),
            Mistake("Use the natural logarithm (np.log), not log10.",
                    lambda ctx: lambda p, C: (C - 1) / C * math.log10((C - 1) * p / (1 - p))),
        ),
        assignment="a derivation whose result is checked as a function over many (p, C)",
    ),
    Exercise(
        "2a",
        "One sample of class t lies on its class weight (s = 1, C = 10), and every other class weight "
        "points exactly opposite W_t (all other cosines -1). What is p_t?",
        "Nothing stops one class's other weights from pointing away from it: the logits are s·1 and "
        "nine times s·(-1).",
        lambda ctx: (
            f"p_t = e^1/(e^1 + 9e^-1) = {_single_sample_p():.3f}, above the chapter's p_max = "
            f"{_p_max(1.0, 10):.3f}: its loss, {-math.log(_single_sample_p()):.3f}, is below the floor "
            f"-log p_max = {-math.log(_p_max(1.0, 10)):.3f}. The floor is not about one sample: it bounds the "
            "*average* loss over a class-balanced set, where every class needs its own weight far from the "
            "others (exercise 2b)."),
        code="""
import numpy as np

p_single = np.exp(1) / (np.exp(1) + 9 * np.exp(-1))
""",
        var="p_single",
        answer=Number("the probability p_t"),
        reference=lambda ctx: _single_sample_p(),
        mistakes=(
            Mistake("That is p_max, the simplex case, where the other cosines are -1/(C - 1); here they "
                    "are -1.", lambda ctx: _p_max(1.0, 10)),
            Mistake("That is the loss -log p_t; the exercise asks for the probability p_t.",
                    lambda ctx: -math.log(_single_sample_p())),
            Mistake("1/C is the uniform probability: the logits here are not all equal.", lambda ctx: 0.1),
        ),
        rtol=2e-3,
    ),
    Exercise(
        "2b",
        "So why can't all other cosines be -1 for every class at once (C > 2)? Write "
        "`min_mean_cosine(C)`: the most negative value the average pairwise cosine of C unit class "
        "weights can take. Which sets of weights reach it?",
        "Expand |Σ_k W_k|^2 ≥ 0 for unit vectors W_k.",
        "For unit vectors |Σ_k W_k|^2 = C + Σ_{j≠k} cos(W_j, W_k) ≥ 0, and there are C(C - 1) ordered "
        "pairs, so the average pairwise cosine is at least -1/(C - 1), with equality exactly when "
        "Σ_k W_k = 0. Any unit weights that sum to zero reach it, in any dimension: ten evenly spaced "
        "unit vectors in 2-D (chapter 6's setting) give -1/9, four at 90° -1/3, six on a line (three +1, "
        "three -1) -1/5. The regular simplex (`theory.simplex_cosines(C)`, every pairwise cosine "
        "-1/(C - 1), d ≥ C - 1) is forced by the bound on the mean *loss*, which needs all pairwise "
        "cosines equal, not by this one.",
        code="""
def min_mean_cosine(C):
    return -1 / (C - 1)
""",
        var="min_mean_cosine",
        answer=Function("min_mean_cosine(C), a number", lambda ctx: [(c,) for c in (2, 3, 4, 5, 10, 43, 1000)]),
        reference=lambda ctx: _simplex_cosine,
        mistakes=(
            Mistake("One pair of weights can be opposite, not every pair at once: expand |Σ_k W_k|^2 ≥ 0.",
                    lambda ctx: lambda c: -1.0),
            Mistake("There are C(C - 1) ordered pairs of distinct classes, not C^2: divide by C - 1.",
                    lambda ctx: lambda c: -1.0 / c),
        ),
        assignment="a short proof with a checkable formula",
    ),
    Exercise(
        "3a",
        "Compute s_min for p = 0.99 and C = 1000 with `theory.min_scale`.",
        "theory.min_scale(probability, n_classes).",
        lambda ctx: f"theory.min_scale(0.99, 1000) = {_min_scale(0.99, 1000):.2f}.",
        code="""
from camri_utils import theory

s_1000 = float(theory.min_scale(0.99, 1000))
""",
        var="s_1000",
        answer=Number("the scale"),
        reference=lambda ctx: _min_scale(0.99, 1000),
        mistakes=(
            Mistake("That is the scale for C = 10; the exercise has 1000 classes.",
                    lambda ctx: _min_scale(0.99, 10)),
            Mistake("That is the scale for p = 0.9; the exercise asks for p = 0.99.",
                    lambda ctx: _min_scale(0.9, 1000)),
        ),
    ),
    Exercise(
        "3b",
        "Face-recognition losses with thousands of identities use s = 30 to 64. Does a margin explain "
        "that? With ArcFace's m = 0.5 (radians) on the target, a sample on its weight has the target logit "
        "s cos m: compute the scale that reaches p = 0.99 (the other weights a simplex) for C = 10^3, 10^4 "
        "and 10^5. Your answer: the three scales.",
        "Redo the derivation of s_min with the target logit s cos m instead of s; `theory.min_scale` takes "
        "a `margin`.",
        lambda ctx: (
            "The target logit s cos m replaces s: s = log((C - 1)p/(1 - p)) / (cos m + 1/(C - 1)) = "
            + ", ".join(f"{v:.2f}" for v in _arcface_scales()) + " for C = 10^3, 10^4, 10^5 (here by "
            "bisection on the library's ArcFaceLoss). All are still below 30 to 64: the bound, even with the "
            "margin, does not explain the scales face recognition uses. It is a floor for features lying "
            "exactly on their weights with the weights as a simplex, which cannot even exist with more "
            "identities than feature dimensions; those papers chose their scales above it."),
        code="""
import numpy as np
from camri_utils import theory

s_arcface = np.array([float(theory.min_scale(0.99, C, margin=0.5))
                      for C in (10**3, 10**4, 10**5)])
""",
        var="s_arcface",
        answer=Values("the scales for C = 10^3, 10^4, 10^5", (3,)),
        reference=lambda ctx: _arcface_scales(),
        mistakes=(
            Mistake("Those are the scales without a margin: the margin lowers the target logit to s cos m.",
                    lambda ctx: [_min_scale(0.99, c) for c in _MANY_CLASSES]),
        ),
        rtol=2e-3,
        correct_note="Now compare them with 30 to 64: does the bound explain those scales?",
    ),
    Exercise(
        "4",
        "(Coursework) Evaluate `NormalizedSoftmaxLoss(scale)` on the cosines of a sample lying on its "
        "class weight with all other cosines 0, for C = 10 classes and the scales "
        "`np.arange(1, 41)`, and plot the loss. Compare with the simplex case. Your answer: the array of "
        "40 losses.",
        "The cosines are one row [1, 0, ..., 0] with label 0; build one loss per scale.",
        lambda ctx: (
            "With the others at 0 the loss is log(1 + (C - 1)e^{-s}): a little higher than the simplex "
            f"case, whose other cosines sit below 0 (at s = 8: {_losses_on_weight()[7]:.2e} against "
            f"{_simplex_losses()[7]:.2e})."),
        code="""
import numpy as np
from camri_utils import NormalizedSoftmaxLoss

cos = np.zeros((1, 10), "float32")
cos[0, 0] = 1.0
losses_on_weight = np.array([
    float(NormalizedSoftmaxLoss(float(s))(np.array([0]), cos))
    for s in np.arange(1, 41)])
""",
        var="losses_on_weight",
        answer=Values("the 40 losses, for the scales 1 to 40", (40,)),
        reference=lambda ctx: _losses_on_weight(),
        mistakes=(
            Mistake("That is the simplex case (the other cosines at -1/(C - 1)); here they are 0.",
                    lambda ctx: _simplex_losses()),
            Mistake("Your losses do not change with the scale: was s applied? NormalizedSoftmaxLoss(scale) "
                    "multiplies the cosines by s.", lambda ctx: _losses_on_weight(scaled=False)),
            Mistake("Wrong class's loss: the sample lies on its own class weight (label 0, cosine 1).",
                    lambda ctx: _losses_on_weight(label=1)),
            Mistake("These look like probabilities p_t; the loss is -log p_t.",
                    lambda ctx: np.exp(-_losses_on_weight())),
        ),
        rtol=1e-3, atol=1e-6,
        assignment="a loop over scales with the library's loss, a plot, and a comparison to write up; "
                   "the array is checked, the comparison is read",
    ),
    Exercise(
        "5",
        "Write `grad_feature(z, W, t, s)`: the gradient of normalized softmax's loss -log p_t with respect "
        "to the *unnormalized* feature z (a vector of d numbers), for class weights W (d x C, one column "
        "per class, also unnormalized), true class t and scale s.",
        "Chain rule in three steps: chapter 1's p - y for the scaled logits s u^T w_k; dL/du = s Σ_k "
        "(p_k - y_k) w_k; and the Jacobian of u = z/|z|, which is (I - u u^T)/|z|.",
        "With u = z/|z| and w_k = W_k/|W_k|: dL/du = s Σ_k (p_k - y_k) w_k, and dL/dz = (I - u u^T) dL/du "
        "/ |z|. The projection removes the part along z (a step turns z and cannot lengthen it, to first "
        "order); the factor 1/|z| makes long features turn slowly.",
        code="""
import numpy as np

def grad_feature(z, W, t, s):
    u = z / np.linalg.norm(z)
    w = W / np.linalg.norm(W, axis=0)
    logits = s * (u @ w)
    p = np.exp(logits - logits.max())
    p = p / p.sum()
    g = p - np.eye(W.shape[1])[t]
    dL_du = s * w @ g
    return (dL_du - u * (u @ dL_du)) / np.linalg.norm(z)
""",
        var="grad_feature",
        answer=Function("grad_feature(z, W, t, s), an array of d numbers", _normalized_inputs, shape=(None,)),
        reference=lambda ctx: _normalized_gradient,
        mistakes=(
            Mistake("The part along z is still there: the Jacobian of z/|z| is (I - u u^T)/|z|, which "
                    "removes it.", lambda ctx: lambda z, W, t, s: _normalized_gradient(z, W, t, s, project=False)),
            Mistake("The factor 1/|z| of the normalization's Jacobian is missing.",
                    lambda ctx: lambda z, W, t, s: _normalized_gradient(z, W, t, s, divide=False)),
            Mistake("The class weights must be normalized too: the logits are s cos θ_k = s u^T W_k/|W_k|.",
                    lambda ctx: lambda z, W, t, s: _normalized_gradient(z, W, t, s, normalise_w=False)),
            Mistake("Wrong sign: that is the direction that lowers the loss (minus the gradient).",
                    lambda ctx: lambda z, W, t, s: -_normalized_gradient(z, W, t, s)),
        ),
        rtol=1e-6, atol=1e-9,
        correct_note="Now check that your gradient is perpendicular to z, and what it does at 10 z.",
        assignment="a chain rule through the normalization, checked as a function on features, weights and "
                   "scales the student does not see",
    ),
]


def chapters():
    """(stem, title, exercises, objectives, the stems it depends on)."""
    return [("02_normalized_softmax", "Normalized softmax", _CH2,
        ("remove norms from the logits", "derive the largest reachable probability p_max(s, C) and s_min",
         "choose a scale for a number of classes"), ("01_softmax_geometry",))]
