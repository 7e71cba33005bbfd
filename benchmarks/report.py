"""`python -m benchmarks report`: one readable report (Markdown + PNG) from the saved benchmark results.

Reads every `benchmarks/results/<UTC time>.json` (never runs a benchmark) and writes
`benchmarks/results/report/report.md` with its plots next to it: each figure against its baseline and
target, the latency distribution, CDC throughput over time, and the history of every figure as a
trend, so a regression shows at a glance. Runs are often partial (one benchmark at a time), so the
report shows the newest measurement of every figure, whichever run it came from.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display (also on machines without one)
import matplotlib.pyplot as plt

from benchmarks.harness import LATENCY_SAMPLES_KEY, RESULTS_DIR, THROUGHPUT_TIMELINE_KEY

REPORT_FILE = "report.md"
#: A result file is `<UTC time>.json` as `harness.save` names it; `latest.json` is a copy of one.
RUN_FILE = re.compile(r"^\d{8}T\d{6}Z\.json$")
#: A change in the bad direction larger than this, against the previous run, is called a regression.
REGRESSION_THRESHOLD = 0.10
_LOWER_IS_BETTER_UNITS = {"s", "ms", "us", "min", "b", "kb", "mb", "gb", "bytes"}
_PERCENTILE_NAME = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
_TARGET = re.compile(r"^\s*(<=|>=|<|>)\s*(\d[\d,]*(?:\.\d+)?)\s*(x\b)?", re.IGNORECASE)
#: PNG metadata without the matplotlib version, so regenerating the report does not churn its files.
_PNG_METADATA = {"Software": None}


class ReportError(RuntimeError):
    """No result can be read, or a result file is not what `harness.save` writes."""


@dataclass(frozen=True)
class Threshold:
    """A figure's target as a number in the figure's own unit."""

    op: str  # one of <=, >=, <, >
    value: float

    @property
    def higher_is_better(self) -> bool:
        return self.op.startswith(">")

    def met_by(self, value: float) -> bool:
        return {
            "<=": value <= self.value,
            "<": value < self.value,
            ">=": value >= self.value,
            ">": value > self.value,
        }[self.op]


@dataclass(frozen=True)
class Measurement:
    """One figure of one run."""

    run: str  # the run's `measured_at` (UTC, e.g. 20261201T202939Z)
    benchmark: str
    name: str
    value: float
    unit: str
    baseline_name: str | None
    baseline_value: float | None
    target: str | None
    met: bool | None
    details: dict[str, Any]
    load_average: tuple[float, ...] | None

    @property
    def key(self) -> str:
        return figure_key(self.benchmark, self.name)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value

    @property
    def threshold(self) -> Threshold | None:
        return parse_target(self.target, self.baseline_value)

    @property
    def higher_is_better(self) -> bool:
        """Rates should go up, durations and sizes down, whatever the target compares them with
        (e.g. "30 separate runs >= 10x the single run" is still a time); other units follow the target."""
        if "/s" in self.unit:
            return True
        if self.unit.lower() in _LOWER_IS_BETTER_UNITS:
            return False
        threshold = self.threshold
        return threshold.higher_is_better if threshold is not None else False


@dataclass
class History:
    """Every run read, oldest first, and the files that could not be read (with why)."""

    runs: list[str] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def series(self) -> dict[str, list[Measurement]]:
        """Measurements per figure key, oldest first."""
        out: dict[str, list[Measurement]] = {}
        for m in self.measurements:
            out.setdefault(m.key, []).append(m)
        return out

    def newest(self) -> list[Measurement]:
        """The newest measurement of every figure, in the order figures first appeared."""
        return [ms[-1] for ms in self.series().values()]


def figure_key(benchmark: str, name: str) -> str:
    """`benchmark / name` without the parenthesised and bracketed parts, which change with wording
    and sizes ("[extrapolated]", "(dlt: ...)" renamed "(landing loader: ...)"), so a figure keeps its
    history across such renames."""
    short = re.sub(r"\s*[\(\[][^\)\]]*[\)\]]", "", name).strip()
    return f"{benchmark} / {short or name}"


def parse_target(target: str | None, baseline_value: float | None) -> Threshold | None:
    """'>= 100,000 rows/s' -> (>=, 100000); '<= 1.5x the bare import' -> (<=, 1.5 * baseline).

    None when there is no target, it is not of that form, or it is relative without a baseline.
    """
    if not target:
        return None
    match = _TARGET.match(target)
    if match is None:
        return None
    op, number, relative = match.group(1), float(match.group(2).replace(",", "")), match.group(3)
    if relative:
        if baseline_value is None:
            return None
        return Threshold(op, number * baseline_value)
    return Threshold(op, number)


def load_history(results_dir: Path) -> History:
    """Every `<UTC time>.json` of `results_dir`, oldest first; unreadable files are listed, not fatal."""
    history = History()
    for path in sorted(p for p in results_dir.glob("*.json") if RUN_FILE.match(p.name)):
        try:
            payload = json.loads(path.read_text())
            measurements = list(_measurements(payload))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            history.skipped.append((path.name, f"{type(exc).__name__}: {exc}"))
            continue
        history.runs.append(str(payload["measured_at"]))
        history.measurements.extend(measurements)
    if not history.measurements:
        raise ReportError(f"no benchmark result in {results_dir} (run `make bench` first); skipped: {history.skipped}")
    return history


def _measurements(payload: dict[str, Any]) -> Iterable[Measurement]:
    run = str(payload["measured_at"])
    load = payload.get("machine", {}).get("load_average")
    load_average = tuple(float(v) for v in load) if load else None
    for result in payload["results"]:
        for f in result["figures"]:
            value = float(f["value"])
            if not math.isfinite(value):
                raise ValueError(f"{result['benchmark']} / {f['name']}: value {f['value']!r} is not a number")
            baseline = f.get("baseline_value")
            yield Measurement(
                run=run,
                benchmark=str(result["benchmark"]),
                name=str(f["name"]),
                value=value,
                unit=str(f["unit"]),
                baseline_name=f.get("baseline_name"),
                baseline_value=float(baseline) if baseline is not None else None,
                target=f.get("target"),
                met=f.get("met"),
                details=dict(f.get("details") or {}),
                load_average=load_average,
            )


# ---------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Trend:
    """How the newest measurement of a figure compares with the one before."""

    key: str
    runs: int
    previous: float | None
    latest: float
    change: float | None  # relative, (latest - previous) / previous
    verdict: str  # "regressed", "improved", "steady", "first run"


def trend(measurements: Sequence[Measurement]) -> Trend:
    latest = measurements[-1]
    if len(measurements) < 2:
        return Trend(latest.key, 1, None, latest.value, None, "first run")
    previous = measurements[-2].value
    change = (latest.value - previous) / previous if previous else None
    verdict = "steady"
    if change is not None:
        better = change if latest.higher_is_better else -change
        if better < -REGRESSION_THRESHOLD:
            verdict = "regressed"
        elif better > REGRESSION_THRESHOLD:
            verdict = "improved"
    return Trend(latest.key, len(measurements), previous, latest.value, change, verdict)


# ---------------------------------------------------------------------------- formatting


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    digits = 0 if abs(value) >= 1000 else 2
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip()


def _met(met: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: "-"}[met]


def _load(load: tuple[float, ...] | None) -> str:
    return " / ".join(f"{v:.1f}" for v in load) if load else "-"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


def summary_rows(history: History) -> list[list[str]]:
    """The table of the newest measurement of every figure against its baseline and target."""
    rows = []
    for m in history.newest():
        baseline = f"{_number(m.baseline_value, m.unit)} ({m.baseline_name})" if m.baseline_value is not None else "-"
        ratio = f"{m.ratio:.2f}x" if m.ratio is not None else "-"
        rows.append(
            [m.benchmark, m.name, _number(m.value, m.unit), baseline, ratio, m.target or "-", _met(m.met), m.run]
        )
    return rows


def trend_rows(history: History) -> list[list[str]]:
    rows = []
    for measurements in history.series().values():
        t = trend(measurements)
        unit = measurements[-1].unit
        change = f"{t.change:+.0%}" if t.change is not None else "-"
        verdict = f"**{t.verdict}**" if t.verdict == "regressed" else t.verdict
        loads = " -> ".join(_load(m.load_average[:1] if m.load_average else None) for m in measurements[-2:])
        rows.append([t.key, str(t.runs), _number(t.previous, unit), _number(t.latest, unit), change, verdict, loads])
    return rows


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


# ---------------------------------------------------------------------------- plots


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata=_PNG_METADATA)
    plt.close(fig)
    return path


def plot_vs_baseline(measurements: Sequence[Measurement], path: Path) -> Path:
    """One bar panel per figure of a benchmark: value and baseline, the target as a dashed line."""
    fig, axes = plt.subplots(1, len(measurements), figsize=(4.2 * len(measurements), 3.6), squeeze=False)
    for ax, m in zip(axes[0], measurements, strict=True):
        labels, values, colors = ["measured"], [m.value], ["#2b6cb0" if m.met is not False else "#c53030"]
        if m.baseline_value is not None:
            labels.append("baseline")
            values.append(m.baseline_value)
            colors.append("#a0aec0")
        ax.bar(labels, values, color=colors)
        threshold = m.threshold
        if threshold is not None:
            ax.axhline(threshold.value, color="#2f855a", linestyle="--", label=f"target {m.target}")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_ylabel(m.unit)
        ax.set_title(_wrap(m.name, 40), fontsize=8)
    fig.suptitle(f"{measurements[0].benchmark} ({measurements[0].run})", fontsize=10)
    return _save(fig, path)


def plot_latency(measurements: Sequence[Measurement], path: Path) -> tuple[Path, bool]:
    """Histogram + CDF of the latency samples when the run saved them; else the percentiles as points
    on a CDF. Returns (path, whether samples were plotted)."""
    samples = next((m.details[LATENCY_SAMPLES_KEY] for m in measurements if LATENCY_SAMPLES_KEY in m.details), None)
    percentiles = [(float(match.group(1)), m.value) for m in measurements if (match := _PERCENTILE_NAME.match(m.name))]
    threshold = next((m.threshold for m in measurements if m.threshold is not None), None)
    unit = measurements[0].unit
    if samples:
        values = sorted(float(v) for v in samples)
        fig, (hist, cdf) = plt.subplots(1, 2, figsize=(9, 3.6))
        hist.hist(values, bins=min(40, max(5, len(values) // 5)), color="#2b6cb0")
        hist.set_xlabel(unit)
        hist.set_ylabel("probes")
        hist.set_title(f"histogram ({len(values)} samples)", fontsize=9)
        cdf.step(values, [(i + 1) / len(values) for i in range(len(values))], where="post", color="#2b6cb0")
        ax_cdf = cdf
    else:
        fig, ax_cdf = plt.subplots(1, 1, figsize=(5, 3.6))
    for pct, value in percentiles:
        ax_cdf.plot([value], [pct / 100], "o", color="#dd6b20")
        ax_cdf.annotate(
            f"p{pct:g} {value:.2f}", (value, pct / 100), fontsize=7, xytext=(4, -10), textcoords="offset points"
        )
    if threshold is not None:
        ax_cdf.axvline(
            threshold.value, color="#2f855a", linestyle="--", label=f"target {threshold.op} {threshold.value:g}"
        )
        ax_cdf.legend(fontsize=7, loc="lower right")
    ax_cdf.set_xlabel(unit)
    ax_cdf.set_ylabel("fraction of probes")
    ax_cdf.set_ylim(0, 1.05)
    ax_cdf.set_title("CDF" if samples else "percentiles (samples not saved by this run)", fontsize=9)
    fig.suptitle(f"{measurements[0].benchmark} ({measurements[0].run})", fontsize=10)
    return _save(fig, path), bool(samples)


def plot_throughput(m: Measurement, path: Path) -> Path:
    """Changes committed over time (rate per commit interval and cumulative) from a run's timeline."""
    timeline = sorted((float(t), float(n)) for t, n in m.details[THROUGHPUT_TIMELINE_KEY])
    times = [t for t, _ in timeline]
    cumulative, total = [], 0.0
    for _, n in timeline:
        total += n
        cumulative.append(total)
    rates = [n / max(t - prev, 1e-3) for (prev, _), (t, n) in zip([(0.0, 0.0), *timeline[:-1]], timeline, strict=True)]
    times, cumulative, rates = [0.0, *times], [0.0, *cumulative], rates[:1] + rates  # from the load's start
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.step(times, rates, where="pre", color="#2b6cb0", label="changes/s (per commit interval)")
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("changes/s")
    total_ax = ax.twinx()
    total_ax.plot(times, cumulative, color="#dd6b20", label="changes committed (cumulative)")
    total_ax.set_ylabel("changes")
    handles = ax.get_legend_handles_labels()[0] + total_ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    ax.set_title(f"{m.benchmark}: {_wrap(m.name, 60)} ({m.run})", fontsize=9)
    return _save(fig, path)


