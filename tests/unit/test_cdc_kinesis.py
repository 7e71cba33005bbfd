"""The Kinesis transport and publisher against an in-memory Kinesis that behaves like AWS where the
emulator does not: 56-digit sequence numbers, closed shards that end, records routed to the child
shards after a split, throttling and expired iterators on demand. The sink writes local Delta tables.

Covered: exactly-once positions with long sequence numbers (stored in the Delta log), resharding
(children read only after their parents are drained), throttling backs off, an expired iterator
loses nothing, a position outside the stream stops only its table, and retried puts never reorder
one key's records.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from deltalake import DeltaTable

from ingestion.cdc.kinesis_transport import KinesisTransport, decode_record
from ingestion.cdc.lake import DeltaStore
from ingestion.cdc.progress import Position, Progress, read_sequence, sequence_txns
from ingestion.cdc.publisher import KinesisPublishingHandler, kinesis_waves
from ingestion.cdc.sink import CdcSink, SinkReport
from lakehouse.settings import Settings
from tests.unit.cdc_support import LocalConfig, local_config

STREAM = "test-cdc"
BASE = 10**55  # real sequence numbers have about 56 digits


@dataclass
class _FakeShard:
    id: str
    low: int
    high: int
    parents: tuple[str, ...] = ()
    records: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    trimmed: int = 0  # records before this index have expired


class FakeKinesis:
    """Just enough of the Kinesis API, with AWS's semantics (see the module doc)."""

    def __init__(self, shards: int = 1) -> None:
        self.created = False
        self.shards: dict[str, _FakeShard] = {}
        self.counter = 0
        self.calls: list[tuple[str, str]] = []  # (operation, shard)
        self.failures: list[tuple[str, str]] = []  # (operation, error code) injected in order
        self.put_failures: list[int] = []  # indexes (within the next put_records call) that fail
        span = 2**128 // shards
        for i in range(shards):
            self._add(f"shardId-{i:012d}", i * span, (i + 1) * span - 1 if i < shards - 1 else 2**128 - 1)

    def _add(self, shard_id: str, low: int, high: int, parents: tuple[str, ...] = ()) -> None:
        self.shards[shard_id] = _FakeShard(shard_id, low, high, parents)

    def _fail(self, operation: str) -> None:
        if self.failures and self.failures[0][0] == operation:
            code = self.failures.pop(0)[1]
            raise ClientError({"Error": {"Code": code, "Message": code}}, operation)

    # ------------------------------------------------------------------ the API
    class exceptions:
        class ResourceInUseException(Exception):
            pass

    def create_stream(self, StreamName: str, ShardCount: int) -> None:
        if self.created:
            raise self.exceptions.ResourceInUseException()
        self.created = True

    def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:
        if not self.created:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}, "Describe")
        return {"StreamDescriptionSummary": {"StreamStatus": "ACTIVE"}}

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        self._fail("ListShards")
        shards = []
        for shard in self.shards.values():
            entry: dict[str, Any] = {"ShardId": shard.id, "SequenceNumberRange": {"StartingSequenceNumber": str(BASE)}}
            if shard.parents:
                entry["ParentShardId"] = shard.parents[0]
            if len(shard.parents) > 1:
                entry["AdjacentParentShardId"] = shard.parents[1]
            shards.append(entry)
        return {"Shards": shards}

    def get_shard_iterator(self, StreamName: str, ShardId: str, ShardIteratorType: str, **kw: Any) -> dict[str, Any]:
        shard = self.shards[ShardId]
        if ShardIteratorType == "TRIM_HORIZON":
            index = shard.trimmed
        else:
            wanted = int(kw["StartingSequenceNumber"])
            later = [
                i for i, r in enumerate(shard.records) if int(r["SequenceNumber"]) >= wanted and i >= shard.trimmed
            ]
            index = later[0] if later else len(shard.records)
            if (
                ShardIteratorType == "AFTER_SEQUENCE_NUMBER"
                and later
                and int(shard.records[index]["SequenceNumber"]) == wanted
            ):
                index += 1
        return {"ShardIterator": f"{ShardId}|{index}"}

    def get_records(self, ShardIterator: str, Limit: int = 10_000) -> dict[str, Any]:
        shard_id, start = ShardIterator.split("|")
        self.calls.append(("GetRecords", shard_id))
        self._fail("GetRecords")
        shard = self.shards[shard_id]
        index = max(int(start), shard.trimmed)
        records = shard.records[index : index + 3]  # small pages: batch boundaries everywhere
        end = index + len(records)
        ended = shard.closed and end >= len(shard.records)
        return {
            "Records": records,
            "NextShardIterator": None if ended else f"{shard_id}|{end}",
            "MillisBehindLatest": 0 if end >= len(shard.records) else 1000,
        }

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        failing, self.put_failures = set(self.put_failures), []
        results = []
        for i, record in enumerate(Records):
            if i in failing:
                results.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"})
                continue
            digest = int(hashlib.md5(record["PartitionKey"].encode()).hexdigest(), 16)  # noqa: S324 - Kinesis' own hash
            shard = next(s for s in self.shards.values() if not s.closed and s.low <= digest <= s.high)
            self.counter += 1
            sequence = str(BASE + self.counter * 1_000_003)
            shard.records.append(
                {"SequenceNumber": sequence, "Data": record["Data"], "PartitionKey": record["PartitionKey"]}
            )
            results.append({"SequenceNumber": sequence, "ShardId": shard.id})
        return {"FailedRecordCount": len(failing), "Records": results}

    # ------------------------------------------------------------------ operator actions
    def split(self, shard_id: str) -> None:
        parent = self.shards[shard_id]
        parent.closed = True
        middle = (parent.low + parent.high) // 2
        count = len(self.shards)
        self._add(f"shardId-{count:012d}", parent.low, middle, (shard_id,))
        self._add(f"shardId-{count + 1:012d}", middle + 1, parent.high, (shard_id,))


