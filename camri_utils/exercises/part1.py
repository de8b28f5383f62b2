"""Part I's exercises (chapters 1-6): closed forms and small computations, every reference
computed by the library (``feature_plane``, ``theory``, the losses and their gradients).

Angles are in radians wherever an answer is a number, as in the library; the questions say so.
"""

from __future__ import annotations

import math

import numpy as np

from camri_utils.exercises.core import AnswerError, Custom, Exercise, Function, Mistake, Number, Values


def _loss(name, *args):
    import camri_utils

    return getattr(camri_utils, name)(*args)


def _p_max(scale, n_classes):
    from camri_utils import theory

    return float(theory.max_probability(scale, n_classes))


def _simplex_cosine(n_classes):
    from camri_utils import theory

    return float(theory.simplex_cosines(n_classes)[0, 1])


# --------------------------------------------------------------------------------------------
# Chapter 1: the softmax classifier, geometrically
# --------------------------------------------------------------------------------------------
_NORMS_1, _BIAS_1 = [1.0, 1.6, 0.7], [0.0, 0.6, -0.4]  # Figure 1.1's right panel
_SCALES_1 = (1, 2, 5)


def _figure_1_1():
    from camri_utils import feature_plane as fp

    return fp.class_weights_2d(3, norms=_NORMS_1), np.array(_BIAS_1)


def _boundary_distances(j=0, k=1, divide_by_c=True, normalise=True):
    """Distance from the origin of the j|k boundary of Figure 1.1's right panel after the
    weights are multiplied by c: (c W_j - c W_k)^T z = b_k - b_j."""
    W, b = _figure_1_1()
    norm = np.linalg.norm(W[:, j] - W[:, k]) if normalise else 1.0
    return [abs(b[k] - b[j]) / ((c if divide_by_c else 1 / c) * norm) for c in _SCALES_1]


def _ray_loss(angle_deg, radius):
    """Cross-entropy of a class-1 sample at ``radius`` along the ray at ``angle_deg`` from W_1,
    equal norms, no bias (Figure 1.3), computed by Keras on the library's logits."""
    import keras

    from camri_utils import feature_plane as fp

    a = math.radians(angle_deg)
    point = np.array([[radius * math.cos(a), radius * math.sin(a)]])
    logits = fp.logits_on_plane(point, fp.class_weights_2d(3)).astype("float32")
    return float(keras.ops.convert_to_numpy(
        keras.losses.sparse_categorical_crossentropy(np.array([0]), logits, from_logits=True))[0])


def _ray_slope(angle_deg):
    return (_ray_loss(angle_deg, 200.0) - _ray_loss(angle_deg, 100.0)) / 100.0


def _vanishing_norm():
    """Five evenly spaced unit weights: W_2 loses everywhere once it falls inside the segment
    W_1-W_3, whose closest point lies at W_1 . W_2/|W_2| from the origin along W_2."""
    from camri_utils import feature_plane as fp

    W5 = fp.class_weights_2d(5)
    return float(W5[:, 0] @ W5[:, 1])


def _offset_inputs(context):
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(6):
        W1, W2 = rng.normal(size=2), rng.normal(size=2)
        rows.append((W1, W2, float(rng.normal()), float(rng.normal())))
    unit = np.array([1.0, 0.0]), np.array([math.cos(2.0), math.sin(2.0)])
    rows.append((*unit, 0.3, 0.3))  # equal norms, equal biases: through the origin
    rows.append((np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, -0.5]), -0.2, 0.7))  # 3-D features
    return rows


def _offset(W1, W2, b1, b2):
    return (b2 - b1) / np.linalg.norm(np.subtract(W1, W2))


