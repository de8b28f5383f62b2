"""Print the oldest versions pyproject.toml declares, as pip requirements: each ``>=X`` bound of
keras, numpy, scikit-learn, scipy, pandas, matplotlib, tqdm, filelock (base) and tensorflow-cpu (extra ``cpu``)
as ``==X.*`` (the bound's release series, its latest patch). Used by ``make test-oldest``."""

import re
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

PACKAGES = ("keras", "tensorflow-cpu", "numpy", "scikit-learn", "scipy", "pandas", "matplotlib", "tqdm", "filelock")


def oldest_pins(pyproject=Path(__file__).resolve().parents[1] / "pyproject.toml"):
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    pins = {}
    for requirement in project["dependencies"] + project["optional-dependencies"]["cpu"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement.strip())
        if match and match.group(1) in PACKAGES:
            pins[match.group(1)] = f"{match.group(1)}=={match.group(2)}.*"
    missing = set(PACKAGES) - set(pins)
    if missing:
        sys.exit(f"no '>=' bound in pyproject.toml for {sorted(missing)}")
    return [pins[p] for p in PACKAGES]


if __name__ == "__main__":
    print(" ".join(oldest_pins()))
