"""Provenance for the chapters, and the one way they are executed (tests and reference runs).

In a chapter, right after the ``parameters`` cell::

    from camri_utils.notebook import provenance
    provenance(profile, data="scikit-learn digits (real)")

shows the reader which profile, data, library version and date produced the outputs. The
runner (``python -m camri_utils.notebook``) executes a chapter with papermill and copies that
record into the notebook's metadata (``metadata["camri"]``). The values a run is given are
written into the chapter's one ``parameters`` cell, value by value, as Python literals, before it
runs: the stored cell shows what the outputs were made with.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import signal
import sys
from pathlib import Path

from camri_utils.environment import device_summary, environment
from camri_utils.io import atomic_path

__all__ = ["PROFILES", "provenance", "fixture_banner", "FIXTURE_BANNER", "parameter_names", "run", "main"]

PROFILES = ("quick", "full")
KEY = "camri_provenance"  # the record travels in the banner output's metadata
# TensorFlow's native start-up log (absl, C++), which the kernel captures from its stderr when
# TensorFlow is imported: machine noise for a reader, dropped from the stored outputs.
_NATIVE_LOG = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:.]+\s+\d+ [\w.]+\.cc:\d+\] .*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.")
# A progress bar's status line (tqdm's, as the loaders show them while they extract or decode):
# "GTSRB train:  61%|██████    | 24014/39209 [00:02<00:01, 12006.73img/s]" or, with no total,
# "extracting x.tar.xz: 6042file [00:02, 3020.90file/s]". Its lines depend on whether a cache was
# warm when the notebook ran, so they are dropped from the stored outputs too.
_PROGRESS = re.compile(r".*: +(\d+%\|.*\| *)?[\d.]+[kMG]?(/[\d.]+[kMG]?)?\w* \[\d+:\d\d(:\d\d)?(<[\d:?]+)?, [^\]]*\]")


def _noise(line):
    line = line.strip("\r\n")
    return bool(_NATIVE_LOG.fullmatch(line) or _PROGRESS.fullmatch(line.strip()))


def _drop_noise(nb):
    """Drop TensorFlow's native start-up log and progress bars from the stderr outputs."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept, after_noise = [], False
        for output in cell.outputs:
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = []
                # splitlines splits at "\r" too: each redrawn state of a bar is a line of its own
                for line in output["text"].splitlines(True):
                    if _noise(line) or (after_noise and not line.strip()):  # a closed bar leaves a newline
                        after_noise = True
                        continue
                    after_noise = False
                    lines.append(line)
                if not "".join(lines).strip():
                    continue
                output["text"] = "".join(lines)
            kept.append(output)
        cell.outputs = kept


def provenance(profile, data, **extra):
    """Check ``profile``, then display the record of this run: profile, data source,
    library / TensorFlow / Keras versions, device, date (UTC) and any ``extra`` settings.
    Returns nothing, so that it can end a cell without echoing the record."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}; got {profile!r}.")
    env = environment()
    tf_version = env["tensorflow"]
    record = {
        "profile": profile,
        "data": data,
        "camri_utils": env["camri_utils"],
        "tensorflow": tf_version,
        "keras": env["keras"],
        "python": env["python"],
        "device": device_summary(env),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        **extra,
    }
    text = (f"Run: profile '{profile}' | data: {data} | camri_utils {record['camri_utils']}, "
            f"TensorFlow {tf_version}, Keras {record['keras']} | {record['device']} | {record['date']}")
    markdown = (f"**Run:** profile `{profile}` · data: {data} · camri_utils {record['camri_utils']}, "
                f"TensorFlow {tf_version}, Keras {record['keras']} · {record['device']} · {record['date']}")
    try:
        from IPython.display import display

        display({"text/plain": text, "text/markdown": markdown}, metadata={KEY: record}, raw=True)
    except ImportError:  # pragma: no cover
        print(text)


FIXTURE_BANNER = ("synthetic fixture in the real file format: shows that the cells run; "
                  "these are not results")


def fixture_banner(source, where=None):
    """Display a warning banner when ``source`` (a :class:`camri_utils.data.Source`, or a
    Dataset's ``source``) is a synthetic fixture; display nothing for real data. Call it at the
    top of a chapter and at the top of each cell that shows a result. Returns True when shown.

    The banner is a MyST ``warning`` admonition in the book and plain text elsewhere."""
    source = getattr(source, "source", source)
    if getattr(source, "real", True):
        return False
    what = f" ({where})" if where else ""
    text = f"WARNING{what}: {FIXTURE_BANNER}."
    markdown = f"```{{warning}}\n**{FIXTURE_BANNER[0].upper() + FIXTURE_BANNER[1:]}.**{what}\n```"
    try:
        from IPython.display import display

        display({"text/plain": text, "text/markdown": markdown}, raw=True)
    except ImportError:  # pragma: no cover
        print(text)
    return True


def _record_of(nb):
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if KEY in output.get("metadata", {}):
                return dict(output["metadata"][KEY])
    return None


def _parameters_cells(nb):
    return [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]


def _parameters_cell(nb, where="the notebook"):
    """The one cell tagged ``parameters`` (None if there is none). Two are refused: papermill
    injects below the first, so a value set in the second would override what the run was
    given, and the stored outputs would not be those of the values shown."""
    cells = _parameters_cells(nb)
    if len(cells) > 1:
        raise ValueError(f"{where} has {len(cells)} cells tagged 'parameters' (cells {', '.join(map(str, cells))}): "
                         "keep the tag on one cell and move every parameter there.")
    return nb.cells[cells[0]] if cells else None


def _value_spans(source, where):
    """{name: [(start, end), ...]}: the character span of the value of each top-level
    assignment ``name = value`` (or ``name: type = value``) of ``source``, read with Python's own
    parser whatever the layout (several on one line, a value over several lines, a ``#`` in a
    string)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"the parameters cell of {where} is not valid Python ({exc.msg}, line {exc.lineno}).") from exc
    # ast counts columns in UTF-8 bytes: offsets of each line's start, in bytes and in characters.
    lines = source.splitlines(True)
    starts, at = [], 0
    for line in lines:
        starts.append(at)
        at += len(line)

    def offset(lineno, col):
        return starts[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode())

    found = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if len(targets) == 1 and isinstance(targets[0], ast.Name) and node.value is not None:
            value = node.value
            found.setdefault(targets[0].id, []).append(
                (offset(value.lineno, value.col_offset), offset(value.end_lineno, value.end_col_offset)))
    return found


