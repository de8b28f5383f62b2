"""Chapter 1's exercises (the softmax classifier, geometrically): the declarations; checking is
:mod:`camri_utils.exercises.core`'s. Angles are in radians wherever an answer is a number."""

from __future__ import annotations

import math

import numpy as np

from camri_utils.exercises.core import Exercise, Function, Mistake, Number, Values


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


def _softmax(logits):
    e = np.exp(np.asarray(logits, float) - np.max(logits))
    return e / e.sum()


def _ce_gradient(logits, t, sign=1.0, subtract=True, normalise=True):
    """d(-log p_t)/d logits = p - y (float64): ``sign``, ``subtract`` and ``normalise`` make the
    mistakes (y - p; p alone; the logits in place of p)."""
    p = _softmax(logits) if normalise else np.asarray(logits, float)
    y = np.eye(len(p))[t] if subtract else 0.0
    return sign * (p - y)


def _gradient_inputs(context):
    rng = np.random.default_rng(11)
    rows = [(rng.normal(0, 2, size=4), int(rng.integers(4))) for _ in range(5)]
    rows.append((np.array([40.0, 0.0, -40.0, 5.0]), 0))  # large logits: p_t is 1 to float precision
    return rows


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
    Exercise(
        "5",
        "Write `ce_gradient(logits, t)`: the gradient of the cross-entropy -log p_t with respect to the "
        "logits (a vector of C logits, t the index of the true class), as an array of C numbers.",
        "Write -log p_t = -logit_t + log Σ_j exp(logit_j) and differentiate each term in logit_k.",
        "∂(-log p_t)/∂logit_k = -[k = t] + exp(logit_k)/Σ_j exp(logit_j) = p_k - y_k, with y the one-hot "
        "label: the softmax minus the label. Subtract the largest logit before exponentiating: the "
        "probabilities do not change and exp cannot overflow.",
        code="""
import numpy as np

def ce_gradient(logits, t):
    p = np.exp(logits - np.max(logits))
    p = p / p.sum()
    y = np.zeros(len(p))
    y[t] = 1.0
    return p - y
""",
        var="ce_gradient",
        answer=Function("ce_gradient(logits, t), an array of C numbers", _gradient_inputs, shape=(None,)),
        reference=lambda ctx: _ce_gradient,
        mistakes=(
            Mistake("Wrong sign: that is y - p, the direction that lowers the loss (minus the gradient).",
                    lambda ctx: lambda logits, t: _ce_gradient(logits, t, sign=-1.0)),
            Mistake("That is the softmax p alone: the derivative of -logit_t, the label's -1 at index t, is "
                    "missing.", lambda ctx: lambda logits, t: _ce_gradient(logits, t, subtract=False)),
            Mistake("The logits minus the label: the logits must go through the softmax first.",
                    lambda ctx: lambda logits, t: _ce_gradient(logits, t, normalise=False)),
        ),
        rtol=1e-6, atol=1e-9,
        correct_note="Now read it as geometry: -W(p - y) pulls z towards W_t and away from the others.",
        assignment="a derivation checked as a function on logits the student does not see (large ones "
                   "included): it cannot be copied from one printed number",
    ),
]


def chapters():
    """(stem, title, exercises, objectives, the stems it depends on)."""
    return [("01_softmax_geometry", "The softmax classifier, geometrically", _CH1,
        ("read a logit as |W_k| |z| cos θ_k + b_k", "see decision regions as cones moved by norms and biases",
         "see why cross-entropy can be lowered by growing the feature norm"), ())]
