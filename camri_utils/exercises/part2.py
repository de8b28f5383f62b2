"""Part II's exercises (chapters 7 and 8): questions about the committed protocol records.

The references are computed from the records the chapter reads (its ``results_dir``
parameter: ``chapter(7, results_dir=results_dir)``), so they follow the records: a reader who
ran the protocol on other data checks against that run.
"""

from __future__ import annotations

import itertools
import math
from numbers import Real

import numpy as np

from camri_utils.exercises.core import AnswerError, Custom, Exercise, Mistake, Number

DEFAULT_RESULTS = "results/fashion_mnist"
UPPER_BODY = (0, 2, 4, 6)  # Fashion-MNIST's T-shirt/top, Pullover, Coat, Shirt


# --------------------------------------------------------------------------------------------
# Reading the records (cached per chapter object)
# --------------------------------------------------------------------------------------------
def _readable(make, what):
    """``make()``, with a problem of the records (missing, stale, without stored scores) said as
    an AnswerError: checking cannot go on, and the message says why."""
    from camri_utils import protocol

    try:
        return make()
    except (protocol.ProtocolError, FileNotFoundError) as exc:
        raise AnswerError(f"the protocol records cannot be read ({what}): {exc}") from None


def _folder(ctx):
    from camri_utils import records

    path = ctx.params.get("results_dir", DEFAULT_RESULTS)
    # Where the chapter finds it (records.find: beside the library, or fetched at its commit).
    return ctx.get("folder", lambda: _readable(lambda: records.find(path), path))


def _summary(ctx):
    from camri_utils import protocol

    return ctx.get("summary", lambda: _readable(lambda: protocol.summarize(_folder(ctx)), str(_folder(ctx))))


def _chosen_missing(ctx, k):
    """The (method, role) cells without a setting ('-') when the chapter is summarised with
    ``accuracy_k = k`` (exactly what re-running the chapter with that parameter shows)."""
    from camri_utils import protocol

    def make():
        if k == _summary(ctx).spec.accuracy_k:
            s = _summary(ctx)
        else:
            s = _readable(lambda: protocol.summarize(_folder(ctx), accuracy_k=k), f"accuracy_k = {k:g}")
        return sorted(key for key, best in s.selection.chosen.items() if best is None)
    return ctx.get(("missing", k), make)


def _cells(ctx):
    return sorted(_summary(ctx).selection.chosen)


def _frame(ctx):
    from camri_utils import protocol

    return ctx.get("frame", lambda: protocol.records_frame(_summary(ctx).records))


def _read_pairs(answer, ctx):
    """A collection of (method, role) pairs as a 0/1 vector over the table's cells."""
    cells = _cells(ctx)
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__iter__"):
        raise AnswerError(f"your answer must be a collection of (method, role) pairs; got {type(answer).__name__}.")
    pairs = list(answer.keys() if isinstance(answer, dict) else answer)
    methods = sorted({m for m, _ in cells})
    roles = sorted({r for _, r in cells}, key=list(_summary(ctx).selection.important).index)
    vector = np.zeros(len(cells))
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise AnswerError(f"each entry must be a (method, role) pair such as ('CAMRI', 'worst1'); got {pair!r}.")
        if pair not in cells:
            raise AnswerError(f"{pair!r} is not a cell of the table: methods are {', '.join(methods)}; roles are "
                              f"{', '.join(roles)}.")
        vector[cells.index(pair)] = 1.0
    return vector


