"""Part III (CIFAR-10, GTSRB, AwA2 chapters): stored as a quick run on a synthetic fixture, every
result banner-labelled as such, and the fixture banner helper itself."""

from pathlib import Path

import nbformat
import pytest

from camri_utils.data import Source
from camri_utils.notebook import FIXTURE_BANNER, fixture_banner

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = {"09_cifar10": "cifar10", "10_gtsrb": "gtsrb", "11_awa2": "awa2"}


def test_banner_only_for_fixtures(capsys):
    assert fixture_banner(Source("somewhere", real=True)) is False
    assert fixture_banner(Source("somewhere", real=False), "angles") is True
    out = capsys.readouterr().out
    assert FIXTURE_BANNER in out or out == ""  # IPython's display prints the text form outside a kernel


@pytest.mark.parametrize("stem", list(CHAPTERS))
def test_chapter_is_in_the_toc_as_part_three(stem):
    toc = (ROOT / "book" / "_toc.yml").read_text()
    part3 = toc[toc.index("Part III"):]
    assert f"notebooks/{stem}" in part3


@pytest.mark.parametrize("stem", list(CHAPTERS))
def test_stored_fixture_run_is_labelled(stem):
    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    meta = nb.metadata["camri"]
    intro = nb.cells[0].source
    assert "synthetic fixture" in intro and "not results" in intro  # said at the top
    if "synthetic fixture" not in meta["data"]:
        return  # a real run: no banners needed
    code = [c for c in nb.cells if c.cell_type == "code"]
    banners = [c for c in code if any(FIXTURE_BANNER in o.get("data", {}).get("text/plain", "") for o in c.outputs)]
    # every cell that shows a figure or a table starts with the banner
    results = [c for c in code if any("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
                                      or "text/html" in o.get("data", {})
                                      for o in c.outputs)]
    assert results and all(c in banners for c in results)
    for c in results:
        first = c.outputs[0]
        assert FIXTURE_BANNER in first.get("data", {}).get("text/plain", ""), c.source[:80]
    # the important class's paper numbers are labelled as the paper's
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "These are the paper's numbers, not ours." in markdown
    for command in ("camri protocol --dataset", "--shard", "camri protocol report"):
        assert command in markdown
