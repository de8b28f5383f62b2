"""camri_utils.exercises: every checker accepts the reference solution and rejects each listed
mistake with its message; hostile answers (wrong type or shape, NaN, None, a function that
raises) get clear messages; checking never shows the reference.

The references are computed by the library (bisection on decision angles, autodiff through the
losses, the losses themselves); the solutions' code is written from closed forms, so a solution
that passes is an independent check of the reference. A few references are also checked here
against a third computation (a grid, a simulation)."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from camri_utils import feature_plane as fp
from camri_utils.exercises import AnswerError, chapter, stems

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "results" / "fashion_mnist-pilot"
PART1 = [(n, e.id) for n in range(1, 7) for e in chapter(n).exercises if e.checked]


@pytest.fixture(scope="module")
def part1():
    """One chapter object per chapter, so that each reference is computed once."""
    return {n: chapter(n) for n in range(1, 7)}


# --------------------------------------------------------------------------------------------
# The declarations
# --------------------------------------------------------------------------------------------
def test_every_chapter_has_exercises_with_question_hint_and_solution():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert stems() == notebooks, "declare each chapter's exercises in camri_utils/exercises (keyed by notebook name)"
    for stem in stems():
        ex = chapter(stem)
        assert ex.exercises and ex.title and ex.objectives, stem
        assert len(set(ex.ids)) == len(ex.ids), stem
        for e in ex.exercises:
            assert e.question and e.hint and (e.solution if not callable(e.solution) else True), (stem, e.id)
            if e.checked:
                assert e.var and e.code and e.mistakes, (stem, e.id)
        for dep in ex.depends_on:
            assert dep in stems() and dep < stem, (stem, dep)


def test_open_exercises_are_open_and_say_so(part1, capsys):
    ex = chapter(6)
    # Exercises 1-4 ask about training outcomes (open); 5, the easy margin, has one answer.
    assert [e.id for e in ex.exercises if e.checked] == ["5"]
    v = ex.verdict(2, 0.5)
    assert v.status == "open" and "no single right answer" in v.message and not v
    ex.check(2, 0.5)
    assert "open exercise" in capsys.readouterr().out
    for n in (10, 11, 12):  # Part III
        for e in chapter(n).exercises:
            assert not e.checked and "depends on your run" in e.solution_text(None)


# --------------------------------------------------------------------------------------------
# Part I: the reference solution passes, each mistake gets its message
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, key", PART1)
def test_reference_solution_is_correct_and_each_mistake_is_named(part1, n, key):
    ex = part1[n]
    e = ex.exercise(key)
    namespace = {}
    exec(e.code, namespace)  # the solution's code, as a student would run it
    v = ex.verdict(key, namespace[e.var])
    assert v.correct, v.message
    assert ex.verdict(key, e.reference(ex.context)).correct if e.reference else True
    for mistake in e.mistakes:
        v = ex.verdict(key, mistake.answer(ex.context))
        assert v.status == "incorrect" and mistake.message in v.message, (mistake.message, v.message)
    # The solution text renders (numbers in it are computed by the library).
    text = e.solution_text(ex.context)
    assert e.code.strip() in text


@pytest.mark.parametrize("n, key", [(n, k) for n, k in PART1 if type(chapter(n).exercise(k).answer).__name__ == "Number"])
def test_a_wrong_number_is_told_without_the_reference(part1, n, key):
    ex = part1[n]
    e = ex.exercise(key)
    ref = float(ex._reference(e)[0])
    v = ex.verdict(key, ref * 1.37 + 0.11)
    assert v.status == "incorrect" and "hint" in v.message
    if abs(ref) > 1e-3:
        for shown in (f"{ref:.3f}", f"{ref:.2f}", f"{ref:.3g}", f"{ref:.4f}"):
            assert shown not in v.message, (shown, v.message)


def test_degrees_instead_of_radians_and_probabilities_instead_of_losses_are_named(part1):
    assert "radians" in part1[3].verdict(1, 90).message
    assert "radians" in part1[4].verdict(4, math.degrees(math.atan(2 / math.sqrt(3)))).message
    assert "np.cos takes radians" in part1[1].verdict("3b", math.cos(55) - math.cos(65)).message
    losses = part1[2]._reference(part1[2].exercise(4))
    assert "probabilities" in part1[2].verdict(4, np.exp(-losses)).message
    assert "wrong class" in part1[2].verdict(4, part1[2].exercise(4).mistakes[2].answer(None)).message.lower()
    assert "scale" in part1[2].verdict(4, np.full(40, losses[0])).message


# --------------------------------------------------------------------------------------------
# References against a third computation
# --------------------------------------------------------------------------------------------
def test_vanishing_region_threshold_agrees_with_a_grid(part1):
    t = float(part1[1]._reference(part1[1].exercise(4))[0])
    assert t == pytest.approx(math.cos(math.radians(72)), rel=1e-12)
    points, _, _ = fp.feature_grid(60.0, 241)

    def class_2_points(norm):
        W = fp.class_weights_2d(5) * [1.0, norm, 1.0, 1.0, 1.0]
        return int(np.sum(np.argmax(fp.logits_on_plane(points, W), axis=1) == 1))

    assert class_2_points(0.97 * t) == 0 and class_2_points(1.03 * t) > 0


def test_boundary_distances_agree_with_the_logits(part1):
    W = fp.class_weights_2d(3, norms=[1.0, 1.6, 0.7])
    b = np.array([0.0, 0.6, -0.4])
    normal = (W[:, 0] - W[:, 1]) / np.linalg.norm(W[:, 0] - W[:, 1])
    for c, d in zip((1, 2, 5), part1[1]._reference(part1[1].exercise(1))):
        logits = fp.logits_on_plane(d * normal[None], c * W, b)[0]  # on the boundary: classes 1 and 2 tie
        assert logits[0] == pytest.approx(logits[1], abs=1e-12)


def test_share_past_pi_agrees_with_a_simulation_through_the_library(part1):
    from camri_utils import angles

    rng = np.random.default_rng(0)
    for dim, key in ((2, "4a"), (512, "4b")):
        x = rng.normal(size=(20000, dim))
        w = np.zeros((dim, 2))
        w[0, 0] = w[1, 1] = 1.0
        cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ w
        simulated = angles.share_past_pi(cos, np.zeros(len(x), int), 0, 0.5)
        assert simulated == pytest.approx(float(part1[3]._reference(part1[3].exercise(key))[0]), abs=0.01)
        assert part1[3].verdict(key, simulated).correct


def test_closed_forms_of_chapters_3_to_5(part1):
    assert part1[3]._reference(part1[3].exercise(1))[0] == pytest.approx(math.pi / 2, abs=1e-5)
    assert part1[4]._reference(part1[4].exercise(4))[0] == pytest.approx(math.atan(2 / math.sqrt(3)), rel=1e-9)
    assert np.allclose(part1[5]._reference(part1[5].exercise(2)), math.pi - np.array([0.1, 0.3, 0.5, 1.0]),
                       atol=1e-5)


# --------------------------------------------------------------------------------------------
# Hostile answers and bad ids
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, key, answer, status, words", [
    (3, 1, ..., "unattempted", "m_meet = ..."),
    (3, 1, None, "unreadable", "None"),
    (3, 1, "1.57", "unreadable", "text"),
    (3, 1, float("nan"), "unreadable", "NaN"),
    (3, 1, float("inf"), "unreadable", "infinite"),
    (3, 1, True, "unreadable", "boolean"),
    (3, 1, [1.0, 2.0], "unreadable", "single number"),
    (3, 1, 1 + 2j, "unreadable", "complex"),
    (1, 1, [0.2, 0.1], "unreadable", "shape (3,)"),
    (1, 1, {"a": 1}, "unreadable", "dict"),
    (1, 1, [0.2, float("nan"), 0.1], "unreadable", "NaN"),
    (1, 1, [[0.2, 0.1], [0.3]], "unreadable", "cannot be read"),
    (2, 1, 3.0, "unreadable", "must be a function"),
    (2, 1, lambda p, C: 1 / 0, "unreadable", "ZeroDivisionError"),
    (2, 1, lambda p: p, "unreadable", "TypeError"),
    (2, 1, lambda p, C: None, "unreadable", "None"),
    (2, 1, lambda p, C: float("nan"), "unreadable", "NaN"),
    (2, 1, lambda p, C: [p, C], "unreadable", "single number"),
    (4, 3, lambda m: 0.5, "unreadable", "shape (2,)"),
    (3, 3, 0.3, "unreadable", "AngularMarginLoss"),
    (5, 3, "CAMRILoss", "unreadable", "CAMRILoss"),
])
def test_hostile_answers_get_clear_messages(part1, n, key, answer, status, words):
    v = part1[n].verdict(key, answer)
    assert v.status == status and words in v.message, v.message
    assert not v


def test_a_loss_class_and_a_loss_for_other_classes_are_refused(part1):
    from camri_utils import AngularMarginLoss, CAMRILoss

    assert "itself" in part1[3].verdict(3, AngularMarginLoss).message
    assert "three classes" in part1[5].verdict(3, CAMRILoss(10, [0, 1], [0.2, 0.4])).message
    assert part1[5].verdict(3, CAMRILoss(3, [0, 1], [0.2, 0.4])).correct


def test_tensors_are_read_like_arrays(part1):
    import tensorflow as tf

    ex = part1[1]
    assert ex.verdict(1, tf.constant(ex._reference(ex.exercise(1)))).correct


def test_unknown_ids_and_chapters_are_clear_errors(part1):
    ex = part1[3]
    with pytest.raises(ValueError, match="no exercise 7.*1, 2, 3, 4a, 4b"):
        ex.check(7, 1.0)
    with pytest.raises(ValueError, match="has parts 4a, 4b"):
        ex.verdict(4, 0.1)
    with pytest.raises(ValueError, match="no exercise"):
        ex.hint(True)
    with pytest.raises(ValueError, match="no chapter 99"):
        chapter(99)
    with pytest.raises(ValueError, match="number or a notebook name"):
        chapter(3.0)
    with pytest.raises(ValueError, match="takes no parameters; got results_dir"):
        chapter(3, results_dir="x")
    assert chapter("angular_margins").stem == chapter("03_angular_margins.ipynb").stem == "03_angular_margins"


def test_check_hint_and_solution_display_and_return_nothing(part1, capsys):
    ex = part1[3]
    assert ex.check(1, math.pi / 2) is None
    assert ex.check(1, math.pi / 4) is None
    assert ex.hint(1) is None and ex.solution(1) is None
    out = capsys.readouterr().out
    assert "✔ Exercise 1: correct" in out and "✘ Exercise 1: not yet" in out
    assert "Hint for exercise 1" in out and "m_meet = math.pi / 2" in out
    assert out.index("✘") < out.index("Solution of exercise 1")  # nothing of the solution before it is asked


# --------------------------------------------------------------------------------------------
# Part II: chapter 7 on the committed pilot records, chapter 8 on fabricated ones
# --------------------------------------------------------------------------------------------
def test_chapter_7_on_the_committed_pilot_records():
    ex = chapter(7, results_dir=str(PILOT))
    for key in ("1", "2", "3"):
        e = ex.exercise(key)
        assert ex.verdict(key, e.reference(ex.context)).correct
        for mistake in e.mistakes:
            wrong = mistake.answer(ex.context)
            if key == "2" and "validation" in mistake.message:
                continue  # the pilot predates the validation split: validation recall is test recall there
            v = ex.verdict(key, wrong)
            assert v.status == "incorrect" and mistake.message in v.message, (key, v.message)
    namespace = {"folder": ex.context.cache["folder"], "frame": ex.context.cache["frame"]}
    for key in ("1", "2", "3"):
        e = ex.exercise(key)
        exec(e.code, namespace)
        assert ex.verdict(key, namespace[e.var]).correct
    assert "not a cell of the table" in ex.verdict(1, {("CAMRI", "Shirt")}).message
    assert "(method, role) pairs" in ex.verdict(1, "CAMRI").message
    with_ce = pd.concat([ex.exercise(2).reference(ex.context), pd.Series({("CE", "worst1"): 0.7})])
    assert "unexpected entries" in ex.verdict(2, with_ce).message
    assert "DataFrame" in ex.verdict(2, ex.exercise(2).reference(ex.context).to_frame()).message


def test_part_2_without_readable_records_says_why():
    v = chapter(7, results_dir="no/such/folder").verdict(1, set())
    assert v.status == "unreadable" and "no protocol results folder" in v.message
    v = chapter(8, results_dir=str(PILOT)).verdict(2, {0.0: 30.0})
    assert v.status == "unreadable" and "normalized-softmax control" in v.message


def _fabricated_chapter_8(folder):
    """Chapter 8's exercises on fabricated runs (cosines of random features with random weights,
    class 7's weight next to Shirt's), their scores stored in ``folder`` as the protocol stores
    them; the records go into the chapter's cache. Returns the chapter and the names its
    solutions use (the chapter's ``spec``, ``sel``, ``records``, ``folder``)."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    important = {"worst1": 6, "worst2": 0, "median": 3}
    camri = [{"run_id": f"camri-{c}-{m}-{s}", "method": "CAMRI", "important_class": c, "seed": s,
              "params": {"margin": m, "scale": 16.0}} for c in important.values() for m in (0.1, 0.3) for s in (0, 1)]
    control = [{"run_id": f"ns-{s}", "method": "NormSoftmax", "important_class": None, "seed": s,
                "params": {"scale": 16.0}} for s in (0, 1)]
    other_scale = [{"run_id": "camri-s8", "method": "CAMRI", "important_class": 6, "seed": 0,
                    "params": {"margin": 0.3, "scale": 8.0}}]  # another scale: left out
    (folder / "runs").mkdir(parents=True)
    from camri_utils.protocol import SCHEMA

    for r in camri + control + other_scale:
        r.update(schema=SCHEMA, recall=[0.5] * 10)  # what load_scores checks the stored arrays against
        w = rng.normal(size=(8, 10))
        w[:, 7] = w[:, 6] + 0.2 * rng.normal(size=8)
        y = np.repeat(np.arange(10), 20)
        x = w.T[y] + rng.normal(size=(200, 8))
        cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0))
        np.savez(folder / "runs" / f"{r['run_id']}.npz", test=cos.astype("float16"), y_test=y, class_weights=w)
    ex = chapter(8)
    ex.context.cache["folder"] = folder
    ex.context.cache["geometry_runs"] = (important, camri, control, 16.0)
    names = {"spec": SimpleNamespace(camri_grid=[{"margin": 0.1, "scale": 16.0}, {"margin": 0.3, "scale": 8.0}]),
             "sel": SimpleNamespace(important=important), "records": camri + control + other_scale, "folder": folder}
    return ex, names