_CH1 = [
    Exercise(
        "1",
        "Multiply all class weights by a constant c > 1. Which figures change, and how? Compute, for "
        "Figure 1.1's right panel (`W` and `b` of the first code cell: norms 1, 1.6, 0.7; biases 0, 0.6, "
        "-0.4), the distance from the origin of the boundary between classes 1 and 2 for c = 1, 2 and 5.",
        "Write the tie of the two scaled logits, c W_1^T z + b_1 = c W_2^T z + b_2: which side is scaled "
        "by c? A plane a^T z = d lies at distance |d| / |a| from the origin.",
        lambda ctx: (
            "Without biases (left panel) nothing changes: every logit is multiplied by c and the argmax "
            "is the same. With biases (right panel) the boundary between j and k is "
            "(W_j - W_k)^T z = (b_k - b_j)/c: the biases are not scaled, so the boundaries move towards "
            "the origin. The 1|2 boundary's distance: "
            + ", ".join(f"{d:.3f}" for d in _boundary_distances()) + " for c = 1, 2, 5. The loss "
            "landscape (Figure 1.2) gets steeper: scaling the weights acts like scaling the features."),
        code="""
import numpy as np
from camri_utils import feature_plane as fp

W = fp.class_weights_2d(3, norms=[1.0, 1.6, 0.7])
b = np.array([0.0, 0.6, -0.4])
gap = np.linalg.norm(W[:, 0] - W[:, 1])
distances = np.array([abs(b[1] - b[0]) / (c * gap) for c in (1, 2, 5)])
""",
        var="distances",
        answer=Values("the three distances, for c = 1, 2, 5", (3,)),
        reference=lambda ctx: _boundary_distances(),
        mistakes=(
            Mistake("Your distances do not change with c. That holds without biases (the left panel); "
                    "here the biases are not multiplied by c, so the boundary moves.",
                    lambda ctx: [_boundary_distances()[0]] * 3),
            Mistake("Your boundary moves away from the origin as c grows: the logits' differences grow "
                    "with c while the biases stay, so the boundary moves towards it.",
                    lambda ctx: _boundary_distances(divide_by_c=False)),
            Mistake("A distance of zero is the case without biases (the left panel).", lambda ctx: [0.0] * 3),
            Mistake("(W_1 - W_2)^T z = d is a distance only after dividing by |W_1 - W_2|.",
                    lambda ctx: _boundary_distances(normalise=False)),
            Mistake("That is the boundary between classes 1 and 3; the exercise asks for classes 1 and 2 "
                    "(columns 0 and 1 of W).", lambda ctx: _boundary_distances(0, 2)),
        ),
        rtol=1e-3,
        correct_note="Now say which figure does not change, and why.",
    ),
    Exercise(
        "2",
        "For two classes with weights W_1, W_2 and biases b_1, b_2, derive the decision boundary. Write "
        "`offset(W1, W2, b1, b2)`: the signed distance from the origin to the boundary along the unit "
        "normal (W_1 - W_2)/|W_1 - W_2| (positive when the boundary lies on W_1's side). When does the "
        "boundary pass through the origin?",
        "Set the logits equal: (W_1 - W_2)^T z = b_2 - b_1. Put z = t n with n the unit normal and solve "
        "for t.",
        "W_1^T z + b_1 = W_2^T z + b_2 ⇔ (W_1 - W_2)^T z = b_2 - b_1: a line (a plane in more "
        "dimensions) perpendicular to W_1 - W_2, at signed distance (b_2 - b_1)/|W_1 - W_2| from the "
        "origin. It passes through the origin exactly when b_1 = b_2; with equal norms it is then the "
        "bisector of the two weights.",
        code="""
import numpy as np

def offset(W1, W2, b1, b2):
    return (b2 - b1) / np.linalg.norm(np.subtract(W1, W2))
""",
        var="offset",
        answer=Function("offset(W1, W2, b1, b2), a number", _offset_inputs),
        reference=lambda ctx: _offset,
        mistakes=(
            Mistake("Wrong sign: a larger b_2 lets class 2 win more of the plane, so the boundary moves "
                    "towards W_1 (a positive offset).", lambda ctx: lambda W1, W2, b1, b2: -_offset(W1, W2, b1, b2)),
            Mistake("(W_1 - W_2)^T z = b_2 - b_1 gives a distance only after dividing by |W_1 - W_2|.",
                    lambda ctx: lambda W1, W2, b1, b2: b2 - b1),
            Mistake("A signed distance was asked: yours is never negative. Which side the boundary lies "
                    "on depends on which bias is larger.",
                    lambda ctx: lambda W1, W2, b1, b2: abs(_offset(W1, W2, b1, b2))),
        ),
        correct_note="And through the origin: when b_1 = b_2.",
        assignment="a function checked on inputs the student does not see, including 3-D weights: "
                   "it cannot be guessed from one printed number",
    ),
    Exercise(
        "3a",
        "In the ray plot (Figure 1.3), what is the limit of the loss as |z| → ∞ along the ray at 55° from W_1?",
        "At 55°, which class's cosine is the largest? The loss is log(1 + Σ_k exp(|z|(cos θ_k - cos θ_1))).",
        "At 55° the sample is inside class 1's cone: cos θ_1 is the largest cosine, every exponent "
        "|z|(cos θ_k - cos θ_1) goes to -∞, and the loss goes to 0.",
        code="limit_55 = 0.0",
        var="limit_55",
        answer=Number("the limit of the loss"),
        reference=lambda ctx: _ray_loss(55, 1000.0),
        mistakes=(
            Mistake("log 3 is the loss at the origin (|z| = 0), where all logits are 0.",
                    lambda ctx: math.log(3)),
            Mistake("The loss grows without bound only outside the class-1 cone (past 60°); 55° is inside.",
                    lambda ctx: 1e300, detect=lambda got, ref: got[0] > 1e3),
        ),
        atol=1e-4,
    ),
    Exercise(
        "3b",
        "Along the ray at 65° from W_1, the loss grows linearly for large |z|: what is its slope "
        "d loss / d|z|?",
        "At 65° the nearest other weight is W_2, 120° - 65° = 55° away. For large |z| the loss is "
        "about |z| (largest cosine - cos θ_1).",
        lambda ctx: (
            "At 65° class 2's cosine (its weight is 55° away) exceeds cos θ_1, and the loss grows like "
            f"|z|(cos 55° - cos 65°): a slope of {_ray_slope(65):.4f}, measured here on the library's loss "
            "between |z| = 100 and 200."),
        code="""
import numpy as np

slope_65 = np.cos(np.radians(55)) - np.cos(np.radians(65))
""",
        var="slope_65",
        answer=Number("the slope of the loss in |z|"),
        reference=lambda ctx: _ray_slope(65),
        mistakes=(
            Mistake("np.cos takes radians: np.cos(55) is the cosine of 55 radians. Use np.radians first.",
                    lambda ctx: math.cos(55) - math.cos(65)),
            Mistake("Wrong sign: outside its cone the loss of a class-1 sample grows with |z|.",
                    lambda ctx: -_ray_slope(65)),
            Mistake("Compare with the winning class's cosine at 65°, class 2 (55° away), not with the "
                    "cosine at 0°.", lambda ctx: 1 - math.cos(math.radians(65))),
        ),
        rtol=2e-3,
    ),
    Exercise(
        "4",
        "(Coursework) Change `W` to four classes with random norms and redraw the decision regions: can a "
        "class's region vanish? Then: with five class weights evenly spaced, all of norm 1 except W_2, and "
        "no biases, below which norm of W_2 does class 2's region vanish?",
        "Far from the origin the class whose weight reaches furthest in the direction of z wins. W_2 "
        "loses everywhere once it lies inside the segment from W_1 to W_3 (72° on either side of it).",
        lambda ctx: (
            "Not with four evenly spaced weights, whatever their norms and biases: far enough along W_k the "
            "logit of class k grows like |z| |W_k|, while its two neighbours (at 90°) stay at their biases "
            "and the opposite class falls, so class k always wins there. With five evenly spaced weights "
            "and no biases, W_2 loses everywhere once it lies inside the segment from W_1 to W_3, which "
            f"passes at cos 72° = {_vanishing_norm():.4f} from the origin in W_2's direction: a norm below "
            "that makes class 2's region vanish (the chapter's solution cell uses 0.3). Uneven angles are "
            "needed only with four classes, where the neighbours' cosine, cos 90°, is 0."),
        code="""
from camri_utils import feature_plane as fp

W5 = fp.class_weights_2d(5)               # unit weights, 72 degrees apart
# where W_2 meets the segment from W_1 to W_3
threshold = float(W5[:, 0] @ W5[:, 1])
""",
        var="threshold",
        answer=Number("the norm of W_2 below which its region vanishes"),
        reference=lambda ctx: _vanishing_norm(),
        mistakes=(
            Mistake("np.cos takes radians: that is the cosine of 72 radians.", lambda ctx: math.cos(72)),
            Mistake("sin instead of cos: the segment's closest point lies along W_2, at the projection of "
                    "W_1 onto W_2's direction.", lambda ctx: math.sin(math.radians(72))),
            Mistake("36° is half the angle to a neighbour; the segment from W_1 to W_3 spans 144°, so its "
                    "closest point is 72° from each end.", lambda ctx: math.cos(math.radians(36))),
            Mistake("Zero is the answer for four evenly spaced classes (cos 90° = 0): no positive norm makes "
                    "a region vanish there. With five, the neighbours are 72° away.", lambda ctx: 0.0),
        ),
        rtol=2e-3,
        assignment="combines a picture (regions on a grid) with a closed form the grid confirms; the "
                   "four-class half asks for an argument",
    ),
]

