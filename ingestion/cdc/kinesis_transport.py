"""Kinesis Data Streams as the CDC transport: one stream carries every captured table.

**Records.** Kinesis records have a partition key and a data blob, no key field and no headers, so
a record's data is Debezium's destination topic, key and value, each on its own line, exactly as
Debezium writes them (compact JSON never contains a raw newline; an empty value is a tombstone).
The partition key is `<topic>:<key JSON>` (its SHA-256 when longer than Kinesis' 256 characters):
one row's changes always land in the same shard, in order.

**Positions.** Sequence numbers are decimal strings of up to 129 digits and are not contiguous, so
each table counts its own offsets in a shard: offset = the record's index in the shard as read
from a start point, plus the difference to the table's stored (offset, sequence number) at the
stored record ("anchor"). Bronze commits store both per (sink, `<stream>/<table>`, shard)
(`progress.py`). A shard is read from the oldest position of the tables that flow
(`AT_SEQUENCE_NUMBER`, so the stored record itself must still be there), or from the trim horizon
when a table has none; each table skips what it already has. Positions reached in a shard without
a row for a table are recorded with the dead letters, so a quiet table does not hold reading back.

**A position outside the stream** stops that table loudly (`OffsetOutOfRange`), never the others:
its stored record is gone from the shard (expired beyond the retention, or the stream was
recreated) when the shard yields a later record first, or nothing at all up to its end. An expired
iterator (they live 5 minutes) is taken again AT the last record read, which must come first: if it
has expired meanwhile, records after it may have too, and the tables reading that shard stop the
same way. Otherwise nothing is lost and nothing stops.

**Resharding.** A child shard is read only after its parents are drained (their iterator ended):
a row's changes move to the child shard only after the split or merge. **Throttling**
(`ProvisionedThroughputExceededException`, `LimitExceededException`) backs off per shard
(exponential, up to 10 s); reads are paced at 5 per second per shard, Kinesis' limit.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.decode import Message
from ingestion.cdc.progress import Position
from ingestion.cdc.transport import OffsetOutOfRange, PositionLookup, TransportUnavailable

log = logging.getLogger(__name__)

#: Kinesis allows 5 GetRecords calls per second per shard
READ_INTERVAL_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0
THROTTLED = frozenset({"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException"})
PARTITION_KEY_LIMIT = 256
SHARD_ID = re.compile(r"^shardId-(\d{1,12})$")
#: a repeated warning (throttling, unreachable stream) is logged at most this often
WARNING_SECONDS = 30.0


# ---------------------------------------------------------------------------- record format
def encode_record(topic: str, key: bytes | None, value: bytes | None) -> bytes:
    """A Kinesis record's data: topic, key and value lines (see the module doc)."""
    for part in (key, value):
        if part is not None and (b"\n" in part or b"\r" in part):
            raise ValueError("Debezium's compact JSON has no raw newline")
    return b"\n".join((topic.encode(), key or b"", value or b""))


def decode_record(data: bytes) -> tuple[str, bytes | None, bytes | None] | None:
    """(topic, key, value) of a record's data, or None if it is not in that format."""
    parts = data.split(b"\n", 2)
    if len(parts) != 3:
        return None
    topic, key, value = parts
    try:
        name = topic.decode()
    except UnicodeDecodeError:
        return None
    return name, key or None, value or None


def partition_key(topic: str, key: bytes | None) -> str:
    """Table + primary key: one row's changes share a shard (and so their order)."""
    text = f"{topic}:{(key or b'').decode('utf-8', 'replace')}"
    if len(text) <= PARTITION_KEY_LIMIT:
        return text
    return f"{topic[:100]}:#{hashlib.sha256(key or b'').hexdigest()}"


def shard_number(shard_id: str) -> int:
    found = SHARD_ID.match(shard_id)
    if found is None:
        raise ValueError(f"unexpected Kinesis shard id {shard_id!r}")
    return int(found.group(1))


def kinesis_client(config: SinkConfig) -> Any:
    retries = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)
    return boto3.client("kinesis", config=retries, **config.aws)


