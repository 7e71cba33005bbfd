"""The sink's control flow without services: local Delta tables (a config whose URIs are local
paths) and a scripted stand-in for the Kafka consumer.

Covered: a concurrent sink appending to bronze between our bronze and silver commits; end of
partition latched within a run; transient vs fatal Kafka errors; a stored position beyond the log;
group offsets of a stopped table; table discovery when no table list is configured.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from deltalake import DeltaTable

from ingestion.cdc.decode import Message
from ingestion.cdc.kafka_transport import KafkaTransport
from ingestion.cdc.sink import CdcSink, KafkaFatalError, OffsetOutOfRange, SinkReport
from tests.unit.cdc_support import local_config

TOPIC = "ecom.shop.customers"


def _change(offset: int, customer_id: int | None = None, partition: int = 0, topic: str = TOPIC) -> Message:
    customer_id = offset if customer_id is None else customer_id
    source = {"schema": "shop", "table": "customers", "lsn": 1000 + offset, "txId": 1, "ts_ms": 1_795_456_446_000}
    after = {"customer_id": customer_id, "email": f"{customer_id}@example.invalid"}
    value = json.dumps({"before": None, "after": after, "source": source, "op": "c"}).encode()
    return Message(topic, partition, offset, json.dumps({"customer_id": customer_id}).encode(), value)


# ---------------------------------------------------------------------------- a concurrent sink
def test_rows_another_sink_appended_to_bronze_meanwhile_reach_silver_and_history(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    other = CdcSink(replace(config, downstream=False))  # e.g. a follow-mode sink, bronze first

    def other_sink_commits(point: str) -> None:
        if point == "bronze-commit:after" and other.store.open(config.uri("bronze", "customers")).version() == 0:
            other.apply([_change(o) for o in range(5, 10)], SinkReport())

    ours = CdcSink(config, checkpoint=other_sink_commits)
    ours.apply([_change(o) for o in range(5)], SinkReport())

    app_id = config.txn_app_id(TOPIC, 0)
    for layer in ("bronze", "silver", "history"):
        table = DeltaTable(config.uri(layer, "customers"))  # type: ignore[arg-type]
        keys = sorted(
            table.to_pyarrow_table().column("customer_id" if layer != "bronze" else "kafka_offset").to_pylist()
        )
        assert keys == list(range(10)), f"{layer} lost the other sink's rows"
        assert table.transaction_version(app_id) == 9


# ---------------------------------------------------------------------------- a scripted consumer
class Record:
    def __init__(
        self, partition: int, offset: int = 0, error: KafkaError | None = None, message: Message | None = None
    ) -> None:
        self._partition, self._offset, self._error = partition, offset, error
        self._message = message or _change(offset, partition=partition)

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return self._message.topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._message.key

    def value(self) -> bytes | None:
        return self._message.value


def _eof(partition: int, topic: str = TOPIC) -> Record:
    return Record(partition, error=KafkaError(KafkaError._PARTITION_EOF), message=_change(0, topic=topic))


class ScriptedConsumer:
    """Returns the scripted polls one by one, then nothing."""

    def __init__(self, polls: Iterator[list[Record]], high_watermark: int = -1001) -> None:
        self.polls = polls
        self.high_watermark = high_watermark
        self.assigned: list[TopicPartition] = []
        self.paused: list[TopicPartition] = []
        self.commits: list[TopicPartition] = []

    def consume(self, num_messages: int, timeout: float) -> list[Record]:
        return next(self.polls, [])

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned += partitions

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused += partitions

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits += offsets

    def get_watermark_offsets(self, partition: TopicPartition, cached: bool) -> tuple[int, int]:
        return (0, self.high_watermark)

    def close(self) -> None:
        pass


def _scripted_sink(
    tmp_path: Path, polls: Iterator[list[Record]], committed: dict[int, int] | None = None, high_watermark: int = -1001
) -> tuple[CdcSink, ScriptedConsumer, list[list[Message]]]:
    """A sink on two partitions of one topic whose applying is recorded, not performed."""
    sink = CdcSink(local_config(tmp_path))
    consumer = ScriptedConsumer(polls, high_watermark)
    applied: list[list[Message]] = []
    sink.transport._consumer = consumer  # type: ignore[attr-defined]
    sink.catch_up = lambda tables, report: None  # type: ignore[method-assign]
    sink.discover = lambda tables=None: {TOPIC: [0, 1]}  # type: ignore[method-assign]
    sink.committed_offset = lambda topic, partition: (committed or {}).get(partition)  # type: ignore[method-assign]
    sink.apply = lambda messages, report: applied.append(messages)  # type: ignore[method-assign]
    return sink, consumer, applied


def test_run_once_ends_when_each_partition_reached_its_end_once(tmp_path: Path) -> None:
    def steady_load() -> Iterator[list[Record]]:
        """New messages keep arriving: the partitions are never at their end at the same time."""
        offset = 0
        while True:
            yield [Record(0, offset), _eof(1)]
            yield [_eof(0), Record(1, offset)]
            offset += 1

    sink, _consumer, applied = _scripted_sink(tmp_path, steady_load())
    report = sink.run_once(timeout=5)
    assert report.messages == 2 and [(m.partition, m.offset) for m in applied[0]] == [(0, 0), (1, 0)]


def test_transient_kafka_errors_are_survived(tmp_path: Path) -> None:
    transport = KafkaError(KafkaError._TRANSPORT, "broker restarting")
    polls = iter([[Record(0, error=transport)], [Record(0, 0), Record(1, error=transport)], [_eof(0), _eof(1)]])
    sink, _consumer, applied = _scripted_sink(tmp_path, polls)
    report = sink.run_once(timeout=5)
    assert report.messages == 1 and [m.offset for m in applied[0]] == [0]


def test_fatal_kafka_errors_are_raised(tmp_path: Path) -> None:
    fatal = KafkaError(KafkaError._FATAL, "producer fenced", fatal=True)
    sink, _consumer, _applied = _scripted_sink(tmp_path, iter([[Record(0, error=fatal)]]))
    with pytest.raises(KafkaFatalError, match="producer fenced"):
        sink.run_once(timeout=5)


def test_a_reset_error_stops_the_table_loudly(tmp_path: Path) -> None:
    reset = KafkaError(KafkaError._AUTO_OFFSET_RESET, "fetch failed: Broker: Offset out of range")
    sink, consumer, applied = _scripted_sink(tmp_path, iter([[Record(0, error=reset), _eof(1)]]), committed={0: 41})
    report = sink.run_once(timeout=5)
    error = report.tables["customers"].error or ""
    assert "offset out of range for customers" in error and "[0] up to offset 41" in error
    assert "lakehouse cdc rebuild customers" in error
    assert "customers" in sink.blocked and not applied
    assert {(tp.topic, tp.partition) for tp in consumer.paused} == {(TOPIC, 0), (TOPIC, 1)}


def test_a_position_beyond_a_silent_brokers_log_end_stops_the_table(tmp_path: Path) -> None:
    """tansu answers a fetch beyond its log end with an empty response and its high watermark."""
    sink, _consumer, _applied = _scripted_sink(tmp_path, iter([[_eof(1)]]), committed={0: 41}, high_watermark=10)
    report = sink.run_once(timeout=5)
    assert "its log ends at offset 10" in (report.tables["customers"].error or "")


def test_follow_mode_raises_the_reset_error(tmp_path: Path) -> None:
    import threading

    reset = KafkaError(KafkaError._AUTO_OFFSET_RESET, "Offset out of range")
    sink, _consumer, _applied = _scripted_sink(tmp_path, iter([[Record(0, error=reset)]]), committed={0: 41})
    sink.config = replace(sink.config, downstream=False)
    with pytest.raises(OffsetOutOfRange):
        sink.follow(threading.Event())


def test_group_offsets_are_not_committed_for_a_stopped_table(tmp_path: Path) -> None:
    orders = "ecom.shop.orders"
    polls = iter([[Record(0, 5), Record(0, 6, message=_change(6, topic=orders))], [_eof(0), _eof(1), _eof(0, orders)]])
    sink, consumer, _applied = _scripted_sink(tmp_path, polls)
    sink.blocked["customers"] = "incompatible schema change"
    sink.run_once(timeout=5)
    assert [(tp.topic, tp.partition, tp.offset) for tp in consumer.commits] == [(orders, 0, 7)]


def test_catch_up_without_a_table_list_uses_the_discovered_tables(tmp_path: Path) -> None:
    sink = CdcSink(local_config(tmp_path, tables=None))
    sink.discover = lambda tables=None: {TOPIC: [0], "ecom.shop.orders": [0], "ecom.other.x": [0]}  # type: ignore[method-assign]
    repaired: list[str] = []
    sink._apply_downstream = lambda table, *args: repaired.append(table) or {}  # type: ignore[method-assign]
    sink.catch_up(None, SinkReport())
    assert repaired == ["customers", "orders"]


# ---------------------------------------------------------------------------- follow mode robustness
def _transient() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata: Local: Broker transport failure"))


def test_follow_survives_kafka_being_unreachable_at_start_up_and_in_catch_up(tmp_path: Path) -> None:
    """Catch-up (which looks up topics and partitions in Kafka) and discovery fail while the broker is
    away; follow mode retries them instead of dying, then applies what arrives."""
    import threading

    def polls() -> Iterator[list[Record]]:
        for _ in range(5):  # nothing while discovery fails
            yield []
        yield [Record(0, 0)]
        while True:
            yield []

    sink, _consumer, applied = _scripted_sink(tmp_path, polls())
    sink.config = replace(sink.config, downstream=False)
    failures = {"catch-up": 2, "discovery": 2}
    calls: list[str] = []

    def catch_up(tables: object, report: object) -> None:
        calls.append("catch-up")
        if failures["catch-up"]:
            failures["catch-up"] -= 1
            raise _transient()

    def discover(tables: object = None) -> dict[str, list[int]]:
        calls.append("discover")
        if failures["discovery"]:
            failures["discovery"] -= 1
            raise _transient()
        return {TOPIC: [0, 1]}

    sink.catch_up = catch_up  # type: ignore[method-assign]
    sink.discover = discover  # type: ignore[method-assign]
    stop = threading.Event()

    def stop_when_applied(report: SinkReport) -> None:
        stop.set()

    follower = threading.Thread(
        target=sink.follow, args=(stop,), kwargs={"on_batch": stop_when_applied, "rediscover_seconds": 0.0}
    )
    follower.start()
    follower.join(30)
    assert not follower.is_alive() and applied, calls
    assert calls.count("catch-up") == 3 and calls.count("discover") >= 3, calls


def test_follow_raises_fatal_kafka_errors_at_start_up(tmp_path: Path) -> None:
    import threading

    sink, _consumer, _applied = _scripted_sink(tmp_path, iter([]))
    fatal = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not authorized"))

    def catch_up(tables: object, report: object) -> None:
        raise fatal

    sink.catch_up = catch_up  # type: ignore[method-assign]
    with pytest.raises(KafkaFatalError, match="not authorized"):
        sink.follow(threading.Event())


def test_follow_keeps_other_tables_flowing_while_one_is_stopped(tmp_path: Path) -> None:
    import threading

    orders = "ecom.shop.orders"
    reset = KafkaError(KafkaError._AUTO_OFFSET_RESET, "Offset out of range")

    def polls() -> Iterator[list[Record]]:
        yield [Record(0, error=reset)]  # customers stops
        yield [Record(0, 0, message=_change(0, topic=orders))]  # orders still flows
        while True:
            yield []

    sink, _consumer, applied = _scripted_sink(tmp_path, polls(), committed={0: 41})
    sink.config = replace(sink.config, downstream=False)
    sink.discover = lambda tables=None: {TOPIC: [0], orders: [0]}  # type: ignore[method-assign]
    stop = threading.Event()
    sink.follow(stop, on_batch=lambda report: stop.set())
    assert "customers" in sink.blocked and [m.topic for batch in applied for m in batch] == [orders]


def test_the_follow_mode_history_worker_reaches_the_crash_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crash tests inject their kill at named points: the history worker of follow mode must pass
    them too (it used to run without the hooks)."""
    import threading

    config = local_config(tmp_path)
    CdcSink(replace(config, downstream=False)).apply([_change(o) for o in range(3)], SinkReport())  # bronze only
    monkeypatch.setattr(KafkaTransport, "partitions", lambda self, table: [0])
    stop = threading.Event()
    seen: list[tuple[str, str]] = []

    def checkpoint(point: str) -> None:
        seen.append((point, threading.current_thread().name))
        if point == "history-merge:start" and threading.current_thread().name == "cdc-history":
            stop.set()

    sink = CdcSink(config, checkpoint=checkpoint)
    sink.transport._consumer = ScriptedConsumer(iter([]))  # type: ignore[attr-defined]
    sink.catch_up = lambda tables, report: None  # type: ignore[method-assign]
    sink.discover = lambda tables=None: {TOPIC: [0]}  # type: ignore[method-assign]
    follower = threading.Thread(target=sink.follow, args=(stop, ["customers"]))
    follower.start()
    follower.join(30)
    assert ("history-merge:start", "cdc-history") in seen, seen


