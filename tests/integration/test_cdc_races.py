"""The sink against the real local services without Debezium: crafted messages on the session's
tansu broker, Delta tables on the S3 emulator (conditional PUT).

- two sinks creating the same table at once: one wins, the other is fenced (no duplicate rows);
- a topic recreated under the sink (its stored position lies beyond the new log): the table stops
  with a clear error instead of skipping offsets, normal restarts at the log end do not.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pyarrow as pa
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import DeltaTable

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.lake import CommitFailedError, DeltaStore
from ingestion.cdc.monitor import tables_with_new_data
from ingestion.cdc.sink import CdcSink, OffsetOutOfRange
from lakehouse.kafka import client_config
from lakehouse.settings import Settings
from tests.fixtures.races import race_two_creators


def test_two_creators_of_one_table_on_s3_one_is_fenced(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    config = SinkConfig.from_settings(settings)
    for attempt in range(3):
        uri = config.uri("bronze", f"race_{attempt}")
        outcomes = race_two_creators(uri, config.storage_options)
        assert sorted(outcomes.values()) == ["created", "fenced"], outcomes
        rows = DeltaTable(uri, storage_options=config.storage_options).to_pyarrow_table()
        assert rows.num_rows == 1
    # and a creator that comes late finds the table there
    with pytest.raises(CommitFailedError):
        DeltaStore(config.storage_options).append(config.uri("bronze", "race_0"), None, pa.table({"writer": [3]}), {})


def _envelope(customer_id: int, lsn: int) -> bytes:
    source = {"schema": "shop", "table": "customers", "lsn": lsn, "txId": lsn, "ts_ms": 1_795_456_446_000 + lsn}
    after = {"customer_id": customer_id, "email": f"{customer_id}@example.invalid"}
    return json.dumps({"before": None, "after": after, "source": source, "op": "c"}).encode()


def _create_topic(settings: Settings, topic: str) -> None:
    admin = AdminClient(client_config(settings))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)


def _produce(settings: Settings, topic: str, ids: range) -> None:
    producer = Producer(client_config(settings))
    for i in ids:
        producer.produce(topic, key=json.dumps({"customer_id": i}).encode(), value=_envelope(i, 100 + i))
    assert producer.flush(10) == 0


def test_recreated_topic_stops_the_table_instead_of_skipping_offsets(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    config = SinkConfig.from_settings(settings)
    topic = config.topic("customers")
    _create_topic(settings, topic)
    _produce(settings, topic, range(5))
    with CdcSink(config) as sink:
        assert sink.run_once(["customers"], timeout=60).tables["customers"].changes == 5
    # a restart exactly at the log end, and one more change (inside the last batch): business as usual
    with CdcSink(config) as sink:
        report = sink.run_once(["customers"], timeout=60)
    assert report.tables.get("customers") is None or report.tables["customers"].error is None
    _produce(settings, topic, range(5, 6))
    with CdcSink(config) as sink:
        assert sink.run_once(["customers"], timeout=60).tables["customers"].changes == 1

    # the topic is recreated (e.g. by mistake) and holds fewer messages than the lake has applied
    admin = AdminClient(client_config(settings))
    admin.delete_topics([topic])[topic].result(15)
    deadline = time.monotonic() + 15
    while topic in admin.list_topics(timeout=5).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    _create_topic(settings, topic)
    _produce(settings, topic, range(100, 102))
    assert "customers" in tables_with_new_data(config), "the sensor must launch the run that reports it"
    with CdcSink(config) as sink:
        started = time.monotonic()
        report = sink.run_once(["customers"], timeout=60)
        assert time.monotonic() - started < 30, "the error must come quickly, not as a timeout"
    error = report.tables["customers"].error or ""
    assert "offset out of range for customers" in error and "up to offset 5" in error, error
    bronze = DeltaTable(config.uri("bronze", "customers"), storage_options=config.storage_options)
    assert bronze.to_pyarrow_table().num_rows == 6, "nothing of the new topic was written"

    # follow mode stops with the same error (not silently skipping)
    with CdcSink(config) as sink, pytest.raises(OffsetOutOfRange):
        sink.follow(threading.Event(), tables=["customers"])

    # the way out: rebuild the table from the (new) topic
    with CdcSink(config) as sink:
        sink.rebuild("customers")
    with CdcSink(config) as sink:
        report = sink.run_once(["customers"], timeout=60)
    assert report.tables["customers"].error is None and report.tables["customers"].changes == 2
