"""environment.yml and pyproject.toml describe the same dependencies."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXTRAS_IN_ENV = ("cpu", "dev", "book")


def _parse(spec):
    spec = spec.strip()
    name = re.match(r"[A-Za-z0-9_.\-]+", spec).group(0)
    constraint = spec[len(name):].replace(" ", "")
    return re.sub(r"[-_.]+", "-", name).lower(), constraint


def pyproject_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in EXTRAS_IN_ENV:
        specs += project["optional-dependencies"][extra]
    return dict(_parse(s) for s in specs)


def environment_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            specs += dep["pip"]
        elif not re.match(r"(python|pip)\b(?![-\w])", dep):
            specs.append(dep)
    return dict(_parse(s) for s in specs)


def test_environment_matches_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_parser_sees_a_drift():
    # The comparison above must notice a changed bound or a missing package.
    env = environment_requirements()
    changed = dict(env, numpy=">=9")
    assert changed != pyproject_requirements()
    assert {k: v for k, v in env.items() if k != "keras"} != pyproject_requirements()


def test_version_is_single_sourced():
    import camri_utils

    text = (ROOT / "pyproject.toml").read_text()
    assert 'version = { attr = "camri_utils.__version__" }' in text
    assert re.fullmatch(r"\d+\.\d+\.\d+", camri_utils.__version__)


def test_nothing_under_results_or_notebooks_is_git_ignored():
    """Committed results must reach a clean clone: an ignore rule once swallowed results/*/runs/."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(ROOT)) for d in ("results", "notebooks", "book")
             for p in (ROOT / d).rglob("*") if p.is_file() and "_build" not in p.parts
             and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT,
                             input="\n".join(files), capture_output=True, text=True).stdout.split()
    assert ignored == [], f"git ignores files that must be committed: {ignored[:5]}"


def test_the_wheel_holds_every_module_of_the_package(tmp_path):
    """A non-editable install (Colab's pip install from git) must get every subpackage: the
    protocol package was once missing from the wheel."""
    import subprocess
    import sys
    import zipfile

    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                           "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and ("setuptools" in proc.stderr or "connection" in proc.stderr.lower()):
        pytest.skip(f"cannot build a wheel here: {proc.stderr[-200:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("camri_utils-*.whl"))
    inside = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "camri_utils").rglob("*.py") if "__pycache__" not in p.parts}
    assert modules <= inside, sorted(modules - inside)