# --------------------------------------------------------------------------------------------
# Chapter 2: normalized softmax
# --------------------------------------------------------------------------------------------
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
            f"p_t = e^1/(e^1 + 9e^-1) = {_single_sample_p():.3f}, a loss of {-math.log(_single_sample_p()):.3f}: "
            "below the chapter's p_max bound. The bound is not about one sample: it holds for the *average* "
            "loss over a class-balanced set, where every class needs its own weight far from the others "
            "(exercise 2b), and it needs a feature dimension d ≥ C - 1 for the simplex to exist."),
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
        "weights can take.",
        "Expand |Σ_k W_k|^2 ≥ 0 for unit vectors W_k.",
        "For unit vectors |Σ_k W_k|^2 = C + Σ_{j≠k} cos(W_j, W_k) ≥ 0, and there are C(C - 1) ordered "
        "pairs, so the average pairwise cosine is at least -1/(C - 1). The regular simplex attains it "
        "(`theory.simplex_cosines(C)`), which needs d ≥ C - 1 dimensions.",
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
]

# --------------------------------------------------------------------------------------------
# Chapter 3: angular margins
# --------------------------------------------------------------------------------------------
def _arcface_closing_margin(sep=math.pi / 2):
    """The smallest ArcFace margin at which the library's decision angle reaches 0 (class 1's
    region has shrunk to its weight), by bisection."""
    from camri_utils import ArcFaceLoss, theory

    lo, hi = 0.0, min(math.pi - 1e-3, sep + 0.5)
    while hi - lo > 1e-6:
        mid = 0.5 * (lo + hi)
        # decision_angle returns exactly 0 once the margin closes class 1's region
        lo, hi = (mid, hi) if theory.decision_angle(ArcFaceLoss(mid, 1.0), sep, tol=1e-3) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


