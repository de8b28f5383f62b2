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
             and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts
             and ".locks" not in p.parts]  # a results folder's run locks: local, ignored on purpose
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


# Ready to publish: the licence, the citation file and the CI workflow.

def _linter():
    import shutil
    import sys

    exe = Path(sys.executable).with_name("check-jsonschema")
    exe = str(exe) if exe.exists() else shutil.which("check-jsonschema")
    if exe is None:
        pytest.fail("check-jsonschema is not installed: install the package with the 'dev' extra (make venv).")
    return exe


def _lint(schema, *paths):
    import subprocess

    return subprocess.run([_linter(), "--builtin-schema", schema, *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def test_licence_file_matches_pyproject():
    import tomllib

    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text


def test_citation_file_is_valid_and_names_the_book_and_the_paper():
    import camri_utils

    result = _lint("vendor.citation-file-format", ROOT / "CITATION.cff")
    assert result.returncode == 0, result.stdout + result.stderr
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert cff["title"] == config["title"] and cff["version"] == camri_utils.__version__
    assert cff["license"] == "MIT" and cff["repository-code"] == config["repository"]["url"]
    paper = next(r for r in cff["references"] if "CAMRI" in r["title"])
    bib = (ROOT / "book" / "references.bib").read_text()
    entry = bib[bib.index("@inproceedings{nishiyama2022camri"):].split("\n}\n")[0]
    assert re.sub(r"[{}]", "", re.search(r"title\s*=\s*\{(.*)\},", entry)[1]) == paper["title"]
    assert str(paper["year"]) in entry and [a["family-names"] for a in paper["authors"]] == [
        "Nishiyama", "Fukuchi", "Akimoto", "Sakuma"]


WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_workflows_pass_the_linter():
    assert WORKFLOWS, "no workflow in .github/workflows"
    result = _lint("vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_linter_rejects_a_broken_workflow(tmp_path):
    """The lint above can fail: a job without runs-on, and a step with an unknown key, are refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: make test\n        shell_typo: bash\n")
    result = _lint("vendor.github-workflows", broken)
    assert result.returncode != 0 and "broken.yml" in result.stdout + result.stderr


def test_workflow_tests_builds_and_publishes_the_book():
    """The README's commands on every push, and the built site deployed to GitHub Pages from main."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["branches"] == ["main"] and "pull_request" in triggers
    build, deploy = workflow["jobs"]["test-and-build"], workflow["jobs"]["deploy"]
    commands = [step.get("run", "") for step in build["steps"]]
    assert "make test" in commands and "make book" in commands
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme  # the README's commands, not others
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html" and "refs/heads/main" in upload["if"]
    assert deploy["needs"] == "test-and-build" and "refs/heads/main" in deploy["if"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy["steps"])
