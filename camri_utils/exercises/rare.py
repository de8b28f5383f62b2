"""Chapter 9's exercises: a rare important class against the long-tail methods, checked on the
committed records of the rare-class protocol (``results_dir``) and, for what rarity costs, the
balanced run of the same training (``balanced_dir``): ``chapter(9, results_dir=...,
balanced_dir=...)``. The references follow the records a reader points them at.
"""

from __future__ import annotations

import math

import numpy as np

from camri_utils.exercises.core import AnswerError, Exercise, Mistake, Number, Values

DEFAULT_RESULTS = "results/fashion_mnist-rare"
DEFAULT_BALANCED = "results/fashion_mnist"
MAX_MARGIN = 0.5  # the LDAM authors' max_m, asked for in exercise 1


# --------------------------------------------------------------------------------------------
# Reading the records (cached per chapter object)
# --------------------------------------------------------------------------------------------
def _ce_runs(path):
    """The rare class (the spec's important class, or None for a balanced spec) and the CE
    records of the protocol folder at ``path`` (found as the chapter finds it), by seed."""
    from camri_utils import protocol, records

    try:
        folder = records.find(path)
        spec, kind = protocol.read_spec(folder)
        runs = protocol.load_records(folder)
    except (protocol.ProtocolError, FileNotFoundError) as exc:
        raise AnswerError(f"the protocol records cannot be read ({path}): {exc}") from None
    if kind is not None:
        runs, _ = protocol.current_records(spec, kind, runs)
    ce = {r["seed"]: r for r in runs if r["method"] == "CE" and "source_run" not in r}
    if not ce:
        raise AnswerError(f"the records in {path} have no CE runs yet: nothing to check against.")
    return spec.important_class, ce


def _rare(ctx):
    """(rare class, training class counts, rare CE runs by seed) of ``results_dir``."""
    def make():
        path = ctx.params.get("results_dir", DEFAULT_RESULTS)
        c, ce = _ce_runs(path)
        if c is None:
            raise AnswerError(f"{path} is not a rare-class run: its protocol.json fixes no important class "
                              "(run `camri protocol --profile rare`).")
        counts = next((r.get("train_class_counts") for r in ce.values() if r.get("train_class_counts")), None)
        if not counts:
            raise AnswerError(f"the CE records in {path} do not record their training class counts "
                              "(train_class_counts): they predate the rare-class setting.")
        return c, [float(n) for n in counts], ce
    return ctx.get("rare", make)


def _balanced(ctx):
    """The balanced CE runs of ``balanced_dir``, by seed."""
    return ctx.get("balanced", lambda: _ce_runs(ctx.params.get("balanced_dir", DEFAULT_BALANCED))[1])


def _paired_seeds(ctx):
    _, _, rare = _rare(ctx)
    seeds = sorted(set(rare) & set(_balanced(ctx)))
    if not seeds:
        raise AnswerError("the balanced and the rare CE runs share no seed: nothing to pair.")
    return seeds


def _lost(ctx, metric="recall", split="test", sign=1.0):
    """Mean over the shared seeds of balanced minus rare CE (``sign=-1``: rare minus balanced)."""
    c, _, rare = _rare(ctx)
    balanced = _balanced(ctx)

    def value(r):
        m = r if split == "test" else r.get("validation")
        if m is None:
            raise AnswerError(f"the CE run {r['run_id']} has no validation metrics.")
        return m["accuracy"] if metric == "accuracy" else m[metric][c]
    return sign * float(np.mean([value(balanced[s]) - value(rare[s]) for s in _paired_seeds(ctx)]))


# --------------------------------------------------------------------------------------------
# The references (each as a student would compute it) and the mistakes
# --------------------------------------------------------------------------------------------
def _margins(ctx, exponent=-0.25, normalise=True):
    _, counts, _ = _rare(ctx)
    m = np.asarray(counts, np.float64) ** exponent
    return m * (MAX_MARGIN / m.max()) if normalise else m


def _rare_only(ctx):
    c, counts, _ = _rare(ctx)
    m = np.zeros(len(counts))
    m[c] = MAX_MARGIN
    return m


