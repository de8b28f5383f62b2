"""The rendered book, as a reader's browser shows it: every page of the table of contents opened
in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, or Google Chrome and its
driver, driven by selenium), with no network, at two widths: a laptop's (1200 px) and a
phone's (390 px). On each page: the browser's console holds no error (a failed script, such as
a variable declared twice; remote resources, which cannot load offline, aside), MathJax
(shipped with the site) has typeset every formula without error, every local image loads, no
equation, code cell or output is wider than the column (on a phone a display equation or a table
may scroll in its own box), no table cell breaks a number or a word across lines, no output shows an absolute machine
path or a progress bar, and every internal link resolves. On a laptop no figure is shrunk to fit
the text column (its fonts would shrink with it); on a phone, where every figure is scaled down
to the column, a figure's smallest text stays legible (at least 8 px, measured from the SVG's
own font sizes). A screenshot of each page goes to ``_build/screenshots/`` (a build artefact,
not committed).

The book is built into a temporary folder, unless ``_build/html`` is newer than every source of
the book (then it is reused: CI builds it once with ``make book``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
# The readers' windows: a laptop (the text column is then about 700 px wide) and a phone.
WINDOWS = {"desktop": (1200, 900), "phone": (390, 844)}
MIN_FIGURE_SCALE = 0.8  # on a laptop, a figure shown below 80% of its natural size has small fonts
MIN_PHONE_TEXT_PX = 8.0  # on a phone, a figure's smallest text once the figure is scaled to the column
MACHINE_PATH = re.compile(r"(/root/|/home/[A-Za-z]|/tmp/|/work/|/Users/|[A-Za-z]:\\Users)")
PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\[\d\d:\d\d<|it/s\]")


def _toc_pages():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part.get("chapters", [])]
    return [re.sub(r"\.(md|ipynb)$", "", page) for page in pages]


PAGES = _toc_pages()

# (page, window) pairs owned by other work in progress, with the defect this test sees on each.
# strict: the test fails (XPASS) once a page is fixed, so that its entry here is removed.
KNOWN_DEFECTS = {}


def _sources():
    """Every file the rendered book depends on: its configuration, pages and bibliography."""
    files = [ROOT / "book" / "_config.yml", ROOT / "book" / "_toc.yml", *(ROOT / "book").glob("*.bib")]
    for page in PAGES:
        files += [p for p in ROOT.glob(page + ".*") if p.suffix in (".md", ".ipynb")]
    return files


def _reusable(html):
    """``_build/html`` can stand for the book when every page of the toc is there and newer
    than every source (a page's HTML is written at every build, so the oldest one dates it)."""
    built = [html / f"{page}.html" for page in PAGES]
    if not all(p.exists() for p in built) or not (html / "_static" / "mathjax").is_dir():
        return False
    return min(p.stat().st_mtime for p in built) > max(p.stat().st_mtime for p in _sources())


@pytest.fixture(scope="session")
def html_dir(tmp_path_factory):
    html = ROOT / "_build" / "html"
    if _reusable(html):
        return html
    return _build_book(tmp_path_factory.mktemp("book"), ROOT / "book/_toc.yml")


def _build_book(out, toc):
    """Build the book of table of contents ``toc`` into ``out``; its HTML folder."""
    jb = Path(sys.executable).with_name("jupyter-book")
    jb = str(jb) if jb.exists() else shutil.which("jupyter-book")
    if jb is None:
        pytest.fail("jupyter-book is not installed: install the package with the 'book' extra (make venv).")
    result = subprocess.run(
        [jb, "build", str(ROOT), "--config", str(ROOT / "book/_config.yml"), "--toc", str(toc),
         "--path-output", str(out), "--keep-going"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out / "_build" / "html"


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    # Debian's Chromium here; Google Chrome on GitHub's runners (.github/workflows/book.yml).
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the 'dev' extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    width, height = WINDOWS["desktop"]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={width},{height}",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for its errors
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_script_timeout(60)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


# Runs in the page once MathJax has finished: everything the checks need, measured by the browser.
INSPECT = r"""
const done = arguments[arguments.length - 1];
const ready = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
const timeout = new Promise(resolve => setTimeout(() => resolve("timeout"), 30000));
const loaded = new Promise(resolve => {
  if (document.readyState === "complete" && document.body) resolve();
  else window.addEventListener("load", () => resolve());
});
Promise.race([loaded.then(() => ready).then(() => "ok"), timeout]).then(state => {
  const article = document.querySelector("article.bd-article") || document.querySelector("main")
                  || document.body || document.documentElement;
  const column = article.getBoundingClientRect();
  const name = el => el.tagName.toLowerCase() + (el.className && typeof el.className === "string"
                      ? "." + el.className.trim().split(/\s+/).join(".") : "");
  const snippet = el => (el.textContent || el.getAttribute("src") || "").trim().replace(/\s+/g, " ").slice(0, 80);
  // Raw TeX: a TeX command or delimiter in text outside code, scripts and typeset math.
  const rawTex = [];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest("pre, code, script, style, mjx-container, .cell_output, .highlight")) continue;
    const text = node.textContent;
    if (/\\[a-zA-Z]+|\\\(|\\\[|\$\$/.test(text)) rawTex.push(text.trim().slice(0, 80));
  }
  const mathErrors = [...article.querySelectorAll("mjx-merror, [data-mjx-error]")].map(
    el => el.getAttribute("data-mjx-error") || snippet(el));
  const images = [...article.querySelectorAll("img")].map(img => ({
    src: img.getAttribute("src"), url: img.src, loaded: img.complete && img.naturalWidth > 0,
    natural: img.naturalWidth, shown: img.getBoundingClientRect().width}));
  // Too wide: a box whose content overflows it (it scrolls or clips), or that sticks out of the column.
  const wide = [];
  for (const el of article.querySelectorAll(
      "pre, mjx-container[display='true'], table, .cell_output > div, .output, img, figure")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0) continue;
    const overflow = el.scrollWidth - el.clientWidth;
    const sticksOut = box.right - column.right;
    if (overflow > 2 || sticksOut > 2)
      wide.push(`${name(el)} ${sticksOut > 2 ? "sticks out" : "scrolls"} by ${Math.round(Math.max(overflow, sticksOut))} px: ${snippet(el)}`);
  }
  // A token (a number or a word) of a table cell laid out on two lines: broken inside it.
  const brokenTokens = [];
  for (const cell of article.querySelectorAll("table td, table th")) {
    const texts = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    while (texts.nextNode()) {
      const node = texts.currentNode;
      // A compound may break after its hyphen or slash between letters ("T-shirt/" "top"), as
      // typography allows; a number ("-0.006"), a word or any other token may not.
      for (const token of node.textContent.matchAll(/\S+?(?:(?<=[A-Za-z)][-\/])(?=[A-Za-z(])|(?=\s)|$)/g)) {
        const range = document.createRange();
        range.setStart(node, token.index);
        range.setEnd(node, token.index + token[0].length);
        const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.bottom)));
        if (lines.size > 1) brokenTokens.push(token[0]);
      }
    }
  }
  const outputs = [...article.querySelectorAll(".cell_output")].map(el => el.innerText);
  const links = [...document.querySelectorAll("a[href]")].map(a => a.href);
  done({state, column: column.width, rawTex, mathErrors, images, wide, brokenTokens, outputs, links,
        height: document.documentElement.scrollHeight});
}).catch(err => done({state: "error: " + err}));
"""


def _link_defect(url, html):
    """None if an internal link (file:// inside the site) resolves, else what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    target = Path(unquote(parts.path))
    try:
        target.relative_to(html)
    except ValueError:
        return f"{url}: outside the site"
    if target.is_dir():
        target = target / "index.html"
    if not target.exists():
        return f"{target.relative_to(html)}: no such file"
    if parts.fragment and target.suffix == ".html":
        ids = re.findall(r'\bid="([^"]+)"', target.read_text(errors="replace"))
        if unquote(parts.fragment) not in ids:
            return f"{target.relative_to(html)}#{parts.fragment}: no such anchor"
    return None


# Matplotlib's SVG draws each text as paths in a group ``<g id="text_N">``, scaled from its
# glyphs' 100-unit size to the font size in the figure's units (points): scale(size/100 -size/100).
_SVG_TEXT = re.compile(r'<g id="text_\d+">\s*(?:<!--.*?-->\s*)?<g transform="[^"]*?scale\(([0-9.e+-]+)[ ,]', re.S)
_SVG_VIEWBOX = re.compile(r'<svg[^>]*\bviewBox="[-0-9.e]+ [-0-9.e]+ ([0-9.e+]+) [0-9.e+]+"')


def svg_smallest_text(svg):
    """(smallest font size, viewBox width) of a Matplotlib SVG's text, both in the SVG's user
    units; None for an SVG that is not Matplotlib's or holds no text."""
    sizes = [float(s) * 100 for s in _SVG_TEXT.findall(svg)]
    width = _SVG_VIEWBOX.search(svg)
    if "Matplotlib" not in svg[:2000] or not sizes or width is None:
        return None
    return min(sizes), float(width.group(1))


def test_svg_smallest_text_reads_matplotlib_font_sizes(tmp_path):
    """The phone check's measure, against font sizes set by hand (7 pt is the smallest here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("a title with $\\theta + m$", fontsize=12)
    ax.set_xlabel("a label", fontsize=7)
    ax.tick_params(labelsize=9)
    ax.text(0.5, 0.5, "$\\cos\\theta$", fontsize=11, rotation=90)
    fig.savefig(tmp_path / "f.svg")
    plt.close(fig)
    smallest, width = svg_smallest_text((tmp_path / "f.svg").read_text())
    assert smallest == pytest.approx(7.0) and width == pytest.approx(216.0)  # 3 in = 216 pt
    assert svg_smallest_text('<svg viewBox="0 0 10 10"><g id="text_1"></g></svg>') is None


def _console_errors(entries):
    """The console's errors, less the remote resources that cannot load offline (the Colab
    badge): a script that fails, a local file that is missing."""
    errors = []
    for entry in entries:
        if entry.get("level") != "SEVERE":
            continue
        message = entry.get("message", "")
        if entry.get("source") == "network" and not message.startswith("file:"):
            continue
        errors.append(message[:200])
    return errors


def test_console_errors_keep_script_errors_and_drop_offline_remote_resources():
    entries = [
        {"level": "SEVERE", "source": "javascript",
         "message": "file:///b/x.html 60:18 Uncaught SyntaxError: Identifier 'THEBE_JS_URL' has already been declared"},
        {"level": "SEVERE", "source": "network",
         "message": "https://colab.research.google.com/assets/colab-badge.svg - Failed to load resource"},
        {"level": "SEVERE", "source": "network", "message": "file:///b/_static/missing.js - Failed to load resource"},
        {"level": "WARNING", "source": "console-api", "message": "a warning"},
    ]
    assert _console_errors(entries) == [entries[0]["message"][:200], entries[2]["message"][:200]]


def _params():
    for page in PAGES:
        for window in WINDOWS:
            reason = KNOWN_DEFECTS.get((page, window))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(page, window, marks=marks, id=f"{page.split('/')[-1]}-{window}")


@pytest.mark.parametrize(("page", "window"), list(_params()))
def test_page_renders_cleanly(page, window, html_dir, browser):
    path = html_dir / f"{page}.html"
    assert path.exists(), f"{page}: not built"
    width, height = WINDOWS[window]
    browser.set_window_size(width, height)
    for attempt in range(3):
        # Rarely (twice in many runs, on different pages) the script met a page whose body was
        # not there yet ("Cannot read properties of null"): load the page again and retry.
        browser.get_log("browser")  # drop what earlier pages logged
        browser.get(path.as_uri())
        found = browser.execute_async_script(INSPECT)
        if not str(found.get("state")).startswith("error"):
            break
    console = _console_errors(browser.get_log("browser"))
    assert found.get("state") == "ok", f"{page}: MathJax did not finish ({found.get('state')})"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(width, min(int(found["height"]) + 100, 30000))
    suffix = "" if window == "desktop" else f"-{window}"
    browser.save_screenshot(str(SCREENSHOTS / f"{page.replace('/', '__')}{suffix}.png"))

    defects = [f"console error: {e}" for e in console]
    defects += [f"raw TeX: {t}" for t in found["rawTex"]]
    defects += [f"MathJax error: {e}" for e in found["mathErrors"]]
    for img in found["images"]:
        if not img["url"].startswith("file:"):
            continue  # remote images (the Colab badge) cannot load offline; they are links' labels
        if not img["loaded"]:
            defects.append(f"image does not load: {img['src']}")
        elif window == "desktop":
            if img["natural"] and img["shown"] and img["shown"] / img["natural"] < MIN_FIGURE_SCALE:
                defects.append(f"figure shrunk to {img['shown'] / img['natural']:.0%} of its size to fit "
                               f"the {found['column']:.0f} px column: {img['src']}")
        elif img["src"].endswith(".svg") and img["shown"]:
            text = svg_smallest_text(Path(unquote(urlsplit(img["url"]).path)).read_text(errors="replace"))
            if text and text[0] * img["shown"] / text[1] < MIN_PHONE_TEXT_PX:
                defects.append(f"figure text {text[0] * img['shown'] / text[1]:.1f} px once the figure is "
                               f"scaled to the {found['column']:.0f} px column: {img['src']}")
    for wide in found["wide"]:
        # On a phone a display equation may scroll within its own box (MathJax 3 breaks no lines);
        # code and outputs wrap there (book/_static/phone.css), and nothing else may be wider.
        if window == "phone" and wide.startswith(("mjx-container", "table")) and " sticks out " not in wide:
            continue  # a table too wide for a phone scrolls in its own box (phone.css), its tokens whole
        defects.append(f"wider than the {found['column']:.0f} px column: {wide}")
    defects += [f"table cell breaks a token across lines: {token}" for token in found["brokenTokens"][:20]]
    for text in found["outputs"]:
        for line in text.splitlines():
            if MACHINE_PATH.search(line):
                defects.append(f"machine path in an output: {line[:100]}")
            if PROGRESS_BAR.search(line):
                defects.append(f"progress bar in an output: {line[:100]}")
    defects += [d for d in (_link_defect(url, html_dir.resolve()) for url in set(found["links"])) if d]
    assert not defects, f"{page}: {len(defects)} defect(s):\n" + "\n".join(defects)


# --------------------------------------------------------------------------------------------
# Solutions hidden (issue 20): every solution folded until the reader opens it
# --------------------------------------------------------------------------------------------
def _solution_cells(page):
    """(code cells, Markdown cells) tagged ``solution`` in a chapter's notebook."""
    import nbformat

    path = ROOT / f"{page}.ipynb"
    if not path.exists():  # a Markdown page, or a chapter not written yet
        return 0, 0
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    return (sum(c.cell_type == "code" for c in tagged), sum(c.cell_type == "markdown" for c in tagged))


SOLUTION_PAGES = [p for p in PAGES if p.startswith("notebooks/") and any(_solution_cells(p))]
# Built by themselves when the whole book is not there to reuse: a Part I chapter (solution code with
# outputs and figures) and a Part II one (solutions reading the committed records).
SOLUTION_PAGES_BUILT_ALONE = ["notebooks/01_softmax_geometry", "notebooks/07_protocol_fashion_mnist"]


@pytest.fixture(scope="session")
def solutions_html(tmp_path_factory):
    """The whole book when ``_build/html`` is current (CI builds it with ``make book``), else a small
    book of ``SOLUTION_PAGES_BUILT_ALONE`` (a whole build takes minutes)."""
    html = ROOT / "_build" / "html"
    if _reusable(html):
        return html
    out = tmp_path_factory.mktemp("solutions-book")
    toc = out / "_toc.yml"
    toc.write_text(yaml.safe_dump({"format": "jb-book", "root": PAGES[0], "parts": [
        {"caption": "Chapters", "chapters": [{"file": p} for p in SOLUTION_PAGES_BUILT_ALONE]}]}))
    return _build_book(out, toc)


# What of each solution a reader sees: the text and pictures inside every code cell tagged
# `solution` (div.cell.tag_solution) and every "Solutions" dropdown, less the handle that opens it
# (a <summary>, the dropdown's title). With `open`, the reader's clicks first: every handle.
SOLUTIONS_SHOWN = r"""
const [open, done] = [arguments[0], arguments[arguments.length - 1]];
const whenLoaded = new Promise(resolve => {
  if (document.readyState === "complete") resolve(); else window.addEventListener("load", () => resolve());
});
whenLoaded.then(() => new Promise(resolve => setTimeout(resolve, 200))).then(() => {  // togglebutton's setup
  const article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const boxes = [...article.querySelectorAll(".admonition")].filter(
    el => /^\s*Solutions?\b/.test((el.querySelector(".admonition-title") || {}).textContent || ""));
  const cells = [...article.querySelectorAll("div.cell.tag_solution")];
  if (open) {
    for (const s of article.querySelectorAll("div.cell.tag_solution details > summary")) s.click();
    for (const box of boxes) box.querySelector(".admonition-title").click();
  }
  // Opened content fades in (the theme's animation): measure once it has.
  return new Promise(resolve => setTimeout(resolve, open ? 1500 : 0)).then(() => [article, boxes, cells]);
}).then(([article, boxes, cells]) => {
  const handle = "summary, .admonition-title, .toggle-button";
  const seen = el => el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})
                     && [...el.getClientRects()].some(r => r.width > 0 && r.height > 0);
  const shown = root => {
    const found = [];
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      const host = node.nodeType === Node.TEXT_NODE ? node.parentElement : node;
      if (host.closest(handle)) continue;
      if (node.nodeType === Node.ELEMENT_NODE) {
        if (node.matches("img, svg, canvas, table") && !node.closest("svg.tb-icon") && seen(node))
          found.push("<" + node.tagName.toLowerCase() + ">");
        continue;
      }
      if (!node.textContent.trim() || !seen(host)) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      if ([...range.getClientRects()].some(r => r.width > 0 && r.height > 0))
        found.push(node.textContent.trim().replace(/\s+/g, " ").slice(0, 60));
    }
    return found;
  };
  done({cells: cells.map(shown), boxes: boxes.map(shown)});
}).catch(err => done({error: String(err)}));
"""


@pytest.mark.parametrize("page", SOLUTION_PAGES, ids=[p.split("/")[-1] for p in SOLUTION_PAGES])
def test_solutions_are_hidden_until_opened(page, solutions_html, browser):
    """Every solution (code cell, output and text) is folded when the page loads; opening its handle
    shows it (so the check sees what a reader would, and a solution shown by default would fail)."""
    path = solutions_html / f"{page}.html"
    if not path.exists():
        pytest.skip(f"{page}: not in the small book built for this test (build the whole book, make book, "
                    "to check every chapter)")
    browser.set_window_size(*WINDOWS["desktop"])
    browser.get(path.as_uri())
    closed = browser.execute_async_script(SOLUTIONS_SHOWN, False)
    assert "error" not in closed, closed
    code, text = _solution_cells(page)
    assert (len(closed["cells"]), len(closed["boxes"])) == (code, text), \
        f"{page}: {code} solution code cell(s) and {text} Solutions dropdown(s) in the notebook, " \
        f"{len(closed['cells'])} and {len(closed['boxes'])} on the page"
    visible = [f"solution code cell {i + 1}: {shown[:3]}" for i, shown in enumerate(closed["cells"]) if shown]
    visible += [f"Solutions dropdown {i + 1}: {shown[:3]}" for i, shown in enumerate(closed["boxes"]) if shown]
    assert not visible, f"{page}: solutions visible before the reader opens them:\n" + "\n".join(visible)
    browser.get(path.as_uri())
    opened = browser.execute_async_script(SOLUTIONS_SHOWN, True)
    assert all(opened["cells"]) and all(opened["boxes"]), \
        f"{page}: a solution shows nothing once opened (the check would not see it either): {opened}"
