import math

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from camri_utils import ArcFaceLoss, CAMRILoss, CosFaceLoss, NormalizedSoftmaxLoss, SphereFaceLoss, theory
from camri_utils.notebook import provenance, run


@pytest.mark.parametrize("n_classes", [2, 3, 10, 43])
@pytest.mark.parametrize("scale", [1.0, 8.0, 30.0])
def test_max_probability_is_softmax_on_the_simplex(n_classes, scale):
    cos = theory.simplex_cosines(n_classes)
    # The simplex cosines are those of real unit vectors: the Gram matrix is positive semidefinite.
    assert np.linalg.eigvalsh(cos).min() > -1e-9
    logits = scale * cos[0]
    p = np.exp(logits[0]) / np.exp(logits).sum()
    assert theory.max_probability(scale, n_classes) == pytest.approx(p, rel=1e-12)
    if 1 - p > 1e-6:  # beyond that 1 - p itself has lost its digits in float64
        assert theory.min_scale(p, n_classes) == pytest.approx(scale, rel=1e-6)


def test_min_scale_rejects_unreachable_probabilities():
    with pytest.raises(ValueError, match=r"probability must be in \(1/n_classes, 1\)"):
        theory.min_scale(0.05, 10)
    with pytest.raises(ValueError, match="n_classes"):
        theory.max_probability(4.0, 1)


@pytest.mark.parametrize("n_classes, margin", [(2, 0.3), (10, 0.5), (1000, 0.5), (10, 1.2)])
def test_max_probability_with_a_margin_is_the_arcface_loss_on_the_simplex(n_classes, margin):
    scale = 6.0
    cos = theory.simplex_cosines(min(n_classes, 50))[:1]
    if n_classes > 50:  # the same row, its other cosines repeated: one sample needs only its row
        cos = np.concatenate([[[1.0]], np.full((1, n_classes - 1), -1.0 / (n_classes - 1))], axis=1)
    loss = ArcFaceLoss(margin, scale, monotonic=False, reduction=None)
    p = np.exp(-float(loss(np.array([0]), cos.astype("float32"))[0]))
    assert theory.max_probability(scale, n_classes, margin=margin) == pytest.approx(p, rel=1e-5)
    # The closed form, in float64: target logit s cos(m), the others s (-1/(C-1)).
    logits = np.concatenate([[scale * math.cos(margin)], np.full(n_classes - 1, -scale / (n_classes - 1))])
    exact = np.exp(logits[0]) / np.exp(logits).sum()
    assert theory.max_probability(scale, n_classes, margin=margin) == pytest.approx(exact, rel=1e-12)
    assert theory.min_scale(exact, n_classes, margin=margin) == pytest.approx(scale, rel=1e-9)


def test_margin_that_no_scale_can_overcome_is_refused():
    with pytest.raises(ValueError, match="no scale makes the target class the most probable"):
        theory.max_probability(4.0, 10, margin=1.7)  # cos(1.7) = -0.13 < -1/9
    with pytest.raises(ValueError, match=r"margin must be a finite number in \[0, 3.14159\]"):
        theory.min_scale(0.9, 10, margin=-0.1)
    with pytest.raises(ValueError, match="margin must be a number"):
        theory.min_scale(0.9, 10, margin="0.5")


def test_balanced_loss_gradient_is_exact():
    from scipy.optimize import check_grad

    x = np.random.default_rng(1).normal(size=2 * 4 * 3)
    err = check_grad(lambda v: theory._balanced_loss_and_grad(v, 3.0, 4, 3)[0],
                     lambda v: theory._balanced_loss_and_grad(v, 3.0, 4, 3)[1], x)
    assert err < 1e-6


@pytest.mark.parametrize("scale, n_classes, dim", [(1.0, 10, 9), (1.0, 10, 16), (4.0, 4, 3)])
def test_best_balanced_loss_is_the_simplex_bound_when_the_dimension_allows(scale, n_classes, dim):
    best = theory.best_balanced_loss(scale, n_classes, dim)
    assert best == pytest.approx(-math.log(theory.max_probability(scale, n_classes)), abs=1e-6)


def test_best_balanced_loss_is_worse_below_c_minus_1_dimensions():
    # Five classes in a plane: the best is the regular pentagon (features on their weights),
    # computed here directly, and it is above the simplex bound that needs 4 dimensions.
    scale, n_classes = 2.0, 5
    cos = np.cos(2 * np.pi * np.arange(n_classes) / n_classes)
    pentagon = -np.log(np.exp(scale * cos[0]) / np.exp(scale * cos).sum())
    best = theory.best_balanced_loss(scale, n_classes, dim=2)
    assert best == pytest.approx(pentagon, abs=1e-6)
    assert best > -math.log(theory.max_probability(scale, n_classes)) + 0.05
    for bad, match in [({"dim": 0}, r"dim must be an integer >= 1"), ({"dim": 2.5}, "dim must be an integer"),
                       ({"scale": -1.0, "dim": 2}, "scale must be a finite number"),
                       ({"restarts": 0, "dim": 2}, "restarts must be an integer >= 1")]:
        kwargs = {"scale": scale, "n_classes": n_classes, **bad}
        with pytest.raises(ValueError, match=match):
            theory.best_balanced_loss(**kwargs)


