"""The benchmark report (benchmarks/report.py) from small synthetic result files: its tables, verdicts
and plots. No benchmark runs here."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.cdc import commit_timeline
from benchmarks.harness import LATENCY_SAMPLES_KEY, THROUGHPUT_TIMELINE_KEY

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _figure(name: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    figure = {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline_name": None,
        "baseline_value": None,
        "target": None,
        "met": None,
        "details": {},
    }
    figure.update(extra)
    return figure


def _write_run(folder: Path, stamp: str, results: list[tuple[str, list[dict[str, Any]]]], load: float = 1.0) -> None:
    payload = {
        "measured_at": stamp,
        "machine": {"python": "3.11", "cpus": 2, "load_average": [load, load, load]},
        "results": [{"benchmark": b, "figures": figures, "seconds": 1.0, "notes": []} for b, figures in results],
    }
    (folder / f"{stamp}.json").write_text(json.dumps(payload))


def _latency(p50: float, p95: float, p99: float, **p50_details: Any) -> tuple[str, list[dict[str, Any]]]:
    return (
        "cdc_end_to_end_latency",
        [
            _figure("p50", p50, "s", details=p50_details),
            _figure("p95", p95, "s"),
            _figure("p99", p99, "s", target="<= 10 s", met=p99 <= 10),
        ],
    )


def _load(value: float, baseline: float, name: str = "load definitions (all assets)") -> tuple[str, list[dict]]:
    ratio_ok = value / baseline <= 1.5
    return (
        "code_location_load",
        [_figure(name, value, "s", baseline_name="bare import", baseline_value=baseline,
                 target="<= 1.5x the bare import", met=ratio_ok)],
    )  # fmt: skip


def _sink(rate: float, raw: float, **details: Any) -> tuple[str, list[dict[str, Any]]]:
    return (
        "cdc_sink_throughput",
        [_figure("Kafka -> bronze Delta", rate, "msg/s", baseline_name="raw consume", baseline_value=raw,
                 target=">= 0.5x raw consume", met=rate >= 0.5 * raw, details=details)],
    )  # fmt: skip


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Three runs: a full one, a partial one (a regression), then one with raw latency samples."""
    folder = tmp_path / "results"
    folder.mkdir()
    _write_run(folder, "20261101T100000Z", [_load(6.0, 5.0), _sink(50_000, 60_000), _latency(3.0, 5.0, 7.0)], 0.5)
    # the figure was renamed in between: its bracketed part must not split the history
    _write_run(folder, "20261102T100000Z", [_load(8.0, 5.0, "load definitions (every asset) [warm]")], 3.0)
    samples = [0.5 + i * 0.05 for i in range(100)]  # 0.5 ... 5.45 s
    timeline = [[0.4, 1000], [1.0, 1500], [2.1, 800]]
    _write_run(
        folder,
        "20261103T100000Z",
        [
            _sink(54_000, 60_000, **{THROUGHPUT_TIMELINE_KEY: timeline}),
            _latency(2.9, 5.2, 5.4, **{LATENCY_SAMPLES_KEY: samples}),
        ],
        1.5,
    )
    (folder / "latest.json").write_text("{not read: a copy of one run}")
    return folder


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100, (path, width, height)
    import matplotlib.image

    pixels = matplotlib.image.imread(path)  # decodes the whole file: a truncated PNG fails here
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0  # not a blank canvas


def test_report_tables_plots_and_links(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    path = report.write_report(results, out)
    text = path.read_text()

    summary = {(row[0], row[1]): row for row in report.summary_rows(report.load_history(results))}
    # newest measurement of each figure, from whichever run holds it
    load = summary[("code_location_load", "load definitions (every asset) [warm]")]
    assert load[2:] == ["8.00 s", "5.00 s (bare import)", "1.60x", "<= 1.5x the bare import", "**NO**",
                        "20261102T100000Z"]  # fmt: skip
    sink = summary[("cdc_sink_throughput", "Kafka -> bronze Delta")]
    assert sink[2:] == ["54,000 msg/s", "60,000 msg/s (raw consume)", "0.90x", ">= 0.5x raw consume", "yes",
                        "20261103T100000Z"]  # fmt: skip
    assert summary[("cdc_end_to_end_latency", "p99")][2] == "5.40 s"
    assert len(summary) == 5  # the renamed load figure is one figure, not two

    trends = {row[0]: row for row in report.trend_rows(report.load_history(results))}
    load_trend = trends["code_location_load / load definitions"]
    assert load_trend[1:7] == ["2", "6.00 s", "8.00 s", "+33%", "**regressed**", "0.5 -> 3.0"]
    assert trends["cdc_sink_throughput / Kafka -> bronze Delta"][4:6] == ["+8%", "steady"]
    assert trends["cdc_end_to_end_latency / p99"][4:6] == ["-23%", "improved"]

    expected = {
        "vs-baseline-code-location-load.png",
        "vs-baseline-cdc-sink-throughput.png",
        "latency-cdc-end-to-end-latency.png",
        "throughput-cdc-sink-throughput-kafka-bronze-delta.png",
        "trend-code-location-load-load-definitions.png",
        "trend-cdc-sink-throughput-kafka-bronze-delta.png",
        "trend-cdc-end-to-end-latency-p50.png",
        "trend-cdc-end-to-end-latency-p95.png",
        "trend-cdc-end-to-end-latency-p99.png",
    }
    assert {p.name for p in out.glob("*.png")} == expected
    for png in expected:
        _assert_png(out / png)
    assert set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)) == expected  # every plot linked, no dead link
    assert "Histogram and CDF of every probe's latency." in text
    assert "from 3 result files" in text