def _assignments(source, where):
    """The names the top-level assignments of ``source`` set, in order."""
    return list(_value_spans(source, where))


def parameter_names(notebook):
    """The names the ``parameters`` cell of ``notebook`` (a path or a notebook) assigns."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4) if isinstance(notebook, (str, Path)) else notebook
    cell = _parameters_cell(nb, notebook)
    return [] if cell is None else _assignments(cell.source, notebook)


def _set_values(cell, texts, where):
    """Replace, in the parameters ``cell``, the value of each assignment named in ``texts``
    ({name: Python source of the new value}) and nothing else: the layout, the other
    assignments on the same line and the comments stay."""
    spans = _value_spans(cell.source, where)
    unknown = sorted(set(texts) - set(spans))
    if unknown:
        raise ValueError(f"{where} has no parameter {unknown[0]!r}; its parameters cell sets {sorted(spans)}.")
    twice = sorted(name for name in texts if len(spans[name]) > 1)
    if twice:
        raise ValueError(f"the parameters cell of {where} assigns {twice[0]!r} {len(spans[twice[0]])} times: keep one "
                         "assignment, so that the value a run is given is the value it uses.")
    source = cell.source
    for name in sorted(texts, key=lambda n: spans[n][0][0], reverse=True):  # from the end: offsets stay valid
        first, last = spans[name][0]
        source = source[:first] + texts[name] + source[last:]
    cell.source = source


def _fold_injected_parameters(nb, where="the notebook"):
    """Write the values papermill injected into the notebook's own ``parameters`` cell and drop
    the injected cell: a reader (or a Colab user) then sees, in the one obvious place, the
    values the stored outputs were made with, and changing them there takes effect (an
    injected cell below it would silently override the edit). Only each value is replaced
    (a value over several lines too); the comments and the layout stay."""
    import ast

    injected = [c for c in nb.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    target = _parameters_cell(nb, where)
    if not injected or target is None:
        return
    source = injected[0].source
    texts = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            texts[node.targets[0].id] = ast.get_source_segment(source, node.value)
    _set_values(target, texts, where)
    nb.cells = [c for c in nb.cells if c is not injected[0]]


def _literal(value, name):
    """Python source for ``value``, a literal that reads back equal and of the same type: None,
    bools, ints, finite floats, strings, bytes, and lists, tuples, sets and dicts of them; a
    NumPy scalar is passed as the Python number it holds and a path as its string. Anything
    else is refused naming the parameter."""
    import ast
    import math
    import os

    def text(v):
        if type(v).__module__ == "numpy" and hasattr(v, "item") and getattr(v, "ndim", None) == 0:
            v = v.item()  # a NumPy scalar: the Python number (or bool, str) it holds
        if isinstance(v, os.PathLike):
            v = os.fspath(v)
        if v is None or isinstance(v, (bool, int, bytes)):
            return repr(v), v
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError(f"parameter {name!r}: {v} has no literal in a notebook cell; pass a finite number.")
            return repr(v), v
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False), v  # double quotes, as papermill writes strings
        if isinstance(v, (list, tuple, set, frozenset)):
            items = [text(x) for x in v]
            inner = ", ".join(t for t, _ in items)
            values = [x for _, x in items]
            if isinstance(v, list):
                return f"[{inner}]", values
            if isinstance(v, tuple):
                return f"({inner}{',' if len(items) == 1 else ''})", tuple(values)
            return (f"{{{inner}}}" if items else "set()"), set(values)
        if isinstance(v, dict):
            items = [(text(k), text(x)) for k, x in v.items()]
            return "{" + ", ".join(f"{k[0]}: {x[0]}" for k, x in items) + "}", {k[1]: x[1] for k, x in items}
        raise TypeError(f"parameter {name!r}: a {type(v).__module__}.{type(v).__qualname__} cannot be written into "
                        "a notebook's parameters cell; pass None, a bool, number, string, bytes or path, or a list, "
                        "tuple, set or dict of them (an array as .tolist()).")

    source, plain = text(value)
    back = ast.literal_eval(source)
    assert back == plain and type(back) is type(plain), (name, source)  # pragma: no cover - a bug here
    return source


def run(notebook, output=None, profile=None, parameters=None, timeout=1800, cwd=None):
    """Execute ``notebook`` with papermill and write it to ``output`` (default: in place) with
    ``metadata["camri"]`` set from its provenance record. ``profile=None`` keeps the
    notebook's own default. ``parameters`` replace the values of the notebook's one
    ``parameters`` cell, as Python literals (tuples, bytes and sets stay what they are; a NumPy
    scalar is its number, a path its string), before it runs: the stored cell shows the values
    the outputs were made with. The output is written atomically: a failed run leaves the
    previous file untouched. Raises papermill's ``PapermillExecutionError`` naming the cell."""
    import nbformat
    import papermill

    notebook = Path(notebook)
    output = Path(output) if output else notebook
    params = dict(parameters or {})
    if profile is not None:
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}; got {profile!r}.")
        params["profile"] = profile
    source_nb = nbformat.read(notebook, as_version=4)
    cell = _parameters_cell(source_nb, notebook)
    if params:
        if cell is None:
            raise ValueError(f"{notebook} has no cell tagged 'parameters' to set {sorted(params)} in.")
        # Refused before anything runs: an unknown name, a name set twice, a value with no literal.
        _set_values(cell, {name: _literal(value, name) for name, value in params.items()}, notebook)
    with atomic_path(output) as tmp:
        given = tmp.with_name(tmp.name + ".in.ipynb")
        nbformat.write(source_nb, given)
        try:
            papermill.execute_notebook(
                str(given), str(tmp), kernel_name="python3",
                cwd=str(cwd or notebook.parent), progress_bar=False, execution_timeout=timeout,
            )
        finally:
            given.unlink(missing_ok=True)
        nb = nbformat.read(tmp, as_version=4)
        record = _record_of(nb)
        if record is None:
            raise RuntimeError(f"{notebook.name} did not call camri_utils.notebook.provenance().")
        nb.metadata["camri"] = record
        _drop_noise(nb)
        # papermill records where it read and wrote the notebook: machine paths (a temporary
        # file, here) that mean nothing to a reader of the stored notebook.
        for key in ("input_path", "output_path"):
            nb.metadata.get("papermill", {}).pop(key, None)
        nbformat.write(nb, tmp)
    return output


def _folder_arg(text):
    if not text.strip():  # Path("") would be the working directory
        raise argparse.ArgumentTypeError("--output-dir is empty; give a folder, or leave it out to write in place")
    return Path(text)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m camri_utils.notebook",
        description="Execute chapters with papermill and record their provenance.")
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="override the notebook's profile (default: its own, 'full')")
    parser.add_argument("--output-dir", type=_folder_arg, default=None,
                        help="write executed notebooks here (default: in place)")
    args = parser.parse_args(argv)
    # A terminated run unwinds like Ctrl-C, so run() removes its temporary file.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for nb in args.notebooks:
        out = args.output_dir / nb.name if args.output_dir else nb
        print(f"running {nb} -> {out}", flush=True)
        run(nb, out, profile=args.profile)
        print(json.dumps(_record_of(__import__("nbformat").read(out, as_version=4))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
