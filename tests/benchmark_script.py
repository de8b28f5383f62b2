"""A benchmark script of benchmarks/ as a module, for the tests of its flags and reports."""

import contextlib
import importlib.util
import pathlib
import sys

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def load(name, path):
    """The script at ``path`` as module ``name``, registered in sys.modules while a test uses it
    (the throughput benchmark's dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def loaded(script):
    """benchmarks/<script>.py as a module while the block runs (for a module-scoped fixture)."""
    name = f"{script}_benchmark"
    try:
        yield load(name, BENCHMARKS / f"{script}.py")
    finally:
        sys.modules.pop(name, None)