# ---------------------------------------------------------------------------- logging of the Kafka clients
def test_no_librdkafka_log_flood_while_the_broker_is_down(tmp_path: Path) -> None:
    """Every Kafka client of the pipeline (the sink's consumer and admin clients, the sensor's probe,
    the publisher's producer and admin client) logs through Python logging, rate-limited: nothing raw
    on stderr, a handful of lines over several seconds of a dead broker."""
    import socket
    import subprocess
    import sys
    import textwrap

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    script = textwrap.dedent(
        f"""
        import logging, sys, threading, time
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="LOG %(name)s %(message)s")
        from ingestion.cdc.config import SinkConfig
        from ingestion.cdc.kafka_transport import probe_consumer
        from ingestion.cdc.publisher import KafkaPublishingHandler
        from confluent_kafka import TopicPartition
        from ingestion.cdc.sink import CdcSink
        from lakehouse.settings import Settings

        settings = Settings(_env_file=None, kafka_port={port}, state_dir={str(tmp_path)!r})
        config = SinkConfig.from_settings(settings)
        sink = CdcSink(config)
        probe = probe_consumer(config)
        for consumer in (sink.transport.consumer, probe):
            consumer.incremental_assign([TopicPartition("t.shop.customers", 0, 0)])
        polling = lambda: [c.consume(100, 0.5) for _ in range(12) for c in (sink.transport.consumer, probe)]
        threading.Thread(target=polling, daemon=True).start()
        handler = KafkaPublishingHandler(settings)
        try:
            sink.discover()
        except Exception as exc:
            print("EXC", type(exc).__name__)
        time.sleep(2)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    raw = [line for line in result.stderr.splitlines() if "rdkafka" in line or line.startswith("%")]
    assert raw == [], raw[:5]
    logged = [line for line in result.stdout.splitlines() if line.startswith("LOG ")]
    assert 0 < len(logged) <= 25, "\n".join(logged)
    assert "EXC" in result.stdout, result.stdout + result.stderr
