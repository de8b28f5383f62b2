"""Chapter 3's exercises (angular margins): the declarations; checking is
:mod:`camri_utils.exercises.core`'s. Angles are in radians wherever an answer is a number."""

from __future__ import annotations

import math

import numpy as np

from camri_utils.exercises.core import AnswerError, Custom, Exercise, Function, Mistake, Number


def _loss(name, *args):
    import camri_utils

    return getattr(camri_utils, name)(*args)



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
        "Class 1's boundary is at (π/2 - m)/2 from W_1 (m and the angles in radians), class 2's at the "
        "same distance from W_2. How wide "
        "is the band between them? `theory.decision_angle(ArcFaceLoss(m, 1.0), math.pi / 2)` gives "
        "class 1's boundary.",
        lambda ctx: (
            "In radians: class 1's boundary lies at (π/2 - m)/2 from W_1, class 2's at π/4 + m/2 from W_1 "
            "(its mirror image): they coincide only at m = 0, and between them lies a band m wide that "
            "neither class wins. The band covers the whole π/2 (90°) when m = π/2 (the library's decision "
            "angle reaches 0 at "
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


def chapters():
    """(stem, title, exercises, objectives, the stems it depends on)."""
    return [("03_angular_margins", "Angular margins: SphereFace, CosFace, ArcFace", _CH3,
        ("write the margin family as one target logit", "compute where each margin moves the boundary",
         "recognise the θ + m > π case and its monotonic fallback"), ("02_normalized_softmax",))]
