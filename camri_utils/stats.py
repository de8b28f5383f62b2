"""Statistics over seeds, in one place: the spread of a measure over seeds, the Student-t
interval of its mean, and paired (same-seed) differences with their interval and verdict.

The book compares settings trained with the same seeds, so differences are paired and
summarised by a Student-t interval (few seeds: wide, and the text says so). The analysis
(:mod:`camri_utils.angles`), the protocol's selection and report, and the chapters use these
functions; this module imports nothing else of the library, so any layer may use it.

Example:
    >>> from camri_utils import stats
    >>> [round(v, 3) for v in stats.mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])]
    [3.0, 1.037, 4.963]
    >>> stats.paired_verdict({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 4.0, 2: 6.0}, "lower")["verdict"]
    'unresolved'
    >>> round(stats.t_multiplier(5), 2)   # five seeds: the half-width is 2.78 s / sqrt(5)
    2.78
"""

from __future__ import annotations

import numpy as np

__all__ = ["seed_std", "t_multiplier", "mean_interval", "paired_t", "paired_verdict", "signed", "VERDICTS"]

VERDICTS = ("holds", "reversed", "unresolved")


def _check_level(level):
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}.")


def t_multiplier(n, level=0.95):
    """The Student-t quantile of the interval of a mean of ``n`` values (``n - 1`` degrees of
    freedom) at ``level``: the interval's half-width is this times the values' standard deviation
    over sqrt(n). It grows fast as ``n`` falls, which is what few seeds cost.

    Example:
        >>> from camri_utils import stats
        >>> [round(stats.t_multiplier(n), 2) for n in (2, 3, 5)]
        [12.71, 4.3, 2.78]
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be a whole number of values, at least 2 (one value gives no interval); got {n!r}.")
    _check_level(level)
    from scipy import stats as st

    return float(st.t.ppf(0.5 + level / 2, n - 1))


def _half_width(x, level):
    """Half the width of the Student-t interval of the mean of ``x`` (at least 2 values)."""
    return t_multiplier(x.size, level) * float(x.std(ddof=1)) / float(np.sqrt(x.size))


def seed_std(values):
    """The sample standard deviation (ddof=1) of one number per seed; 0 for a single seed
    (no spread can be estimated: the tables show 0 and the accuracy rule keeps the mean)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def mean_interval(values, level=0.95):
    """Mean of ``values`` (e.g. one number per seed) and the two ends of its Student-t
    confidence interval at ``level``. With one value the ends are NaN: one seed gives no
    interval.

    Example:
        >>> from camri_utils import stats
        >>> [round(v, 3) for v in stats.mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])]
        [3.0, 1.037, 4.963]
    """
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"values must be numbers; got {values!r}.") from exc
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"values must be a non-empty 1-D sequence of finite numbers; got {values!r}.")
    _check_level(level)
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = _half_width(x, level)
    return mean, mean - half, mean + half


def paired_t(differences, level=0.95):
    """Mean of paired (per seed) differences with its Student-t interval: (mean, low, high,
    n). NaNs (undefined comparisons) are left out and not counted; fewer than 2 values give
    no interval (NaN bounds)."""
    d = np.asarray(differences, float)
    d = d[~np.isnan(d)]
    n = len(d)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(d.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), n
    half = _half_width(d, level)
    return mean, mean - half, mean + half, n


def signed(value, digits, sign=True):
    """``value`` with ``digits`` decimals and its sign (``sign=False``: a minus only), as the
    book prints gaps, gains and interval ends. A value that is not zero but rounds to zero
    there gets the decimals its first non-zero digit needs (up to three more), so that an
    interval end just above zero does not read ``+0.00`` beside an *above* verdict; one that
    still rounds to zero is zero to print, unsigned like an exact zero: never ``-0.00``. NaN
    prints ``nan``.

    Example:
        >>> from camri_utils import stats
        >>> stats.signed(0.2412, 2), stats.signed(0.0031, 2), stats.signed(-0.00019, 2)
        ('+0.24', '+0.003', '-0.0002')
        >>> stats.signed(-1e-17, 2), stats.signed(0.0, 1), stats.signed(0.43, 2, sign=False)
        ('0.00', '0.0', '0.43')
    """
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 0:
        raise ValueError(f"digits must be a whole number >= 0; got {digits!r}.")
    value = float(value)
    if np.isnan(value):
        return "nan"
    plus = "+" if sign else ""
    for places in range(digits, digits + 4):
        text = f"{value:{plus}.{places}f}"
        if float(text) != 0.0:
            return text
    return f"{0.0:.{digits}f}"


def paired_verdict(values, control, claimed, level=0.95):
    """A claim about one measure, tested on paired differences: ``values`` and ``control`` map
    a seed to that seed's measure (a setting and its control trained with the same seed);
    only seeds in both are used. ``claimed`` is "lower" or "higher": the direction the claim
    says the setting moves the measure.

    Returns a dict: ``n`` (paired seeds), ``mean`` and ``control_mean`` (over those seeds),
    ``diff``, ``low``, ``high`` (mean difference, setting minus control, with its Student-t
    interval at ``level``, :func:`paired_t`) and ``verdict``: "holds" when the whole interval
    lies on the claimed side of 0, "reversed" when it lies on the other side, "unresolved"
    when it contains 0 or fewer than 2 seeds are paired (no interval). Two unpaired intervals
    are never compared: the seed-to-seed variation that a setting and its control share
    cancels in the differences."""
    if claimed not in ("lower", "higher"):
        raise ValueError(f"claimed must be 'lower' or 'higher'; got {claimed!r}.")
    for name, mapping in (("values", values), ("control", control)):
        if not hasattr(mapping, "keys"):
            raise ValueError(f"{name} must map a seed to a number (a dict or Series); got {type(mapping).__name__}.")
    seeds = [s for s in values.keys() if s in control]
    try:
        a = np.array([values[s] for s in seeds], dtype=np.float64)
        b = np.array([control[s] for s in seeds], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("values and control must map seeds to numbers.") from exc
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("values and control must be finite numbers (a NaN measure has no verdict).")
    _check_level(level)
    if not seeds:
        return {"n": 0, "mean": np.nan, "control_mean": np.nan, "diff": np.nan, "low": np.nan, "high": np.nan,
                "verdict": "unresolved"}
    diff, low, high, n = paired_t(a - b, level)
    if n < 2 or low <= 0 <= high:
        verdict = "unresolved"
    else:
        verdict = "holds" if (high < 0) == (claimed == "lower") else "reversed"
    return {"n": int(n), "mean": float(a.mean()), "control_mean": float(b.mean()), "diff": float(diff),
            "low": float(low), "high": float(high), "verdict": verdict}