def _cosface_shift(m3):
    from camri_utils import CosFaceLoss, theory

    return math.pi / 4 - theory.decision_angle(CosFaceLoss(m3, 1.0), math.pi / 2, tol=1e-9)


_THETA_3 = np.linspace(0.0, math.pi, 181)


def _curve(loss, context=None):
    from camri_utils import losses, theory

    if isinstance(loss, type):
        raise AnswerError(f"you passed the class {loss.__name__} itself; build a loss with it, e.g. "
                          f"{loss.__name__}(scale=1.0, ...).")
    if not isinstance(loss, losses.AngularMarginLoss):
        raise AnswerError(f"your answer must be a loss of the angular-margin family (AngularMarginLoss); "
                          f"got {type(loss).__name__}.")
    return theory.target_logit_curve(loss, _THETA_3)


def _combined(**changes):
    from camri_utils import AngularMarginLoss

    return AngularMarginLoss(**{"scale": 1.0, "m1": 1.0, "m2": 0.3, "m3": 0.2, **changes})


def _share_past(margin, dim):
    """P(theta > pi - m) for a direction drawn uniformly in ``dim`` dimensions: cos theta has
    density proportional to (1 - t^2)^((d - 3)/2), so the share is I_{sin^2 m}((d-1)/2, 1/2)/2
    (for m < pi/2)."""
    from scipy.special import betainc

    return float(0.5 * betainc((dim - 1) / 2, 0.5, math.sin(margin) ** 2))


