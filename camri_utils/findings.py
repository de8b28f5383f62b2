"""Chapter 7's "What this run shows", written from the records: every number of the prose is
read from a protocol :class:`~camri_utils.protocol.report.Summary`, and every word that depends
on a number ("larger than", "above", "holds") is chosen from it, so the text cannot contradict
the tables it sits under.

In a chapter::

    from camri_utils import findings
    text = findings.Findings(summary, sweep_runs=swept, sweep_role="worst1")
    display(Markdown(text.markdown()))       # every paragraph, in the chapter's order
    text.gains()                             # one paragraph

Gaps and gains are in points (hundredths), means over seeds with paired Student-t 95% intervals;
a comparison that is undefined (no setting kept accuracy, no control) is said to be, never given
a substitute value.
"""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pandas as pd

from camri_utils.protocol import convergence, setting_key
from camri_utils.replication import DATASET_NAMES, PAPER_EPOCHS, PAPER_METHODS, PAPER_TABLE_1, PAPER_TRIALS
from camri_utils.stats import paired_t, signed

__all__ = ["Findings", "points", "count_words", "join_words", "margin_math", "sentence_case"]

_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
RETRAINED = ("ArcFace", "WCE", "CRWWCE")  # the paper's trained rivals of CAMRI
ROLE_WORDS = {"worst1": "worst", "worst2": "second-worst", "median": "median"}


def points(mean, low=np.nan, high=np.nan, digits=1, sign=True, unit=""):
    """``+8.4 [+7.7, +9.1]``: a fraction in points (hundredths), with its interval where it has
    one; ``unit`` (e.g. `` points``) follows the mean: ``+8.4 points [+7.7, +9.1]``. Each number
    by :func:`camri_utils.stats.signed` (more decimals where it would round to zero)."""
    f = partial(signed, digits=digits, sign=sign)
    text = f(100 * mean) + unit
    return text if np.isnan(low) else f"{text} [{f(100 * low)}, {f(100 * high)}]"


def sentence_case(text):
    """``Four of the five`` from ``four of the five``: the first letter upper-case, the rest as
    it is (``str.capitalize`` would lower ``CE``)."""
    return text[:1].upper() + text[1:]


def count_words(n):
    """``three`` for 3 (up to ten), digits beyond."""
    return _WORDS[n] if 0 <= n < len(_WORDS) else str(n)


def join_words(items, last="and"):
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {last} " + items[-1]


def margin_math(params):
    """A setting's margin in the chapters' math: ``$m = 6\\pi/64$`` (in units of pi/64 where it
    is a whole number of them, else ``$m = 0.1234$``); ``""`` for a setting without a margin."""
    margin = params.get("margin")
    if margin is None:
        return ""
    deno = margin * 64 / np.pi
    return f"$m = {deno:g}\\pi/64$" if abs(deno - round(deno)) < 1e-9 else f"$m = {margin:.4g}$"