def test_target_logit_curve_and_decision_angles():
    theta = np.linspace(0, math.pi, 50)
    paper = theory.target_logit_curve(ArcFaceLoss(0.4, 5.0, monotonic=False), theta)
    np.testing.assert_allclose(paper, np.cos(theta + 0.4), atol=1e-5)
    fallback = theory.target_logit_curve(ArcFaceLoss(0.4, 5.0), theta)  # the default past pi - m
    np.testing.assert_allclose(fallback, np.where(theta + 0.4 > math.pi, np.cos(theta) - 0.4 * math.sin(0.4),
                                                  np.cos(theta + 0.4)), atol=1e-5)
    class1 = CAMRILoss(3, 1, 0.5, 8.0)  # the curve of the class asked for
    np.testing.assert_allclose(theory.target_logit_curve(class1, theta, target=1), np.cos(theta + 0.5), atol=1e-5)
    np.testing.assert_allclose(theory.target_logit_curve(class1, theta, target=0), np.cos(theta), atol=1e-5)
    sep = math.radians(90)
    assert theory.decision_angle(NormalizedSoftmaxLoss(1.0), sep) == pytest.approx(sep / 2, abs=1e-6)
    assert theory.decision_angle(ArcFaceLoss(0.5, 1.0), sep) == pytest.approx((sep - 0.5) / 2, abs=1e-6)
    assert theory.decision_angle(CosFaceLoss(0.35, 1.0), sep) == pytest.approx(math.acos(0.35 / math.sqrt(2)) - math.pi / 4, abs=1e-6)
    assert theory.decision_angle(SphereFaceLoss(4.0, 1.0, monotonic=True), sep) == pytest.approx(sep / 5, abs=1e-6)
    camri = CAMRILoss(3, 0, 0.5, 8.0)
    assert theory.decision_angle(camri, sep, target=0, other=1) == pytest.approx((sep - 0.5) / 2, abs=1e-6)
    assert theory.decision_angle(camri, sep, target=1, other=0) == pytest.approx(sep / 2, abs=1e-6)
    with pytest.raises(ValueError, match="two different classes"):
        theory.decision_angle(camri, sep, target=1, other=1)
    with pytest.raises(ValueError, match=r"other 3 is outside \[0, 3\)"):
        theory.decision_angle(camri, sep, target=1, other=3)


def test_provenance_rejects_unknown_profile():
    with pytest.raises(ValueError, match=r"profile must be one of \('quick', 'full'\)"):
        provenance("medium", data="x")


def _notebook(path, *sources):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_run_records_provenance_and_overrides_profile(tmp_path):
    src = _notebook(tmp_path / "ok.ipynb", 'profile = "full"  # the book\'s run\nseed = 0',
                    "from camri_utils.notebook import provenance\nprovenance(profile, data='test data')")
    out = run(src, tmp_path / "out.ipynb", profile="quick")
    stored = nbformat.read(out, as_version=4)
    meta = stored.metadata["camri"]
    assert meta["profile"] == "quick" and meta["data"] == "test data"
    # The injected value is folded into the parameters cell (comment kept); no cell overrides it.
    assert not [c for c in stored.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert stored.cells[0].source == 'profile = "quick"  # the book\'s run\nseed = 0'


def test_failed_run_leaves_previous_output_untouched(tmp_path):
    import papermill

    src = _notebook(tmp_path / "bad.ipynb", 'profile = "full"', "raise RuntimeError('boom')")
    target = tmp_path / "stored.ipynb"
    target.write_text("previous")
    with pytest.raises(papermill.PapermillExecutionError, match="boom"):
        run(src, target)
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ipynb", "stored.ipynb"]

    silent = _notebook(tmp_path / "silent.ipynb", 'profile = "full"', "x = 1")
    with pytest.raises(RuntimeError, match="did not call camri_utils.notebook.provenance"):
        run(silent, target)
    assert target.read_text() == "previous"


@pytest.mark.parametrize("line", [
    "\rextracting gtsrb-final.tar.xz: 0file [00:00, ?file/s]",
    "\rextracting gtsrb-final.tar.xz: 51932file [00:16, 3150.20file/s]",
    "\rGTSRB train:   0%|          | 0/39209 [00:00<?, ?img/s]",
    "\rGTSRB train:  61%|██████    | 24014/39209 [00:02<00:01, 12006.73img/s]",
    "CIFAR-10 test: 100%|██████████| 10000/10000 [00:00<00:00, 10826.71img/s]\n",
    "I0000 00:00:1796655319.372418   17825 port.cc:153] oneDNN custom operations are on.\n",
])
def test_progress_bars_and_native_logs_are_noise(line):
    from camri_utils.notebook import _noise

    assert _noise(line)


@pytest.mark.parametrize("line", ["UserWarning: 12 images of 100 differ from their CSV size [see notes]\n",
                                  "only 40% of the images: 400/1000 [first pass]\n", "epoch 3: loss 0.51\n"])
def test_other_stderr_lines_are_kept(line):
    from camri_utils.notebook import _noise

    assert not _noise(line)


def test_a_stored_run_keeps_no_progress_bar_and_keeps_real_messages(tmp_path):
    """A cell whose loader shows progress bars (they appear only when a cache is cold): the stored
    outputs hold the cell's own messages and no bar, whatever the cache held."""
    src = _notebook(tmp_path / "bars.ipynb", 'profile = "full"',
                    "import sys\nfrom tqdm import tqdm\nfrom camri_utils.notebook import provenance\n"
                    "provenance(profile, data='test data')\n"
                    "for _ in tqdm(range(3), desc='decoding', unit='img', mininterval=0): pass\n"
                    "for _ in tqdm(iter(range(3)), desc='extracting', unit='file', mininterval=0): pass\n"
                    "print('12 images were skipped', file=sys.stderr)\nprint('done')")
    stored = nbformat.read(run(src, tmp_path / "out.ipynb"), as_version=4)
    streams = [o for o in stored.cells[1].outputs if o.get("output_type") == "stream"]
    text = {name: "".join(o["text"] for o in streams if o["name"] == name) for name in ("stderr", "stdout")}
    assert text == {"stderr": "12 images were skipped\n", "stdout": "done\n"}