_CH3 = [
    Exercise(
        "1",
        "ArcFace, two class weights 90° apart: which margin m (in radians) makes the two classes' margins "
        "meet, so that no angle is won by either class?",
        "Class 1's boundary is at (90° - m)/2 from W_1, class 2's at the same distance from W_2. How wide "
        "is the band between them? `theory.decision_angle(ArcFaceLoss(m, 1.0), math.pi / 2)` gives "
        "class 1's boundary.",
        lambda ctx: (
            "Class 1's boundary lies at (90° - m)/2 from W_1, class 2's at 45° + m/2 from W_1 (its mirror "
            "image): they coincide only at m = 0, and between them lies a band m wide that neither class "
            "wins. The band covers the whole 90° when m = π/2 (the library's decision angle reaches 0 at "
            f"m = {_arcface_closing_margin():.4f}): each class's region has then shrunk to its own weight."),
        code="""
import math

m_meet = math.pi / 2
""",
        var="m_meet",
        answer=Number("the margin, in radians"),
        reference=lambda ctx: _arcface_closing_margin(),
        mistakes=(
            Mistake("That is in degrees; the library's margins are in radians.", lambda ctx: 90.0),
            Mistake("At that margin each class still wins a cone around its weight: the band won by "
                    "neither class is m wide, not 2m.", lambda ctx: math.pi / 4),
            Mistake("At m = 0 the two boundaries coincide at 45° and every angle is won by one class.",
                    lambda ctx: 0.0),
            Mistake("A margin of π is more than needed (and ArcFaceLoss refuses it): the band must cover "
                    "the 90° between the weights.", lambda ctx: math.pi),
        ),
        rtol=1e-4, atol=1e-5,
        correct_note="Check your reasoning too: where are the two boundaries for a smaller m?",
    ),
    Exercise(
        "2",
        "Show that CosFace's boundary moves by about m_3/√2 radians for small m_3 (weights 90° apart). "
        "Write `shift(m3)`: the shift of the boundary from 45°, in radians; it is checked for m_3 up to "
        "0.05, within 2%.",
        "The boundary solves cos a - m_3 = sin a. Linearise around a = π/4: what is the derivative of "
        "cos a - sin a there?",
        "Linearise cos a - sin a = m_3 around a = π/4: the left side has derivative -sin a - cos a = -√2 "
        "there, so a ≈ π/4 - m_3/√2, a shift of m_3/√2. Exactly, a = arccos(m_3/√2) - π/4 (the chapter's "
        "closed form).",
        code="""
import numpy as np

def shift(m3):
    return m3 / np.sqrt(2)
""",
        var="shift",
        answer=Function("shift(m3), in radians", lambda ctx: [(m,) for m in (0.001, 0.005, 0.01, 0.02, 0.05)]),
        reference=lambda ctx: _cosface_shift,
        mistakes=(
            Mistake("Divide by √2, do not multiply: the derivative of cos a - sin a at π/4 is -√2, so "
                    "a ≈ π/4 - m_3/√2.", lambda ctx: lambda m: m * math.sqrt(2)),
            Mistake("A factor is missing: m_3 is a margin on the cosine, and the cosines change at a rate "
                    "of √2 per radian here.", lambda ctx: lambda m: m),
            Mistake("Half the margin is ArcFace's shift (a margin on the angle); CosFace's is on the cosine.",
                    lambda ctx: lambda m: m / 2),
            Mistake("That is in degrees; radians were asked.", lambda ctx: lambda m: math.degrees(m / math.sqrt(2))),
        ),
        rtol=0.02, atol=0.0,
        assignment="a linearisation whose result is checked against the library's bisection",
    ),
    Exercise(
        "3",
        "Build an `AngularMarginLoss` with m_1 = 1.0, m_2 = 0.3, m_3 = 0.2 (a combined margin of the kind "
        "insightface offers) and add its target-logit curve to the first plot. Your answer: the loss.",
        "AngularMarginLoss takes scale, m1, m2 and m3; theory.target_logit_curve(loss, theta) draws it.",
        "`AngularMarginLoss(scale=1.0, m1=1.0, m2=0.3, m3=0.2)`; `theory.target_logit_curve(loss, theta)` "
        "is ArcFace's m = 0.3 curve (the formula as written) shifted down by 0.2.",
        code="""
from camri_utils import AngularMarginLoss

combined = AngularMarginLoss(scale=1.0, m1=1.0, m2=0.3, m3=0.2)
""",
        var="combined",
        answer=Custom("a loss object (AngularMarginLoss)", lambda loss, ctx: _curve(loss)),
        reference=lambda ctx: _combined(),
        mistakes=(
            Mistake("m_2 and m_3 are swapped: m2 is the angular margin (0.3), m3 the cosine margin (0.2).",
                    lambda ctx: _combined(m2=0.2, m3=0.3)),
            Mistake("Your curve lacks the cosine margin m_3 = 0.2.", lambda ctx: _combined(m3=0.0)),
            Mistake("Your curve lacks the cosine margin m_3 = 0.2 (ArcFaceLoss has only m_2).",
                    lambda ctx: _loss("ArcFaceLoss", 0.3, 1.0)),
            Mistake("Your curve lacks the angular margin m_2 = 0.3.", lambda ctx: _combined(m2=0.0)),
            Mistake("Your curve matches up to θ = π - m_2 and steps down beyond it: monotonic=True. The "
                    "exercise's loss is the formula as written (AngularMarginLoss's default).",
                    lambda ctx: _combined(monotonic=True)),
        ),
        rtol=1e-4, atol=1e-5,
    ),
    Exercise(
        "4a",
        "(Coursework) For features drawn uniformly on the circle (2-D), what fraction of samples has "
        "θ > π - m for m = 0.5? (A simulation is fine: it is checked within 0.01.)",
        "In 2-D the unsigned angle θ to a fixed weight is uniform on [0, π].",
        lambda ctx: f"In 2-D θ is uniform on [0, π]: a fraction m/π = {_share_past(0.5, 2):.4f}.",
        code="""
import math

share_2d = 0.5 / math.pi
""",
        var="share_2d",
        answer=Number("the fraction, between 0 and 1"),
        reference=lambda ctx: _share_past(0.5, 2),
        mistakes=(
            Mistake("Count both sides: θ is the unsigned angle in [0, π], so the band near π is reached "
                    "from either side of the opposite direction.", lambda ctx: 0.5 / (2 * math.pi)),
            Mistake("That is the share with θ < π - m.", lambda ctx: 1 - _share_past(0.5, 2)),
            Mistake("m = 0.5 is in radians, not degrees.", lambda ctx: 0.5 / 180),
        ),
        rtol=0.0, atol=0.01,
    ),
    Exercise(
        "4b",
        "How does that fraction change in 512 dimensions (features drawn uniformly on the sphere)? Give "
        "the fraction (a simulation is fine: it is checked within 1e-4).",
        "In high dimension the cosine between two random directions concentrates near 0 (its standard "
        "deviation is about 1/√d).",
        lambda ctx: (
            "In d dimensions the cosine of a random direction with a fixed one has density ∝ "
            "(1 - t^2)^((d-3)/2), so the share past π - m is ½ I_{sin² m}((d - 1)/2, ½) (regularised "
            f"incomplete beta): {_share_past(0.5, 512):.1e} for d = 512. Angles concentrate near 90°: "
            "unlike in 2-D, random features in a 512-D space never come near π - m, at initialisation "
            "either."),
        code="""
share_512 = 0.0   # 1e-160 or so: no sample of any realistic size has one
""",
        var="share_512",
        answer=Number("the fraction, between 0 and 1"),
        reference=lambda ctx: _share_past(0.5, 512),
        mistakes=(
            Mistake("That is the 2-D fraction: in 512 dimensions the angles between random directions "
                    "concentrate near 90°.", lambda ctx: _share_past(0.5, 2)),
        ),
        rtol=0.0, atol=1e-4,
        correct_note="What does that mean for the θ + m > π case at initialisation, in 2-D and in 512-D?",
        assignment="a simulation and a closed form that must agree, and a conclusion about high dimensions",
    ),
]

