"""What chapters 7 and 8's exercises read: the committed protocol records the chapter reads
(its ``results_dir`` parameter: ``chapter(7, results_dir=results_dir)``), cached per chapter
object, and answers given as a Series or dict keyed by cells of the records. A reader who ran the
protocol on other data checks against that run."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from camri_utils.exercises.core import AnswerError

DEFAULT_RESULTS = "results/fashion_mnist"


def readable(make, what):
    """``make()``, with a problem of the records (missing, stale, without stored scores) said as
    an AnswerError: checking cannot go on, and the message says why."""
    from camri_utils import protocol

    try:
        return make()
    except (protocol.ProtocolError, FileNotFoundError) as exc:
        raise AnswerError(f"the protocol records cannot be read ({what}): {exc}") from None


def results_folder(ctx):
    from camri_utils import records

    path = ctx.params.get("results_dir", DEFAULT_RESULTS)
    # Where the chapter finds it (records.find: beside the library, or fetched at its commit).
    return ctx.get("folder", lambda: readable(lambda: records.find(path), path))


def protocol_summary(ctx):
    from camri_utils import protocol

    return ctx.get("summary", lambda: readable(lambda: protocol.summarize(results_folder(ctx)), str(results_folder(ctx))))


def records_frame(ctx):
    from camri_utils import protocol

    return ctx.get("frame", lambda: protocol.records_frame(protocol_summary(ctx).records))


def read_series(answer, keys, what, key_names):
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


def recall_spread(ctx):
    frame = records_frame(ctx)
    rows = frame[frame.method != "CE"]
    per_setting = rows.groupby(["method", "role", "setting"]).recall.mean()
    spread = per_setting.groupby(["method", "role"]).std(ddof=1).groupby("method").mean().dropna()
    return spread.sort_values()