# ---------------------------------------------------------------------------- helpers
def _config(tmp_path: Path, **overrides: Any) -> LocalConfig:
    kinesis = {"transport": "kinesis", "kinesis_stream": STREAM, "tables": frozenset({"customers", "orders"})}
    return local_config(tmp_path, **{**kinesis, **overrides})


def _envelope(table: str, key: int, lsn: int, note: str = "") -> bytes:
    source = {"schema": "shop", "table": table, "lsn": lsn, "txId": lsn, "ts_ms": 1_795_456_446_000}
    after = {"id": key, "note": note}
    return json.dumps({"before": None, "after": after, "source": source, "op": "c" if lsn < 1000 else "u"}).encode()


class Pipeline:
    """Publisher → in-memory Kinesis → sink, on local Delta tables."""

    def __init__(self, tmp_path: Path, shards: int = 1) -> None:
        self.kinesis = FakeKinesis(shards)
        settings = Settings(_env_file=None, cdc_transport="kinesis", cdc_kinesis_stream=STREAM)
        self.publisher = KinesisPublishingHandler(settings, client=self.kinesis)
        self.config = _config(tmp_path)
        self.lsn = 0

    def publish(self, table: str, keys: list[int], note: str = "") -> None:
        entries = []
        for key in keys:
            self.lsn += 1
            entries.append(
                (f"ecom.shop.{table}", json.dumps({"id": key}).encode(), _envelope(table, key, self.lsn, note))
            )
        self.publisher.publish(entries)

    def sink(self) -> CdcSink:
        sink = CdcSink(self.config)
        sink._transport = KinesisTransport(self.config, sink.committed_position, client=self.kinesis)
        return sink

    def run(self) -> SinkReport:
        with self.sink() as sink:
            return sink.run_once(timeout=30)

    def bronze(self, table: str) -> pa.Table:
        return DeltaTable(self.config.uri("bronze", table)).to_pyarrow_table()

    def silver_notes(self, table: str) -> dict[int, str]:
        rows = DeltaTable(self.config.uri("silver", table)).to_pyarrow_table().to_pylist()
        return {r["id"]: r["note"] for r in rows}