class Findings:
    """The paragraphs of chapter 7's "What this run shows" for one protocol summary.

    ``sweep_runs``: the run ids of the protocol's records that chapter 8's margin x scale sweep
    trained first, and ``sweep_role`` the role it swept (the grid's history; leave both out when
    there is no sweep). ``criterion``: the mean CE test accuracy the baseline must reach."""

    def __init__(self, summary, sweep_runs=(), sweep_role=None, criterion=0.90):
        self.summary = summary
        self.sel = summary.selection
        self.table = summary.table.set_index(["method", "role"])
        self.comp = summary.comparison
        self.per_seed = summary.comparisons
        self.trained = [r for r in summary.records if "source_run" not in r]
        names = next((r["class_names"] for r in summary.records if "class_names" in r), None)
        self.names = {c: (names[c] if names else f"class {c}") for c in self.sel.important.values()}
        self.sweep_runs, self.sweep_role, self.criterion = set(sweep_runs), sweep_role, criterion
        if sweep_role is not None and sweep_role not in self.sel.important:
            raise ValueError(f"sweep_role must be one of {list(self.sel.important)}; got {sweep_role!r}.")

    # -- reading the summary -------------------------------------------------------------------
    def name(self, role):
        return self.names[self.sel.important[role]]

    def chosen(self, method, role):
        """The chosen setting's table row, or None where no setting kept accuracy (or none ran)."""
        if (method, role) not in self.table.index:
            return None
        row = self.table.loc[(method, role)]
        return None if row.setting in ("", "-", "not run") or pd.isna(row.recall_gain) else row

    def row(self, role, method, setting, reference):
        """The comparison row of a setting (its key or params) against ``reference``, or None."""
        key = setting if isinstance(setting, str) else setting_key(setting)
        if self.comp is None:
            return None
        found = self.comp[(self.comp.role == role) & (self.comp.method == method)
                          & (self.comp.setting == key) & (self.comp.reference == reference)]
        return None if found.empty else found.iloc[0]

    def pick(self, role, reference):
        """CAMRI's chosen setting for ``role`` against ``reference`` (comparison row) or None."""
        best = self.chosen("CAMRI", role)
        return None if best is None else self.row(role, "CAMRI", best.setting, reference)

    def roles(self):
        return list(self.sel.important)

    def _acc(self, r, oos=False):
        p = "oos_accuracy_gap" if oos else "accuracy_gap"
        return points(r[p], r[f"{p}_low"], r[f"{p}_high"], digits=2)

    def lead_parts(self, role):
        """CAMRI's pick's accuracy lead over CE's oracle curve, split per seed into the margin's
        part (over the control's curve) and the head's (the control's curve over CE's there):
        three (mean, low, high, n) tuples, or None without a pick."""
        best = self.chosen("CAMRI", role)
        if best is None:
            return None
        mine = self.per_seed[(self.per_seed.role == role) & (self.per_seed.method == "CAMRI")
                             & (self.per_seed.setting == best.setting)]
        to_ce = mine[mine.reference == "CE"].set_index("seed").accuracy_gap
        to_control = mine[mine.reference == "control"].set_index("seed").accuracy_gap
        return paired_t(to_ce), paired_t(to_control), paired_t((to_ce - to_control).dropna())

    def credit(self, role):
        """Whose lead CAMRI's pick has over CE's curve: 'margin', 'head', 'both', 'unresolved'
        (neither part's interval above zero) or None (no pick, or its lead not above zero)."""
        parts = self.lead_parts(role)
        if parts is None or not parts[0][1] > 0:
            return None
        margin, head = parts[1][1] > 0, parts[2][1] > 0
        return {(True, True): "both", (True, False): "margin", (False, True): "head"}.get((margin, head),
                                                                                        "unresolved")

    # -- the paragraphs --------------------------------------------------------------------------
    def opening(self):
        seeds = len(self.summary.spec.seeds)
        return (f"The numbers are in the computed lines above, in the table and in Tables 7.1-7.3; here is what "
                f"they say, written for this run ({len(self.trained)} trained runs, {seeds} seeds each).")

    def baseline(self):
        conv = convergence(self.sel.ce)
        mean = conv.test_accuracy.mean()
        flat, clears = bool(conv.converged.all()), mean >= self.criterion
        if flat and clears:
            return ("**The baseline is trained and the choices are clean.** Every CE seed's validation accuracy "
                    f"is flat over its last epochs and the mean test accuracy, {mean:.4f}, clears "
                    f"{self.criterion:.2f} (the criterion cell above), so a gain cannot come from one method "
                    "having trained longer. The ranking, the accuracy threshold, the chosen settings and the "
                    "threshold rows' biases all came from the validation split; the test set only reported.")
        moving = [str(s) for s in conv.index[~conv.converged]]
        what = []
        if not flat:
            what.append(f"the validation accuracy of seed(s) {', '.join(moving)} still moved over the last epochs")
        if not clears:
            what.append(f"the mean test accuracy, {mean:.4f}, is below {self.criterion:.2f}")
        return ("**The baseline misses its criterion.** " + sentence_case(join_words(what)) + " (the criterion "
                "cell above), so part of a gain over CE may be one method having trained further. The ranking, "
                "the accuracy threshold, the chosen settings and the threshold rows' biases all came from the "
                "validation split; the test set only reported.")

    def gains(self):
        roles = self.roles()
        picks = {r: self.chosen("CAMRI", r) for r in roles}
        kept = [r for r in roles if picks[r] is not None]
        if not kept:
            return ("**CAMRI does not raise the recall of its class here.** No CAMRI setting kept validation "
                    "accuracy for any important class.")
        by_scale = {}
        for r in kept:
            params = json.loads(picks[r].setting)
            by_scale.setdefault(params.get("scale"), []).append(f"{self.name(r)} ({margin_math(params)})")
        rule = ", ".join(f"$s = {s:g}$ for {join_words(items)}" for s, items in by_scale.items())
        keeps = ("for all three classes" if len(kept) == len(roles) == 3 else
                 f"for {count_words(len(kept))} of the {count_words(len(roles))} classes (not for "
                 f"{join_words(self.name(r) for r in roles if r not in kept)})")
        gains = [picks[r].recall_gain for r in kept]
        up = all(picks[r].gain_ci_low > 0 for r in kept)
        head = ("**CAMRI raises the recall of its class, as the paper says.**" if up else
                "**CAMRI's recall gains are not all resolved.**")
        ce = self.table.loc[("CE", kept[0])].accuracy_mean
        text = (f"{head} With the scale in the grid, CAMRI keeps accuracy {keeps}, and the rule picks {rule}. "
                f"Their recall gains over CE are "
                + join_words(points(p.recall_gain, p.gain_ci_low, p.gain_ci_high, unit=" points" if i == 0 else "")
                             + f" for {self.name(r)}"
                             for i, (r, p) in enumerate((r, picks[r]) for r in kept))
                + f", at test accuracies of {join_words(f'{picks[r].accuracy_mean:.4f}' for r in kept)} against "
                  f"CE's {ce:.4f}.")
        # The paper's ranking: CAMRI's mean gain above each rival's, wherever the rival kept accuracy.
        rivals, wins, lost = {}, {}, []
        for method in RETRAINED:
            rows = {r: self.chosen(method, r) for r in roles}
            defined = [r for r in roles if rows[r] is not None]
            for r in defined:
                if picks[r] is not None:
                    won = picks[r].recall_gain > rows[r].recall_gain
                    wins.setdefault(method, []).append(won)
                    if not won:
                        lost.append((method, self.name(r)))
            if not defined:
                rivals[method] = f"{method} kept accuracy for no class"
            elif len(defined) == len(roles):
                rivals[method] = f"{method} " + ", ".join(points(rows[r].recall_gain) for r in roles)
            else:
                rivals[method] = (f"{method} kept accuracy only for {join_words(self.name(r) for r in defined)}, "
                                  + ", ".join(points(rows[r].recall_gain) for r in defined))

        def than(methods):
            won = [w for m in methods for w in wins.get(m, [])]
            return "larger than" if all(won) else "smaller than" if not any(won) else "not everywhere larger than"

        arc = rivals["ArcFace"].removeprefix("ArcFace ")
        reweighting = "; ".join(rivals[m] for m in ("CRWWCE", "WCE"))
        first, second = than(["ArcFace"]), than(["CRWWCE", "WCE"])
        both = f"{first} ArcFace's gains ({arc}) and {'' if second == first else second + ' '}the re-weighting " \
               f"losses' ({reweighting})"
        if not lost:
            verdict = "holds here"
        elif not any(w for ws in wins.values() for w in ws):
            verdict = "does not hold here"
        else:
            by = {}
            for method, name in lost:
                by.setdefault(method, []).append(name)
            verdict = ("holds here except for " + join_words(f"{m} for {join_words(n)}" for m, n in by.items())
                       + ", whose gain is at least CAMRI's")
        return text + f" That is {both}, so the paper's ranking of CAMRI above ArcFace, WCE and CRWWCE {verdict}."

    @staticmethod
    def share(gain, camri):
        """How much of CAMRI's recall gain ``camri`` another row's ``gain`` reaches: "all" (at
        least as much), "most" (at least half of a positive gain) or "less" (under half)."""
        if gain >= camri:
            return "all"
        return "most" if camri > 0 and gain >= camri / 2 else "less"

    def _share_words(self, shares):
        """``{role: share}`` in words: one phrase where every class agrees, else one per group
        (``all of CAMRI's recall gain or more for Dress and most of it for Shirt``)."""
        full = {"all": "all of CAMRI's recall gain or more", "most": "most of CAMRI's recall gain",
                "less": "less than half of CAMRI's recall gain"}
        short = {"all": "all of it or more", "most": "most of it", "less": "less than half of it"}
        groups = {w: [r for r in shares if shares[r] == w] for w in full}
        present = [w for w in full if groups[w]]
        if len(present) == 1:
            return full[present[0]]
        return join_words((full if i == 0 else short)[w] + " for " + join_words(self.name(r) for r in groups[w])
                          for i, w in enumerate(present))

    def cheap(self):
        """The cheap alternatives' recall gains against CAMRI's; the heading says how much of
        CAMRI's gain moving CE's threshold reaches (:meth:`share`, per class), and where moving
        the threshold of the head without a margin reaches all of it."""
        roles = [r for r in self.roles() if self.chosen("CAMRI", r) is not None]
        ce = {r: self.chosen("CE + threshold", r) for r in roles}
        ns = {r: self.chosen("NormSoftmax + threshold", r) for r in roles}
        camri = {r: self.chosen("CAMRI", r).recall_gain for r in roles}
        shares = {label: {r: self.share(rows[r].recall_gain, camri[r]) for r in roles if rows[r] is not None}
                  for label, rows in (("CE", ce), ("NS", ns))}
        more = {label: [r for r in roles if rows[r] is not None and rows[r].recall_gain > camri[r]]
                for label, rows in (("CE", ce), ("NS", ns))}
        scales = sorted({json.loads(ns[r].setting).get("scale") for r in roles if ns[r] is not None})
        if shares["CE"]:
            but = "less" not in shares["CE"].values()
            head = (f"{'But m' if but else 'M'}oving CE's threshold reaches {self._share_words(shares['CE'])}, at no "
                    "training cost")
        else:
            head = "No bias on CE's logit keeps accuracy"
        all_ns = [r for r, v in shares["NS"].items() if v == "all"]
        if all_ns:
            where = "for every class" if len(all_ns) == len(roles) else f"for {join_words(self.name(r) for r in all_ns)}"
            head += f", and the head without a margin, moved the same way, all of it or more {where}"
        head = f"**{head}.**"

        def gains(rows):
            defined = [r for r in roles if rows[r] is not None]
            return join_words(points(rows[r].recall_gain) for r in defined) if defined else "nothing (no bias kept " \
                                                                                           "accuracy)"

        def than(rows_more):
            if not rows_more:
                return ", less than CAMRI for every class"
            if len(rows_more) == len(roles):
                return ", more than CAMRI for every class"
            return f", more than CAMRI for {join_words(self.name(r) for r in rows_more)}"

        against = join_words(points(camri[r]) for r in roles if ce[r] is not None)
        scale = join_words(f"$s = {s:g}$" for s in scales)
        return (f"{head} Moving the threshold of CE (one bias for all seeds, chosen by the same rule on validation) "
                f"gains {gains(ce)} points at no training cost"
                + (f" (CAMRI: {against})" if against else "") + f"{than(more['CE']) if more['CE'] else ''}, and "
                f"moving the threshold of the cosine head without a margin (normalized softmax at {scale}) gains "
                f"{gains(ns)}{than(more['NS'])}. A recall gain alone cannot tell a better model from one "
                "that predicts the class more often: each of these rows sits at its own accuracy. Tables 7.1 and "
                "7.2 compare at the same accuracy or the same recall.")

    def _scale_of(self, role):
        return json.loads(self.chosen("CAMRI", role).setting).get("scale")

    def against_threshold(self):
        roles = [r for r in self.roles() if self.pick(r, "CE") is not None]
        rows = {r: self.pick(r, "CE") for r in roles}
        above = [r for r in roles if rows[r].verdict == "above"]
        below = [r for r in roles if rows[r].verdict == "below"]
        level = [r for r in roles if r not in above and r not in below]
        scales = {r: self._scale_of(r) for r in roles}
        if above:
            at = {scales[r] for r in above}
            all_at = len(at) == 1 and all(r in above for r in roles if scales[r] in at)
            who = (f"CAMRI's picks at $s = {next(iter(at)):g}$" if all_at and len(above) > 1 else
                   f"CAMRI's pick{'s' if len(above) > 1 else ''} for {join_words(self.name(r) for r in above)}")
            head = (f"**Against CE's threshold moving, {who} {'are' if len(above) > 1 else 'is'} above it, even "
                    "against the oracle.**")
        else:
            head = "**Against CE's threshold moving, no CAMRI pick is above it.**"
        parts = [head]
        if above:
            seeds = {f"{rows[r].above} of {rows[r].n}" for r in above}
            parts.append(
                "At the same recall, CAMRI's pick is "
                + join_words(points(rows[r].accuracy_gap, rows[r].accuracy_gap_low, rows[r].accuracy_gap_high, 2,
                                    sign=False, unit=" accuracy points" if i == 0 else "")
                             + (" more accurate than the best point of CE's test curve" if i == 0 else "")
                             + f" for {self.name(r)}" for i, r in enumerate(above))
                + (f", in {seeds.pop()} seeds{' each' if len(above) > 1 else ''}" if len(seeds) == 1 else
                   ", in " + join_words(f"{rows[r].above} of {rows[r].n}" for r in above) + " seeds")
                + "; against the bias a practitioner would choose on validation, "
                + join_words(self._acc(rows[r], oos=True) for r in above) + ".")
        for group, words in ((level, "not told apart from"), (below, "below")):
            for r in group:
                parts.append(f"The pick at $s = {scales[r]:g}$ for {self.name(r)} is {words} CE's threshold moving "
                             f"({self._acc(rows[r])} against the oracle, {self._acc(rows[r], oos=True)} out of "
                             "sample).")
        # Every CAMRI setting, per scale: how many are above (and which below) per class.
        mine = self.comp[(self.comp.method == "CAMRI") & (self.comp.reference == "CE")].copy()
        mine["scale"] = [json.loads(s).get("scale") for s in mine.setting]
        counts = []
        for s in sorted(mine.scale.unique(), reverse=False):
            at = mine[mine.scale == s]
            n = at.groupby("role").size().max()
            ups = [int((at[at.role == r].verdict == "above").sum()) for r in self.roles()]
            downs = [(r, [margin_math(json.loads(k)) for k, v in zip(at[at.role == r].setting, at[at.role == r].verdict)
                          if v == "below"]) for r in self.roles()]
            text = (f"of the {count_words(int(n))} margins at $s = {s:g}$, " if not counts else f"at $s = {s:g}$, ")
            if not any(ups):
                text += "none is above"
            else:
                text += join_words(f"{count_words(u)} for {self.name(r)}" for u, r in zip(ups, self.roles())) \
                        + " are above"
            low = [f"for {self.name(r)} {join_words(ms)} {'are' if len(ms) > 1 else 'is'} below the out-of-sample " 
                   "reference" for r, ms in downs if ms]
            counts.append(text + (", and " + "; ".join(low) if low else ""))
        parts.append(sentence_case("; ".join(counts)) + ".")
        flatter = (self.comp.oos_accuracy_gap - self.comp.accuracy_gap).median()
        rests = [r for r in above if not rows[r].oos_accuracy_gap_low > 0]
        smallest = min((rows[r].accuracy_gap for r in above), default=np.nan)
        # "little": less than half the smallest lead it could have created.
        little = " little" if not np.isnan(smallest) and flatter < smallest / 2 else ""
        parts.append(f"In this run the oracle flatters CE{little}: the out-of-sample reference is a median {100 * flatter:.2f} points less accurate "
                     "than the oracle (computed lines above)"
                     + (", so this answer does not rest on the oracle." if above and not rests else
                        f", and for {join_words(self.name(r) for r in rests)} the answer rests on it." if rests else
                        "."))
        return " ".join(parts)

    def _where_measured(self, roles):
        """One sentence: the head's part is read at the recall of CAMRI's pick, the control
        model's own row (Table 7.1, the head-alone line) at the control's own recall, with both
        numbers for the first of ``roles`` (those whose head's part is resolved first) that has
        a row of the control model itself; "" where none has."""
        resolved = [r for r in roles if self.credit(r) in ("head", "both")]
        for r in resolved + [r for r in roles if r not in resolved]:
            scale = self._scale_of(r)
            key = setting_key({"scale": scale})
            row = self.row(r, "NormSoftmax", key, "CE")
            mine = self.per_seed[(self.per_seed.role == r) & (self.per_seed.method == "NormSoftmax")
                                 & (self.per_seed.setting == key) & (self.per_seed.reference == "CE")]
            if row is None or "recall" not in mine or mine.recall.isna().all():
                continue
            return ("Where each is measured: the head's part compares the two curves at the recall CAMRI's pick "
                    "reaches (the control moved by its own threshold to get there), the control's row against CE "
                    "(Table 7.1 and the head-alone line above) the control model itself at its own recall, so the "
                    f"two are read at different points of the same curves and need not agree: for {self.name(r)} "
                    f"the control at $s = {scale:g}$ itself is {self._acc(row)} against CE's curve at its own test "
                    f"recall, {mine.recall.mean():.3f}, where the head's part is read at the pick's, "
                    f"{self.chosen('CAMRI', r).recall_mean:.3f}.")
        return ""

    def whose_lead(self):
        roles = [r for r in self.roles() if self.credit(r) is not None]
        credit = {r: self.credit(r) for r in roles}
        roles.sort(key=lambda r: credit[r] == "unresolved")  # the resolved ones first
        words = {"head": "the head's", "margin": "the margin's", "both": "both parts'", "unresolved": "not resolved"}
        if not roles:
            head = "**Whose lead it is: there is no lead over CE's curve to split.**"
        else:
            head = ("**Whose lead it is: " + ", ".join(f"{words[credit[r]]} for {self.name(r)}" for r in roles)
                    + ".**")
        parts = [head]
        if roles:
            parts.append("The lead over CE's curve is the sum of two parts, per seed: the setting over the control's "
                         "curve (the margin's part) and the control's curve over CE's at that point (the head's part, "
                         "the cosine head moved by its own threshold).")
        for r in roles:
            lead, margin, head_part = self.lead_parts(r)
            m, h = points(*margin[:3], digits=2), points(*head_part[:3], digits=2)
            if credit[r] in ("head", "margin"):
                who, other = (("head's", h), ("margin's", m)) if credit[r] == "head" else (("margin's", m),
                                                                                           ("head's", h))
                parts.append(f"For {self.name(r)} the lead, {points(lead[0], digits=2)}, is the {who[0]}: {who[1]}, "
                             f"the {other[0]} {other[1]}.")
            elif credit[r] == "both":
                parts.append(f"For {self.name(r)} both parts are resolved: the margin's {m}, the head's {h}.")
            else:
                larger = "margin's" if margin[0] > head_part[0] else "head's"
                parts.append(f"For {self.name(r)} neither part is resolved: the margin's is {m}, the head's {h}, and "
                             f"the {larger} estimate is the larger; {count_words(int(lead[3]))} seeds cannot tell "
                             "which carries the lead.")
        where = self._where_measured(roles)
        if where:
            parts.append(where)
        controls = [self.pick(r, "control") for r in self.roles()]
        controls = [c for c in controls if c is not None]
        verdicts = {c.verdict for c in controls}
        parts.append("Against the control " + ("no pick is told apart" if verdicts == {"not told apart"} else
                                               join_words(f"the pick for {self.names[c.important_class]} is {c.verdict}"
                                                          for c in controls)) + " (Table 7.2).")
        lifted = self.comp[(self.comp.method == "CAMRI") & (self.comp.reference == "control")
                           & (self.comp.verdict == "above")]
        if not lifted.empty:
            scales = sorted({json.loads(s)["scale"] for s in lifted.setting})
            items = [f"{self.names[r.important_class]} {margin_math(json.loads(r.setting))} "
                     f"({points(r.accuracy_gap, r.accuracy_gap_low, r.accuracy_gap_high, 2)}, {r.above} of {r.n} "
                     "seeds)" for r in lifted.itertuples()]
            vs_ce = [self.row(r.role, "CAMRI", r.setting, "CE").verdict for r in lifted.itertuples()]
            heads = self.comp[(self.comp.method == "NormSoftmax") & (self.comp.reference == "CE")]
            heads = heads[[json.loads(s)["scale"] in scales for s in heads.setting]]
            gaps = 100 * heads.accuracy_gap
            side = "a little under" if (gaps < 0).all() else "a little over" if (gaps > 0).all() else "around"
            told = ("not told apart" if (heads.verdict == "not told apart").all() else
                    ", ".join(sorted(set(heads.verdict))))
            ce_words = (f"none of these {count_words(len(items))} settings is told apart from CE's threshold moving"
                        if set(vs_ce) == {"not told apart"} else
                        "against CE's threshold moving they are " + join_words(vs_ce))
            parts.append(f"Where the margin does lift a setting above its control, it is at "
                         f"{join_words(f'$s = {s:g}$' for s in scales)}: {join_words(items)}; the cosine head alone "
                         f"there sits {side} CE's curve ({gaps.min():+.2f} to {gaps.max():+.2f} points, {told}), and "
                         f"{ce_words}.")
        else:
            parts.append("No CAMRI setting is above its control.")
        above = [r for r in self.roles() if self.pick(r, "CE") is not None and self.pick(r, "CE").verdict == "above"]
        if above:
            scales = sorted({self._scale_of(r) for r in above})
            resolved = {r: credit.get(r) for r in above if credit.get(r) in ("head", "margin", "both")}
            tail = ("whether the margin or the head at that scale deserves the credit is resolved for no class"
                    if not resolved else
                    "whether the margin or the head at that scale deserves the credit is resolved only for "
                    + join_words(f"{self.name(r)}, where it is {words[c].replace(chr(39) + 's', '')}"
                                 for r, c in resolved.items()))
            parts.append(f"So, on this run: **at {join_words(f'$s = {s:g}$' for s in scales)} CAMRI's picks reach a "
                         f"better trade-off than moving CE's threshold; {tail}.**")
        return " ".join(parts)

    def history(self):
        """How the sweep's s = 8 runs entered the grid: the run ids in ``sweep_runs`` of the swept role, the
        chosen setting's margin over the accuracy rule and the fresh seeds' gaps to CE's oracle curve."""
        if self.sweep_role is None:
            return ""
        role = self.sweep_role
        c = self.sel.important[role]
        at8 = [r for r in self.trained if r["params"].get("scale") == 8.0 and r.get("important_class") in (None, c)
               and r["method"] in ("CAMRI", "NormSoftmax")]
        swept = [r for r in at8 if r["run_id"] in self.sweep_runs]
        from_sweep = sorted({r["seed"] for r in swept})
        fresh = sorted({r["seed"] for r in at8} - set(from_sweep))
        text = ("**How the grid got its $s = 8$.** This protocol first ran at $s = 16$ only. Chapter 8's sweep of "
                f"margin and scale for {self.name(role)} (seeds {from_sweep[0]}-{from_sweep[-1]}) was run next, and its "
                "report already compared each cell with CE's test curve; only then was $s = 8$, the authors' other "
                f"scale, added to this grid, and the sweep's {len(swept)} runs at $s = 8$ were moved into it "
                f"unchanged (the computed lines above: seeds {join_words(map(str, from_sweep))} of "
                f"{self.name(role)}'s CAMRI and normalized-softmax records at $s = 8$).") if from_sweep else ""
        best = self.sel.chosen.get(("CAMRI", role))
        if best is None or best.params.get("scale") != 8.0:
            return text
        margin = best.accuracy_mean - self.sel.threshold
        text += (f" So for {self.name(role)} the choice of scale was made after test-set comparisons had been seen, "
                 f"and the chosen setting keeps the accuracy rule by {margin:.5f}.")
        gaps = self.per_seed[(self.per_seed.role == role) & (self.per_seed.method == "CAMRI")
                             & (self.per_seed.setting == setting_key(best.params))
                             & (self.per_seed.reference == "CE")].set_index("seed").accuracy_gap
        shown = [s for s in fresh if s in gaps]
        if shown:
            up = all(gaps[s] > 0 for s in shown)
            where = ("came out above CE's curve as well" if up else
                     "came out below CE's curve" if all(gaps[s] < 0 for s in shown) else
                     "came out on both sides of CE's curve")
            text += (f" Seeds {join_words(map(str, shown))}, trained for the protocol alone, {where} ("
                     + join_words(f"{100 * gaps[s]:+.2f}" for s in shown) + " points against the oracle), but with "
                     f"{count_words(len(shown))} fresh seed{'s' if len(shown) > 1 else ''} that is a consistency "
                     "check, not a replication.")
        return text

    def precision(self):
        roles = [r for r in self.roles() if self.pick(r, "CE") is not None]
        ce = {r: self.pick(r, "CE") for r in roles}
        control = {r: self.pick(r, "control") for r in roles}

        def p(r, oos=False, first=False):
            k = "oos_precision_gap" if oos else "precision_gap"
            return points(r[k], r[f"{k}_low"], r[f"{k}_high"]) + (" points" if first else "")

        def listed(rows, oos=False, first=False):
            return join_words(p(rows[r], oos, first and i == 0) + (f" ({self.name(r)})" if first else "")
                              for i, r in enumerate(roles) if rows[r] is not None)

        resolved = all(ce[r].precision_gap_low > 0 for r in roles)
        mean_up = all(ce[r].precision_gap > 0 for r in roles)
        head = ("**At the same recall, CAMRI keeps more precision than CE's curve.**" if resolved else
                "**At the same recall, CAMRI tends to keep more precision than CE's curve.**" if mean_up else
                "**At the same recall, CAMRI does not keep more precision than CE's curve.**")
        text = (f"{head} Table 7.3: against CE's oracle CAMRI's picks keep {listed(ce, first=True)} more precision "
                f"of the important class than moving CE's threshold to the same recall (out of sample "
                f"{listed(ce, oos=True)})")
        if any(control[r] is not None for r in roles):
            text += (f"; against the control's curve the margin's own share is {listed(control)} against the "
                     f"oracle, {listed(control, oos=True)} out of sample")
        text += "."
        rivals = []
        for method in ("CRWWCE", "WCE"):
            rows = {r: self.chosen(method, r) for r in self.roles()}
            rows = {r: self.row(r, method, rows[r].setting, "CE") for r in self.roles() if rows[r] is not None}
            rows = {r: v for r, v in rows.items() if v is not None}
            if rows:
                rivals.append((method, rows))
        keep_none = all(v.precision_gap_low <= 0 or np.isnan(v.precision_gap_low)
                        for _, rows in rivals for v in rows.values())
        if resolved:
            text += (" That is the paper's argument for a margin over re-weighting (chapter 4): the images a margin "
                     "adds to the class are more often its own")
            if rivals:
                text += ("; the re-weighting losses keep " + ("none" if keep_none else "some as well") + " ("
                         + "; ".join(f"{m} " + ", ".join(points(v.precision_gap) for v in rows.values())
                                     for m, rows in rivals) + " against the oracle)")
            text += (". Whether a point or two of precision at equal recall is worth a retraining depends on what a "
                     "false alarm on the important class costs.")
        return text

    def paper(self):
        """The paper's ordering (its Table 1, :data:`camri_utils.replication.PAPER_TABLE_1`) and this run's."""
        above, exceptions = 0, []
        for dataset, rows in PAPER_TABLE_1.items():
            for role, camri in rows["CAMRI"].items():
                for method in PAPER_METHODS[1:-1]:
                    other = rows[method][role]
                    if other is None or camri is None:
                        continue
                    if other[0] >= camri[0]:
                        exceptions.append(f"on {DATASET_NAMES[dataset]} the {ROLE_WORDS.get(role, role)} class's {method} recall is "
                                          f"{other[0]:.4f} against CAMRI's {camri[0]:.4f}".replace("0.", "."))
                    else:
                        above += 1
        paper = ("has CAMRI's recall above ArcFace's in every role and above the re-weighting losses wherever they "
                 "kept accuracy" + (", with " + ("one exception" if len(exceptions) == 1 else
                                                f"{count_words(len(exceptions))} exceptions") + ": "
                                    + "; ".join(exceptions) if exceptions else ""))
        ours = []
        for role in self.roles():
            mine = self.chosen("CAMRI", role)
            for method in RETRAINED:
                other = self.chosen(method, role)
                if mine is not None and other is not None and other.recall_mean >= mine.recall_mean:
                    ours.append(f"{method} for {self.name(role)}")
        holds = ("the same ordering of the trained methods holds" if not ours else
                 f"the ordering does not hold for {join_words(ours)}")
        rows = {role: self.pick(role, "CE") for role in self.roles()}
        above = [r for r in self.roles() if rows[r] is not None and rows[r].verdict == "above"]
        scales = sorted({self._scale_of(r) for r in above})
        whose = {"head": "the cosine head at that scale already offers", "margin": "the margin itself gives",
                 "both": "the margin and the head share", "unresolved": f"{count_words(len(self.summary.spec.seeds))} "
                                                                       "seeds do not decide"}
        if above:
            trade = (f"on this run it is a better trade-off than CE's for {join_words(self.name(r) for r in above)}"
                     f" (at {join_words(f'$s = {s:g}$' for s in scales)}), "
                     + ", and ".join(f"which for {self.name(r)} {whose[self.credit(r)]}"
                                     if self.credit(r) != "unresolved" else f"for {self.name(r)} {whose['unresolved']}"
                                     for r in sorted(above, key=lambda r: self.credit(r) == "unresolved")))
        else:
            trade = "on this run it is no better trade-off than CE's threshold moving for any class"
        rest = [r for r in self.roles() if rows[r] is not None and r not in above]
        if above and rest:
            trade += "; for " + join_words(f"{self.name(r)} it is {rows[r].verdict.replace('apart', 'apart from')} "
                                           "CE's threshold moving" for r in rest)
        # What the worst class is taken for by CE: the structure of Fashion-MNIST's confusions.
        worst = self.sel.important.get("worst1")
        confusion = np.sum([r["confusion_matrix"] for r in self.sel.ce], axis=0) if worst is not None else None
        names = next((r["class_names"] for r in self.summary.records if "class_names" in r), None)
        taken = ""
        if confusion is not None and names:
            wrong = pd.Series(confusion[worst], index=names).drop(names[worst]).nlargest(3)
            taken = f" ({names[worst]} against {join_words(wrong.index)})"
        epochs = PAPER_EPOCHS.get("cifar10")
        dataset = {"fashion_mnist": "Fashion-MNIST", **DATASET_NAMES}.get(self.summary.spec.dataset,
                                                                          self.summary.spec.dataset)
        return (f"**Against the paper.** The paper's Table 1 (its numbers, from {count_words(PAPER_TRIALS)} trials on "
                f"{join_words(DATASET_NAMES.values())}) {paper}. On {dataset} {holds}. What the paper could "
                "not show, having neither a same-head control nor a threshold baseline, is whether CAMRI's gain is a "
                f"better trade-off or a move along one a model already offers; {trade}. Possible reasons, none "
                f"tested here: the dataset's few, structured confusions{taken}; a small CNN trained "
                f"{self.summary.spec.epochs} epochs instead of the paper's CNN trained {epochs}; a selection made on "
                "validation by a rule fixed in advance. Chapter 8 measures what the margin does to the geometry of "
                "these runs. Part III asks the same question on the paper's own datasets: chapters 10 and 11 run "
                "this protocol, with the same control and threshold baseline, on CIFAR-10 and GTSRB with a network "
                "sized for this book's CPU (how far each run is recorded, the block at the end of this chapter's "
                "Summary says; a run gets no verdict before it is complete), and chapters 10 to 12 give a reader "
                "with a GPU the paper's network on Colab, for one session or for the whole protocol.")

    def summary_line(self):
        """The Summary's sentence on this run: where CAMRI's picks lie against CE's threshold moving
        and against the same head without the margin, whose lead it is, the precision they keep, and
        (with a sweep) how the grid got its $s = 8$."""
        roles = [r for r in self.roles() if self.pick(r, "CE") is not None]
        above = [r for r in roles if self.pick(r, "CE").verdict == "above"]
        if not above:
            text = "On this run no CAMRI pick lies above CE's threshold moving"
        else:
            scales = sorted({self._scale_of(r) for r in above})
            text = (f"On this run CAMRI's pick{'s' if len(above) > 1 else ''} at "
                    f"{join_words(f'$s = {s:g}$' for s in scales)} lie{'' if len(above) > 1 else 's'} above CE's "
                    f"threshold moving for {join_words(self.name(r) for r in above)}, even against the oracle")
            controls = {r: self.pick(r, "control") for r in above}
            verdicts = {c.verdict for c in controls.values() if c is not None}
            if verdicts == {"not told apart"}:
                text += ", but none is told apart from the same head without the margin"
            elif verdicts:
                text += ("; against the same head without the margin "
                         + join_words(f"{self.name(r)}'s is {c.verdict}" for r, c in controls.items() if c is not None))
            seeds = count_words(len(self.summary.spec.seeds))
            words = {"head": "the lead is the head's", "margin": "the lead is the margin's",
                     "both": "the margin and the head share the lead", "unresolved": f"{seeds} seeds cannot split it"}
            credit = [r for r in above if self.credit(r) is not None]
            credit.sort(key=lambda r: self.credit(r) == "unresolved")  # the resolved ones first
            if credit:
                text += ": " + ", ".join(f"for {self.name(r)} {words[self.credit(r)]}" for r in credit)
        text += "."
        gaps = [self.pick(r, "CE") for r in roles]
        if gaps and all(g.precision_gap_low > 0 for g in gaps):
            low, high = min(100 * g.precision_gap for g in gaps), max(100 * g.precision_gap for g in gaps)
            text += (f" CAMRI's picks keep {low:.1f} to {high:.1f} points more precision of their class than CE's "
                     "curve at the same recall.")
        elif gaps:
            text += " CAMRI's picks do not all keep measurably more precision than CE's curve at the same recall."
        best = self.sel.chosen.get(("CAMRI", self.sweep_role)) if self.sweep_role is not None else None
        if best is not None and best.params.get("scale") == 8.0:
            text += " The scale $s = 8$ entered the grid after test comparisons had been seen (told above)."
        return text

    def paragraphs(self):
        out = [self.opening(), self.baseline(), self.gains(), self.cheap(), self.against_threshold(),
               self.whose_lead(), self.history(), self.precision(), self.paper()]
        return [p for p in out if p]

    def markdown(self):
        return "\n\n".join(self.paragraphs())
