"""Chapter 7's exercises (the paper's protocol on Fashion-MNIST): questions about the committed
protocol records, whose references follow the records (:mod:`camri_utils.exercises.protocol_records`)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from camri_utils.exercises import protocol_records as pr
from camri_utils.exercises.core import AnswerError, Custom, Exercise, Mistake, Number


def _chosen_missing(ctx, k):
    """The (method, role) cells without a setting ('-') when the chapter is summarised with
    ``accuracy_k = k`` (exactly what re-running the chapter with that parameter shows)."""
    from camri_utils import protocol

    def make():
        if k == pr.protocol_summary(ctx).spec.accuracy_k:
            s = pr.protocol_summary(ctx)
        else:
            s = pr.readable(lambda: protocol.summarize(pr.results_folder(ctx), accuracy_k=k), f"accuracy_k = {k:g}")
        return sorted(key for key, best in s.selection.chosen.items() if best is None)
    return ctx.get(("missing", k), make)


def _cells(ctx):
    return sorted(pr.protocol_summary(ctx).selection.chosen)


def _read_pairs(answer, ctx):
    """A collection of (method, role) pairs as a 0/1 vector over the table's cells."""
    cells = _cells(ctx)
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__iter__"):
        raise AnswerError(f"your answer must be a collection of (method, role) pairs; got {type(answer).__name__}.")
    pairs = list(answer.keys() if isinstance(answer, dict) else answer)
    methods = sorted({m for m, _ in cells})
    roles = sorted({r for _, r in cells}, key=list(pr.protocol_summary(ctx).selection.important).index)
    vector = np.zeros(len(cells))
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise AnswerError(f"each entry must be a (method, role) pair such as ('CAMRI', 'worst1'); got {pair!r}.")
        if pair not in cells:
            raise AnswerError(f"{pair!r} is not a cell of the table: methods are {', '.join(methods)}; roles are "
                              f"{', '.join(roles)}.")
        vector[cells.index(pair)] = 1.0
    return vector


def _mean_recall(ctx, column="recall", how="mean"):
    frame = pr.records_frame(ctx)
    return frame[frame.method != "CE"].groupby(["method", "role"])[column].agg(how)


def _bootstrap_multisets(n):
    return len(set(itertools.combinations_with_replacement(range(n), n)))


