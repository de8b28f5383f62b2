"""benchmarks/prebuild.py: its flags' errors and its report on known numbers (its timings are the
benchmark's to measure, not a test's)."""

import pytest

from tests import benchmark_script


@pytest.fixture(scope="module")
def bench():
    with benchmark_script.loaded("prebuild") as module:
        yield module


@pytest.mark.parametrize("argv,message", [
    (["--repeats", "0"], "--repeats must be a whole number of at least 1; got '0'"),
    (["--repeats", "two"], "--repeats must be a whole number of at least 1; got 'two'"),
    (["--write", "report.txt"], "--write report.txt: give a .md file in an existing folder."),
    (["--write", "no-such-folder/PREBUILD.md"], "--write no-such-folder/PREBUILD.md: give a .md file in an existing folder."),
])
def test_bad_flags_are_refused_naming_the_flag(bench, argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_the_report_gives_medians_traces_and_the_share_saved(bench):
    results = {"mlp, ce": {"with": [1.0, 3.0, 2.0], "without": [4.0, 2.5, 3.0], "traces": (1, 2)}}
    text = bench.report(results, {"own": 0.5, "normal": 0.25, "niced": 0.0}, "abc1234", 3)
    assert "| mlp, ce | 1 / 2 | 2.00 | 3.00 | 33% |" in text  # medians 2 and 3: a third saved
    assert "`python benchmarks/prebuild.py --repeats 3` at abc1234" in text
    assert "this process 50% of all cores, other processes 25% at normal priority and 0% niced" in text
    assert "CPU during" not in bench.report(results, None, None, 3)