def test_latency_without_samples_plots_percentiles_and_says_so(tmp_path: Path) -> None:
    _write_run(tmp_path, "20261101T100000Z", [_latency(3.0, 5.0, 12.0)])
    text = report.write_report(tmp_path, tmp_path / "out").read_text()
    assert "saved only its percentiles" in text
    assert "No result holds a throughput timeline yet" in text
    assert "| cdc_end_to_end_latency | p99 | 12.00 s | - | - | <= 10 s | **NO** | 20261101T100000Z |" in text
    _assert_png(tmp_path / "out" / "latency-cdc-end-to-end-latency.png")


def test_an_unreadable_result_is_listed_not_fatal_and_no_result_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match="no benchmark result"):
        report.write_report(tmp_path)
    (tmp_path / "20261101T100000Z.json").write_text('{"measured_at": "20261101T100000Z"}')  # no results
    _write_run(tmp_path, "20261102T100000Z", [_load(6.0, 5.0)])
    text = report.write_report(tmp_path).read_text()
    assert "**Files not read:** `20261101T100000Z.json` (KeyError" in text
    assert "from 1 result files" in text
    assert (tmp_path / "report" / "report.md").exists()  # default folder: <results>/report


def test_a_non_finite_value_makes_the_file_unreadable(tmp_path: Path) -> None:
    _write_run(tmp_path, "20261101T100000Z", [_load(6.0, 5.0)])
    (tmp_path / "20261102T100000Z.json").write_text(
        (tmp_path / "20261101T100000Z.json").read_text().replace("6.0", "NaN")
    )
    history = report.load_history(tmp_path)
    assert history.runs == ["20261101T100000Z"]
    assert history.skipped[0][0] == "20261102T100000Z.json"


@pytest.mark.parametrize(
    ("target", "baseline", "expected"),
    [
        (">= 100,000 rows/s", None, report.Threshold(">=", 100_000)),
        ("<= 1.5x the bare import", 4.0, report.Threshold("<=", 6.0)),
        ("<= 1.5x the bare import", None, None),  # relative without a baseline: nothing to draw
        ("<= 10 s", 99.0, report.Threshold("<=", 10.0)),
        ("faster than before", 1.0, None),
        (None, 1.0, None),
    ],
)
def test_parse_target(target: str | None, baseline: float | None, expected: report.Threshold | None) -> None:
    assert report.parse_target(target, baseline) == expected


def test_direction_of_a_regression_follows_the_unit_then_the_target() -> None:
    def measurement(value: float, unit: str, target: str | None = None) -> report.Measurement:
        return report.Measurement("r", "b", "f", value, unit, None, 10.0, target, None, {}, None)

    # a time compared as ">= 10x" is still better when it is lower
    assert report.trend([measurement(100, "s", ">= 10x x"), measurement(80, "s", ">= 10x x")]).verdict == "improved"
    assert report.trend([measurement(100, "rows/s"), measurement(85, "rows/s")]).verdict == "regressed"
    assert report.trend([measurement(1.0, "x", ">= 0.8x"), measurement(0.8, "x", ">= 0.8x")]).verdict == "regressed"
    assert report.trend([measurement(100, "MB"), measurement(95, "MB")]).verdict == "steady"
    assert report.trend([measurement(100, "MB")]).verdict == "first run"


def test_figure_key_ignores_parenthesised_and_bracketed_parts() -> None:
    assert report.figure_key("b", "30 separate runs (--partition D, sequential) [extrapolated]") == (
        "b / 30 separate runs"
    )
    assert report.figure_key("b", "(only a parenthesis)") == "b / (only a parenthesis)"


def test_commit_timeline_keeps_data_commits_in_time_order() -> None:
    since = 1_000.0
    orders = [
        {"timestamp": 1_002_500, "operation": "WRITE", "operationMetrics": {"num_added_rows": 30}},
        {"timestamp": 1_000_500, "operation": "WRITE", "operationMetrics": {"num_added_rows": 10}},
        {"timestamp": 999_000, "operation": "WRITE", "operationMetrics": {"num_added_rows": 99}},  # before
        {"timestamp": 1_003_000, "operation": "OPTIMIZE", "operationMetrics": {"num_added_rows": 40}},
    ]
    customers = [{"timestamp": 1_001_000, "operation": "WRITE", "operationMetrics": {"num_added_rows": 5}}]
    assert commit_timeline([orders, customers], since) == [[0.5, 10.0], [1.0, 5.0], [2.5, 30.0]]
    assert commit_timeline([orders, customers], since, until=1_001.5) == [[0.5, 10.0], [1.0, 5.0]]


def test_entry_point_writes_the_report(results: Path, tmp_path: Path) -> None:
    from benchmarks.__main__ import main

    assert main(["report", "--results", str(results), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "report.md").read_text().startswith("# Benchmark report")
    assert main(["report", "--results", str(tmp_path / "empty")]) == 1
