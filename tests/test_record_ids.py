"""The committed records keep their ids: every record under ``results/`` is still found under
its file's name by the code that looks it up (the protocol's plan, the sweep's plan, a chapter's
run store), and its name is still the hash of the form the ids were written with."""

import hashlib
import json
from pathlib import Path

import pytest

from camri_utils import protocol, stored_runs
from camri_utils.training import identity

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _committed(folder):
    """{file stem: record} of the records in ``folder``."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))
            if p.name not in ("protocol.json", "sweep.json", stored_runs.MARKER)}


def _written_form(key):
    """The id as the committed records were named: SHA-256 of the sorted JSON, 20 hex digits."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def _folder(name):
    folder = RESULTS / name
    if not folder.is_dir():
        pytest.skip(f"results/{name} is not committed")
    return folder


@pytest.mark.parametrize("name", ["fashion_mnist", "fashion_mnist-rare", "cifar10-cpu", "gtsrb-cpu"])
def test_every_committed_protocol_record_is_found_by_its_plan(name):
    folder = _folder(name)
    spec, kind = protocol.read_spec(folder)
    committed = _committed(folder / "runs")
    assert committed, f"results/{name} holds no records"
    for stem, record in committed.items():
        assert _written_form({"config": identity(record["config"]), "method": record["method"], "data": kind}) == stem
        assert protocol.run_id(record["config"], record["method"], kind) == stem
    found, ignored = protocol.current_records(spec, kind, protocol.load_records(folder))
    assert ignored == 0 and {r["run_id"] for r in found} == set(committed)


def test_every_committed_sweep_record_is_found_by_the_sweep_s_plan():
    folder = _folder("fashion_mnist-sensitivity")
    sweep = protocol.SweepSpec.from_dict(json.loads((folder / "sweep.json").read_text())["sweep"])
    committed = _committed(folder / "runs")
    assert committed
    found = {r["run_id"] for r in protocol.sweep_records(sweep, folder, _folder("fashion_mnist"))[0]}
    assert set(committed) <= found  # the rest of the sweep is read from the protocol's folder


def test_the_committed_schema_1_records_keep_the_ids_they_were_written_with():
    folder = _folder("fashion_mnist-pilot")
    committed = _committed(folder / "runs")
    records = protocol.load_records(folder)
    assert len(records) == len(committed) > 0
    assert all(committed[r["run_id"]] == r for r in records)


def test_every_committed_stored_run_is_found_under_its_id():
    folder = _folder("digits_2d")
    store = stored_runs.RunStore(folder)
    committed = _committed(folder)
    assert len(committed) == len(store) > 0
    for stem, record in committed.items():
        assert _written_form({"config": identity(record["config"]), "data": record["data_kind"]}) == stem
        run = store.get(record["config"], record["data_kind"])  # by id: checked against the arrays' digest
        assert run is not None and run.config == record["config"]