def _read_series(answer, keys, what, key_names):
    """A pandas Series or a dict keyed by ``keys`` (tuples or numbers), as an array in ``keys``'
    order. Float parts of the keys (margins) are matched within 1e-9."""
    import pandas as pd

    if isinstance(answer, pd.DataFrame):
        raise AnswerError(f"your answer is a DataFrame; select one column to get a Series ({what}).")
    if isinstance(answer, pd.Series):
        items = list(answer.items())
    elif isinstance(answer, dict):
        items = list(answer.items())
    else:
        raise AnswerError(f"your answer must be a pandas Series or a dict indexed by {key_names} ({what}); "
                          f"got {type(answer).__name__}.")

    def same(a, b):
        a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
        if len(a) != len(b):
            return False
        return all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) if isinstance(x, Real) and isinstance(y, Real)
                   and not isinstance(x, (bool, str)) else x == y for x, y in zip(a, b))

    values = [None] * len(keys)
    unexpected = []
    for key, value in items:
        match = [i for i, k in enumerate(keys) if same(key, k)]
        if not match:
            unexpected.append(key)
            continue
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.number)):
            raise AnswerError(f"the value for {key!r} must be a number; got {value!r}.")
        values[match[0]] = float(value)
    if unexpected:
        hint = ""
        margins = [k[-1] if isinstance(k, tuple) else k for k in keys]
        given = [k[-1] if isinstance(k, tuple) else k for k in unexpected]
        if all(isinstance(g, Real) for g in given) and any(
                any(math.isclose(g * math.pi / 64, m, rel_tol=1e-9) for m in margins) for g in given):
            hint = " Your margins look like multiples of π/64: index by the margin in radians, as the records store it."
        raise AnswerError(f"unexpected entries {', '.join(repr(k) for k in unexpected[:4])}: the index must be "
                          f"{key_names}.{hint}")
    missing = [keys[i] for i, v in enumerate(values) if v is None]
    if missing:
        raise AnswerError(f"missing entries {', '.join(repr(k) for k in missing[:4])}"
                          f"{' and more' if len(missing) > 4 else ''} ({what}).")
    array = np.array(values)
    if np.isnan(array).any():
        raise AnswerError(f"your answer contains NaN (for {keys[int(np.flatnonzero(np.isnan(array))[0])]!r}).")
    return array


def _mean_recall(ctx, column="recall", how="mean"):
    frame = _frame(ctx)
    return frame[frame.method != "CE"].groupby(["method", "role"])[column].agg(how)


def _bootstrap_multisets(n):
    return len(set(itertools.combinations_with_replacement(range(n), n)))


# --------------------------------------------------------------------------------------------
# Chapter 8: the records with cosines (CAMRI and the control), without the threshold records
# --------------------------------------------------------------------------------------------
def _geometry_runs(ctx):
    """(important classes by role, CAMRI records, NormSoftmax records, scale) of the protocol."""
    from camri_utils import protocol

    def make():
        folder = _folder(ctx)
        spec, kind = protocol.read_spec(folder)
        records = protocol.load_records(folder)
        if kind is not None:
            records, _ = protocol.current_records(spec, kind, records)
        ce = [r for r in records if r["method"] == "CE"]
        if not ce:
            raise AnswerError(f"the records in {folder} have no CE runs yet: nothing to check against.")
        important = protocol.rank_classes(ce)[1]
        scales = [p["scale"] for p in spec.camri_grid]
        scale = float(ctx.params.get("scale", scales[0] if scales else 16.0))
        camri = [r for r in records if r["method"] == "CAMRI" and r["params"].get("scale") == scale]
        control = [r for r in records if r["method"] == "NormSoftmax" and r["params"].get("scale") == scale]
        return important, camri, control, scale
    return ctx.get("geometry_runs", lambda: _readable(make, str(_folder(ctx))))


def _stored(ctx, record):
    from camri_utils import protocol

    return ctx.get(("stored", record["run_id"]),
                   lambda: _readable(lambda: protocol.load_scores(_folder(ctx), record), "stored scores"))


def _stats(ctx, record):
    from camri_utils import angles

    def make():
        s = _stored(ctx, record)
        return angles.cosine_angle_stats(s["test"], s["y_test"])
    return ctx.get(("stats", record["run_id"]), make)


def _relative(ctx, record, c, column="mean"):
    from camri_utils import angles

    stats = _stats(ctx, record)
    rel = angles.relative_mean if column == "mean" else angles.relative_variance
    return float(rel(stats, c).iloc[0])


def _camri_margins(ctx, role):
    important, camri, _, _ = _geometry_runs(ctx)
    return sorted({r["params"]["margin"] for r in camri if r["important_class"] == important[role]})


def _relative_by_margin(ctx, column="mean"):
    important, camri, _, _ = _geometry_runs(ctx)
    out = {}
    for role, c in important.items():
        for m in _camri_margins(ctx, role):
            runs = [r for r in camri if r["important_class"] == c and r["params"]["margin"] == m]
            out[(role, m)] = float(np.mean([_relative(ctx, r, c, column) for r in runs]))
    return out


def _room_keys(ctx):
    return [0.0] + _camri_margins(ctx, "worst1")