def plot_trend(measurements: Sequence[Measurement], path: Path) -> Path:
    """A figure's value (and baseline) across runs; runs missing the target in red, the target dashed."""
    runs = [m.run for m in measurements]
    x = list(range(len(runs)))
    fig, ax = plt.subplots(figsize=(4.5, 2.8))
    ax.plot(x, [m.value for m in measurements], "-", color="#2b6cb0", label="measured")
    for i, m in enumerate(measurements):
        ax.plot([i], [m.value], "o", color="#c53030" if m.met is False else "#2b6cb0")
    if any(m.baseline_value is not None for m in measurements):
        ax.plot(
            x,
            [m.baseline_value if m.baseline_value is not None else math.nan for m in measurements],
            "s:",
            color="#a0aec0",
            label="baseline",
        )
    thresholds = [m.threshold.value if m.threshold is not None else math.nan for m in measurements]
    if any(not math.isnan(t) for t in thresholds):
        ax.plot(x, thresholds, "--", color="#2f855a", label="target")
    ax.set_xticks(x, [f"{r[4:6]}-{r[6:8]}\n{r[9:11]}:{r[11:13]}" for r in runs], fontsize=6)
    ax.set_ylabel(measurements[-1].unit)
    ax.set_title(_wrap(measurements[-1].key, 55), fontsize=7)
    ax.legend(fontsize=6)
    return _save(fig, path)


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