# --------------------------------------------------------------------------------------------
# Chapter 4: re-weighting versus margins
# --------------------------------------------------------------------------------------------
_SEP_4 = 2 * math.pi / 3


def _point(angle_deg, radius=3.0, degrees=True):
    a = math.radians(angle_deg) if degrees else angle_deg
    return np.array([[radius * math.cos(a), radius * math.sin(a)]])


def _level_row(class_weight=10.0, label=0, weighted=True, degrees=True):
    """The WCE row of chapter 4's table: a class-1 sample (label 0) at |z| = 3 and 0, 60, 90
    degrees from W_1, through the library's loss on the library's logits."""
    import keras

    from camri_utils import WeightedCrossEntropy
    from camri_utils import feature_plane as fp

    W = fp.class_weights_2d(3)
    if weighted:
        loss = WeightedCrossEntropy([class_weight, 1.0, 1.0])
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    row = []
    for a in (0, 60, 90):
        logits = fp.logits_on_plane(_point(a, degrees=degrees), W).astype("float32")
        row.append(float(keras.ops.convert_to_numpy(loss(np.array([label]), logits))))
    return row


def _floor_loss(scale=8.0, n_classes=3):
    from camri_utils import theory

    return float(-np.log(theory.max_probability(scale, n_classes)))


def _camri_boundaries(m):
    from camri_utils import CAMRILoss, theory

    loss = CAMRILoss(3, 0, m, 8.0)
    return [theory.decision_angle(loss, _SEP_4, target=0, other=1, tol=1e-10),
            theory.decision_angle(loss, _SEP_4, target=1, other=0, tol=1e-10)]


def _ce_boundary(norm2=2.0):
    """The angle from W_1 where class 1's and class 2's logits tie when |W_2| = norm2 (no bias):
    bisection on the library's logits between W_1 (0) and W_2 (120 degrees)."""
    from camri_utils import feature_plane as fp

    W = fp.class_weights_2d(3, norms=[1.0, norm2, 1.0])

    def gap(a):
        logits = fp.logits_on_plane(_point(a, 1.0, degrees=False), W)[0]
        return logits[0] - logits[1]

    lo, hi = 0.0, _SEP_4
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


