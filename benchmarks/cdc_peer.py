"""Subprocess of `benchmarks.cdc.peer_dlt`: one JVM per process, so each pipeline runs alone.

python -m benchmarks.cdc_peer ours|peer EXPECTED_ROWS   → prints the seconds it took
"""

from __future__ import annotations

import os
import sys
import threading
import time

from deltalake import DeltaTable

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.publisher import CdcPublisher, connector_properties
from ingestion.cdc.sink import CdcSink
from lakehouse.settings import OLTP_TABLES, get_settings


def ours(expected: int) -> float:
    settings = get_settings()
    started = time.perf_counter()
    stop = threading.Event()
    publisher = CdcPublisher(settings)
    threading.Thread(target=publisher.run, args=(stop,), daemon=True).start()
    config = SinkConfig.from_settings(settings)
    sink = CdcSink(config)
    threading.Thread(target=sink.follow, args=(stop,), daemon=True).start()
    while True:
        loaded = 0
        for table in OLTP_TABLES:
            uri = config.uri("silver", table)
            if DeltaTable.is_deltatable(uri, storage_options=settings.delta_storage_options):
                loaded += (
                    DeltaTable(uri, storage_options=settings.delta_storage_options)
                    .to_pyarrow_table(columns=["_cdc_lsn"])
                    .num_rows
                )
        if loaded >= expected:
            return time.perf_counter() - started
        time.sleep(0.2)


def peer(expected: int) -> float:
    import dlt
    from pydbzengine import DebeziumJsonEngine
    from pydbzengine.handlers.dlt import DltChangeHandler

    settings = get_settings()
    kwargs = settings.boto3_kwargs()
    pipeline = dlt.pipeline(
        pipeline_name="bench_peer",
        pipelines_dir=str(settings.state_path / "dlt-peer"),
        destination=dlt.destinations.filesystem(
            bucket_url=f"s3://{settings.lake_bucket}/peer",
            credentials={
                "aws_access_key_id": kwargs.get("aws_access_key_id"),
                "aws_secret_access_key": kwargs.get("aws_secret_access_key"),
                "endpoint_url": kwargs.get("endpoint_url"),
                "region_name": kwargs["region_name"],
            },
        ),
        dataset_name="peer",
    )
    loaded = {"rows": 0}
    done = threading.Event()

    class CountingHandler(DltChangeHandler):
        def handleJsonBatch(self, records: list) -> None:
            super().handleJsonBatch(records)  # the bundled handler, unchanged
            loaded["rows"] += sum(1 for r in records if r.value() is not None)
            if loaded["rows"] >= expected:
                done.set()

    props = connector_properties(settings, settings.state_path / "peer-offsets.dat")
    started = time.perf_counter()
    engine = DebeziumJsonEngine(properties=props, handler=CountingHandler(pipeline))
    threading.Thread(target=engine.run, daemon=True).start()
    done.wait()
    return time.perf_counter() - started


if __name__ == "__main__":
    mode, expected = sys.argv[1], int(sys.argv[2])
    seconds = ours(expected) if mode == "ours" else peer(expected)
    print(f"{seconds:.3f}", flush=True)
    os._exit(0)  # the embedded JVM does not shut down cleanly from a daemon thread