def error_code(exc: Exception) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


# ---------------------------------------------------------------------------- reading
@dataclass
class _Anchor:
    """Where a source (`<stream>/<table>`) stands in a shard."""

    offset: int  # the stored offset (-1: nothing yet)
    sequence: int | None  # the stored record's sequence number (None: nothing yet)
    delta: int | None = None  # offset = index + delta, known once the stored record was read


@dataclass
class _Shard:
    id: str
    number: int
    parents: tuple[str, ...]
    iterator: str | None = None
    opened: bool = False
    start: str | None = None  # AT this sequence number; None: trim horizon
    index: int = -1  # index of the last record read since `start` (the first one is 0)
    last_sequence: str | None = None
    anchors: dict[str, _Anchor] = field(default_factory=dict)
    #: after an expired iterator: reading resumes AT this (already read) record, which must come first
    resume: str | None = None
    ended: bool = False  # a closed shard read to its end
    reached: bool = False  # at the end at least once since the run started
    due: float = 0.0
    backoff: float = 0.0


class KinesisTransport:
    """Reads the CDC stream shared by all tables (see the module doc)."""

    kind = "kinesis"

    def __init__(self, config: SinkConfig, positions: PositionLookup, client: Any = None) -> None:
        self.config = config
        self.stream = config.kinesis_stream
        self.positions = positions
        self.client = client or kinesis_client(config)
        self._shards: dict[str, _Shard] = {}
        self._tables: set[str] | None = None
        self._stopped: set[str] = set()
        #: sources whose stored position lies outside the stream (their table is being stopped)
        self._outside_sources: set[str] = set()
        #: every accepted table is read (not a subset run): records of unknown tables are delivered too
        self._all_tables = False
        self._out_of_range: list[OffsetOutOfRange] = []
        self._warned: dict[str, float] = {}
        #: (source, shard) -> the last offset handed out by `positions_to_record`
        self._recorded: dict[tuple[str, int], int] = {}

    # ------------------------------------------------------------------ naming
    def source(self, table: str) -> str:
        return self.config.source(table)

    def _source_of(self, topic: str) -> str:
        parsed = self.config.parse_topic(topic)
        return self.source(parsed.table) if parsed is not None and parsed.table else topic

    def _accepted(self) -> list[str]:
        return sorted(self.config.tables) if self.config.tables is not None else []

    def _is_accepted(self, table: str) -> bool:
        return self.config.tables is not None and table in self.config.tables

    # ------------------------------------------------------------------ discovery
    def _list_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        token = None
        try:
            while True:
                kwargs: dict[str, Any] = {"NextToken": token} if token else {"StreamName": self.stream}
                page = self.client.list_shards(**kwargs)
                shards += page.get("Shards", [])
                token = page.get("NextToken")
                if not token:
                    return shards
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return []  # no stream yet: the publisher creates it
            if error_code(exc) in THROTTLED:
                raise TransportUnavailable(f"Kinesis ListShards throttled: {exc}") from exc
            raise
        except BotoCoreError as exc:
            raise TransportUnavailable(f"Kinesis unreachable: {exc}") from exc

    def discover(self, tables: Iterable[str] | None = None) -> dict[str, list[int]]:
        """The stream's shards, once per table (`<stream>/<table>` → shard numbers)."""
        numbers = sorted(shard_number(s["ShardId"]) for s in self._list_shards())
        if not numbers:
            return {}
        wanted = list(tables) if tables is not None else self._accepted()
        return {self.source(table): numbers for table in wanted}

    def tables(self, sources: dict[str, list[int]]) -> list[str]:
        prefix = f"{self.stream}/"
        return sorted(s[len(prefix) :] for s in sources if s.startswith(prefix))

    def tables_read(self) -> list[str]:
        return sorted(self._tables or [])

    def partitions(self, table: str) -> list[int]:
        return sorted(shard_number(s["ShardId"]) for s in self._list_shards())

    # ------------------------------------------------------------------ reading
    def assign(self, sources: dict[str, list[int]]) -> None:
        if not sources:
            return
        added = set(self.tables(sources)) - (self._tables or set())
        self._tables = (self._tables or set()) | added
        self._all_tables = self._tables >= set(self._accepted())
        if added and any(shard.opened for shard in self._shards.values()):
            # a table joins after reading began: its records may lie before where the shards are
            # now, so every shard is read again from the lake's positions (each table skips what
            # it has; called between batches, so everything read so far is in the lake)
            self._shards.clear()
        for shard in self._list_shards():
            if shard["ShardId"] in self._shards:
                continue
            parents = tuple(p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p)
            self._shards[shard["ShardId"]] = _Shard(shard["ShardId"], shard_number(shard["ShardId"]), parents)

    def start_run(self) -> None:
        for shard in self._shards.values():
            shard.reached = shard.ended

    @property
    def assigned(self) -> bool:
        return bool(self._shards)

    def all_reached(self) -> bool:
        """Every shard that can be read is caught up: a child whose parent is still open (not yet
        closed by AWS; moto never closes it) has nothing readable and does not hold a run open."""
        return all(s.reached or not self._readable(s) for s in self._shards.values())

    def _readable(self, shard: _Shard) -> bool:
        """A child shard is read only once its parents (those still listed) are drained."""
        return not shard.ended and all(self._shards[p].ended for p in shard.parents if p in self._shards)

    def _open(self, shard: _Shard) -> None:
        """Take an iterator at the oldest position of the tables that flow (see the module doc)."""
        anchors: dict[str, _Anchor] = {}
        for table in self._tables or []:
            source = self.source(table)
            if table in self._stopped or source in self._outside_sources:
                continue
            stored = self.positions(source, shard.number)
            if stored is None or stored.sequence is None:
                anchors[source] = _Anchor(-1, None, None)
            else:
                anchors[source] = _Anchor(stored.offset, int(stored.sequence))
        shard.anchors = anchors
        starts = [a.sequence for a in anchors.values()]
        shard.start = None if not starts or None in starts else str(min(s for s in starts if s is not None))
        shard.index = -1
        shard.last_sequence = None
        shard.iterator = self._iterator(shard, "AT_SEQUENCE_NUMBER" if shard.start else "TRIM_HORIZON", shard.start)
        if shard.start is None:
            for anchor in anchors.values():
                if anchor.sequence is None:
                    anchor.delta = 0  # counted from the trim horizon
        shard.opened = True

    def _iterator(self, shard: _Shard, kind: str, sequence: str | None) -> str | None:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard.id, "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["StartingSequenceNumber"] = sequence
        try:
            return str(self.client.get_shard_iterator(**kwargs)["ShardIterator"])
        except ClientError as exc:
            if error_code(exc) == "InvalidArgumentException" and sequence is not None:
                # the sequence number is not in this shard (stream recreated): the tables stored
                # there stop (after an expired iterator: every table reading the shard)
                resuming, shard.resume = shard.resume == sequence, None
                for source, anchor in list(shard.anchors.items()):
                    if resuming or anchor.sequence == int(sequence):
                        self._outside(shard, source, anchor, f"the stream rejects sequence number {sequence}: {exc}")
                self._open(shard)
                return shard.iterator
            raise

    def poll(self, timeout: float) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            messages: list[Message] = []
            called = False
            for shard in list(self._shards.values()):
                if not self._readable(shard) or shard.due > time.monotonic():
                    continue
                called = True
                messages += self._read(shard)
            if messages or time.monotonic() >= deadline:
                return messages
            due = [s.due for s in self._shards.values() if self._readable(s)]
            wait = (min(due) - time.monotonic()) if due and not called else READ_INTERVAL_SECONDS
            time.sleep(max(0.01, min(wait, deadline - time.monotonic())))

    def _back_off(self, shard: _Shard, why: str) -> None:
        shard.backoff = min(max(shard.backoff * 2, READ_INTERVAL_SECONDS), MAX_BACKOFF_SECONDS)
        shard.due = time.monotonic() + shard.backoff
        self._warn(f"{why[:40]}:{shard.id}", f"Kinesis: {why} reading {shard.id}; backing off {shard.backoff:.1f} s")

    def _read(self, shard: _Shard) -> list[Message]:
        """One GetRecords of a shard. Transient failures (throttling, the endpoint unreachable, the
        stream missing for a moment) back the shard off and read nothing: they never raise, so the
        records other shards returned in the same poll are not lost."""
        try:
            if not shard.opened:
                self._open(shard)
            elif shard.iterator is None and shard.resume is not None:
                shard.iterator = self._iterator(shard, "AT_SEQUENCE_NUMBER", shard.resume)
            response = self.client.get_records(ShardIterator=shard.iterator, Limit=10_000)
        except ClientError as exc:
            code = error_code(exc)
            if code in THROTTLED:
                self._back_off(shard, "throttled")
                return []
            if code == "ExpiredIteratorException":
                # an iterator lives 5 minutes; reading goes on AT the last record read, which must
                # still be there (checked on the next page: if it expired meanwhile, records after
                # it may have expired too, and the shard's tables stop, see `_resumed`)
                if shard.last_sequence is None:
                    shard.opened = False  # nothing read yet: open again from the lake's positions
                else:
                    shard.resume, shard.iterator = shard.last_sequence, None
                return []
            if code in ("ResourceNotFoundException", "InternalFailure", "ServiceUnavailable", "500", "503"):
                self._back_off(shard, f"{code} ({exc})")
                return []
            raise
        except BotoCoreError as exc:
            self._back_off(shard, f"unreachable ({exc})")
            return []
        shard.backoff = 0.0
        shard.due = time.monotonic() + READ_INTERVAL_SECONDS
        records = response.get("Records", [])
        at_end = response.get("NextShardIterator") is None or (
            not records and int(response.get("MillisBehindLatest") or 0) == 0
        )
        if shard.resume is not None:
            records = self._resumed(shard, records, at_end)
        messages = [m for record in records if (m := self._message(shard, record)) is not None]
        shard.iterator = response.get("NextShardIterator")
        if shard.iterator is None:  # a closed shard, drained: its children may be read now
            shard.ended = shard.reached = True
            self._beyond_end(shard)
        elif at_end:
            shard.reached = True
            self._beyond_end(shard)
        return messages

    def _resumed(self, shard: _Shard, records: list[dict[str, Any]], at_end: bool) -> list[dict[str, Any]]:
        """The first page after an expired iterator: it starts with the last record read (dropped:
        it was delivered), or that record has expired and the records after it may have too, so
        every table reading the shard stops (`OffsetOutOfRange`) rather than skip them silently."""
        if not records and not at_end:
            return records  # an empty page of a shard with more to come: check the next one
        expected, shard.resume = shard.resume, None
        if records and str(records[0]["SequenceNumber"]) == expected:
            return records[1:]
        for source, anchor in list(shard.anchors.items()):
            if anchor.delta is not None:  # read up to the last record: the gap starts after it
                anchor.offset = max(anchor.offset, shard.index + anchor.delta)
            self._outside(shard, source, anchor, f"the last record read ({expected}) expired while reading")
        return records

    def _message(self, shard: _Shard, record: dict[str, Any]) -> Message | None:
        shard.index += 1
        sequence = str(record["SequenceNumber"])
        shard.last_sequence = sequence
        number = int(sequence)
        for pending_source, pending in list(shard.anchors.items()):
            if pending.delta is None and pending.sequence is not None:
                if number == pending.sequence:
                    pending.delta = pending.offset - shard.index
                elif number > pending.sequence:
                    self._outside(
                        shard, pending_source, pending, f"the shard holds nothing at sequence number {pending.sequence}"
                    )
        decoded = decode_record(bytes(record["Data"]))
        topic, key, value = decoded if decoded is not None else (self.stream, None, bytes(record["Data"]))
        source = self._source_of(topic)
        table = self.config.table_of(topic)
        if table in self._stopped or source in self._outside_sources:
            return None
        if table not in (self._tables or set()) and (self._is_accepted(table) or not self._all_tables):
            return None  # a run for other tables: this one is not read (as a Kafka topic would not be)
        anchor = shard.anchors.get(source)
        if anchor is None:  # a source first seen now (e.g. a topic of an unknown table)
            stored = self.positions(source, shard.number)
            anchor = shard.anchors[source] = _Anchor(-1, None, 0 if shard.start is None else None)
            if stored is not None and stored.sequence is not None:
                anchor.offset, anchor.sequence, anchor.delta = stored.offset, int(stored.sequence), None
                if number == anchor.sequence:
                    anchor.delta = anchor.offset - shard.index
            elif shard.start is not None:
                anchor.delta = -shard.index  # first seen here: counted from this record
        if anchor.delta is None:
            return None  # before the source's stored record: already in the lake
        offset = shard.index + anchor.delta
        if offset <= anchor.offset:
            return None
        return Message(topic, shard.number, offset, key, value, sequence)

    def _beyond_end(self, shard: _Shard) -> None:
        """At the end of what the shard holds: a stored record never met lies outside it."""
        for source, anchor in list(shard.anchors.items()):
            if anchor.delta is None and anchor.sequence is not None:
                self._outside(shard, source, anchor, f"{shard.id} ends before sequence number {anchor.sequence}")

    def _outside(self, shard: _Shard, source: str, anchor: _Anchor, detail: str) -> None:
        shard.anchors.pop(source, None)
        self._outside_sources.add(source)
        table = source.split("/", 1)[1] if "/" in source else source
        self._out_of_range.append(OffsetOutOfRange(table, source, shard.number, anchor.offset + 1, detail))

    def out_of_range(self) -> list[OffsetOutOfRange]:
        found, self._out_of_range = self._out_of_range, []
        return found

    def stop(self, table: str) -> None:
        """Skip the table's records from now on (they stay in the stream, within its retention)."""
        self._stopped.add(table)
        for shard in self._shards.values():
            shard.anchors.pop(self.source(table), None)

    def committed(self, messages: list[Message], stopped: set[str]) -> None:
        pass  # no consumer group: the lake is the only record of positions

    def positions_to_record(self) -> dict[str, dict[int, Position]]:
        """Per source and shard, the last record read (every record before it is in the lake)."""
        out: dict[str, dict[int, Position]] = {}
        for shard in self._shards.values():
            if shard.last_sequence is None:
                continue
            for table in self._tables or []:
                source = self.source(table)
                anchor = shard.anchors.get(source)
                if table in self._stopped or anchor is None or anchor.delta is None:
                    continue
                offset = shard.index + anchor.delta
                if offset > max(anchor.offset, self._recorded.get((source, shard.number), -1)):
                    out.setdefault(source, {})[shard.number] = Position(offset, shard.last_sequence)
                    self._recorded[(source, shard.number)] = offset
        return out

    def pending(self, positions: PositionLookup, timeout: float = 10.0) -> dict[str, dict[int, int]]:
        """Tables with records beyond the lake's positions (the sensor's question)."""
        probe = KinesisTransport(self.config, positions, self.client)
        probe.assign(probe.discover())
        probe.start_run()
        pending: dict[str, dict[int, int]] = {}
        deadline = time.monotonic() + timeout
        while probe.assigned and not probe.all_reached() and time.monotonic() < deadline:
            for message in probe.poll(0.5):
                table = self.config.table_of(message.topic)
                offsets = pending.setdefault(table, {})
                offsets[message.partition] = min(message.offset, offsets.get(message.partition, message.offset))
            for outside in probe.out_of_range():
                pending.setdefault(outside.table, {})[outside.partition] = outside.position
        return pending

    def _warn(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(key, -WARNING_SECONDS) >= WARNING_SECONDS:
            self._warned[key] = now
            log.warning("%s", message)

    def close(self) -> None:
        self._shards.clear()