def _room(ctx, neighbours=None, degrees=True):
    """The room of worst1's weight against ``neighbours`` (default: the other upper-body
    garments), mean over seeds, for the control (margin 0) and each CAMRI margin."""
    from camri_utils import angles

    important, camri, control, _ = _geometry_runs(ctx)
    c = important["worst1"]
    near = [k for k in (UPPER_BODY if neighbours is None else neighbours) if k != c]

    def room(r):
        theta = angles.weight_angles(_stored(ctx, r)["class_weights"], degrees=degrees)
        return float(theta[c, near].min())

    out = {0.0: float(np.mean([room(r) for r in control]))}
    for m in _camri_margins(ctx, "worst1"):
        out[m] = float(np.mean([room(r) for r in camri if r["important_class"] == c and r["params"]["margin"] == m]))
    return out


def _room_all(ctx):
    from camri_utils import angles

    important, camri, control, _ = _geometry_runs(ctx)
    c = important["worst1"]

    def room(r):
        return angles.nearest_weight_angle(_stored(ctx, r)["class_weights"], c)[0]

    out = {0.0: float(np.mean([room(r) for r in control]))}
    for m in _camri_margins(ctx, "worst1"):
        out[m] = float(np.mean([room(r) for r in camri if r["important_class"] == c and r["params"]["margin"] == m]))
    return out


def _moved(ctx, column="mean", subtract=True, sign=1.0):
    """Every class's relative mean under CAMRI's largest margin on worst1, minus the control's."""
    important, camri, control, _ = _geometry_runs(ctx)
    c = important["worst1"]
    largest = max(_camri_margins(ctx, "worst1"))
    runs = [r for r in camri if r["important_class"] == c and r["params"]["margin"] == largest]
    n = len(_stats(ctx, runs[0]))
    mine = np.array([np.mean([_relative(ctx, r, k, column) for r in runs]) for k in range(n)])
    base = np.array([np.mean([_relative(ctx, r, k, column) for r in control]) for k in range(n)])
    return sign * (mine - base) if subtract else mine


def _no_geometry(ctx):
    important, camri, control, scale = _geometry_runs(ctx)
    if not control or not any(r["important_class"] == important["worst1"] for r in camri):
        raise AnswerError(f"the records have no CAMRI runs for worst1 or no normalized-softmax control at "
                          f"s = {scale:g}: nothing to check against.")


def _read_relative(answer, ctx):
    _no_geometry(ctx)
    keys = list(_relative_by_margin(ctx))
    return _read_series(answer, keys, "CAMRI's mean relative mean over seeds", "(role, margin)")


def _read_room(answer, ctx):
    _no_geometry(ctx)
    return _read_series(answer, _room_keys(ctx), "the mean room over seeds, in degrees",
                        "the margin in radians (0.0 for normalized softmax)")


def _read_moved(answer, ctx):
    _no_geometry(ctx)
    n = len(_moved(ctx))
    from camri_utils.exercises.core import _as_array

    return _as_array(answer, f"Your answer (one value per class, {n} classes)", (n,))