_CH4 = [
    Exercise(
        "1",
        "Increase `class_weight` to 10 and rerun (papermill: `-p class_weight 10`). Which numbers of the "
        "table change, and which do not? Your answer: the WCE row's three losses (at 0°, 60° and 90°).",
        "WCE multiplies the cross-entropy of a class-1 sample by w; the boundary column is where the "
        "logits tie.",
        lambda ctx: (
            "Every loss value of WCE and CRWWCE grows (WCE's row is 10 times cross-entropy's: "
            + ", ".join(f"{v:.3f}" for v in _level_row()) + "); their boundary column stays at 60°, "
            "because for one sample with the weights W fixed the tie of the logits does not depend on the "
            "class weight. Training is another matter: weighting moves the boundary a model *learns* "
            "(samples near it count more): a shifted boundary, not a margin that trains features "
            "inside it."),
        code="""
import math
import numpy as np
from camri_utils import WeightedCrossEntropy
from camri_utils import feature_plane as fp

W = fp.class_weights_2d(3)
wce = WeightedCrossEntropy([10.0, 1.0, 1.0])
points = [[3 * math.cos(math.radians(a)), 3 * math.sin(math.radians(a))]
          for a in (0, 60, 90)]
logits = fp.logits_on_plane(np.array(points), W).astype("float32")
wce_row = np.array([float(wce(np.array([0]), logits[i:i + 1])) for i in range(3)])
""",
        var="wce_row",
        answer=Values("WCE's losses at 0°, 60° and 90°", (3,)),
        reference=lambda ctx: _level_row(),
        mistakes=(
            Mistake("That is the row for class_weight = 3 (the default): rerun with 10.",
                    lambda ctx: _level_row(3.0)),
            Mistake("That is plain cross-entropy: the weight multiplies the loss of a class-1 sample.",
                    lambda ctx: _level_row(weighted=False)),
            Mistake("Wrong class's loss: the sample is of class 1 (label 0).", lambda ctx: _level_row(label=1)),
            Mistake("The angles went into np.cos as radians: convert 60 and 90 degrees with np.radians.",
                    lambda ctx: _level_row(degrees=False)),
        ),
        rtol=1e-3,
        correct_note="Which column did not change, and why does a learned boundary move anyway?",
    ),
    Exercise(
        "2",
        "The table prints 0.000 for normalized softmax at 0°. Is it exactly zero? Compute the true value "
        "with the previous chapter's p_max (s = 8, three classes 120° apart).",
        "The three weights form a simplex, so the sample on W_1 reaches p_max(8, 3) exactly; the loss is "
        "-log p_max.",
        lambda ctx: (
            "No: the scale caps the probability. With s = 8 and three classes spread as a simplex, "
            "p_max = theory.max_probability(8, 3) < 1, so the loss is -log p_max = log(1 + 2e^{-12}) = "
            f"{_floor_loss():.2e}: positive, but below the table's three decimals."),
        code="""
import numpy as np
from camri_utils import theory

floor_loss = float(-np.log(theory.max_probability(8.0, 3)))
""",
        var="floor_loss",
        answer=Number("the loss at 0°"),
        reference=lambda ctx: _floor_loss(),
        mistakes=(
            Mistake("Not exactly zero: with a finite scale no probability reaches 1.", lambda ctx: 0.0),
            Mistake("That is p_max itself; the loss is -log p_max.",
                    lambda ctx: float(np.exp(-_floor_loss()))),
            Mistake("Wrong sign: a loss -log p is never negative.", lambda ctx: -_floor_loss()),
            Mistake("The chapter's normalized losses use s = 8 and three classes.",
                    lambda ctx: _floor_loss(scale=1.0)),
        ),
        rtol=0.05,
    ),
    Exercise(
        "3",
        "Write the boundary of CAMRI for a class-1 sample when class 1 is important with margin m, and "
        "for a class-2 sample. Write `boundaries(m)`: the two angles in radians, each measured from the "
        "sample's own class weight (weights 120° apart); check with `theory.decision_angle`.",
        "The margin sits on the target logit of the important class only. A class-2 sample's target "
        "logit has no margin; its other logits never have one.",
        "Class 1: π/3 - m/2 (the boundary moves by half the margin towards W_1). Class 2 (not "
        "important): π/3, since its logits are those of normalized softmax. With "
        "`camri = CAMRILoss(3, 0, m, s)`: `theory.decision_angle(camri, sep, target=0, other=1)` gives "
        "the former and `theory.decision_angle(camri, sep, target=1, other=0)` the latter.",
        code="""
import math

def boundaries(m):
    return (math.pi / 3 - m / 2, math.pi / 3)
""",
        var="boundaries",
        answer=Function("boundaries(m): two angles in radians", lambda ctx: [(m,) for m in (0.1, 0.3, 0.5, 0.8)],
                        shape=(2,)),
        reference=lambda ctx: _camri_boundaries,
        mistakes=(
            Mistake("Those are degrees; radians were asked (as the library's margins are).",
                    lambda ctx: lambda m: (60 - math.degrees(m) / 2, 60.0)),
            Mistake("The boundary moves by half the margin, not the whole margin: at the tie "
                    "θ + m = 2π/3 - θ.", lambda ctx: lambda m: (math.pi / 3 - m, math.pi / 3)),
            Mistake("Class 2 is not important: its samples see normalized softmax's logits, and a margin "
                    "only ever sits on a sample's own target logit.",
                    lambda ctx: lambda m: (math.pi / 3 - m / 2, math.pi / 3 - m / 2)),
            Mistake("A class-2 sample's boundary does not move at all: the important class's margin is "
                    "not on the logits a class-2 sample is compared with.",
                    lambda ctx: lambda m: (math.pi / 3 - m / 2, math.pi / 3 + m / 2)),
        ),
        rtol=1e-6, atol=1e-7,
        assignment="the chapter's central claim (CAMRI moves only the important class's boundary) as a "
                   "function checked against the library",
    ),
    Exercise(
        "4",
        "(Coursework) Give class 2 a weight vector of norm 2 (change `W`). What happens to the "
        "cross-entropy panels, and what to the normalized ones? Your answer: the angle from W_1, in "
        "radians, of the boundary between classes 1 and 2 under cross-entropy (no bias).",
        "The logits are |W_k| |z| cos θ_k: solve cos a = 2 cos(2π/3 - a).",
        lambda ctx: (
            "Cross-entropy: class 2's region grows at the others' expense. The 1|2 boundary solves "
            f"cos a = 2 cos(2π/3 - a), i.e. tan a = 2/√3: a = {_ce_boundary():.4f} rad "
            f"({math.degrees(_ce_boundary()):.1f}°) from W_1, instead of π/3. The normalized losses divide "
            "by the norms: nothing changes."),
        code="""
import math

ce_boundary = math.atan(2 / math.sqrt(3))
""",
        var="ce_boundary",
        answer=Number("the angle from W_1, in radians"),
        reference=lambda ctx: _ce_boundary(),
        mistakes=(
            Mistake("π/3 is where the normalized losses put it: they ignore norms, but cross-entropy's "
                    "logits include |W_2|.", lambda ctx: math.pi / 3),
            Mistake("That is in degrees; radians were asked.", lambda ctx: math.degrees(_ce_boundary())),
            Mistake("That angle is measured from W_2; the exercise measures from W_1.",
                    lambda ctx: _SEP_4 - _ce_boundary()),
        ),
        rtol=1e-4,
        assignment="a change to the chapter's figure plus one computed angle and an explanation",
    ),
]

