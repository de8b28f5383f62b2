"""Chapter 9's "What this run shows" and its Summary's results, written from the records, as :mod:`camri_utils.findings`
writes chapter 7's: every number of the prose is read from the rare-class protocol's
:class:`~camri_utils.protocol.report.Summary` and from two per-seed tables the chapter computes
(what rarity costs CE, and Shirt's geometry), and every word that depends on a number ("rises",
"below", "grows", "does not") is chosen from it.

In a chapter::

    from camri_utils import rare_findings
    text = rare_findings.RareFindings(summary, rarity=rarity, geometry=geo, frame=frame)
    display(Markdown(text.markdown()))       # every paragraph, in the chapter's order
    display(Markdown(text.summary_line()))   # the Summary's results, as bullets

Accuracy and precision gaps are in points (hundredths), rarity's changes in fractions, angles in
degrees; means over seeds with paired Student-t 95% intervals.
"""

from __future__ import annotations

import json

import numpy as np

from camri_utils.findings import count_words, join_words, margin_math, points, sentence_case
from camri_utils.protocol import convergence, setting_key, setting_text
from camri_utils.stats import paired_t

__all__ = ["RareFindings", "RARITY_COLUMNS"]

# The per-seed columns of ``rarity`` (index: seed): CE trained balanced and rare, and the
# balanced model against the rare model's exact test curve (its accuracy beyond the curve at the
# same recall, a fraction; ``beyond_end``: more accurate than every threshold of the rare model).
RARITY_COLUMNS = ("recall_balanced", "recall_rare", "accuracy_balanced", "accuracy_rare", "precision_balanced",
                  "precision_rare", "accuracy_gap", "beyond_end")
MARGIN_METHODS = ("CAMRI", "LDAM", "LDAM-DRW")
# What the prose calls each trained method (and, for the summary's rows, each post-hoc one).
METHOD_WORDS = {"CAMRI": "CAMRI", "WCE": "WCE", "LDAM": "LDAM without DRW", "LDAM-DRW": "LDAM-DRW",
                "Logit-adjusted CE": "the logit-adjusted loss", "NormSoftmax": "normalized softmax",
                "CE + logit adjustment": "post-hoc adjustment of CE"}


def _num(mean, low=np.nan, high=np.nan, digits=1, unit=""):
    """``+5.3 [+3.2, +7.5]`` (no scaling: fractions and degrees as they are)."""
    f = f"{{:+.{digits}f}}"
    text = f.format(mean) + unit
    return text if np.isnan(low) else f"{text} [{f.format(low)}, {f.format(high)}]"


def _pt(row, key, unit=""):
    """A comparison row's gap ``key`` in points with its interval: ``-0.47 points [-0.72, -0.22]``."""
    return points(row[key], row[f"{key}_low"], row[f"{key}_high"], digits=2, unit=unit)


def describe(method, setting):
    """A trained setting in the chapter's words: ``CAMRI ($m = 8\\pi/64$, $s = 16$)``,
    ``WCE ($w = 10$)``, ``LDAM-DRW with `max_m` = 0.5``."""
    params = json.loads(setting) if setting not in ("", "-") else {}
    if method == "CAMRI":
        return f"CAMRI ({margin_math(params)}, $s = {params['scale']:g}$)"
    if method == "WCE":
        return f"WCE ($w = {params['weight']:g}$)"
    if method == "LDAM":
        return f"LDAM without DRW (`max_m` = {params['max_margin']:g})"
    if method == "LDAM-DRW":
        return f"LDAM-DRW with `max_m` = {params['max_margin']:g}"
    if method in ("Logit-adjusted CE", "CE + logit adjustment"):
        return f"{METHOD_WORDS[method]} at $\\tau = {params['tau']:g}$"
    if method == "NormSoftmax":
        return f"normalized softmax at $s = {params['scale']:g}$"
    return f"{method} ({setting_text(params)})"