def test_chapter_8_checkers_on_fabricated_runs(tmp_path):
    from camri_utils import angles, protocol

    ex, names = _fabricated_chapter_8(tmp_path / "records")
    for key in ("1", "2", "3"):
        e = ex.exercise(key)
        assert ex.verdict(key, e.reference(ex.context)).correct
        namespace = dict(names)
        exec(e.code, namespace)  # the solution, as the chapter would run it
        assert ex.verdict(key, namespace[e.var]).correct, key
        for mistake in e.mistakes:
            v = ex.verdict(key, mistake.answer(ex.context))
            assert v.status == "incorrect" and mistake.message in v.message, (key, mistake.message, v.message)
        assert e.solution_text(ex.context)
    # An independent recomputation of exercise 2 (the room against classes 0, 2, 4) by hand.
    runs = [r for r in names["records"] if r["method"] == "CAMRI" and r["important_class"] == 6
            and r["params"] == {"margin": 0.3, "scale": 16.0}]
    by_hand = np.mean([angles.weight_angles(protocol.load_scores(names["folder"], r)["class_weights"])[6, [0, 2, 4]].min()
                       for r in runs])
    assert ex.exercise(2).reference(ex.context)[0.3] == pytest.approx(by_hand)
    # A Series, keyed as the chapter's geo gives it, is read like the dict.
    series = pd.Series(ex.exercise(1).reference(ex.context))
    series.index = pd.MultiIndex.from_tuples(series.index, names=["role", "margin"])
    assert ex.verdict(1, series).correct
    in_pi_64 = {(role, m * 64 / math.pi): v for (role, m), v in ex.exercise(1).reference(ex.context).items()}
    assert "multiples of π/64" in ex.verdict(1, in_pi_64).message
    partial = dict(list(ex.exercise(2).reference(ex.context).items())[:-1])
    assert "missing entries" in ex.verdict(2, partial).message
    assert "shape (10,)" in ex.verdict(3, np.zeros(9)).message
    assert "must be a number" in ex.verdict(2, {k: "x" for k in ex.exercise(2).reference(ex.context)}).message


def test_answer_error_is_a_value_error():
    assert issubclass(AnswerError, ValueError)