def _assert_once(pipeline: Pipeline, table: str, expected: int) -> None:
    bronze = pipeline.bronze(table)
    positions = list(
        zip(bronze.column("kafka_partition").to_pylist(), bronze.column("kafka_offset").to_pylist(), strict=True)
    )
    assert len(positions) == len(set(positions)) == expected, sorted(positions)
    lsns = bronze.column("lsn").to_pylist()
    assert len(lsns) == len(set(lsns)), "a change was written twice"


# ---------------------------------------------------------------------------- positions
def test_sequence_numbers_of_any_length_survive_the_delta_log(tmp_path: Path) -> None:
    store = DeltaStore({})
    longest = "9" * 129
    cases = {"p0": "1", "p1": str(BASE + 17), "p2": "49654" + "0" * 30 + "1234567890123456789012", "p3": longest}
    txns: dict[str, int] = {}
    for app_id, sequence in cases.items():
        txns.update(sequence_txns(app_id, sequence))
    store.append(str(tmp_path / "t"), None, pa.table({"x": [1]}), txns)
    table = DeltaTable(str(tmp_path / "t"))
    assert {app_id: read_sequence(table, app_id) for app_id in cases} == cases
    for bad in ("", "01", "12a", "1" * 130):
        with pytest.raises(ValueError):
            sequence_txns("p", bad)


def test_positions_keep_offset_and_sequence_together(tmp_path: Path) -> None:
    config = _config(tmp_path)
    progress = Progress(DeltaStore({}), config)
    sequence = str(BASE + 5)
    txns = progress.txns(f"{STREAM}/customers", {0: Position(41, sequence), 3: Position(7, "12")})
    DeltaStore({}).append(config.uri("bronze", "customers"), None, pa.table({"x": [1]}), txns)
    bronze = DeltaTable(config.uri("bronze", "customers"))
    assert progress.read(bronze, f"{STREAM}/customers", 0) == Position(41, sequence)
    assert progress.read(bronze, f"{STREAM}/customers", 3) == Position(7, "12")


