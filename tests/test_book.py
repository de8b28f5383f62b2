"""The book builds offline with warnings as errors (what `make book` runs)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_book_builds_without_warnings(tmp_path):
    jb = Path(sys.executable).with_name("jupyter-book")
    if not jb.exists():
        jb = shutil.which("jupyter-book")
    if jb is None:
        pytest.fail("jupyter-book is not installed: install the package with the 'book' extra (make venv).")
    result = subprocess.run(
        [str(jb), "build", str(ROOT), "--config", str(ROOT / "book/_config.yml"),
         "--toc", str(ROOT / "book/_toc.yml"), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    intro = (html / "book" / "intro.html").read_text()
    assert "CAMRI" in intro and "Nishiyama" in intro  # the citation resolved
    assert (html / "book" / "references.html").exists()
    # MathJax ships with the site: no page loads it (or anything else) from a CDN.
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert "cdn.jsdelivr.net" not in text and "mathjax@" not in text.lower(), f"{page.name} loads MathJax from a CDN"
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert chapters
    for nb in chapters:
        page = (html / "notebooks" / f"{nb.stem}.html").read_text()
        # The Colab launch button of this chapter, and the provenance banner of its stored run.
        assert f"colab.research.google.com/github/camri-book/camri-book/blob/main/notebooks/{nb.name}" in page
        assert "Traceback" not in page, f"{nb.name}: an error rendered"
        assert "profile <code" in page and "camri_utils" in page, f"{nb.name}: no provenance banner rendered"
    # Markdown outputs are rendered as MyST: chapter 7's protocol table is a table, not pipes.
    protocol_page = (html / "notebooks" / "07_protocol_fashion_mnist.html").read_text()
    assert "| CAMRI |" not in protocol_page
    assert '<th class="head"><p>method</p></th>\n<th class="head"><p>worst1</p></th>' in protocol_page
