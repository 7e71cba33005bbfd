"""Debezium JSON envelopes (without schemas) → typed Arrow changelog rows, or dead letters.

The fast path hands a whole batch to Arrow's C++ JSON reader (several times faster than
`json.loads` per message). Messages that break it (invalid JSON, wrong shape) are isolated with
`orjson` and become dead letters; the rest is parsed again. Arrow infers ISO-8601 strings as
timestamps, which would change a column's type depending on the batch, so such fields are pinned
to `string`: the lake keeps Debezium's JSON representation and dbt staging casts it.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ingestion.cdc.resolve import UNAVAILABLE
from ingestion.cdc.schema import UNTYPED, IncompatibleSchemaChange, conform_struct, merge_row_types

__all__ = ["UNAVAILABLE", "DeadLetter", "DecodedBatch", "Message", "bronze_schema", "decode"]

#: c(reate), u(pdate), d(elete), r(ead: snapshot), t(runcate: no key, no images)
OPS = ("c", "u", "d", "r", "t")
#: How Debezium's JSON writes double precision NaN and infinities: as strings, since JSON numbers
#: cannot hold them. In a number column they are read as float64 NaN/inf (never a type change).
FLOAT_TOKENS = ("NaN", "Infinity", "-Infinity")
_FLOAT_TOKEN_BYTES = tuple(f'"{t}"'.encode() for t in FLOAT_TOKENS)
#: How Debezium writes numeric NaN/infinities with `decimal.handling.mode=string` (numeric columns
#: stay strings; under a float64 column override they become float64 NaN/inf)
NUMERIC_SPECIALS = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity", "NEGATIVE_INFINITY": "-Infinity"}

SOURCE_TYPE = pa.struct(
    [
        ("schema", pa.string()),
        ("table", pa.string()),
        ("lsn", pa.int64()),
        ("txId", pa.int64()),
        ("ts_ms", pa.int64()),
        ("ts_us", pa.int64()),
        ("snapshot", pa.string()),
    ]
)

BRONZE_META_FIELDS: list[pa.Field] = [
    pa.field("lsn", pa.int64()),
    pa.field("tx_id", pa.int64()),
    pa.field("source_ts", pa.timestamp("us", tz="UTC")),
    pa.field("snapshot", pa.string()),
    pa.field("kafka_topic", pa.string()),
    pa.field("kafka_partition", pa.int32()),
    pa.field("kafka_offset", pa.int64()),
    pa.field("kafka_key", pa.string()),
    pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
]


@dataclass(frozen=True)
class Message:
    """One CDC record, detached from the client library: Kafka's topic, partition and offset, or
    on Kinesis the Debezium topic it names, the shard's number and the table's own offset in it
    (with the record's sequence number)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    sequence: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    message: Message
    error: str


@dataclass
class DecodedBatch:
    """Changelog rows of one table (bronze shape) plus the messages that could not be used."""

    rows: pa.Table
    row_type: pa.StructType
    key_columns: list[str]
    dead_letters: list[DeadLetter]


def bronze_schema(row_type: pa.StructType) -> pa.Schema:
    return pa.schema(
        [
            pa.field("op", pa.string()),
            pa.field("before", row_type),
            pa.field("after", row_type),
            *BRONZE_META_FIELDS,
        ]
    )


def decode(
    messages: list[Message],
    schema: str,
    table: str,
    known_row_type: pa.StructType | None,
    untyped: frozenset[str] = frozenset(),
    overrides: dict[str, str] | None = None,
    known_keys: list[str] | None = None,
) -> DecodedBatch:
    """Decode the non-tombstone messages of one table.

    Raises `IncompatibleSchemaChange` if the batch changes a column's type incompatibly (columns
    in `untyped` hold only nulls so far and may take any type). `known_keys` are the table's key
    columns as stored; messages with another key shape become dead letters.
    """
    dead: list[DeadLetter] = []
    candidates = [m for m in messages if m.value is not None]
    if overrides:
        candidates = [_apply_overrides(m, overrides) for m in candidates]
    floats: set[str] = set()
    if any(token in (m.value or b"") for m in candidates for token in _FLOAT_TOKEN_BYTES):
        floats = _float_columns(candidates, known_row_type, untyped, overrides or {})
        candidates = [_numbers_as_text(m, floats) for m in candidates] if floats else candidates
    parsed, candidates, bad = _parse(candidates, known_row_type, table, floats)
    dead += bad
    if parsed is None:
        row_type = known_row_type or pa.struct([])
        return DecodedBatch(bronze_schema(row_type).empty_table(), row_type, [], dead)

    valid, reasons = _validate(parsed, schema, table)
    for index in pc.indices_nonzero(pc.invert(valid)).to_pylist():
        dead.append(DeadLetter(candidates[index], reasons[index] or "invalid envelope"))
    parsed = parsed.filter(valid)
    candidates = [m for m, ok in zip(candidates, valid.to_pylist(), strict=True) if ok]

    batch_type = _row_type(parsed, candidates[:1] + candidates[-1:], known_row_type)
    if overrides:
        # the operator decided how to represent these columns: values are cast, not judged
        batch_type = pa.struct(
            [(f.name, pa.type_for_alias(overrides[f.name]) if f.name in overrides else f.type) for f in batch_type]
        )
    row_type = merge_row_types(table, known_row_type, batch_type, untyped)
    ops = parsed.column("op").to_pylist()
    key_columns, key_dead = _key_columns([m for m, op in zip(candidates, ops, strict=True) if op != "t"], known_keys)
    if key_dead:
        keep = pa.array([m not in key_dead for m in candidates])
        dead += [DeadLetter(m, why) for m, why in key_dead.items()]
        parsed = parsed.filter(keep)
        candidates = [m for m in candidates if m not in key_dead]
    row_type = concrete(row_type)
    rows = _to_bronze(parsed, candidates, row_type)
    return DecodedBatch(rows, row_type, key_columns, dead)


# ---------------------------------------------------------------------------- parsing
def _apply_overrides(message: Message, overrides: dict[str, str]) -> Message:
    """Rewrite overridden columns in JSON so that every message agrees on their JSON type.

    Arrow's reader cannot read one column as both number and string, so an override to `string`
    turns numbers/booleans into their JSON text; numeric overrides turn numeric strings into numbers.
    """
    try:
        envelope = orjson.loads(message.value or b"")
    except orjson.JSONDecodeError:
        return message  # dead-lettered later with the parse error
    if not isinstance(envelope, dict):
        return message
    for side in ("before", "after"):
        image = envelope.get(side)
        if not isinstance(image, dict):
            continue
        for column, type_name in overrides.items():
            value = image.get(column)
            if value is None:
                continue
            if type_name == "string" and not isinstance(value, str):
                image[column] = orjson.dumps(value).decode()
            elif type_name == "float64" and isinstance(value, str) and value in (*FLOAT_TOKENS, *NUMERIC_SPECIALS):
                image[column] = NUMERIC_SPECIALS.get(value, value)  # JSON has no NaN: read as a float token
            elif type_name in ("int64", "float64") and isinstance(value, str):
                try:
                    image[column] = int(value) if type_name == "int64" else float(value)
                except ValueError:
                    return message  # not representable: stays incompatible, reported as such
            elif type_name == "bool" and isinstance(value, str) and value in ("true", "false"):
                image[column] = value == "true"
    return replace(message, value=orjson.dumps(envelope))


def _parse(
    messages: list[Message],
    known_row_type: pa.StructType | None,
    table: str,
    floats: frozenset[str] | set[str] = frozenset(),
) -> tuple[pa.Table | None, list[Message], list[DeadLetter]]:
    """Parse the envelopes; `floats` are number columns whose values arrive as text (see `_float_columns`)."""
    if not messages:
        return None, [], []
    if floats:
        known_row_type = pa.struct(
            [(f.name, pa.string() if f.name in floats else f.type) for f in (known_row_type or pa.struct([]))]
        )
    pinned: dict[str, pa.DataType] = dict.fromkeys(floats, pa.string())
    parsed, good, dead = _parse_envelopes(messages, known_row_type, table, pinned)
    if parsed is not None and floats:
        parsed = _cast_fields(parsed, floats, pa.float64())
    return parsed, good, dead


def _parse_envelopes(
    messages: list[Message], known_row_type: pa.StructType | None, table: str, pinned: dict[str, pa.DataType]
) -> tuple[pa.Table | None, list[Message], list[DeadLetter]]:
    try:
        parsed = _read_json(messages, known_row_type, pinned)
        if parsed.num_rows == len(messages):
            return parsed, messages, []
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    # slow path: find the broken messages one by one, parse the rest in one go
    good: list[Message] = []
    dead: list[DeadLetter] = []
    for message in messages:
        reason = _shape_error(message.value)
        if reason:
            dead.append(DeadLetter(message, reason))
        else:
            good.append(message)
    if not good:
        return None, [], dead
    try:
        return _read_json(good, known_row_type, pinned), good, dead
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    # well-formed, but a value does not fit its column's known type: infer the batch's own
    # types and let the evolution rules decide (widening, or an incompatible change)
    try:
        return _read_json(good, None, pinned), good, dead
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise IncompatibleSchemaChange.within_batch(table, str(exc)) from exc


def _float_columns(
    messages: list[Message], known: pa.StructType | None, untyped: frozenset[str], overrides: dict[str, str]
) -> set[str]:
    """Number columns of this batch that carry a NaN/Infinity token (rare: a slow path).

    A token is a float in a column that is numeric: known as int64/float64 (not merely untyped),
    overridden to float64, or new and carrying JSON numbers in this batch. In a text column the
    same strings are text and stay so.
    """
    kinds: dict[str, set[str]] = {}
    for message in messages:
        try:
            envelope = orjson.loads(message.value or b"")
        except orjson.JSONDecodeError:
            continue
        if not isinstance(envelope, dict):
            continue
        for side in ("before", "after"):
            image = envelope.get(side)
            if not isinstance(image, dict):
                continue
            for column, value in image.items():
                if isinstance(value, str):
                    kind = "token" if value in FLOAT_TOKENS else "text"
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    kind = "number"
                else:
                    kind = "null" if value is None else "other"
                kinds.setdefault(column, set()).add(kind)
    known_types = {f.name: f.type for f in known} if known is not None else {}
    floats = set()
    for column, seen in kinds.items():
        if "token" not in seen or seen & {"text", "other"}:
            continue
        known_type = None if column in untyped else known_types.get(column)
        numeric = known_type is not None and (pa.types.is_floating(known_type) or pa.types.is_integer(known_type))
        if overrides.get(column) == "float64" or numeric or (known_type is None and "number" in seen):
            floats.add(column)
    return floats


def _numbers_as_text(message: Message, columns: set[str]) -> Message:
    """The message with the numbers of `columns` written as JSON strings (their exact text), so that
    Arrow reads each column as text and one cast turns numbers and tokens into float64."""
    try:
        envelope = orjson.loads(message.value or b"")
    except orjson.JSONDecodeError:
        return message
    if not isinstance(envelope, dict):
        return message
    changed = False
    for side in ("before", "after"):
        image = envelope.get(side)
        if not isinstance(image, dict):
            continue
        for column in columns:
            value = image.get(column)
            if isinstance(value, int | float) and not isinstance(value, bool):
                image[column] = repr(value)
                changed = True
    if not changed:
        return message
    return replace(message, value=orjson.dumps(envelope))


def _cast_fields(parsed: pa.Table, columns: frozenset[str] | set[str], type_: pa.DataType) -> pa.Table:
    """Cast fields of the before/after structs ('NaN', 'Infinity', '-Infinity' and numbers as text)."""
    for side in ("before", "after"):
        image = parsed.column(side).combine_chunks()
        if pa.types.is_null(image.type):
            continue
        target = pa.struct([(f.name, type_ if f.name in columns else f.type) for f in image.type])
        index = parsed.schema.get_field_index(side)
        parsed = parsed.set_column(index, side, conform_struct(image, target))
    return parsed


def _read_json(
    messages: list[Message], known_row_type: pa.StructType | None, pinned: dict[str, pa.DataType]
) -> pa.Table:
    payload = b"\n".join(_one_line(m.value) for m in messages if m.value is not None)
    for _ in range(3):
        row_type = _explicit_row_type(known_row_type, pinned)
        explicit = pa.schema([("before", row_type), ("after", row_type), ("source", SOURCE_TYPE), ("op", pa.string())])
        # unknown row fields (new columns) are inferred; timestamps among them get pinned below
        options = pj.ParseOptions(explicit_schema=explicit, unexpected_field_behavior="infer")
        table = pj.read_json(io.BytesIO(payload), parse_options=options)
        table = table.select(["before", "after", "source", "op"])
        temporal = {
            f.name
            for column in ("before", "after")
            for f in table.schema.field(column).type
            if pa.types.is_temporal(f.type) and f.name not in pinned
        }
        if not temporal:
            return table
        pinned.update(dict.fromkeys(temporal, pa.string()))
    raise pa.ArrowInvalid("could not pin inferred timestamp fields")


def _one_line(value: bytes) -> bytes:
    """The value as one line: Arrow reads newline-delimited JSON, and valid JSON may be pretty-printed."""
    if b"\n" not in value and b"\r" not in value:
        return value
    try:
        return orjson.dumps(orjson.loads(value))
    except orjson.JSONDecodeError:
        return value  # isolated later by `_shape_error` as malformed JSON


def _explicit_row_type(known: pa.StructType | None, pinned: dict[str, pa.DataType]) -> pa.StructType:
    fields = {f.name: f.type for f in known} if known is not None else {}
    for name, type_ in pinned.items():
        fields.setdefault(name, type_)
    return pa.struct(list(fields.items()))


def _shape_error(value: bytes | None) -> str | None:
    try:
        envelope = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        return f"malformed JSON: {exc}"
    if not isinstance(envelope, dict):
        return "malformed envelope: not a JSON object"
    missing = [k for k in ("op", "source") if k not in envelope]
    if missing:
        return f"malformed envelope: missing {', '.join(missing)}"
    for side in ("before", "after"):
        if envelope.get(side) is not None and not isinstance(envelope[side], dict):
            return f"malformed envelope: {side!r} is not an object"
    if not isinstance(envelope["op"], str):
        return "malformed envelope: 'op' is not a string"
    source = envelope["source"]
    if not isinstance(source, dict):
        return "malformed envelope: 'source' is not an object"
    # the types Debezium sends (SOURCE_TYPE): anything else would fail every parse of the batch
    for name in SOURCE_TYPE.names:
        value = source.get(name)
        expected = SOURCE_TYPE.field(name).type
        if value is None:
            continue
        if pa.types.is_integer(expected) and (not isinstance(value, int) or isinstance(value, bool)):
            return f"malformed envelope: source.{name} is not an integer ({value!r})"
        if pa.types.is_string(expected) and not isinstance(value, str):
            return f"malformed envelope: source.{name} is not a string ({value!r})"
    return None


# ---------------------------------------------------------------------------- validation
def _validate(parsed: pa.Table, schema: str, table: str) -> tuple[pa.BooleanArray, list[str | None]]:
    op = parsed.column("op").combine_chunks()
    source = parsed.column("source").combine_chunks()
    before_valid = parsed.column("before").combine_chunks().is_valid()
    after_valid = parsed.column("after").combine_chunks().is_valid()
    checks = [
        (pc.is_in(op, value_set=pa.array(OPS)), "unknown op (expected c, u, d or r)"),
        (
            pc.and_(pc.equal(source.field("schema"), schema), pc.equal(source.field("table"), table)),
            f"envelope source does not match the topic's table {schema}.{table}",
        ),
        (source.field("lsn").is_valid(), "envelope has no source.lsn"),
        (
            pc.or_(pc.is_in(op, value_set=pa.array(["d", "t"])), after_valid),
            "change without an 'after' image",
        ),
        (pc.or_(pc.not_equal(op, "d"), before_valid), "delete without a 'before' image"),
    ]
    valid = pa.array([True] * parsed.num_rows)
    reasons: list[str | None] = [None] * parsed.num_rows
    for check, reason in checks:
        ok = pc.fill_null(check, False)
        for index in pc.indices_nonzero(pc.invert(ok)).to_pylist():
            reasons[index] = reasons[index] or reason
        valid = pc.and_(valid, ok)
    return valid, reasons


def _key_columns(messages: list[Message], known: list[str] | None = None) -> tuple[list[str], dict[Message, str]]:
    """Primary key columns from the Debezium key; keyless or inconsistent messages are dead.

    Messages are judged against the table's stored key columns (`known`); only a brand-new table
    takes the shape most of its first batch has (first seen on a tie), so one stray message at
    the head of a batch cannot send the real changes to the dead letters.
    """
    dead: dict[Message, str] = {}
    shapes: dict[Message, list[str]] = {}
    for message in messages:
        try:
            key = orjson.loads(message.key) if message.key is not None else None
        except orjson.JSONDecodeError:
            dead[message] = "malformed key JSON"
            continue
        if not isinstance(key, dict) or not key:
            dead[message] = "message has no primary key (silver needs one)"
            continue
        shapes[message] = list(key)
    columns = known or None
    if columns is None and shapes:
        votes = Counter(tuple(names) for names in shapes.values())
        columns = list(votes.most_common(1)[0][0])  # most_common keeps the first seen of equals
    for message, names in shapes.items():
        if names != columns:
            dead[message] = f"key columns {names} differ from the table's {columns}"
    return columns or [], dead


def _row_type(parsed: pa.Table, samples: list[Message], known: pa.StructType | None) -> pa.StructType:
    """Row type of the valid rows: known columns first, new ones in the source's column order.

    Debezium sends every column in every image, so the column order comes from the keys of the
    first and last envelopes (the last one has the newest schema); any other field Arrow inferred
    (a column that only envelopes in the middle of the batch carry) follows, so none is dropped.
    Fields that only dead-lettered envelopes carried never reach the table.
    """
    merged = merge_row_types("", parsed.schema.field("before").type, parsed.schema.field("after").type)
    order: list[str] = []
    for sample in samples:
        envelope = orjson.loads(sample.value or b"{}")
        for side in ("after", "before"):
            for name in envelope.get(side) or {}:
                if name not in order:
                    order.append(name)
    known_order = [f.name for f in known] if known is not None else []
    names = known_order + [name for name in order if name not in known_order]
    names += [f.name for f in merged if f.name not in names]
    types = {f.name: f.type for f in merged}
    return pa.struct([(name, types.get(name, pa.null())) for name in names])


def concrete(row_type: pa.StructType) -> pa.StructType:
    """Columns seen only as null get the placeholder type (Delta has no null type)."""
    return pa.struct([(f.name, UNTYPED if pa.types.is_null(f.type) else f.type) for f in row_type])


def _to_bronze(parsed: pa.Table, messages: list[Message], row_type: pa.StructType) -> pa.Table:
    source = parsed.column("source").combine_chunks()
    ts_us = pc.coalesce(source.field("ts_us"), pc.multiply(source.field("ts_ms"), 1000))
    now = datetime.now(UTC)
    n = parsed.num_rows
    return pa.Table.from_arrays(
        [
            parsed.column("op").combine_chunks(),
            conform_struct(parsed.column("before").combine_chunks(), row_type),
            conform_struct(parsed.column("after").combine_chunks(), row_type),
            source.field("lsn"),
            source.field("txId"),
            pc.cast(ts_us, pa.timestamp("us", tz="UTC")),
            source.field("snapshot"),
            pa.array([m.topic for m in messages], pa.string()),
            pa.array([m.partition for m in messages], pa.int32()),
            pa.array([m.offset for m in messages], pa.int64()),
            pa.array([m.key.decode("utf-8", "replace") if m.key else None for m in messages], pa.string()),
            pa.array([now] * n, pa.timestamp("us", tz="UTC")),
        ],
        schema=bronze_schema(row_type),
    )