# --------------------------------------------------------------------------------------------
# Chapter 5: CAMRI loss
# --------------------------------------------------------------------------------------------
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
]

# --------------------------------------------------------------------------------------------
# Chapter 6: CAMRI in two dimensions, on real digits (training outcomes: open)
# --------------------------------------------------------------------------------------------
_CH6 = [
    Exercise(
        "1",
        "Make another digit important (`-p important_class 8` with papermill). Is the effect the same for "
        "a digit that CE already recognises well?",
        "Look at CE's recall of the new digit first: how much is there to gain? Compare CAMRI with the "
        "control (normalized softmax), paired by seed.",
        "A digit with recall already near 1 under CE leaves little to gain; the margin then mostly widens "
        "the angle to its neighbours. The effect shows best on the digits CE confuses most. With about 45 "
        "test images per digit and five seeds, compare the per-seed differences, not the means alone.",
    ),
    Exercise(
        "2",
        "Double `camri_margin`. What happens to the accuracy, and why is the 2-D case sensitive to it?",
        "Read every seed's accuracy (one failed seed can drive a mean) and the angle from W_3 to its "
        "nearest class weight: do the learned weights stay where they were?",
        "In 2-D ten classes share 2π (36° each), and a margin of 0.6 rad (34°) is almost a whole share. "
        "The weights are learned too: under the larger margin they move apart around the important digit "
        "(its nearest-weight angle grows), so the margin is paid for by the neighbours' room, and accuracy "
        "can drop. Read the per-seed table before attributing a lower mean to the margin: one seed can "
        "drive it. In high dimensions classes have far more room.",
    ),
    Exercise(
        "3",
        "Give ArcFace the same margin as CAMRI. What happens to the other classes in the polar plot?",
        "Describe the polar plot first (where do the features of each digit sit relative to their "
        "weight?), then check every seed's accuracy with the margin and without.",
        "ArcFace's margin applies to every class, so every class's features are pushed inside its own "
        "region, and all weights compete for room on the circle. Whether a run trains depends on the seed "
        "as well as on the margin: a seed that fails at the smaller margin too (or with monotonic=True) "
        "says the failure is not the margin's. Show a failed run as failed and keep it out of the means, "
        "or give the means with and without it.",
    ),
    Exercise(
        "4",
        "(Coursework) Replace the 2-D feature layer by a 16-D one (`feature_dim=16` in the training cell's "
        "`TrainConfig`) and compare recall and accuracy. Which figures can you still draw?",
        "Everything computed from angles (angles.per_class_angle_stats, nearest_weight_angle) works in any "
        "dimension; only the polar plot needs 2-D.",
        "With 16 dimensions the ten class weights can form a simplex (chapter 2), so a sample on its weight "
        "can reach a far higher probability at the same scale and the pull can vanish as in chapter 5. "
        "Whether recall and accuracy improve is for the run to show (compare paired by seed). The polar "
        "plot needs 2-D features; the angle statistics, the variance bars and the nearest-weight angles "
        "work in any dimension (`angles.own_class_angles`, `angles.per_class_angle_stats`, "
        "`angles.nearest_weight_angles`).",
        assignment="an open experiment with a clear protocol (seeds, control, paired differences): grade "
                   "the method and the write-up",
    ),
]


def chapters():
    """Part I's chapters: (stem, title, exercises, objectives, the stems it depends on)."""
    return [
        ("01_softmax_geometry", "The softmax classifier, geometrically", _CH1,
         ("read a logit as |W_k| |z| cos θ_k + b_k", "see decision regions as cones moved by norms and biases",
          "see why cross-entropy can be lowered by growing the feature norm"), ()),
        ("02_normalized_softmax", "Normalized softmax", _CH2,
         ("remove norms from the logits", "derive the largest reachable probability p_max(s, C) and s_min",
          "choose a scale for a number of classes"), ("01_softmax_geometry",)),
        ("03_angular_margins", "Angular margins: SphereFace, CosFace, ArcFace", _CH3,
         ("write the margin family as one target logit", "compute where each margin moves the boundary",
          "recognise the θ + m > π case and its monotonic fallback"), ("02_normalized_softmax",)),
        ("04_reweighting_vs_margins", "Re-weighting does not separate", _CH4,
         ("contrast re-weighting (the level of the loss) with a margin (the boundary)",
          "draw every loss of the paper over a feature plane"), ("01_softmax_geometry", "02_normalized_softmax", "03_angular_margins")),
        ("05_camri_loss", "CAMRI loss", _CH5,
         ("write CAMRI as normalized softmax plus an important-class margin",
          "check an implementation against the paper's formula", "derive and check the gradient in the angle"),
         ("03_angular_margins", "04_reweighting_vs_margins")),
        ("06_camri_digits_2d", "CAMRI in two dimensions, on real digits", _CH6,
         ("train CE, the control, ArcFace and CAMRI over seeds", "measure recall, angle variance and room",
          "compare a margin with its control, paired by seed"), ("05_camri_loss",)),
    ]