class RareFindings:
    """The paragraphs of chapter 9's "What this run shows" for one rare-class protocol summary.

    ``rarity``: a DataFrame indexed by seed with :data:`RARITY_COLUMNS` (the chapter's "what the
    rare class loses" table). ``geometry``: one row per run and training ("balanced", "rare")
    with ``setting`` (CE, ``NormSoftmax s=16``, a margin method's chosen setting), ``method``,
    ``scale``, ``seed`` and the angles ``room``, ``own angle``, ``median gap`` in degrees.
    ``frame``: the summary's records per run (``protocol.records_frame``), for the most accurate
    setting of all. ``tolerance``, ``window``: the convergence criterion of the baseline."""

    def __init__(self, summary, rarity, geometry, frame, tolerance=0.005, window=3):
        missing = [k for k in RARITY_COLUMNS if k not in rarity.columns]
        if missing:
            raise ValueError(f"rarity lacks the column(s) {missing}; it needs {list(RARITY_COLUMNS)}, one row per seed.")
        if len(summary.selection.important) != 1:
            raise ValueError("RareFindings reads a protocol with one important class (the rare one); got roles "
                             f"{list(summary.selection.important)}.")
        self.summary, self.sel = summary, summary.selection
        self.role, self.c = next(iter(self.sel.important.items()))
        self.table = summary.table.set_index("method")
        self.comp = summary.comparison[summary.comparison.role == self.role]
        self.rarity, self.geo, self.frame = rarity, geometry, frame
        self.tolerance, self.window = tolerance, window
        self.trained = [r for r in summary.records if "source_run" not in r]
        names = next((r["class_names"] for r in summary.records if "class_names" in r), None)
        self.name = names[self.c] if names else f"class {self.c}"

    # -- reading the summary -------------------------------------------------------------------
    def chosen_setting(self, method):
        """The chosen setting's key of ``method``, or None where no setting kept accuracy."""
        if method not in self.table.index:
            return None
        setting = self.table.loc[method, "setting"]
        return None if setting in ("", "-", "not run") else setting

    def rows(self, reference, trained=True):
        """The comparison rows against ``reference`` ("CE" or "control"), with a ``chosen`` column;
        ``trained``: only the trained settings (not the threshold and post-hoc rows)."""
        rows = self.comp[self.comp.reference == reference].copy()
        if trained:
            rows = rows[~rows.method.str.contains("+", regex=False)]
        rows["chosen"] = [self.chosen_setting(m) == s for m, s in zip(rows.method, rows.setting)]
        return rows

    def _seeds(self, rows, key):
        """``each in 5 of 5 seeds`` or ``in 4 of 5, 5 of 5 seeds`` for the seed counts ``key``."""
        counts = [f"{getattr(r, key)} of {r.n}" for r in rows.itertuples()]
        if len(set(counts)) == 1:
            return f"{'each ' if len(counts) > 1 else ''}in {counts[0]} seeds"
        return "in " + join_words(counts) + " seeds"

    # -- the paragraphs --------------------------------------------------------------------------
    def opening(self):
        done = sum(d for d, _ in self.summary.status.values())
        planned = sum(t for _, t in self.summary.status.values())
        recorded = "all recorded" if done == planned else f"{done} of {planned} planned runs recorded"
        return ("The numbers are in the computed lines above, in the table and in Tables 9.1 to 9.3; here is what "
                f"they say, written for this run ({len(self.trained)} trained runs, {len(self.summary.spec.seeds)} "
                f"seeds per setting, {recorded}).")

    def baseline(self):
        conv = convergence(self.sel.ce, window=self.window, tolerance=self.tolerance)
        n = len(conv)
        late = [s for s in conv.index if not conv.converged[s]]
        if not late:
            return (f"**The baseline is trained.** All {count_words(n)} CE seeds meet the criterion fixed before the "
                    f"run: their validation accuracy moved by at most {conv.last_epochs_range.max():.4f} over the "
                    f"last {count_words(self.window)} epochs against the {self.tolerance:g} allowed; their mean test "
                    f"accuracy is {conv.test_accuracy.mean():.4f}.")
        ranges = conv.last_epochs_range[late]
        nearly = bool((ranges < 1.1 * self.tolerance).all())  # every miss within a tenth of the tolerance
        head = "**The baseline is trained, nearly to the letter.**" if nearly else "**The baseline misses its criterion.**"
        who = (f"seed {late[0]}'s validation accuracy moved" if len(late) == 1 else
               f"seeds {join_words(map(str, late))}' validation accuracies moved")
        text = (f"{head} {sentence_case(count_words(n - len(late)))} of the {count_words(n)} CE seeds meet the "
                f"criterion fixed before the run; {who} by {join_words(f'{v:.4f}' for v in ranges)} over "
                f"{'its' if len(late) == 1 else 'their'} last {count_words(self.window)} epochs against the "
                f"{self.tolerance:g} allowed.")
        acc = conv.test_accuracy
        lowest = acc.idxmin()
        if len(late) == 1:
            text += (f" Its test accuracy, {acc[late[0]]:.4f}, is "
                     + (f"the lowest of the {count_words(n)}, so a method's gain over CE on that seed may be slightly "
                        "flattered" if lowest == late[0] else f"not the lowest of the {count_words(n)}")
                     + " (every comparison below is paired by seed).")
        else:
            text += (f" Their test accuracies are {join_words(f'{acc[s]:.4f}' for s in late)} (every comparison "
                     "below is paired by seed).")
        return text

    def rarity_cost(self):
        d = self.rarity
        rec = paired_t(d.recall_rare - d.recall_balanced)
        acc = paired_t(d.accuracy_rare - d.accuracy_balanced)
        prec = paired_t(d.precision_rare - d.precision_balanced)
        beyond = paired_t(d.accuracy_gap)
        past, n = int(d.beyond_end.astype(bool).sum()), len(d)
        counts = self.trained[0]["train_class_counts"] if self.trained else None
        most = -rec[0] > d.recall_balanced.mean() / 2
        kept = beyond[1] > 0  # the balanced model above the rare model's curve: a loss no threshold returns
        head = (f"**Rarity costs CE {'most' if most else 'some'} of {self.name}'s recall, and "
                + ("some of it no threshold returns.**" if kept else "a threshold returns it.**"))
        with_ = (f"With {counts[self.c]:,} {self.name} images instead of {max(np.delete(counts, self.c)):,}, "
                 if counts is not None else "With the class rare, ")
        moves = "rises" if prec[1] > 0 else "falls" if prec[2] < 0 else "changes"
        text = (f"{head} {with_}CE's recall of {self.name} changes by {_num(*rec[:3], digits=4)} (rare minus "
                f"balanced, paired by seed) to {d.recall_rare.mean():.3f}, its accuracy by {_num(*acc[:3], digits=4)}, "
                f"while {self.name}'s precision {moves} by {_num(*prec[:3], digits=4)}")
        text += (": the model predicts " + self.name + " rarely, and is right when it does." if rec[2] < 0 < prec[1]
                 else ".")
        if kept:
            text += (f" Moving the rare model's threshold buys the recall back only at a price: at the balanced "
                     f"model's recall, the rare model's exact curve is {_num(*beyond[:3], digits=4)} less accurate")
            if past:
                text += (f", and the balanced model is more accurate than every threshold of the rare one in "
                         + (f"all {n}" if past == n else f"{past} of {n}") + " seeds")
            text += ". That gap is what a better loss could hope to win back."
        else:
            text += (f" Moving the rare model's threshold buys the recall back: at the balanced model's recall, the "
                     f"balanced model is {_num(*beyond[:3], digits=4)} more accurate than the rare model's exact "
                     "curve, not told apart from zero, so a better loss has little to win back.")
        return text

    def against_threshold(self):
        rows = self.rows("CE")
        above, below = rows[rows.verdict == "above"], rows[rows.verdict == "below"]
        level = rows[rows.verdict == "not told apart"]
        n = len(rows)
        if above.empty:
            head = (f"**No method reaches above threshold moving on CE; {count_words(len(level))} "
                    f"{'are' if len(level) != 1 else 'is'} not told apart from it.**")
            vs_oracle = f"none of the {n} trained settings is above"
        else:
            head = (f"**{sentence_case(join_words(describe(r.method, r.setting) for r in above.itertuples()))} "
                    f"{'reach' if len(above) > 1 else 'reaches'} above threshold moving on CE.**")
            vs_oracle = (f"{count_words(len(above))} of the {n} trained settings "
                         f"{'are' if len(above) > 1 else 'is'} above: "
                         + join_words(f"{describe(r.method, r.setting)} ({_pt(r._asdict(), 'accuracy_gap')})"
                                      for r in above.itertuples()))
        parts = [head, "Against the best point of CE's exact test curve (the oracle, which contains post-hoc logit "
                       "adjustment at every $\\tau$ and picks its bias on the test images), " + vs_oracle + "."]
        picks = below[below.chosen].sort_values("oos_accuracy_gap", ascending=False)
        text = (f"Against CE's bias chosen on validation (the out-of-sample reference), {count_words(len(below))} "
                f"{'are' if len(below) != 1 else 'is'} below")
        if not picks.empty:
            text += (", the chosen settings of " + join_words(METHOD_WORDS.get(m, m) for m in picks.method)
                     + " among them: "
                     + join_words(f"{describe(r.method, r.setting)} by "
                                       f"{_pt(r._asdict(), 'oos_accuracy_gap', ' points' if i == 0 else '')} "
                                       f"({_pt(r._asdict(), 'accuracy_gap')} against the oracle)"
                                       for i, r in enumerate(picks.itertuples()))
                     + ", " + self._seeds(picks, "below") + " below the oracle")
        parts.append(text + ".")
        if not level.empty:
            under = level[level.accuracy_gap_high < 0]  # below the oracle, not below the out-of-sample reference
            over = level[(level.accuracy_gap_high >= 0) & (level.oos_accuracy_gap_low > 0)]
            rest = level[(level.accuracy_gap_high >= 0) & ~(level.oos_accuracy_gap_low > 0)]

            def who(r):
                return (f"the chosen {describe(r.method, r.setting)}" if r.chosen and not r.method.startswith("Logit")
                        else describe(r.method, r.setting) + (", the chosen one" if r.chosen else ""))

            def offset(r):
                o = 100 * r.oos_recall_offset
                return f"at {abs(o):.1f} points {'less' if o < 0 else 'more'} recall than the reference's test point"

            items = [f"{who(r)}, below the oracle by {_pt(r._asdict(), 'accuracy_gap')} but not below the "
                     f"out-of-sample reference ({_pt(r._asdict(), 'oos_accuracy_gap')})" for r in under.itertuples()]
            items += [f"{who(r)} ({_pt(r._asdict(), 'oos_accuracy_gap')} out of sample)" for r in rest.itertuples()]
            if not over.empty:
                items.append(f"{count_words(len(over))} that {'are' if len(over) > 1 else 'is'} *more* accurate than "
                             "the out-of-sample reference without being more accurate than the oracle: "
                             + join_words(f"{who(r)} ({_pt(r._asdict(), 'oos_accuracy_gap')} out of sample, "
                                          f"{_pt(r._asdict(), 'accuracy_gap')} against the oracle, {offset(r)})"
                                          for r in over.itertuples()))
            them = "Those two" if len(over) == 2 else "They" if len(over) > 1 else "That one"
            if len(items) > 1:
                items[-1] = "and " + items[-1]
            parts.append(f"{sentence_case(count_words(len(level)))} {'are' if len(level) > 1 else 'is'} "
                         "not told apart: " + "; ".join(items) + "."
                         + (f" {them} may be a better trade-off than a threshold a practitioner can choose, but these "
                            f"{count_words(len(self.summary.spec.seeds))} seeds do not show it against every threshold."
                            if not over.empty else ""))
        parts.append(self._posthoc(rows, above, below, level))
        return " ".join(parts)

    def _posthoc_row(self):
        """(setting, its comparison row against CE's curve) of post-hoc adjustment's chosen tau;
        (None, None) where it has none."""
        setting = self.chosen_setting("CE + logit adjustment")
        found = self.comp[(self.comp.reference == "CE") & (self.comp.method == "CE + logit adjustment")
                          & (self.comp.setting == setting)]
        return (None, None) if setting is None or found.empty else (setting, found.iloc[0])

    def _posthoc(self, rows, above, below, level):
        """Post-hoc adjustment at its chosen tau against CE's curve, and what a practitioner loses."""
        setting, r = self._posthoc_row()
        if r is None:
            return ""
        tau = json.loads(setting)["tau"]
        where = ("below the oracle" if r.accuracy_gap_high < 0 else "above the oracle" if r.accuracy_gap_low > 0
                 else "not told apart from the oracle")
        step = ", as a point inside a step of the curve does," if r.accuracy_gap_high < 0 else ""
        oos = "below" if r.verdict == "below" else "not below"
        text = (f"Post-hoc adjustment of CE at $\\tau = {tau:g}$, the chosen $\\tau$, is a point of CE's curve: it "
                f"comes out {where} ({_pt(r, 'accuracy_gap')}){step} and {oos} the out-of-sample reference "
                f"({_pt(r, 'oos_accuracy_gap')}).")
        if not above.empty or r.verdict == "below":
            return text
        row = self.table.loc["CE + logit adjustment"]
        top = self.table.accuracy_mean.idxmax()
        rank = ("the most accurate chosen row of the table" if top == "CE + logit adjustment" else
                f"below the most accurate chosen row of the table ({top}, {self.table.accuracy_mean[top]:.4f})")
        every = self.frame[self.frame.role == self.role].groupby(["method", "setting"]).accuracy.mean()
        best = every.idxmax()
        if best != ("CE + logit adjustment", setting) and best != (top, self.chosen_setting(top)):
            rank += (f" (of every setting, chosen or not, {describe(*best)} is more accurate, {every.max():.4f})")
        level_methods = list(dict.fromkeys(level.method))
        below_picks = list(dict.fromkeys(below[below.chosen].method))
        tail = []
        if level_methods:
            tail.append(f"the best settings of {join_words(METHOD_WORDS.get(m, m) for m in level_methods)} are not "
                        "told apart from it")
        if below_picks:
            tail.append(f"{join_words(METHOD_WORDS.get(m, m) for m in below_picks)} lose accuracy at the same recall")
        return (text + " So, on this run, **a practitioner with a rare important class loses nothing measurable by "
                f"training plain CE and moving its threshold**: post-hoc adjustment at $\\tau = {tau:g}$ gives recall "
                f"{row.recall_mean:.3f} at accuracy {row.accuracy_mean:.4f}, {rank}"
                + ("; " + ", and ".join(tail) if tail else "") + ".")

    def margins(self):
        heads = self.comp[(self.comp.reference == "CE") & (self.comp.method == "NormSoftmax")]
        control = self.rows("control")
        if heads.empty or control.empty:
            return ""
        far = "far below" if (heads.accuracy_gap_high < -0.01).all() else "below" if (heads.verdict == "below").all() \
            else "near"
        items = [f"normalized softmax at $s = {json.loads(r.setting)['scale']:g}$: "
                 + (_pt(r._asdict(), "accuracy_gap", " points") + " against the oracle" if i == 0 else
                    points(r.accuracy_gap, digits=2)) for i, r in enumerate(heads.itertuples())]
        ns = self.chosen_setting("NormSoftmax")
        kept = ("no scale kept the accuracy floor" if ns is None else
                f"$s = {json.loads(ns)['scale']:g}$ kept the accuracy floor")
        parts = [f"**The margins, against their control.** The cosine head without a margin starts {far} CE's curve "
                 f"({'; at '.join(items).replace('; at normalized softmax at ', '; at ')}), and on its own validation "
                 f"{kept}."]
        camri = control[control.method == "CAMRI"]
        pick = camri[camri.chosen]
        if not camri.empty:
            ns_gap = {json.loads(r.setting)["scale"]: r.accuracy_gap for r in heads.itertuples()}
            ce_rows = self.rows("CE")
            lifted = all(ce_rows[(ce_rows.method == "CAMRI") & (ce_rows.setting == r.setting)].accuracy_gap.iloc[0]
                         > ns_gap.get(json.loads(r.setting)["scale"], np.inf) for r in camri.itertuples())
            n_below = int((camri.verdict == "below").sum())
            start = "A margin lifts it towards CE's curve but, for CAMRI, " if lifted else "For CAMRI, a margin does "
            if n_below == len(camri):
                text = (start + "not up to the control's own curve: every one of CAMRI's "
                        f"{len(camri)} settings is below its control")
            else:
                text = ("For CAMRI, against the control's own curve: "
                        + ", ".join(f"{count_words(int((camri.verdict == v).sum()))} of its {len(camri)} settings "
                                    f"{v}" for v in ("above", "not told apart", "below") if (camri.verdict == v).any()))
            if not pick.empty:
                p = pick.iloc[0]
                text += (f" (the pick by {_pt(p, 'oos_accuracy_gap', ' points')} out of sample, "
                         f"{_pt(p, 'accuracy_gap')} against the oracle)")
            parts.append(text + ".")
        up = control[control.verdict == "above"]
        if up.empty:
            parts.append(f"None of the {len(control)} margin settings is above its control.")
        else:
            ce_rows = self.rows("CE")
            items, reach = [], []
            for r in up.itertuples():
                ce = ce_rows[(ce_rows.method == r.method) & (ce_rows.setting == r.setting)].iloc[0]
                items.append(f"{_pt(r._asdict(), 'accuracy_gap', ' points')} against the oracle, {r.above} of {r.n} "
                             "seeds")
                reach.append(ce.verdict)
            only = "only " if len(up) < len(control) else ""
            verb = "is" if len(up) == 1 else "are"
            text = (f"Of the {len(control)} margin settings {only}"
                    + join_words(describe(r.method, r.setting) for r in up.itertuples())
                    + f" {verb} above {'its' if len(up) == 1 else 'their'} control ({'; '.join(items)})")
            drw = all(m == "LDAM-DRW" for m in up.method)
            if set(reach) == {"not told apart"}:
                text += (", and that lift brings " + ("it" if len(up) == 1 else "them") + " to CE's threshold moving, "
                         f"not past its oracle: the margin{' with deferred re-weighting' if drw else ''} makes up for "
                         "what the cosine head loses")
            elif set(reach) == {"above"}:
                text += ", and that lift takes it past CE's threshold moving, even its oracle"
            else:
                text += ", but against CE's threshold moving " + join_words(reach)
            parts.append(text + ".")
        return " ".join(parts)

    def precision(self):
        rows = self.rows("CE")
        picks = rows[rows.chosen]
        if picks.empty:
            return ""
        keep = picks[picks.precision_gap_low > 0]
        rest = picks[~(picks.precision_gap_low > 0)]
        if keep.empty:
            head = "**No method keeps measurable precision at the same recall either.**"
            text = (f"{head} Against CE's curve the picks keep "
                    + join_words(f"{_pt(r._asdict(), 'precision_gap', ' points' if i == 0 else '')} "
                                 f"({METHOD_WORDS.get(r.method, r.method)})" for i, r in enumerate(rest.itertuples()))
                    + f" of {self.name}'s precision at the same recall.")
            return text
        who = join_words(METHOD_WORDS.get(m, m) for m in keep.method)
        lose = (keep.verdict == "below").all()
        text = (f"**What {who} keep{'s' if len(keep) == 1 else ''} is precision.** At the same recall "
                f"{'their picks keep' if len(keep) > 1 else 'its pick keeps'} "
                + join_words(f"{_pt(r._asdict(), 'precision_gap', ' points' if i == 0 else '')} "
                             f"({METHOD_WORDS.get(r.method, r.method)})" for i, r in enumerate(keep.itertuples()))
                + f" more precision of {self.name} than CE's curve"
                + (", while " + ("they lose" if len(keep) > 1 else "it loses") + " accuracy against it" if lose else ""))
        if not rest.empty:
            text += ("; " + join_words(f"{METHOD_WORDS.get(r.method, r.method)} "
                                       f"{_pt(r._asdict(), 'precision_gap')}" for r in rest.itertuples())
                     + ", not told apart")
        side = "above" if (keep.precision_gap > 0).all() else "around"
        return (text + f". In Figure 9.2 {'their points sit' if len(keep) > 1 else 'its point sits'} {side} the "
                "solid line. Whether that precision is worth the accuracy depends on what a false alarm on the rare "
                "class costs.")

    def _paired(self, setting_a, training_a, setting_b, training_b, column):
        g = self.geo
        a = g[(g.setting == setting_a) & (g.training == training_a)].set_index("seed")[column]
        b = g[(g.setting == setting_b) & (g.training == training_b)].set_index("seed")[column]
        both = a.index.intersection(b.index)
        return paired_t(a[both] - b[both])

    def angles(self):
        g = self.geo
        both = [s for s in dict.fromkeys(g.setting)
                if {"balanced", "rare"} <= set(g[g.setting == s].training)]
        if not both:
            return ""
        words = {s: ("CE" if s == "CE" else f"normalized softmax at $s = {g[g.setting == s].scale.iloc[0]:g}$")
                 for s in both}
        # "at $s = 8$" for a second normalized softmax, as the chapter writes it
        for s in both[1:]:
            if words[s].startswith("normalized softmax") and any(words[t].startswith("normalized") for t in both
                                                                 if both.index(t) < both.index(s)):
                words[s] = words[s].replace("normalized softmax at", "at")
        room = {s: self._paired(s, "rare", s, "balanced", "room") for s in both}
        own = {s: self._paired(s, "rare", s, "balanced", "own angle") for s in both}
        grows = all(v[1] > 0 for v in room.values())
        shrinks = all(v[2] < 0 for v in room.values())
        further = all(v[1] > 0 for v in own.values())
        head = ("**The angles: the rare weight gets more room, not less; its images are what it loses.**"
                if grows and further else
                "**The angles: the rare weight gets less room, as the intuition says.**" if shrinks else
                "**The angles: the room of the rare weight does not change measurably.**")
        verb = ("*grows*" if grows else "shrinks" if shrinks else "changes")
        text = (f"{head} {'Against the intuition, the' if grows else 'The'} room of {self.name}'s weight {verb} when "
                f"{self.name} is rare: by "
                + join_words(f"{_num(*room[s][:3], unit=' degrees' if i == 0 else '')} "
                             f"{'' if words[s].startswith('at ') else 'for '}{words[s]}"
                             for i, s in enumerate(both))
                + ", paired by seed.")
        med = g.groupby(["setting", "training"])["median gap"].mean()
        turns = all(med[(s, "balanced")] > 0 > med[(s, "rare")] for s in both)
        text += (f" {'But' if grows else 'And'} {self.name}'s test images sit "
                 f"{'further from' if further else 'closer to' if all(v[2] < 0 for v in own.values()) else 'about as far from'} it, by "
                 + join_words(f"{_num(*own[s][:3])}" for s in both) + " degrees")
        if turns:
            text += (", and their median decision gap turns from positive ("
                     + ", ".join(f"{med[(s, 'balanced')]:.1f}" for s in both) + " degrees balanced) to negative ("
                     + ", ".join(f"{med[(s, 'rare')]:.1f}" for s in both) + " rare, Table 9.3)")
        text += (": the many images of the other classes push the rare weight away, and its few images do not follow."
                 if grows and further else ".")
        margins = [s for s in dict.fromkeys(g[g.training == "rare"].setting)
                   if g[g.setting == s].method.iloc[0] in MARGIN_METHODS]
        margins.sort(key=lambda s: g[g.setting == s].method.iloc[0] != "CAMRI")  # the book's method first
        if not margins:
            return text
        pulls, items, first = [], [], True
        for s in margins:
            m = g[g.setting == s]
            control = f"NormSoftmax s={m.scale.iloc[0]:g}"
            gap = self._paired(s, "rare", control, "rare", "median gap")
            rm = self._paired(s, "rare", control, "rare", "room")
            word = METHOD_WORDS.get(m.method.iloc[0], m.method.iloc[0]).replace("LDAM-DRW", "LDAM with DRW")
            does = "does" if gap[1] > 0 else "does not" if gap[2] < 0 else "does not measurably"
            if gap[1] > 0:
                pulls.append((m.method.iloc[0], s))
            room_words = (f"with {_num(*rm[:3])} more room" if rm[1] > 0 else
                          f"with {_num(*rm[:3])}, less room" if rm[2] < 0 else
                          f"the room's change, {_num(*rm[:3])}, is not told apart from zero")
            if gap[1] > 0:  # the first pull carries the units; a pull says what it did to the room
                items.append(f"{word} {does} ({'median gap ' if first else ''}{_num(*gap[:3])}"
                             f"{' degrees over its control' if first else ''}{'; ' if first else ', '}{room_words})")
                first = False
            else:
                items.append(f"{word} {does} ({_num(*gap[:3])})")
        # The pulling ones first, as "X does (...), and so does Y (...); Z does not (...)".
        pulling = [i for i in items if " does (" in i]
        other = [i for i in items if " does (" not in i]
        said = pulling[0] if pulling else ""
        for i in pulling[1:]:
            said += ", and so does " + i.replace(" does (", " (", 1)
        if other:
            said += ("; " if said else "") + "; ".join(other)
        lead = ("So a margin has no room to give back; what it can do is pull the images in. " if grows else "")
        text += f" {lead}At their chosen settings, {said}."
        if pulls:
            ce = self.rows("CE")
            up = [m for m, s in pulls if (ce[(ce.method == m) & ce.chosen].verdict == "above").any()]
            if not up:
                text += (f" {'Neither pull lifts' if len(pulls) == 2 else 'No pull lifts' if len(pulls) > 2 else 'The pull does not lift'} "
                         f"the model above CE's threshold curve: at the same accuracy, a bias on CE's logit brings as "
                         f"many of {self.name}'s images across the boundary.")
        return text

    def paper(self):
        camri = self.table.loc["CAMRI"] if self.chosen_setting("CAMRI") is not None else None
        ce = self.table.loc["CE"]
        text = ("**Against the paper.** The paper's imbalanced datasets, GTSRB and AwA2, are where CAMRI reported its "
                "gains over CE; it compared neither with a threshold moved after training nor with the long-tail "
                "methods.")
        if camri is None:
            text += " On this controlled stand-in with one rare class, no CAMRI setting kept validation accuracy."
        else:
            raises = ("raises" if camri.gain_ci_low > 0 else "lowers" if camri.gain_ci_high < 0 else
                      "does not measurably change")
            text += (f" On this controlled stand-in with one rare class, CAMRI {raises} {self.name}'s recall "
                     f"({_num(camri.recall_gain, camri.gain_ci_low, camri.gain_ci_high, 3)} at accuracy "
                     f"{camri.accuracy_mean:.4f} against CE's {ce.accuracy_mean:.4f})")
            if self.chosen_setting("WCE") is not None:
                wce = self.table.loc["WCE"]
                than = ("more than" if camri.gain_ci_low > wce.gain_ci_high else
                        "less than" if camri.gain_ci_high < wce.gain_ci_low else "as much as")
                text += f", {than} WCE ({_num(wce.recall_gain, digits=3)})"
            pick = self.rows("CE")
            pick = pick[(pick.method == "CAMRI") & pick.chosen]
            if not pick.empty:
                v = pick.iloc[0].verdict
                text += (", but moving CE's threshold, or adjusting its logits after training, is more accurate at "
                         "the same recall, even with the bias chosen on validation" if v == "below" else
                         ", and at the same recall it is more accurate than moving CE's threshold, even against the "
                         "oracle" if v == "above" else
                         "; at the same recall it is not told apart from moving CE's threshold, or adjusting its "
                         "logits after training")
            text += "."
        return (text + " Possible reasons, none tested here: one rare class instead of a long tail, a small CNN "
                f"trained {self.summary.spec.epochs} epochs, and a test set that is balanced (an imbalanced test set "
                f"would weigh {self.name}'s errors less in the accuracy).")

    # -- the Summary's results -----------------------------------------------------------------
    def summary_points(self):
        """The Summary's statements on this run, one string each, from the rows the paragraphs
        above read: what rarity costs CE and how much of it a threshold gives back; where each
        method's chosen setting lies against CE's threshold moving (the oracle and the bias chosen
        on validation), with post-hoc adjustment beside them; and what rarity and a margin do to
        the angles."""
        return [p for p in (self._summary_rarity(), self._summary_verdicts(), self._summary_angles()) if p]

    def summary_line(self):
        """The Summary's results as Markdown bullets (:meth:`summary_points`), every number named
        and every verdict word chosen from the records, as chapter 7's
        :meth:`camri_utils.findings.Findings.summary_line`."""
        return "\n".join(f"- {p}" for p in self.summary_points())

    def _summary_rarity(self):
        d = self.rarity
        rec = paired_t(d.recall_rare - d.recall_balanced)
        acc = paired_t(d.accuracy_rare - d.accuracy_balanced)
        beyond = paired_t(d.accuracy_gap)
        past, n = int(d.beyond_end.astype(bool).sum()), len(d)
        text = (f"Against chapter 7's balanced runs of the same seeds, rarity changes CE's recall of {self.name} by "
                f"{_num(*rec[:3], digits=3)} (from {d.recall_balanced.mean():.3f} to {d.recall_rare.mean():.3f}) and "
                f"its accuracy by {points(*acc[:3], digits=2, unit=' points')}.")
        at = f"at the balanced model's recall ({d.recall_balanced.mean():.3f}) the rare model's exact curve is"
        if beyond[1] > 0:  # the balanced model above the rare model's curve: a loss no threshold returns
            back = -acc[0] - beyond[0]  # the accuracy the bias returns, in the mean over seeds
            text += (f" A bias on {self.name}'s logit gives the recall back, at an accuracy that stays below the "
                     f"balanced model's: {at} {points(*beyond[:3], digits=2, sign=False, unit=' points')} less accurate")
            if acc[0] < 0 < back < -acc[0]:
                text += (f", so the bias gives back {100 * back:.2f} of the {-100 * acc[0]:.2f} points of accuracy "
                         "and no threshold the rest")
            if past:
                text += (" (the balanced model is more accurate than every threshold of the rare one in "
                         + (f"all {n}" if past == n else f"{past} of {n}") + " seeds)")
        elif beyond[2] < 0:
            text += (f" A bias on {self.name}'s logit gives the recall back and more accuracy than balanced training: "
                     f"{at} {points(*(-x for x in beyond[2::-1]), digits=2, sign=False, unit=' points')} more "
                     "accurate than the balanced model")
        else:
            text += (f" A bias on {self.name}'s logit gives the recall back at the balanced model's accuracy: {at} not "
                     f"told apart from the balanced model ({points(*beyond[:3], digits=2, unit=' points')})")
        return text + "."

    def _summary_verdicts(self):
        rows = self.rows("CE")
        n = len(rows)
        tried = [m for m in dict.fromkeys(rows.method) if m != "NormSoftmax"]  # the margins' control, no method tried
        chosen = rows[rows.chosen]
        pick = {m: chosen[chosen.method == m].iloc[0] for m in tried if (chosen.method == m).any()}
        by = {v: [m for m in pick if pick[m].verdict == v] for v in ("above", "not told apart", "below")}
        above = rows[rows.verdict == "above"]

        def words(methods):
            return join_words(METHOD_WORDS.get(m, m) for m in methods)

        def are(methods):
            return "are" if len(methods) > 1 else "is"

        if by["above"]:
            parts = [f"On this run {words(by['above'])} {are(by['above'])} above threshold moving on CE, even against "
                     "the oracle (the best point of CE's test curve): "
                     + join_words(f"{describe(m, pick[m].setting)} by "
                                  f"{_pt(pick[m], 'accuracy_gap', ' points' if i == 0 else '')}"
                                  for i, m in enumerate(by["above"])) + " of accuracy at the same recall."]
        elif not above.empty:
            parts = [f"On this run no method's chosen setting is above threshold moving on CE, though "
                     f"{count_words(len(above))} of the {n} trained settings {are(above)} above its oracle (the best "
                     "point of CE's test curve): "
                     + join_words(f"{describe(r.method, r.setting)} ({_pt(r._asdict(), 'accuracy_gap')})"
                                  for r in above.itertuples()) + "."]
        else:
            parts = [f"On this run no method is above threshold moving on CE: none of the {n} trained settings is "
                     "above the oracle, the best point of CE's test curve."]
        level = by["not told apart"]
        if level:
            first, *others = level
            parts.append(f"{sentence_case(words(level))} {are(level)} not told apart from it: at the same recall "
                         f"{describe(first, pick[first].setting)} is {_pt(pick[first], 'accuracy_gap', ' points')} "
                         f"from the oracle and {_pt(pick[first], 'oos_accuracy_gap')} from CE's bias chosen on "
                         "validation" + "".join(f"{', and ' if i == len(others) - 1 else ', '}"
                                                f"{describe(m, pick[m].setting)} {_pt(pick[m], 'accuracy_gap')} and "
                                                f"{_pt(pick[m], 'oos_accuracy_gap')}" for i, m in enumerate(others))
                         + ".")
        over = rows[(rows.verdict == "not told apart") & (rows.oos_accuracy_gap_low > 0)]
        if not over.empty:
            parts.append(f"{sentence_case(count_words(len(over)))} trained setting{'s' if len(over) > 1 else ''} "
                         f"{are(over)} more accurate than CE's bias chosen on validation, though not than the "
                         "oracle: " + join_words(f"{describe(r.method, r.setting)} "
                                                 f"({_pt(r._asdict(), 'oos_accuracy_gap', ' points' if i == 0 else '')})"
                                                 for i, r in enumerate(over.itertuples())) + ".")
        below = sorted(by["below"], key=lambda m: -pick[m].oos_accuracy_gap)
        if below:
            parts.append(f"{sentence_case(words(below))} {are(below)} below it: at the same recall "
                         + ("their chosen settings are " if len(below) > 1 else "its chosen setting is ")
                         + join_words(f"{_pt(pick[m], 'oos_accuracy_gap', ' points' if i == 0 else '')}"
                                      + (f" ({METHOD_WORDS.get(m, m)})" if len(below) > 1 else "")
                                      for i, m in enumerate(below)) + " from CE's bias chosen on validation.")
        unkept = [m for m in tried if m not in pick]
        if unkept:
            parts.append(f"No setting of {words(unkept)} kept validation accuracy.")
        parts.append(self._summary_posthoc(by["above"], above))
        return " ".join(p for p in parts if p)

    def _summary_posthoc(self, methods_above, settings_above):
        setting, r = self._posthoc_row()
        if r is None:
            return ""
        text = f"Post-hoc adjustment of CE at $\\tau = {json.loads(setting)['tau']:g}$, which costs no training, is"
        if r.verdict == "below":
            return text + f" below CE's bias chosen on validation ({_pt(r, 'oos_accuracy_gap', ' points')})."
        text += f" not below CE's bias chosen on validation ({_pt(r, 'oos_accuracy_gap', ' points')})"
        if methods_above:
            return (text + f", but {join_words(METHOD_WORDS.get(m, m) for m in methods_above)} reach"
                    f"{'es' if len(methods_above) == 1 else ''} past CE's curve, and so past post-hoc adjustment at "
                    "any $\\tau$.")
        if not settings_above.empty:
            return text + ": as good a trade-off as any method's chosen setting."
        return text + ": as good a trade-off as any loss tried."

    def _summary_angles(self):
        g = self.geo
        both = [s for s in dict.fromkeys(g.setting) if {"balanced", "rare"} <= set(g[g.setting == s].training)]
        if not both:
            return ""
        room = [self._paired(s, "rare", s, "balanced", "room") for s in both]
        own = [self._paired(s, "rare", s, "balanced", "own angle") for s in both]

        def span(values):  # the paired means, rare minus balanced, over the heads
            means = sorted(v[0] for v in values)
            return f"{means[0]:+.1f}" + ("" if len(means) == 1 else f" to {means[-1]:+.1f}") + " degrees"

        scales = [f"$s = {g[g.setting == s].scale.iloc[0]:g}$" for s in both if s != "CE"]
        heads = join_words((["for CE"] if "CE" in both else [])
                           + ([f"for normalized softmax at {join_words(scales)}"] if scales else []))
        if all(v[1] > 0 for v in room):
            text = f"The rare class's weight does not lose room: it gains {span(room)}"
        elif all(v[2] < 0 for v in room):
            text = f"The rare class's weight loses room, as the intuition says: {span(room)}"
        else:
            text = f"The room of the rare class's weight does not change measurably for every head: {span(room)}"
        text += f" ({heads}; rare minus balanced, paired by seed)"
        if all(v[1] > 0 for v in own):
            text += f"; its images drift away from it: their mean angle to it grows by {span(own)}."
        elif all(v[2] < 0 for v in own):
            text += f"; its images come closer to it, by {span(own)}."
        else:
            text += f"; its images' angle to it changes by {span(own)}, not resolved for every head."
        margins = [s for s in dict.fromkeys(g[g.training == "rare"].setting)
                   if g[g.setting == s].method.iloc[0] in MARGIN_METHODS]
        margins.sort(key=lambda s: g[g.setting == s].method.iloc[0] != "CAMRI")  # the book's method first
        if not margins:
            return text
        gaps = {g[g.setting == s].method.iloc[0]: self._paired(s, "rare", f"NormSoftmax s={g[g.setting == s].scale.iloc[0]:g}",
                                                               "rare", "median gap") for s in margins}
        pull = [m for m, v in gaps.items() if v[1] > 0]
        rest = [m for m in gaps if m not in pull]
        if pull:
            text += (f" The margin{'s' if len(pull) > 1 else ''} of {join_words(METHOD_WORDS.get(m, m) for m in pull)} "
                     f"pull{'' if len(pull) > 1 else 's'} them back towards the weight (median decision gap "
                     + join_words(_num(*gaps[m][:3]) for m in pull) + " degrees over the control"
                     + (f"; {join_words(METHOD_WORDS.get(m, m) for m in rest)}: "
                        + join_words(_num(*gaps[m][:3]) for m in rest) if rest else "") + ")")
            ce = self.rows("CE")
            up = [m for m in pull if (ce[(ce.method == m) & ce.chosen].verdict == "above").any()]
            if not up:
                text += (", but no further than a threshold would move them across the boundary: "
                         + ("neither" if len(pull) == 2 else "none" if len(pull) > 2 else "it")
                         + (" is" if len(pull) > 1 else " is not") + " above CE's threshold moving.")
            else:
                text += (f", and {join_words(METHOD_WORDS.get(m, m) for m in up)}'s pull takes it above CE's "
                         "threshold moving.")
        else:
            text += (" No margin pulls them back towards the weight (median decision gap over the control: "
                     + join_words(f"{METHOD_WORDS.get(m, m)} {_num(*gaps[m][:3])}" for m in gaps) + " degrees).")
        return text

    def paragraphs(self):
        out = [self.opening(), self.baseline(), self.rarity_cost(), self.against_threshold(), self.margins(),
               self.precision(), self.angles(), self.paper()]
        return [p for p in out if p]

    def markdown(self):
        return "\n\n".join(self.paragraphs())