# ---------------------------------------------------------------------------- the sink on Kinesis
def test_exactly_once_across_runs_with_long_sequence_numbers(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.publish("customers", list(range(10)))
    pipeline.publish("orders", [1, 2])
    report = pipeline.run()
    assert report.tables["customers"].changes == 10 and report.tables["orders"].changes == 2
    assert pipeline.run().messages == 0, "a second run finds nothing new"
    pipeline.publish("customers", [3, 4], note="second")
    assert pipeline.run().tables["customers"].changes == 2
    _assert_once(pipeline, "customers", 12)
    assert pipeline.silver_notes("customers")[3] == "second"
    bronze = DeltaTable(pipeline.config.uri("bronze", "customers"))
    stored = Progress(DeltaStore({}), pipeline.config).read(bronze, f"{STREAM}/customers", 0)
    assert stored is not None and len(stored.sequence or "") == 56


def test_a_quiet_table_does_not_hold_reading_back(tmp_path: Path) -> None:
    """Positions reached in a shard without rows for a table are recorded: the next run starts after them."""
    pipeline = Pipeline(tmp_path)
    pipeline.publish("orders", [1])
    pipeline.publish("customers", list(range(30)))
    pipeline.run()
    reads_before = len(pipeline.kinesis.calls)
    pipeline.publish("customers", [99])
    pipeline.run()
    pages = len(pipeline.kinesis.calls) - reads_before
    assert pages <= 3, f"the second run re-read the shard from the quiet table's old position ({pages} pages)"
    _assert_once(pipeline, "customers", 31)


def test_children_are_read_only_after_their_parent_is_drained(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.publish("customers", list(range(8)), note="before the split")
    pipeline.kinesis.split("shardId-000000000000")
    pipeline.publish("customers", list(range(8)), note="after the split")
    pipeline.run()
    calls = [shard for op, shard in pipeline.kinesis.calls if op == "GetRecords"]
    last_parent = max(i for i, shard in enumerate(calls) if shard == "shardId-000000000000")
    first_child = min(i for i, shard in enumerate(calls) if shard != "shardId-000000000000")
    assert last_parent < first_child, calls
    assert set(pipeline.silver_notes("customers").values()) == {"after the split"}, "every key's last change wins"
    _assert_once(pipeline, "customers", 16)
    assert pipeline.run().messages == 0


def test_a_child_of_a_parent_still_open_does_not_keep_a_run_going(tmp_path: Path) -> None:
    """A child shard cannot be read while its parent is open (moto's resharding keeps the parent
    open and writing): the run ends once everything readable is caught up, it does not wait for
    the child (which would end only by the run's timeout)."""
    pipeline = Pipeline(tmp_path)
    pipeline.publish("customers", list(range(5)))
    pipeline.kinesis._add("shardId-000000000001", 0, 2**127, parents=("shardId-000000000000",))
    report = pipeline.run()
    assert report.tables["customers"].changes == 5
    assert not any(shard == "shardId-000000000001" for op, shard in pipeline.kinesis.calls if op == "GetRecords")
    _assert_once(pipeline, "customers", 5)


def test_throttled_reads_back_off_and_lose_nothing(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.publish("customers", list(range(7)))
    pipeline.kinesis.failures = [("GetRecords", "ProvisionedThroughputExceededException")] * 3
    moments: list[float] = []
    original = pipeline.kinesis.get_records

    def timed(**kwargs: Any) -> dict[str, Any]:
        moments.append(time.monotonic())
        return original(**kwargs)

    pipeline.kinesis.get_records = timed  # type: ignore[method-assign]
    pipeline.run()
    assert not pipeline.kinesis.failures, "the throttled calls were made again"
    gaps = [b - a for a, b in itertools.pairwise(moments)][:3]
    assert gaps[0] >= 0.19 and gaps[1] >= 0.39 and gaps[2] >= 0.79, f"no exponential backoff: {gaps}"
    _assert_once(pipeline, "customers", 7)


def test_an_expired_iterator_is_taken_again_after_the_last_record(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.publish("customers", list(range(7)))
    pipeline.kinesis.failures = [("GetRecords", "ExpiredIteratorException")]
    pipeline.run()
    pipeline.publish("customers", [7, 8])
    original = pipeline.kinesis.get_records
    calls = {"n": 0}

    def expire_once_mid_stream(**kwargs: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ClientError({"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}}, "GetRecords")
        return original(**kwargs)

    pipeline.kinesis.get_records = expire_once_mid_stream  # type: ignore[method-assign]
    pipeline.run()
    _assert_once(pipeline, "customers", 9)


def test_a_position_outside_the_stream_stops_only_its_table(tmp_path: Path) -> None:
    """Records expired past a table's stored position: that table stops loudly, the others (on the
    same stream and shard) keep flowing."""
    pipeline = Pipeline(tmp_path)
    pipeline.publish("orders", [1])
    pipeline.publish("customers", [1, 2])
    pipeline.run()
    pipeline.publish("customers", [3, 4, 5])
    with pipeline.sink() as sink:  # a run for customers only: the orders position stays where it was
        sink.run_once(["customers"], timeout=30)
    shard = pipeline.kinesis.shards["shardId-000000000000"]
    shard.trimmed = 3  # the retention removed the records up to the orders position
    pipeline.publish("customers", [6])
    pipeline.publish("orders", [2])
    with pipeline.sink() as sink:
        report = sink.run_once(timeout=30)
    error = report.tables["orders"].error or ""
    assert "offset out of range for orders" in error and "lakehouse cdc rebuild orders" in error
    assert report.tables["customers"].error is None and report.tables["customers"].changes == 1
    _assert_once(pipeline, "customers", 6)
    assert pipeline.bronze("orders").num_rows == 1, "nothing of orders is skipped silently"


def test_retried_puts_never_reorder_one_keys_records(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    entries = [
        ("ecom.shop.customers", json.dumps({"id": k % 3}).encode(), _envelope("customers", k % 3, k + 1))
        for k in range(9)
    ]
    waves = kinesis_waves(entries)
    assert [len(w) for w in waves] == [3, 3, 3], "one record per key per call"
    pipeline.kinesis.put_failures = [0, 2]  # the first call loses two records
    pipeline.publisher.publish(entries)
    stored = [decode_record(r["Data"]) for r in pipeline.kinesis.shards["shardId-000000000000"].records]
    by_key: dict[bytes, list[int]] = {}
    for _topic, key, value in (s for s in stored if s is not None):
        by_key.setdefault(key or b"", []).append(json.loads(value or b"{}")["source"]["lsn"])
    assert all(lsns == sorted(lsns) for lsns in by_key.values()), by_key
    assert sum(len(v) for v in by_key.values()) == 9


def test_an_unreachable_endpoint_delays_reading_and_loses_nothing(tmp_path: Path) -> None:
    """A failure on one shard must not drop the records another shard returned in the same poll."""
    pipeline = Pipeline(tmp_path, shards=2)
    pipeline.publish("customers", list(range(12)))
    assert all(shard.records for shard in pipeline.kinesis.shards.values()), "both shards hold records"
    original = pipeline.kinesis.get_records
    failures = {"shardId-000000000001": 2}

    def flaky(**kwargs: Any) -> dict[str, Any]:
        shard = kwargs["ShardIterator"].split("|")[0]
        if failures.get(shard):
            failures[shard] -= 1
            raise EndpointConnectionError(endpoint_url="http://kinesis")
        return original(**kwargs)

    pipeline.kinesis.get_records = flaky  # type: ignore[method-assign]
    pipeline.run()
    assert failures == {"shardId-000000000001": 0}
    _assert_once(pipeline, "customers", 12)


def test_an_iterator_expired_with_its_last_record_stops_the_shards_tables(tmp_path: Path) -> None:
    """The last record read expired before the iterator was taken again: records after it may have
    expired too, so the tables reading that shard stop loudly instead of skipping them."""
    pipeline = Pipeline(tmp_path)
    pipeline.publish("customers", list(range(4)))
    pipeline.publish("orders", [1, 2])
    original = pipeline.kinesis.get_records
    shard = pipeline.kinesis.shards["shardId-000000000000"]
    calls = {"n": 0}

    def expire_with_the_records(**kwargs: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:  # after the first page (records 0..2): the retention took 0..3
            shard.trimmed = 4
            raise ClientError({"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}}, "GetRecords")
        return original(**kwargs)

    pipeline.kinesis.get_records = expire_with_the_records  # type: ignore[method-assign]
    report = pipeline.run()
    for table in ("customers", "orders"):
        assert "offset out of range for" in (report.tables[table].error or ""), report.tables[table]
    assert "[0] up to offset 2" in (report.tables["customers"].error or ""), "the gap starts after record 2"
    assert pipeline.bronze("customers").num_rows == 3, "the records before the gap are applied, none after it"
    assert not Path(pipeline.config.uri("bronze", "orders")).exists()


def test_an_existing_stream_is_not_created_again() -> None:
    """In AWS the stream is Terraform's: the publisher needs no kinesis:CreateStream on it."""
    kinesis = FakeKinesis()
    kinesis.created = True

    def denied(**_kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "CreateStream")

    kinesis.create_stream = denied  # type: ignore[method-assign,assignment]
    settings = Settings(_env_file=None, cdc_transport="kinesis", cdc_kinesis_stream=STREAM)
    KinesisPublishingHandler(settings, client=kinesis)  # no AccessDenied
    fresh = FakeKinesis()
    KinesisPublishingHandler(settings, client=fresh)
    assert fresh.created


def test_a_table_joining_after_reading_began_gets_its_earlier_records(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.publish("orders", [1, 2, 3])
    pipeline.publish("customers", [1])
    config = pipeline.config
    transport = KinesisTransport(config, lambda _source, _shard: None, client=pipeline.kinesis)

    def drain() -> list[Any]:
        transport.start_run()
        seen = []
        while not transport.all_reached():
            seen += transport.poll(0.5)
        return seen

    transport.assign({config.source("customers"): [0]})
    assert {m.topic for m in drain()} == {"ecom.shop.customers"}
    transport.assign({config.source("orders"): [0], config.source("customers"): [0]})
    orders = [m for m in drain() if m.topic == "ecom.shop.orders"]
    assert [json.loads(m.key)["id"] for m in orders] == [1, 2, 3]
