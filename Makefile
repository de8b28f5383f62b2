# The two commands of the README: `make book` and `make test`. Both create .venv on first use
# and reinstall into it only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-jax test-torch test-oldest book notebooks records-pages student venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu,dev,book]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# The suite runs on every core (pytest-xdist; TEST_WORKERS=0 for a serial run): each test
# module on one worker, the chapters' notebook tests spread, the longest units first (tests/conftest.py).
TEST_WORKERS ?= auto

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

# The backend-independent library under JAX, in its own environment without TensorFlow (not in
# CI; see the README's "Keras backends"). Regenerate tests/data/camri_<backend>.keras with
# tests/data/make_backend_models.py under the backend.
JAX_VENV ?= .venv-jax
JAX_STAMP := $(JAX_VENV)/.installed
BACKEND_TESTS ?= tests/test_backends.py tests/test_layers.py tests/test_metrics.py tests/test_angles.py

$(JAX_STAMP): pyproject.toml
	$(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(JAX_VENV)/bin/python -m pip install --quiet keras "jax[cpu]" numpy scikit-learn pandas matplotlib tqdm pytest
	$(JAX_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(JAX_STAMP)

test-jax: $(JAX_STAMP)
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m pytest -p no:cacheprovider $(BACKEND_TESTS)

# The same tests under PyTorch, in .venv-torch; not in CI either. TORCH is what pip installs:
# tested with 2.13.0's CPU wheel (plain PyPI gives Linux the larger CUDA build; add
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu for the CPU one).
TORCH ?= torch==2.13.0
TORCH_VENV ?= .venv-torch
TORCH_STAMP := $(TORCH_VENV)/.installed

$(TORCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TORCH_VENV)/bin/python -m pip install --quiet keras "$(TORCH)" numpy scikit-learn pandas matplotlib tqdm pytest
	$(TORCH_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(TORCH_STAMP)

test-torch: $(TORCH_STAMP)
	KERAS_BACKEND=torch $(TORCH_VENV)/bin/python -m pytest -p no:cacheprovider $(BACKEND_TESTS)

# The library's tests under the oldest versions pyproject.toml declares (each ">=X" bound as
# "==X.*": the bound's release series, its latest patch) of keras, tensorflow-cpu, numpy,
# scikit-learn, pandas, matplotlib, tqdm and filelock, in .venv-oldest; the tests that need no notebooks
# or book. Not in CI.
OLDEST_VENV ?= .venv-oldest
OLDEST_STAMP := $(OLDEST_VENV)/.installed
OLDEST_TESTS ?= tests/test_losses.py tests/test_layers.py tests/test_metrics.py tests/test_angles.py \
	tests/test_backends.py tests/test_training.py

$(OLDEST_STAMP): pyproject.toml
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST_VENV)/bin/python -m pip install --quiet pytest $$($(PYTHON) tests/oldest_pins.py)
	$(OLDEST_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(OLDEST_STAMP)

test-oldest: $(OLDEST_STAMP)
	$(OLDEST_VENV)/bin/python -m pip list 2>/dev/null | grep -Ei '^(keras|tensorflow-cpu|numpy|scikit-learn|pandas|matplotlib|tqdm|filelock) '
	$(OLDEST_VENV)/bin/python -m pytest -p no:cacheprovider -x $(OLDEST_TESTS)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --config book/_config.yml --toc book/_toc.yml --path-output . -W -n --keep-going
	@echo "Open _build/html/index.html"

# Re-run every chapter in the full profile and store it with its outputs and provenance.
notebooks: $(STAMP)
	$(PY) -m camri_utils.notebook notebooks/[0-9][0-9]_*.ipynb

# After records are committed to a results folder (a long run's new records): the pages that
# read them. Chapters 10 and 11 (their stored outputs count the records: nbval compares them),
# the instructors' page, and the book's answer in the introduction, README and chapter 7.
records-pages: $(STAMP)
	$(PY) -m camri_utils.notebook notebooks/10_cifar10.ipynb notebooks/11_gtsrb.ipynb
	$(PY) -m camri_utils.instructors --write book/instructors.md
	$(PY) -m camri_utils.book_answer --write book/intro.md README.md notebooks/07_protocol_fashion_mnist.ipynb

# The student edition: every chapter without its solutions (cells tagged `solution`), outputs
# cleared, checks kept, in _build/student. Refuses (exit 1) a chapter with an untagged solution.
student: $(STAMP)
	$(PY) -m camri_utils.student --output _build/student notebooks/[0-9][0-9]_*.ipynb

clean:
	rm -rf _build $(VENV) $(JAX_VENV) $(TORCH_VENV)