def _top_moved(ctx, threshold=0.1):
    important, *_ = _geometry_runs(ctx)
    moved = _moved(ctx)
    return [k for k in np.argsort(-np.abs(moved)) if abs(moved[k]) > threshold and k != important["worst1"]]


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
                + "; at the default: " + (", ".join(f"{m} {r}" for m, r in _chosen_missing(ctx, _summary(ctx).spec.accuracy_k)) or "none")
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
                        lambda ctx: _chosen_missing(ctx, _summary(ctx).spec.accuracy_k)),
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
                + ", ".join(f"{m} {v:.3f}" for m, v in _spread(ctx).items())
                + " (least sensitive first)."),
            code="""
mean_recall = frame[frame.method != "CE"].groupby(["method", "role"]).recall.mean()
""",
            var="mean_recall",
            answer=Custom("a Series indexed by (method, role)",
                          lambda a, ctx: _read_series(a, list(_mean_recall(ctx).index), "the mean test recall",
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
            "Table 7.1 compares each setting with a threshold curve at the same *test* accuracy. Why is that not "
            "a choice made on test data, and what would be?",
            "What is selected by the comparison? Nothing is picked by looking at the test numbers.",
            "Nothing is selected by it: every setting is shown, and the threshold curve is matched to the "
            "setting's accuracy after the fact, as a description. A choice made on test data would be picking "
            "the bias (or the margin) whose *test* recall is best and reporting that recall.",
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


def _spread(ctx):
    frame = _frame(ctx)
    rows = frame[frame.method != "CE"]
    per_setting = rows.groupby(["method", "role", "setting"]).recall.mean()
    spread = per_setting.groupby(["method", "role"]).std(ddof=1).groupby("method").mean().dropna()
    return spread.sort_values()


def _ch8():
    return [
        Exercise(
            "1",
            "Compute CAMRI's relative mean (Table 8.1) for each important class and margin, the mean over "
            "seeds, and plot it against m. Is the effect of the margin on the mean angle proportional to m? "
            "Your answer: a Series indexed by (role, margin in radians), at the protocol's first CAMRI scale.",
            "Per run, `angles.relative_mean(angles.cosine_angle_stats(cosines, y), c)` with the run's stored "
            "test cosines and labels (`protocol.load_scores`); keep CAMRI's runs at the grid's first scale and "
            "average over seeds.",
            lambda ctx: (
                "The relative mean of each CAMRI run at the grid's first scale, averaged over seeds per role and "
                "margin, plotted against the margin; compare the steps between consecutive margins. Here (s = "
                f"{_geometry_runs(ctx)[3]:g}): " + "; ".join(
                    f"{role} " + ", ".join(f"{v:.2f}" for (r, _), v in _relative_by_margin(ctx).items() if r == role)
                    for role in _geometry_runs(ctx)[0]) + " (margins in increasing order)."),
            code="""
import pandas as pd
from camri_utils import angles, protocol

scale = spec.camri_grid[0]["scale"]

def relative_mean(run, c):
    scores = protocol.load_scores(folder, run)
    stats = angles.cosine_angle_stats(scores["test"], scores["y_test"])
    return angles.relative_mean(stats, c).iloc[0]

rows = [(role, r["params"]["margin"], relative_mean(r, c))
        for role, c in sel.important.items() for r in records
        if r["method"] == "CAMRI" and r["important_class"] == c
        and r["params"]["scale"] == scale]
table = pd.DataFrame(rows, columns=["role", "margin", "rel"])
mean_by_margin = table.groupby(["role", "margin"]).rel.mean()
""",
            var="mean_by_margin",
            answer=Custom("a Series indexed by (role, margin)", _read_relative),
            reference=lambda ctx: _relative_by_margin(ctx),
            mistakes=(
                Mistake("That is the relative *variance*; Table 8.1 is the relative mean.",
                        lambda ctx: _relative_by_margin(ctx, "var")),
            ),
            rtol=1e-6, atol=1e-9,
        ),
        Exercise(
            "2",
            "Recompute the room of Shirt's weight (worst1) for each CAMRI margin and for normalized softmax, "
            "using only the other upper-body garments (classes 0, 2, 4) as neighbours. Does the verdict on room "
            "change? Your answer: the mean over seeds in degrees, as a Series or dict indexed by the margin in "
            "radians (0.0 for normalized softmax), at the protocol's first CAMRI scale.",
            "For each run, `angles.weight_angles(w)[6, [0, 2, 4]].min()` with `w` its stored class weights "
            "(`protocol.load_scores(folder, run)[\"class_weights\"]`); then the mean over the runs of each margin.",
            lambda ctx: (
                "For each run, `angles.weight_angles(w)[6, [0, 2, 4]].min()` with `w` its stored class weights; "
                "the mean over seeds: " + ", ".join(
                    ("normalized softmax" if m == 0 else f"m = {m * 64 / math.pi:g}π/64") + f" {v:.1f}°"
                    for m, v in _room(ctx).items())
                + ". Against all nine other classes: " + ", ".join(f"{v:.1f}°" for v in _room_all(ctx).values())
                + ". Where the nearest weight is an upper-body garment anyway, the two agree."),
            code="""
import numpy as np
from camri_utils import angles, protocol

scale = spec.camri_grid[0]["scale"]
c = sel.important["worst1"]                      # Shirt

def room(run):
    w = protocol.load_scores(folder, run)["class_weights"]
    return angles.weight_angles(w)[c, [0, 2, 4]].min()

at_scale = [r for r in records if r["params"].get("scale") == scale]
camri = [r for r in at_scale
         if r["method"] == "CAMRI" and r["important_class"] == c]
control = [r for r in at_scale if r["method"] == "NormSoftmax"]
upper_room = {0.0: np.mean([room(r) for r in control])}
for m in sorted({r["params"]["margin"] for r in camri}):
    upper_room[m] = np.mean([room(r) for r in camri if r["params"]["margin"] == m])
""",
            var="upper_room",
            answer=Custom("a Series or dict indexed by margin", _read_room),
            reference=lambda ctx: _room(ctx),
            mistakes=(
                Mistake("Those are radians; the chapter's angles (and this answer) are in degrees.",
                        lambda ctx: _room(ctx, degrees=False)),
                Mistake("That is the room against all nine other classes; only the upper-body garments "
                        "(0, 2, 4) count here.", lambda ctx: _room_all(ctx)),
                Mistake("Class indices are 0-based: T-shirt/top 0, Pullover 2, Coat 4 (you used 1, 3, 5).",
                        lambda ctx: _room(ctx, neighbours=(1, 3, 5))),
            ),
            rtol=1e-6, atol=1e-9,
        ),
        Exercise(
            "3",
            "For CAMRI with the largest margin on Shirt (worst1), compute every class's relative mean (each in "
            "turn as if it were important), mean over seeds, and subtract normalized softmax's. Which classes "
            "moved? Your answer: an array with one value per class.",
            "For each run, `stats = angles.cosine_angle_stats(cosines, y)` and `angles.relative_mean(stats, k)` "
            "for every class k; average over seeds, then subtract the control's average.",
            lambda ctx: (
                "For each run, `stats = angles.cosine_angle_stats(cosines, y)` from its stored test cosines and "
                "labels, then `angles.relative_mean(stats, k)` for every class k; "
                "average over seeds and subtract the control's. Classes (other than Shirt) whose relative mean "
                "moved by more than 0.1: " + (", ".join(str(k) for k in _top_moved(ctx)) or "none") + "."),
            code="""
import numpy as np
from camri_utils import angles, protocol

scale = spec.camri_grid[0]["scale"]
c = sel.important["worst1"]

def relative_means(run):
    scores = protocol.load_scores(folder, run)
    stats = angles.cosine_angle_stats(scores["test"], scores["y_test"])
    return [angles.relative_mean(stats, k).iloc[0] for k in range(len(stats))]

at_scale = [r for r in records if r["params"].get("scale") == scale]
camri = [r for r in at_scale
         if r["method"] == "CAMRI" and r["important_class"] == c]
largest_margin = max(r["params"]["margin"] for r in camri)
largest = [r for r in camri if r["params"]["margin"] == largest_margin]
control = [r for r in at_scale if r["method"] == "NormSoftmax"]
moved_by_margin = (np.mean([relative_means(r) for r in largest], axis=0)
                   - np.mean([relative_means(r) for r in control], axis=0))
""",
            var="moved_by_margin",
            answer=Custom("an array, one value per class", _read_moved),
            reference=lambda ctx: _moved(ctx),
            mistakes=(
                Mistake("Subtract the control's values (normalized softmax): the question is what the margin "
                        "changed.", lambda ctx: _moved(ctx, subtract=False)),
                Mistake("Wrong sign: CAMRI minus the control, not the control minus CAMRI.",
                        lambda ctx: _moved(ctx, sign=-1.0)),
                Mistake("That is the relative *variance*; the exercise asks for the relative mean.",
                        lambda ctx: _moved(ctx, column="var")),
            ),
            rtol=1e-6, atol=1e-9,
        ),
        Exercise(
            "4",
            "(Coursework) Run `camri protocol` on a dataset of Part III and re-run this chapter with "
            "`results_dir` pointing at its records. Which of the three claims hold there?",
            "Every verdict in section 5 is computed from the records: change `results_dir` and read them.",
            "Change `results_dir`; every verdict in section 5 is computed, so it reads the new run. Say which "
            "data (real or fixture) and profile produced it before reading anything into the verdicts.",
            assignment="needs a GPU and the data (Colab); grade the reading of the verdicts",
        ),
    ]


def chapters():
    return [
        ("07_protocol_fashion_mnist", "The paper's experiment, run for real on Fashion-MNIST", _ch7(),
         ("run the paper's protocol: ranking, sweep, selection on validation data, report",
          "judge a recall gain against the seed-to-seed spread and the threshold-moving curve"), ("02_normalized_softmax", "03_angular_margins", "04_reweighting_vs_margins", "05_camri_loss", "06_camri_digits_2d")),
        ("08_angles_fashion_mnist", "Angles between features and class weights", _ch8(),
         ("read a run's geometry from its stored cosines and class weights",
          "test the paper's geometric claims (closer, tighter, more room) against the control",
          "read CAMRI's sensitivity to margin and scale"), ("07_protocol_fashion_mnist",)),
    ]
