"""Provenance for the chapters, and the one way they are executed (tests and reference runs).

In a chapter, right after the ``parameters`` cell::

    from camri_utils.notebook import provenance
    provenance(profile, data="scikit-learn digits (real)")

shows the reader which profile, data, library version and date produced the outputs. The
runner (``python -m camri_utils.notebook``) executes a chapter with papermill and copies that
record into the notebook's metadata (``metadata["camri"]``).
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


def _drop_native_log(nb):
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = [ln for ln in output["text"].splitlines(True) if not _NATIVE_LOG.fullmatch(ln.rstrip("\n"))]
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


def _parameters_cell(nb):
    return next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)


def _assignments(source, where):
    """{name: (first line, last line, end column on the last line)} of each top-level
    ``name = value`` statement of ``source`` (0-based lines; the column counts characters), read
    with Python's own parser: a value may span lines, and a ``#`` inside a string is no comment."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"the parameters cell of {where} is not valid Python ({exc.msg}, line {exc.lineno}).") from exc
    lines = source.splitlines()
    found = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if len(targets) == 1 and isinstance(targets[0], ast.Name):
            last = node.end_lineno - 1
            column = len(lines[last].encode()[:node.end_col_offset].decode())  # ast counts UTF-8 bytes
            found[targets[0].id] = (node.lineno - 1, last, column)
    return found


def parameter_names(notebook):
    """The names the ``parameters`` cell of ``notebook`` (a path or a notebook) assigns."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4) if isinstance(notebook, (str, Path)) else notebook
    cell = _parameters_cell(nb)
    return [] if cell is None else list(_assignments(cell.source, notebook))


def _fold_injected_parameters(nb, where="the notebook"):
    """Write the values papermill injected into the notebook's own ``parameters`` cell and drop
    the injected cell: a reader (or a Colab user) then sees, in the one obvious place, the
    values the stored outputs were made with, and changing them there takes effect (an
    injected cell below it would silently override the edit). Each assignment is replaced
    whole (a value over several lines too) and keeps the comment that follows it."""
    import ast

    injected = [c for c in nb.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    target = _parameters_cell(nb)
    if not injected or target is None:
        return
    source = injected[0].source
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.get_source_segment(source, node.value)
    lines = target.source.splitlines()
    spans = _assignments(target.source, where)
    unknown = sorted(set(values) - set(spans))
    if unknown:
        raise ValueError(f"{where} has no parameter {unknown[0]!r}; its parameters cell sets {sorted(spans)}.")
    # From the bottom up, so that the line numbers of the assignments above stay valid.
    for name in sorted(values, key=lambda n: spans[n][0], reverse=True):
        first, last, column = spans[name]
        lines[first:last + 1] = f"{name} = {values[name]}{lines[last][column:]}".splitlines()
    target.source = "\n".join(lines)
    nb.cells = [c for c in nb.cells if c is not injected[0]]


def run(notebook, output=None, profile=None, parameters=None, timeout=1800, cwd=None):
    """Execute ``notebook`` with papermill and write it to ``output`` (default: in place) with
    ``metadata["camri"]`` set from its provenance record. ``profile=None`` keeps the
    notebook's own default. The output is written atomically: a failed run leaves the
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
    known = parameter_names(notebook) if params else []
    unknown = sorted(set(params) - set(known))
    if unknown:  # refused before anything runs: papermill would add it below, as if it existed
        raise ValueError(f"{notebook} has no parameter {unknown[0]!r}; its parameters cell sets {sorted(known)}.")
    with atomic_path(output) as tmp:
        papermill.execute_notebook(
            str(notebook), str(tmp), parameters=params, kernel_name="python3",
            cwd=str(cwd or notebook.parent), progress_bar=False, execution_timeout=timeout,
        )
        nb = nbformat.read(tmp, as_version=4)
        record = _record_of(nb)
        if record is None:
            raise RuntimeError(f"{notebook.name} did not call camri_utils.notebook.provenance().")
        nb.metadata["camri"] = record
        _drop_native_log(nb)
        _fold_injected_parameters(nb, notebook)
        # papermill records where it read and wrote the notebook: machine paths (a temporary
        # file, here) that mean nothing to a reader of the stored notebook.
        for key in ("input_path", "output_path"):
            nb.metadata.get("papermill", {}).pop(key, None)
        nbformat.write(nb, tmp)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m camri_utils.notebook",
        description="Execute chapters with papermill and record their provenance.")
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="override the notebook's profile (default: its own, 'full')")
    parser.add_argument("--output-dir", type=Path, default=None,
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