# ---------------------------------------------------------------------------- the report


def write_report(results_dir: Path = RESULTS_DIR, out_dir: Path | None = None) -> Path:
    """Write report.md and its PNGs into `out_dir` (default `<results_dir>/report`); returns report.md."""
    history = load_history(results_dir)
    out_dir = out_dir or results_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.png"):  # figures of a benchmark since removed must not linger
        old.unlink()
    newest = history.newest()
    lines = [
        "# Benchmark report",
        "",
        f"Generated by `python -m benchmarks report` from {len(history.runs)} result files in "
        f"`benchmarks/results/` ({history.runs[0]} ... {history.runs[-1]}). How to read it: "
        "[docs/benchmarks.md](../../../docs/benchmarks.md#the-report).",
        "",
    ]
    if history.skipped:
        lines += ["**Files not read:** " + "; ".join(f"`{name}` ({why})" for name, why in history.skipped), ""]

    lines += ["## Every figure against its baseline and target", ""]
    lines += [
        "The newest measurement of each figure (runs are often partial, so the `run` column says which "
        "result file it comes from). `ratio` = value / baseline, measured side by side in the same run.",
        "",
    ]
    lines += _table(
        ["benchmark", "figure", "value", "baseline (same run)", "ratio", "target", "met", "run"], summary_rows(history)
    )
    lines.append("")
    by_benchmark: dict[str, list[Measurement]] = {}
    for m in newest:
        by_benchmark.setdefault(m.benchmark, []).append(m)
    for benchmark, measurements in by_benchmark.items():
        if _is_latency(measurements):
            continue  # drawn as a distribution below
        runs = {m.run for m in measurements}
        png = plot_vs_baseline(measurements, out_dir / f"vs-baseline-{_slug(benchmark)}.png")
        loads = ", ".join(
            f"{r}: {_load(next(m.load_average for m in measurements if m.run == r))}" for r in sorted(runs)
        )
        lines += [
            f"### {benchmark}",
            "",
            f"![{benchmark}]({png.name})",
            "",
            f"Load average at the end of the run: {loads}.",
            "",
        ]

    lines += ["## Latency distribution", ""]
    latency = {b: ms for b, ms in by_benchmark.items() if _is_latency(ms)}
    if not latency:
        lines += ["No result holds a latency benchmark yet.", ""]
    for benchmark, measurements in latency.items():
        png, with_samples = plot_latency(measurements, out_dir / f"latency-{_slug(benchmark)}.png")
        how = (
            "Histogram and CDF of every probe's latency."
            if with_samples
            else f"This run saved only its percentiles (plotted on the CDF axes); runs since the benchmark "
            f"saves `details.{LATENCY_SAMPLES_KEY}` get the histogram and the full CDF."
        )
        lines += [f"### {benchmark} ({measurements[0].run})", "", f"![{benchmark} latency]({png.name})", "", how, ""]

    lines += ["## CDC throughput over time", ""]
    timelines = [m for m in newest if THROUGHPUT_TIMELINE_KEY in m.details]
    if not timelines:
        lines += [
            f"No result holds a throughput timeline yet (`details.{THROUGHPUT_TIMELINE_KEY}`: the CDC "
            "benchmarks record it from the bronze tables' Delta commits since this report exists).",
            "",
        ]
    for m in timelines:
        png = plot_throughput(m, out_dir / f"throughput-{_slug(m.key)}.png")
        lines += [f"### {m.benchmark}: {m.name}", "", f"![throughput]({png.name})", ""]

    lines += [
        "## History: every figure across runs",
        "",
        f"`change` compares the newest run with the one before; **regressed** = worse by more than "
        f"{REGRESSION_THRESHOLD:.0%} in the figure's good direction (up for rates and `>=` targets, down for "
        "times, sizes and `<=` targets). Compare with the load average of each run (machine noise).",
        "",
    ]
    lines += _table(
        ["figure", "runs", "previous", "latest", "change", "verdict", "load average (1 min)"], trend_rows(history)
    )
    lines.append("")
    for key, measurements in history.series().items():
        png = plot_trend(measurements, out_dir / f"trend-{_slug(key)}.png")
        lines.append(f"![{key}]({png.name})")
    lines.append("")
    report = out_dir / REPORT_FILE
    report.write_text("\n".join(lines))
    return report


def _is_latency(measurements: Sequence[Measurement]) -> bool:
    return sum(1 for m in measurements if _PERCENTILE_NAME.match(m.name)) >= 2


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks report", description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of the result JSON files")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: <results>/report)")
    args = parser.parse_args(list(argv))
    try:
        path = write_report(args.results, args.out)
    except ReportError as exc:
        print(f"error: {exc}")
        return 1
    print(f"report written to {path}")
    return 0