def _ch7():
    return [
        Exercise(
            "1",
            "Re-run this chapter with `accuracy_k = 0` (a setting must match CE's mean validation accuracy) "
            "and with `accuracy_k = 3`. Which chosen settings change? Which (method, role) cells have no setting "
            "('-') at `accuracy_k = 0`? Your answer: a collection of (method, role) pairs, such as "
            "`{('CAMRI', 'median')}`.",
            "`protocol.summarize(folder, accuracy_k=0)`; its `selection.chosen[(method, role)]` is None where "
            "no setting keeps accuracy.",
            lambda ctx: (
                "`protocol.summarize(folder, accuracy_k=0)` raises the threshold to the CE mean: settings that "
                "trade a little accuracy for recall drop out. Cells without a setting at accuracy_k = 0: "
                + (", ".join(f"{m} {r}" for m, r in _chosen_missing(ctx, 0.0)) or "none")
                + "; at the default: " + (", ".join(f"{m} {r}" for m, r in _chosen_missing(ctx, pr.protocol_summary(ctx).spec.accuracy_k)) or "none")
                + "; at accuracy_k = 3: " + (", ".join(f"{m} {r}" for m, r in _chosen_missing(ctx, 3.0)) or "none")
                + ". With accuracy_k = 3 more settings pass and the largest margin, weight or bias that still "
                "passes usually wins."),
            code="""
from camri_utils import protocol

strict = protocol.summarize(folder, accuracy_k=0)
lost_at_0 = {cell for cell, best in strict.selection.chosen.items() if best is None}
""",
            var="lost_at_0",
            answer=Custom("a collection of (method, role) pairs", _read_pairs),
            reference=lambda ctx: _chosen_missing(ctx, 0.0),
            mistakes=(
                Mistake("Those are the '-' cells of the default rule (accuracy_k = 1); re-run with accuracy_k = 0.",
                        lambda ctx: _chosen_missing(ctx, pr.protocol_summary(ctx).spec.accuracy_k)),
                Mistake("Those are the '-' cells at accuracy_k = 3; the question asks for accuracy_k = 0.",
                        lambda ctx: _chosen_missing(ctx, 3.0)),
            ),
            rtol=0.0, atol=0.0,
            correct_note="Now compare the chosen settings at accuracy_k = 3 with the default's.",
            assignment="a re-run with a changed parameter whose outcome is checked; the explanation of "
                       "which cells change is the graded part",
        ),
        Exercise(
            "2",
            "From `frame`, compute for each method and role the mean test recall of the important class over "
            "*all* its settings, not just the chosen one (CE left out). Which method is least sensitive to its parameter? Your answer: a "
            "Series indexed by (method, role).",
            "`frame` has one row per run and role; filter out CE, group by method and role, average `recall` "
            "(the test recall; `sel_recall` is validation).",
            lambda ctx: (
                "`frame[frame.method != \"CE\"].groupby([\"method\", \"role\"]).recall.mean()`. For the "
                "sensitivity, compare the spread across settings per method: the standard deviation of the "
                "per-setting means, averaged over roles, is "
                + ", ".join(f"{m} {v:.3f}" for m, v in pr.recall_spread(ctx).items())
                + " (least sensitive first)."),
            code="""
mean_recall = frame[frame.method != "CE"].groupby(["method", "role"]).recall.mean()
""",
            var="mean_recall",
            answer=Custom("a Series indexed by (method, role)",
                          lambda a, ctx: pr.read_series(a, list(_mean_recall(ctx).index), "the mean test recall",
                                                      "(method, role), CE left out")),
            reference=lambda ctx: _mean_recall(ctx),
            mistakes=(
                Mistake("That is the validation recall (sel_recall); the exercise asks for the test recall.",
                        lambda ctx: _mean_recall(ctx, "sel_recall")),
                Mistake("That is the median over settings and seeds; the exercise asks for the mean.",
                        lambda ctx: _mean_recall(ctx, how="median")),
            ),
            rtol=1e-9, atol=1e-12,
        ),
        Exercise(
            "3",
            "This book uses paired Student-t intervals over seeds. A percentile bootstrap would resample the "
            "seeds instead: with 5 seeds, how many distinct resamples (as multisets: which seeds, how many "
            "times each) are there? Why does that limit how narrow (or how honest) its interval can be?",
            "The mean of a resample depends only on how many times each seed is drawn: count multisets of "
            "size 5 from 5 seeds (stars and bars).",
            lambda ctx: (
                f"C(2n - 1, n) = C(9, 5) = {math.comb(9, 5)} multisets for n = 5 (enumerated: "
                f"{_bootstrap_multisets(5)}). The interval's ends are means of such resamples, so with few seeds "
                "it is coarse, and narrower than a Student-t interval, which accounts for estimating the spread "
                "from 5 values; more seeds are the only cure."),
            code="""
import math

n_resamples = math.comb(9, 5)
""",
            var="n_resamples",
            answer=Number("the number of distinct resamples"),
            reference=lambda ctx: _bootstrap_multisets(5),
            mistakes=(
                Mistake("5^5 counts ordered draws; the mean depends only on how many times each seed is drawn.",
                        lambda ctx: 5 ** 5),
                Mistake("The bootstrap draws with replacement: subsets are not enough.", lambda ctx: 2 ** 5),
                Mistake("Stars and bars for 5 draws from 5 seeds gives C(5 + 5 - 1, 5), not C(10, 5).",
                        lambda ctx: math.comb(10, 5)),
                Mistake("5! counts orderings of the five seeds, each drawn once.", lambda ctx: math.factorial(5)),
            ),
            rtol=0.0, atol=0.0,
            assignment="a counting argument with a definite answer and a statistical consequence to explain",
        ),
        Exercise(
            "4",
            "Table 7.1's oracle column compares each setting with the best point of CE's *test* curve at the same "
            "test recall. Whom does choosing that bias on the test images flatter, and why is the out-of-sample "
            "column not a choice made on test data?",
            "On which images is the oracle's bias chosen, and on which is it scored?",
            "The oracle picks, for each setting, CE's bias on the test images: the best of thousands of biases on "
            "the very images it is scored on, so its noise is on CE's side and it flatters the reference (here by "
            "a median 0.05 points). The out-of-sample column picks CE's bias on the validation split, from the "
            "setting's validation recall, and only then scores both on test: nothing in it is chosen by looking "
            "at the test numbers.",
        ),
        Exercise(
            "5",
            "(Coursework) Run `camri protocol --dataset fashion_mnist --profile quick --output my-run`, then this "
            "chapter with `results_dir = \"my-run\"`. Why must the quick profile's table not be quoted as a result?",
            "Look at the quick preset: how many images, epochs and seeds?",
            "The quick profile trains on a few hundred images for one epoch with one seed: the models are far "
            "from trained and one seed gives no spread, so its table only shows that the code runs.",
            assignment="runs the whole pipeline end to end (minutes on a CPU); grade the explanation",
        ),
    ]


def chapters():
    """(stem, title, exercises, objectives, the stems it depends on)."""
    return [
        ("07_protocol_fashion_mnist", "The paper's experiment, run for real on Fashion-MNIST", _ch7(),
         ("run the paper's protocol: ranking, sweep, selection on validation data, report",
          "judge a recall gain against the seed-to-seed spread and the threshold-moving curve"),
         ("02_normalized_softmax", "03_angular_margins", "04_reweighting_vs_margins", "05_camri_loss",
          "06_camri_digits_2d")),
    ]
