"""One direction of imports: camri_utils has no import cycle, and no module imports one of a
higher layer. Read from the source (the import statements, those inside functions included),
so nothing is imported to check it.

The layers are listed here, lowest first, each with why it sits where it does. A new module must
be placed in one; a module may import only modules of lower layers (never one of its own layer).
Inside ``camri_utils.protocol`` the same rule holds between its modules (``PROTOCOL_LAYERS``).
The subpackages ``data`` and ``exercises`` are one unit each here; inside them only cycles are
checked.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "camri_utils"

LAYERS = [
    ({"checks", "io", "stats", "records"},
     "foundations: argument checks, atomic writes and digests, statistics over seeds, finding committed files; "
     "they import nothing of camri_utils, so every layer may use them"),
    ({"layers", "losses", "theory"},
     "the model's pieces (cosine head, margin losses) and the closed forms, on the checks only"),
    ({"metrics", "methods", "imbalance", "margin_schedule", "feature_plane", "models", "angles"},
     "what is built from the pieces: metrics, the method registry, the long-tail formulas, the margin's schedule, "
     "networks, the angle analysis"),
    ({"camri_utils", "plots"},
     "the package's top-level names (head, losses, metric) and the book's figures, over the layers below"),
    ({"environment"}, "the version and hardware record of a run (it reads the package's __version__)"),
    ({"data", "notebook"}, "datasets and running a chapter: they record the environment"),
    ({"training"}, "one trained run: data, model, loss, metrics, angles"),
    ({"stored_runs", "protocol"}, "many trained runs, stored and read back: a chapter's store, the paper's protocol"),
    ({"cost", "exercises"}, "what reads the protocol and the analysis: cost estimates, the chapters' exercises"),
    ({"replication"}, "Part III's stored runs beside the paper's Table 1 (its network beside ours, counted by cost)"),
    ({"findings"}, "chapter 7's prose written from a protocol summary, beside the paper's Table 1 (replication)"),
    ({"rare_findings"}, "chapter 9's prose written from the rare-class summary, in chapter 7's phrasing (findings)"),
    ({"book_answer"}, "the book's answer across its runs, from the replication verdicts in findings' words"),
    ({"instructors", "student", "comparison", "cli"},
     "the tools people call: instructors' and students' pages, the Part III comparison, the command line"),
]

PROTOCOL_LAYERS = [
    ({"spec", "curves", "compact"},
     "the spec, what defines a run (its config and id), ProtocolError and the roles; exact threshold curves; the "
     "compact layout of score files (NumPy only)"),
    ({"schema"}, "what a record and a folder's files must hold (a record's id is checked with the spec's)"),
    ({"locks"}, "the results folder and its locks: needs only ProtocolError"),
    ({"store", "selection"},
     "records and scores on disk (validated by the schema, rewritten under a lock); the choices on validation "
     "(over records in memory, threshold moving with the curves)"),
    ({"workers"}, "several runs, under their locks, in processes; how one run is trained is passed in"),
    ({"runner"}, "the plan, one run (train_one) and the whole protocol (through the workers)"),
    ({"report"}, "the table and the comparisons with the threshold curves, from a folder"),
    ({"sensitivity"}, "CAMRI's margin x scale sweep on a protocol's setup and report"),
    ({"__init__"}, "the package's public names"),
]

def modules(root):
    """{dotted module name: file} of the package at ``root`` (a package's ``__init__.py`` is
    the package's own name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name, known):
    """The module ``name`` names: itself, or the nearest package or module above it."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root):
    """{module: {imported module of the same package: first line}}, from every import
    statement of every module, those inside functions and classes included."""
    known = modules(root)
    top = root.name
    graph = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the package, up level - 1 packages
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # ``from pkg import sub`` imports the submodule; ``from mod import name``, the module
                targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                           for alias in node.names]
            for target in targets:
                if target == top or target.startswith(top + "."):
                    resolved = _resolve(target, known)
                    if resolved and resolved != name:
                        edges.setdefault(resolved, node.lineno)
        graph[name] = edges
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (each a set): the cycles."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _unit(module):
    """The unit a library module is layered as: the package itself, or its first part below it."""
    parts = module.split(".")
    return parts[0] if len(parts) == 1 else parts[1]


def _protocol_part(module):
    parts = module.split(".")
    return "__init__" if len(parts) == 2 else parts[2]


def _ranks(layers):
    return {member: rank for rank, (members, _) in enumerate(layers) for member in members}


def upward_imports(graph, layers, protocol_layers):
    """Every import of a module of the same or a higher layer: ``"a -> b (line n): ..."``."""
    rank, protocol_rank = _ranks(layers), _ranks(protocol_layers)
    problems = []
    for module, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            a, b = _unit(module), _unit(target)
            if a == b == "protocol":
                a, b = _protocol_part(module), _protocol_part(target)
                ranks, where = protocol_rank, "protocol layer"
            elif a == b:
                continue  # inside data or exercises: only cycles are checked
            else:
                ranks, where = rank, "layer"
            if ranks[b] >= ranks[a]:
                problems.append(f"{module} -> {target} (line {line}): {where} {ranks[a]} ({a}) imports {where} "
                                f"{ranks[b]} ({b})")
    return problems


@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE)


def test_every_module_has_a_layer(graph):
    placed, protocol_placed = set(_ranks(LAYERS)), set(_ranks(PROTOCOL_LAYERS))
    units = {_unit(m) for m in graph}
    assert units - placed == set(), "modules without a layer: add them to LAYERS (with the reason)"
    assert placed - units == set(), "LAYERS names modules that do not exist"
    parts = {_protocol_part(m) for m in graph if _unit(m) == "protocol"}
    assert parts == protocol_placed, "camri_utils.protocol's modules and PROTOCOL_LAYERS differ"
    for members, reason in LAYERS + PROTOCOL_LAYERS:
        assert reason.strip(), f"{sorted(members)}: say why this layer sits where it does"


def test_no_import_cycle(graph):
    assert [sorted(c) for c in cycles(graph)] == [], "import cycles in camri_utils"


def test_no_import_from_a_lower_layer_to_a_higher_one(graph):
    assert upward_imports(graph, LAYERS, PROTOCOL_LAYERS) == []


def test_the_checks_find_cycles_and_upward_imports(tmp_path):
    """The walker itself, on a package made for it: an import inside a function, a relative
    import, ``from package import module`` and an upward import are all seen."""
    pkg = tmp_path / "camri_utils"
    (pkg / "protocol").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "checks.py": "def f():\n    from camri_utils.losses import x  # upward, inside a function\n",
        "losses.py": "from camri_utils import checks\n",
        "protocol/__init__.py": "from camri_utils.protocol.store import y\n",
        "protocol/spec.py": "from . import store\n",  # relative, upward inside the protocol
        "protocol/store.py": "import camri_utils.protocol.spec\nfrom camri_utils.losses import x\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(pkg)
    assert graph["camri_utils.checks"] == {"camri_utils.losses": 2}
    assert graph["camri_utils.protocol.spec"] == {"camri_utils.protocol.store": 1}
    assert sorted(map(sorted, cycles(graph))) == [
        ["camri_utils.checks", "camri_utils.losses"], ["camri_utils.protocol.spec", "camri_utils.protocol.store"]]
    layers = [({"checks"}, "low"), ({"losses"}, "mid"), ({"camri_utils", "protocol"}, "high")]
    protocol_layers = [({"spec"}, "low"), ({"store"}, "mid"), ({"__init__"}, "top")]
    assert upward_imports(graph, layers, protocol_layers) == [
        "camri_utils.checks -> camri_utils.losses (line 2): layer 0 (checks) imports layer 1 (losses)",
        "camri_utils.protocol.spec -> camri_utils.protocol.store (line 1): protocol layer 0 (spec) imports "
        "protocol layer 1 (store)"]


# Where a name moved down a layer, it stays importable where callers (chapters, tests, scripts)
# found it: (module, name, the module that now owns it).
MOVED = [
    ("camri_utils.angles", "mean_interval", "camri_utils.stats"),
    ("camri_utils.angles", "paired_verdict", "camri_utils.stats"),
    ("camri_utils.angles", "VERDICTS", "camri_utils.stats"),
    ("camri_utils.protocol.curves", "paired_t", "camri_utils.stats"),
    ("camri_utils.protocol.store", "ProtocolError", "camri_utils.protocol.spec"),
    ("camri_utils.protocol.store", "run_id", "camri_utils.protocol.spec"),
    ("camri_utils.protocol.store", "make_runs_folder", "camri_utils.protocol.locks"),
    ("camri_utils.protocol.store", "results_folder", "camri_utils.records"),
    ("camri_utils.protocol.selection", "ROLES", "camri_utils.protocol.spec"),
    ("camri_utils.protocol.runner", "train_config", "camri_utils.protocol.spec"),
    ("camri_utils.protocol", "ROLES", "camri_utils.protocol.spec"),
    ("camri_utils.protocol", "results_folder", "camri_utils.records"),
]


@pytest.mark.parametrize("old, name, owner", MOVED, ids=[f"{m}.{n}" for m, n, _ in MOVED])
def test_a_moved_name_is_still_found_where_it_was(old, name, owner):
    import importlib

    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(owner), name)