def _bias(ctx, tau=1.0):
    from camri_utils import imbalance

    c, counts, _ = _rare(ctx)
    try:
        return imbalance.equivalent_bias(counts, c, tau)
    except ValueError as exc:
        raise AnswerError(f"this run's training counts have no single post-hoc bias: {exc}") from None


def _ratio(ctx):
    c, counts, _ = _rare(ctx)
    others = np.delete(np.asarray(counts), c)
    return float(others.max() / counts[c])


def _log_prior(ctx):
    c, counts, _ = _rare(ctx)
    return float(np.log(counts[c] / np.sum(counts)))


def _ch9():
    return [
        Exercise(
            "1",
            "With NumPy only, compute LDAM's per-class margins Δ_j = C n_j^(-1/4) for this run's training "
            "counts (`counts`) with max_m = 0.5 (C such that the largest margin is 0.5): an array of one "
            "margin per class, in class order. By what factor is the rare class's margin larger than the "
            "others'?",
            "Raise the counts to the power -1/4, then scale so that the largest value is 0.5. The rarest "
            "class has the smallest count, so its n^(-1/4) is the largest.",
            "`m = counts ** -0.25; margins = 0.5 * m / m.max()`. The rare class's margin is "
            "(n_other / n_rare)^(1/4) times the others' (10^(1/4) ≈ 1.78 for 500 against 5,000); "
            "`losses.ldam_margins(counts, 0.5)` gives the same.",
            code="""
import numpy as np

m = np.asarray(counts, float) ** -0.25
margins = 0.5 * m / m.max()
""",
            var="margins",
            answer=Values("one LDAM margin per class"),
            reference=lambda ctx: _margins(ctx),
            mistakes=(
                Mistake("Those margins fall as n^(-1/2); LDAM's fall as n^(-1/4) (the fourth root).",
                        lambda ctx: _margins(ctx, exponent=-0.5)),
                Mistake("Those are n^(-1/4) without the constant C: scale them so that the largest is max_m = 0.5.",
                        lambda ctx: _margins(ctx, normalise=False)),
                Mistake("That puts the largest margin on the most frequent classes: LDAM's margin grows as a "
                        "class gets rarer (the exponent is negative).", lambda ctx: _margins(ctx, exponent=0.25)),
                Mistake("That is CAMRI's pattern (a margin on the rare class only); LDAM gives every class a "
                        "margin, the largest to the rarest.", _rare_only),
            ),
            rtol=1e-9, atol=1e-12,
            correct_note="Compare the factor with the one CAMRI applies: a margin on one class only.",
            assignment="a closed form from the records' counts; the factor and its meaning are the graded part",
        ),
        Exercise(
            "2",
            "Post-hoc logit adjustment with τ = 1 predicts argmax_j z_j - log π_j. With one rare class among "
            "equally frequent ones it amounts to adding one bias to the rare class's logit. Compute that bias "
            "from `counts`. Why is it not a point of the *normalized-softmax* curve as well?",
            "Subtracting log π_j from every logit shifts all the equally frequent classes by the same "
            "constant, which no argmax sees; what is left is the difference between the rare class's shift "
            "and the others'.",
            "b = τ log(n_other / n_rare) = log 10 ≈ 2.3026 here (`imbalance.equivalent_bias(counts, 6, 1.0)`). "
            "The adjustment shifts *logits*: CE's logits are the scores its threshold curve moves, while "
            "normalized softmax's logits are s cos θ_j, so the same bias is a different point of its curve "
            "(log 10 / s in cosine units).",
            code="""
import numpy as np

rare = int(np.argmin(counts))
bias = np.log(np.max(np.delete(counts, rare)) / counts[rare])
""",
            var="bias",
            answer=Number("the bias on the rare class's logit"),
            reference=lambda ctx: _bias(ctx),
            mistakes=(
                Mistake("That is the base-10 logarithm; logits are natural logarithms of odds (use np.log).",
                        lambda ctx: math.log10(_ratio(ctx))),
                Mistake("Wrong sign: adjustment *raises* the rare class's logit relative to the others.",
                        lambda ctx: -_bias(ctx)),
                Mistake("That is the ratio of the counts; the bias is its logarithm.", _ratio),
                Mistake("That is the rare class's own log prior; the others' shift cancels only part of it: "
                        "subtract theirs.", lambda ctx: -_log_prior(ctx)),
                Mistake("That is the rare class's own log prior (with its sign); take the difference with the "
                        "others' log prior.", _log_prior),
            ),
            rtol=1e-9, atol=1e-12,
            assignment="a derivation with a number to check (the post-hoc adjustment as a threshold)",
        ),
        Exercise(
            "3",
            "How much test recall of the rare class does CE lose to rarity? Pair each balanced CE run "
            "(`balanced_ce`, chapter 7's run) with the rare CE run of the same seed (`rare_ce`), and give the "
            "mean over the shared seeds of the balanced recall minus the rare recall (a positive number).",
            "Both are dicts by seed; a record's `recall` is the list of per-class *test* recalls (the "
            "validation ones are under `validation`). Use the rare class `c`.",
            "Pair by seed and average: "
            "`np.mean([balanced_ce[s][\"recall\"][c] - rare_ce[s][\"recall\"][c] for s in seeds])`. The "
            "chapter's `lost` table holds both columns per seed.",
            code="""
import numpy as np

seeds = sorted(set(balanced_ce) & set(rare_ce))
recall_lost = np.mean([balanced_ce[s]["recall"][c] - rare_ce[s]["recall"][c] for s in seeds])
""",
            var="recall_lost",
            answer=Number("the mean recall lost to rarity"),
            reference=lambda ctx: _lost(ctx),
            mistakes=(
                Mistake("Wrong sign: the question asks for balanced minus rare (what is lost, a positive number).",
                        lambda ctx: _lost(ctx, sign=-1.0)),
                Mistake("That is the accuracy lost; the question asks for the rare class's recall.",
                        lambda ctx: _lost(ctx, "accuracy")),
                Mistake("That is the validation recall; the question asks for the test recall (`recall`).",
                        lambda ctx: _lost(ctx, split="validation")),
                Mistake("That is the precision; the question asks for the recall.",
                        lambda ctx: _lost(ctx, "precision")),
            ),
            rtol=1e-9, atol=1e-12,
            assignment="reads two committed runs and pairs them by seed",
        ),
        Exercise(
            "4",
            "The rule chose CE's threshold bias on validation. Why can that bias differ from log 10, the bias "
            "of post-hoc adjustment at τ = 1, and which would you trust on a new rare class without a balanced "
            "validation split?",
            "What does τ = 1 optimise, and for which kind of model? What does the book's rule optimise?",
            "Menon et al.'s τ = 1 is optimal for the balanced error of a calibrated model; a network trained "
            "to near-zero training loss is not calibrated, and the book's rule maximises the rare class's "
            "recall under an accuracy floor, not the balanced error. Without a balanced validation split, "
            "τ log(n_other / n_rare) is the choice that needs no data; with one, a bias chosen on it is the "
            "better-founded choice.",
        ),
        Exercise(
            "5",
            "(Coursework) Design the 100:1 version of this chapter (50 images of the rare class): which fields "
            "of the rare preset change (`camri_utils/protocol/spec.py`), how many runs it needs, and which of "
            "the chapter's comparisons you would expect to change, and why.",
            "Start from `_rare` in spec.py: what depends on the fraction, and what on the counts?",
            "`rare_class`'s fraction becomes 0.01; the WCE weights should include the new inverse frequency "
            "(100); the LDAM margins, DRW weights and post-hoc biases follow from the counts by themselves. "
            "The grids are unchanged, so the run count stays 105. With 50 images one can expect the balanced "
            "model to lie further above the rare CE curve, which would leave a training-time method more room "
            "to beat post-hoc adjustment, if it can: the run would tell.",
            assignment="a design question: grade the reasoning about what changes",
        ),
    ]


def chapters():
    return [
        ("09_rare_class_fashion_mnist", "When the important class is rare: CAMRI against the long-tail methods",
         _ch9(),
         ("derive LDAM, DRW, the logit-adjusted loss and post-hoc adjustment from the book's margin and "
          "re-weighting pieces",
          "see post-hoc logit adjustment as threshold moving, and measure what a rare class loses",
          "compare every method with CE's exact threshold curve and the margin methods with their control"),
         ("07_protocol_fashion_mnist", "08_angles_fashion_mnist")),
    ]
