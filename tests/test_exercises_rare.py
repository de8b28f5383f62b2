"""Chapter 9's exercises (camri_utils.exercises.rare): on the committed rare-class and balanced
records, the references against independent recomputations (closed forms, the record files read
with json), each solution's code and each named mistake; and on fabricated or missing records,
a clear message instead of a crash."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from camri_utils.exercises import chapter, stems

ROOT = Path(__file__).resolve().parents[1]
RARE = ROOT / "results" / "fashion_mnist-rare"
BALANCED = ROOT / "results" / "fashion_mnist"


@pytest.fixture(scope="module")
def ex():
    return chapter(9, results_dir=str(RARE), balanced_dir=str(BALANCED))


def _ce_by_seed(folder):
    # Independent of the library's store: the record files themselves.
    runs = [json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*.json"))]
    return {r["seed"]: r for r in runs if r["method"] == "CE" and r["profile"] in ("rare", "full")}


def test_chapter_9_is_declared_with_its_parameters():
    assert "09_rare_class_fashion_mnist" in stems()
    assert chapter(9).stem == chapter("rare_class_fashion_mnist").stem == "09_rare_class_fashion_mnist"
    assert chapter(9).where == "records"
    with pytest.raises(ValueError, match="takes balanced_dir, results_dir; got scale"):
        chapter(9, scale=8.0)
    with pytest.raises(ValueError, match="takes no parameters; got balanced_dir"):
        chapter(3, balanced_dir="x")


def test_references_match_independent_recomputations(ex):
    rare = _ce_by_seed(RARE)
    counts = np.array(next(iter(rare.values()))["train_class_counts"], float)
    assert counts[6] == 500 and np.all(np.delete(counts, 6) == 5000)
    # 1: closed form, the others' margin is 0.5 * 10^(-1/4), Shirt's 0.5.
    want = np.where(np.arange(10) == 6, 0.5, 0.5 * 10 ** -0.25)
    np.testing.assert_allclose(ex.exercise(1).reference(ex.context), want, rtol=1e-12)
    # 2: log(5000 / 500).
    assert ex.exercise(2).reference(ex.context) == pytest.approx(math.log(10), rel=1e-12)
    # 3: the record files, paired by seed.
    balanced = _ce_by_seed(BALANCED)
    seeds = sorted(set(rare) & set(balanced))
    assert len(seeds) >= 2
    by_hand = sum(balanced[s]["recall"][6] - rare[s]["recall"][6] for s in seeds) / len(seeds)
    assert ex.exercise(3).reference(ex.context) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand > 0  # rarity costs CE recall of Shirt


@pytest.mark.parametrize("key", ["1", "2", "3"])
def test_solution_code_passes_and_every_mistake_is_named(ex, key):
    e = ex.exercise(key)
    rare, balanced = _ce_by_seed(RARE), _ce_by_seed(BALANCED)
    namespace = {"counts": next(iter(rare.values()))["train_class_counts"], "c": 6,
                 "rare_ce": rare, "balanced_ce": balanced}
    exec(e.code, namespace)  # the solution, with the names the chapter defines
    assert ex.verdict(key, namespace[e.var]).correct
    assert ex.verdict(key, e.reference(ex.context)).correct
    for mistake in e.mistakes:
        v = ex.verdict(key, mistake.answer(ex.context))
        assert v.status == "incorrect" and mistake.message in v.message, (key, mistake.message, v.message)
    assert e.solution_text(ex.context)
    # A plain wrong answer gets the hint's pointer, not the reference.
    v = ex.verdict(key, np.full(10, 0.3) if key == "1" else 0.123)
    assert v.status == "incorrect" and "hint" in v.message


def test_open_exercises_are_open(ex):
    for key in ("4", "5"):
        assert ex.verdict(key, 1.0).status == "open"


def test_bad_answers_are_said_clearly(ex):
    assert "shape" in ex.verdict(1, np.zeros((2, 5))).message
    assert "must be numbers" in ex.verdict(1, "0.5").message
    assert "NaN" in ex.verdict(1, np.full(10, np.nan)).message
    assert ex.verdict(1, np.zeros(9)).status == "incorrect"  # one margin per class: 9 are not it
    assert "must be a number" in ex.verdict(2, "2.3").message
    assert ex.verdict(3, ...).status == "unattempted"


def test_missing_or_unsuitable_records_are_said_clearly(tmp_path):
    v = chapter(9, results_dir="no/such/folder").verdict(1, np.zeros(10))
    assert v.status == "unreadable" and "cannot be read (no/such/folder)" in v.message
    v = chapter(9, results_dir=str(RARE), balanced_dir="no/such/balanced").verdict(3, 0.4)
    assert v.status == "unreadable" and "no/such/balanced" in v.message
    # The balanced folder in place of the rare one: no fixed important class.
    v = chapter(9, results_dir=str(BALANCED)).verdict(1, np.zeros(10))
    assert v.status == "unreadable" and "not a rare-class run" in v.message


def test_counts_without_a_single_bias_and_runs_without_shared_seeds(tmp_path):
    ex = chapter(9)
    # Two classes rarer than the rest: post-hoc adjustment moves two thresholds, no single bias.
    ex.context.cache["rare"] = (6, [5000.0] * 5 + [2500.0, 500.0] + [5000.0] * 3, {0: {}})
    v = ex.verdict(2, 2.3)
    assert v.status == "unreadable" and "no single post-hoc bias" in v.message
    ex = chapter(9)
    ex.context.cache["rare"] = (6, [5000.0] * 6 + [500.0] + [5000.0] * 3, {0: {"recall": [0.5] * 10}})
    ex.context.cache["balanced"] = {1: {"recall": [0.7] * 10}}
    v = ex.verdict(3, 0.2)
    assert v.status == "unreadable" and "share no seed" in v.message
