import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def isolated_caches(tmp_path, monkeypatch):
    """Caches and data locations of the test's own: a decoded cache and a Keras home under
    ``tmp_path``, no CAMRI_DATA_DIR or CAMRI_MIRROR from the environment (a module that needs
    it for every test makes it autouse: ``pytestmark = pytest.mark.usefixtures(...)``)."""
    monkeypatch.setenv("CAMRI_CACHE_DIR", str(tmp_path / "decoded-cache"))
    (tmp_path / "keras-home").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.delenv("CAMRI_DATA_DIR", raising=False)
    monkeypatch.delenv("CAMRI_MIRROR", raising=False)


@pytest.fixture
def float32_policy():
    """Restore the global dtype policy after a test that changes it."""
    before = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(before)



# Parallel runs (`make test`: pytest-xdist, -n auto --dist loadscope --no-loadscope-reorder).
# Every test module runs whole on one worker, in its own order, as in a serial run: its
# module-scoped fixtures are built once, and tests that share files never overlap. The book's
# build and browser tests (tests/test_book.py, tests/test_browser.py) are one unit, so only one
# worker builds or reads a book at a time. The chapters' tests (tests/test_notebooks.py, each a
# kernel of its own) are spread one by one. The longest units start first (LONGEST, then the
# chapters' nbval re-executions, their quick-profile runs, the rest): a long unit left for the
# end keeps one worker busy while the others wait. (pytest-xdist's xdist_group marks would say
# the same, but --dist loadgroup ignores them under pytest 9.2: pytest-xdist issue 1386.)
SPREAD = "test_notebooks.py"
UNITS = {"test_book.py": "book", "test_browser.py": "book"}
# The units that took a minute or more of one worker (2026-12-07, `pytest --durations`), longest
# first; re-measure when a module grows.
LONGEST = ("test_protocol_store.py", "test_training.py", "book", "test_part3_records.py", "test_benchmark.py",
           "test_part3_protocol.py", "test_protocol.py")


def parallel_unit(nodeid):
    """The unit a test is scheduled in: its module, the book, or (a chapter test) itself."""
    module = nodeid.split("::", 1)[0]
    name = module.rsplit("/", 1)[-1]
    return nodeid if name == SPREAD else UNITS.get(name, module)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown where it is not installed
def pytest_xdist_make_scheduler(config, log):
    """--dist loadscope with this suite's units (:func:`parallel_unit`)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return parallel_unit(nodeid)

    return UnitScheduling(config, log)


def start_rank(nodeid):
    """Where a test's unit starts in a parallel run: :data:`LONGEST` in order, then the chapters'
    nbval tests, their quick-profile runs, and every other unit (in collection order)."""
    name = parallel_unit(nodeid).split("::", 1)[0].rsplit("/", 1)[-1]  # a file name, or "book"
    if name in LONGEST:
        return LONGEST.index(name)
    if name == SPREAD:
        return len(LONGEST) + (0 if "::test_stored_notebook_passes_nbval[" in nodeid else 1)
    return len(LONGEST) + 2


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the longest tests first
        items.sort(key=lambda item: start_rank(item.nodeid))  # stable: each module keeps its order
