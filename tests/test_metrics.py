import keras
import numpy as np
import pytest

from camri_utils import CAMRILoss, CosineHead, ImportantClassRecall
from camri_utils import metrics as M


@pytest.fixture
def preds(rng):
    y = rng.integers(0, 4, size=200)
    y_hat = np.where(rng.uniform(size=200) < 0.7, y, rng.integers(0, 4, size=200))
    return y, y_hat


def test_recall_and_precision_match_counting(preds):
    y, y_hat = preds
    recall = M.per_class_recall(y, y_hat, 4)
    precision = M.per_class_precision(y, y_hat, 4)
    for c in range(4):
        hits = np.sum((y == c) & (y_hat == c))
        assert recall[c] == pytest.approx(hits / np.sum(y == c))
        assert precision[c] == pytest.approx(hits / np.sum(y_hat == c))
    assert M.accuracy(y, y_hat) == pytest.approx(np.mean(y == y_hat))
    assert M.important_class_recall(y, y_hat, 2, 4) == pytest.approx(recall[2])
    cm = M.confusion_matrix(y, y_hat, 4)
    assert cm.sum() == 200 and np.all(np.diag(cm) == [np.sum((y == c) & (y_hat == c)) for c in range(4)])


def test_scores_and_one_hot_are_accepted(preds, rng):
    y, y_hat = preds
    scores = rng.uniform(-1, 1, size=(200, 4))
    scores[np.arange(200), y_hat] = 2.0  # argmax = y_hat
    one_hot = np.eye(4)[y]
    np.testing.assert_allclose(M.per_class_recall(one_hot, scores), M.per_class_recall(y, y_hat, 4))


def test_class_never_seen_or_never_predicted_gives_zero():
    y = np.array([0, 0, 1, 1])
    y_hat = np.array([0, 1, 1, 1])
    np.testing.assert_allclose(M.per_class_recall(y, y_hat, 3), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(M.per_class_precision(y, y_hat, 3), [1.0, 2 / 3, 0.0])


def test_per_class_table(preds):
    y, y_hat = preds
    table = M.per_class_table(y, y_hat, 4, important_classes=1, class_names=list("abcd"))
    assert list(table["name"]) == list("abcd")
    assert table["important"].tolist() == [False, True, False, False]
    assert table["support"].sum() == 200
    assert table.attrs["accuracy"] == pytest.approx(np.mean(y == y_hat))


@pytest.mark.parametrize("call,match", [
    (lambda: M.per_class_recall([0, 1, 5], [0, 1, 1], 3), r"y_true: label 5 is outside \[0, 3\)"),
    (lambda: M.per_class_recall([0, 1], [0, 1, 1], 3), "2 samples but y_pred has 3"),
    (lambda: M.per_class_recall([0.5, 1], [0, 1], 3), "y_true: label 0.5 is not a whole number"),
    (lambda: M.per_class_recall([0, 1], [0, 1], 3.0), "n_classes must be an integer >= 2"),
    (lambda: M.per_class_recall(np.zeros((2, 4)), [0, 1], 3), r"y_true of shape \(2, 4\) do not fit 3 classes"),
    (lambda: M.important_class_recall([0, 1], [0, 1], 7, 3), r"important_class 7 is outside \[0, 3\)"),
    (lambda: M.per_class_table([0, 1], [0, 1], 3, important_classes=[1, 2.0]), "important class must be an integer"),
    (lambda: M.per_class_recall([0, 1], [0, 1]), "n_classes is needed"),
    (lambda: M.per_class_recall([], [], 3), "no samples"),
    (lambda: ImportantClassRecall(-1), r"class_id -1 is outside \[0, inf\)"),
    (lambda: ImportantClassRecall(True), "class_id must be an integer class index"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_keras_metric_agrees_with_sklearn(rng):
    y = rng.integers(0, 5, size=300)
    scores = rng.normal(size=(300, 5)).astype(np.float32)
    metric = ImportantClassRecall(2)
    for chunk in np.array_split(np.arange(300), 7):  # stateful over batches
        metric.update_state(y[chunk], scores[chunk])
    assert float(metric.result()) == pytest.approx(M.important_class_recall(y, scores, 2), abs=1e-6)
    metric.reset_state()
    metric.update_state(np.eye(5)[y], scores)
    assert float(metric.result()) == pytest.approx(M.important_class_recall(y, scores, 2), abs=1e-6)
    with pytest.raises(ValueError, match="outside"):
        ImportantClassRecall(7).update_state(y, scores)


def test_keras_metric_in_fit_ignores_the_margin(rng):
    """Recall logged during fit comes from argmax of the cosines, not of the margin logits."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, CosineHead(3)(keras.layers.Dense(8)(inputs)))
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    model.compile(optimizer="adam", loss=CAMRILoss(3, 1, 1.5, 16.0),
                  metrics=[ImportantClassRecall(1, name="recall_1")])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = M.important_class_recall(y, model.predict(x, verbose=0), 1)
    assert logs["recall_1"] == pytest.approx(expected, abs=1e-6)
    clone = ImportantClassRecall.from_config(ImportantClassRecall(1, name="r").get_config())
    assert clone.class_id == 1 and clone.name == "r"


def test_a_bad_label_reads_the_same_everywhere(rng):
    """One check, one wording: losses, metrics and angles reject label 3 of 3 classes alike."""
    from camri_utils import angles, losses

    message = r"label 3 is outside \[0, 3\): labels must be class indices 0..2\."
    with pytest.raises(ValueError, match=message):
        M.per_class_recall([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match=message):
        angles.own_class_angles(np.ones((2, 2)), np.ones((2, 3)), [0, 3])
    with pytest.raises(ValueError, match=message):
        losses.CAMRILoss(3, 1)([0, 3], np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=message):
        ImportantClassRecall(1).update_state([0, 3], np.zeros((2, 3), np.float32))


def test_keras_metric_reads_soft_label_rows_by_their_argmax():
    metric = ImportantClassRecall(1)
    smoothed = 0.8 * np.eye(3)[[1, 1, 0]] + 0.2 / 3
    metric.update_state(smoothed, np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.9, 0.0, 0.1]], np.float32))
    assert float(metric.result()) == pytest.approx(0.5)
