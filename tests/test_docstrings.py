"""Every example in the docstrings of the loss, head, metric, angle, theory, check, method,
training, statistics and margin-schedule modules runs as written, in an empty namespace (each example imports what it uses), and
prints what it says."""

import doctest

import pytest

from camri_utils import angles, checks, layers, losses, margin_schedule, methods, metrics, stats, theory, training

MODULES = [angles, checks, layers, losses, metrics, theory, methods, training, stats, margin_schedule]


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_docstring_examples_run(module):
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, globs={})
    assert sum(len(t.examples) for t in tests) > 0, f"{module.__name__} has no docstring examples"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (the report is above)"
