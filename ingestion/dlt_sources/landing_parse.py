"""Parsing and validation of landing objects into Arrow tables (pure functions, no I/O).

Clickstream objects go through a tiered parser so that the common case stays in C++:
1. the whole object through `pyarrow.json` (multi-threaded, ~1M lines/s);
2. if Arrow rejects it (broken JSON, wrong types), every line is checked with orjson and only
   the good lines are handed back to Arrow; the bad ones are quarantined with a reason;
3. required fields and timestamps are validated column-wise on the resulting table.
Partner feeds are small CSV files and are validated row by row with the csv module.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import queue
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

Kind = Literal["clickstream", "partner_feeds"]
KINDS: Final[tuple[Kind, ...]] = ("clickstream", "partner_feeds")

#: Longest raw text kept in the quarantine table per line (a runaway line must not bloat it).
MAX_RAW_CHARS: Final = 64 * 1024
TIMESTAMP = pa.timestamp("us", tz="UTC")

# ------------------------------------------------------------------------------ object keys
_DAY = r"dt=(\d{4}-\d{2}-\d{2})"
_FILE = r"[A-Za-z0-9][A-Za-z0-9._=-]{0,200}"
KEY_PATTERNS: Final[dict[Kind, re.Pattern[str]]] = {
    "clickstream": re.compile(rf"^clickstream/{_DAY}/({_FILE})$"),
    "partner_feeds": re.compile(rf"^partner_feeds/([a-z0-9][a-z0-9_-]{{0,63}})/{_DAY}/({_FILE})$"),
}
PREFIXES: Final[dict[Kind, str]] = {"clickstream": "clickstream/", "partner_feeds": "partner_feeds/"}


def check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"unknown landing kind {kind!r}; known: {', '.join(KINDS)}")
    return kind  # type: ignore[return-value]


def validate_key(kind: Kind, key: str) -> re.Match[str]:
    """The key's match against the landing layout; ValueError for anything else (no traversal)."""
    match = KEY_PATTERNS[kind].match(key) if isinstance(key, str) else None
    if match is None or ".." in key:
        raise ValueError(f"{key!r} is not a {kind} landing object key ({KEY_PATTERNS[kind].pattern})")
    return match


def follows_layout(kind: Kind, key: str) -> bool:
    """Whether `key` is a loadable landing object key of `kind`."""
    return isinstance(key, str) and KEY_PATTERNS[kind].match(key) is not None and ".." not in key


def is_marker(kind: Kind, key: str, size: int) -> bool:
    """An empty object off the layout (`_SUCCESS`, a folder placeholder): nothing to load or keep."""
    return size == 0 and not follows_layout(kind, key)


def off_layout_reason(kind: Kind, key: str) -> str:
    """The quarantine reason of a non-empty object under the kind's prefix that is off the layout."""
    return f"object key does not follow the {kind} landing layout ({KEY_PATTERNS[kind].pattern}); not loaded"


def validate_prefix(kind: Kind, prefix: str) -> str:
    """A listing prefix inside the kind's folder (e.g. `clickstream/dt=2026-11-23/`)."""
    if (
        not isinstance(prefix, str)
        or not prefix.startswith(PREFIXES[kind])
        or ".." in prefix
        or not re.fullmatch(r"[A-Za-z0-9._=/-]+", prefix)
    ):
        raise ValueError(f"prefix {prefix!r} must lie under {PREFIXES[kind]!r}")
    return prefix


# ------------------------------------------------------------------------------ results
QUARANTINE_SCHEMA: Final = pa.schema(
    [
        ("source", pa.string()),
        # the merge key of the table: non-nullable like dlt's primary-key columns
        pa.field("object_key", pa.string(), nullable=False),
        pa.field("object_etag", pa.string(), nullable=False),
        pa.field("line_number", pa.int64(), nullable=False),
        ("raw", pa.string()),
        ("reason", pa.string()),
        ("quarantined_at", TIMESTAMP),
    ]
)


@dataclass
class Parsed:
    """Good rows and quarantined lines of one object."""

    rows: pa.Table | None
    bad: list[tuple[int, str, str]] = field(default_factory=list)  # (line_number, raw, reason)
    unknown_fields: set[str] = field(default_factory=set)  # fields outside the contract (kept as JSON)

    @property
    def row_count(self) -> int:
        return 0 if self.rows is None else self.rows.num_rows


def raw_text(line: bytes | str) -> str:
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    return text[:MAX_RAW_CHARS]


def quarantine_table(
    source: Kind, key: str, etag: str, bad: Sequence[tuple[int, str, str]], now: dt.datetime
) -> pa.Table:
    n = len(bad)
    return pa.table(
        {
            "source": pa.array([source] * n, pa.string()),
            "object_key": pa.array([key] * n, pa.string()),
            "object_etag": pa.array([etag] * n, pa.string()),
            "line_number": pa.array([b[0] for b in bad], pa.int64()),
            "raw": pa.array([b[1] for b in bad], pa.string()),
            "reason": pa.array([b[2] for b in bad], pa.string()),
            "quarantined_at": pa.array([now] * n, TIMESTAMP),
        },
        schema=QUARANTINE_SCHEMA,
    )


def _lineage(table: pa.Table, key: str, etag: str, line_numbers: pa.Array) -> pa.Table:
    n = table.num_rows
    table = table.append_column("_object_key", pa.repeat(pa.scalar(key, pa.string()), n))
    table = table.append_column("_object_etag", pa.repeat(pa.scalar(etag, pa.string()), n))
    return table.append_column("_line_number", line_numbers.cast(pa.int64()))


# ------------------------------------------------------------------------------ streaming
#: Decompressed text is parsed in blocks of about this size (whole lines): memory per object in
#: flight stays around a block and its Arrow table, whatever the object's size.
BLOCK_BYTES: Final = 4 * 1024 * 1024
#: Inflate at most this much per step: a decompression bomb cannot blow up one buffer.
INFLATE_BYTES: Final = 1024 * 1024
_GZIP_MAGIC: Final = b"\x1f\x8b"


class UnreadableObject(ValueError):
    """The object itself is broken (corrupt or truncated gzip, not text): it is quarantined whole."""


def gunzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompressed pieces of a stream; gzip is detected by its magic bytes, plain data passes.

    zlib checks each member's CRC while inflating; concatenated members (as some writers append
    them) are all read; trailing NUL padding is ignored, anything else after the last member is an
    error. Output comes in pieces of at most `INFLATE_BYTES`.
    """
    source = iter(chunks)
    head = b""
    for chunk in source:
        head += chunk
        if len(head) >= 2:
            break
    if head[:2] != _GZIP_MAGIC:
        if head:
            yield head
        yield from source
        return
    inflater: Any = None
    pending = head
    limit = INFLATE_BYTES
    try:
        for data in itertools.chain([b""], source):
            data = pending + data if pending else data
            pending = b""
            while data:
                if inflater is None:  # between members: another member, padding, or garbage
                    if len(data) < 2:
                        pending = data
                        break
                    if data[:2] != _GZIP_MAGIC:
                        if data.strip(b"\x00"):
                            raise UnreadableObject("trailing garbage after gzip stream")
                        break
                    inflater = zlib.decompressobj(wbits=31)
                while True:
                    out = inflater.decompress(data, limit)
                    if out:
                        yield out
                    data = inflater.unconsumed_tail
                    if inflater.eof or (not data and len(out) < limit):
                        break
                if inflater.eof:
                    data = inflater.unused_data
                    inflater = None
        if inflater is not None and not inflater.eof:
            raise UnreadableObject("truncated gzip stream")
        if pending.strip(b"\x00"):
            raise UnreadableObject("trailing garbage after gzip stream")
    except zlib.error as exc:
        raise UnreadableObject(str(exc)) from exc


@dataclass(frozen=True)
class Block:
    """Whole lines of an object; `first_line` is the 1-based number of its first line."""

    first_line: int
    data: bytes


@dataclass(frozen=True)
class LongLine:
    """A line longer than `MAX_LINE_BYTES` (its beginning only)."""

    line_number: int
    head: bytes


def line_blocks(chunks: Iterable[bytes]) -> Iterator[Block | LongLine]:
    """Cut a byte stream into blocks of whole lines of at most `BLOCK_BYTES`.

    Line numbers are physical lines: a final line without a newline counts. A line of
    `BLOCK_BYTES` or more (whatever the chunking) is reported as a `LongLine` and skipped to its
    end without being buffered, so memory stays below a block plus a chunk.
    """
    limit = BLOCK_BYTES
    buffer = bytearray()
    line = 1
    skipping = False
    for chunk in chunks:
        if skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                continue
            chunk = chunk[newline + 1 :]
            skipping = False
            line += 1
        buffer += chunk
        while len(buffer) >= limit:
            cut = buffer.rfind(b"\n", 0, limit)
            if cut >= 0:
                data = bytes(buffer[: cut + 1])
                del buffer[: cut + 1]
                yield Block(line, data)
                line += data.count(b"\n")
                continue
            yield LongLine(line, bytes(buffer[: MAX_RAW_CHARS * 4]))
            newline = buffer.find(b"\n", limit)
            if newline < 0:
                buffer.clear()
                skipping = True
                break
            del buffer[: newline + 1]
            line += 1
    if buffer and not skipping:
        yield Block(line, bytes(buffer))


def long_line_reason() -> str:
    return f"line longer than {BLOCK_BYTES} bytes (not buffered; first bytes kept)"


def decompress(payload: bytes) -> bytes:
    """A whole payload decompressed (tests and small objects; the loader streams)."""
    return b"".join(gunzip_chunks([payload]))


# ------------------------------------------------------------------------------ clickstream
#: Fields of a clickstream event as read from JSON (timestamps validated and typed afterwards).
CLICKSTREAM_FIELDS: Final = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("event_ts", pa.string()),
        ("session_id", pa.string()),
        ("customer_id", pa.int64()),
        ("product_id", pa.int64()),
        ("order_id", pa.int64()),
        ("page_url", pa.string()),
        ("referrer", pa.string()),
        ("campaign_id", pa.string()),
        ("device", pa.string()),
    ]
)
#: An event without these is useless downstream (identity, type, time, session): quarantined.
CLICKSTREAM_REQUIRED: Final = ("event_id", "event_type", "event_ts", "session_id")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Tier 1 refuses fields outside the contract, so that a block holding any goes to tier 2, which
#: keeps them in `_extra_fields` instead of dropping them silently.
_STRICT_OPTIONS = pa_json.ParseOptions(explicit_schema=CLICKSTREAM_FIELDS, unexpected_field_behavior="error")
_PARSE_OPTIONS = pa_json.ParseOptions(explicit_schema=CLICKSTREAM_FIELDS, unexpected_field_behavior="ignore")
_FIELD_NAMES: Final = frozenset(CLICKSTREAM_FIELDS.names)
EXTRA_FIELDS: Final = "_extra_fields"
#: Arrow parses a block in pieces of this size on its own thread pool (a longer line is retried
#: in tier 2 with a block size that fits it).
_ARROW_BLOCK: Final = 1 << 20


def _read_json(data: bytes, longest_line: int = 0, strict: bool = False) -> pa.Table:
    options = pa_json.ReadOptions(block_size=max(_ARROW_BLOCK, longest_line + 1))
    parse = _STRICT_OPTIONS if strict else _PARSE_OPTIONS
    return pa_json.read_json(io.BytesIO(data), read_options=options, parse_options=parse)


def _with_extras(table: pa.Table, extras: pa.Array | None = None) -> pa.Table:
    """`table` plus the `_extra_fields` column (JSON of the fields outside the contract, or null)."""
    if EXTRA_FIELDS in table.column_names:
        return table
    return table.append_column(EXTRA_FIELDS, extras if extras is not None else pa.nulls(table.num_rows, pa.string()))


def _check_event(obj: Any) -> str | None:
    """Why a parsed JSON value cannot be loaded as an event (None = loadable by Arrow)."""
    if not isinstance(obj, dict):
        return f"not a JSON object ({type(obj).__name__})"
    for f in CLICKSTREAM_FIELDS:
        value = obj.get(f.name)
        if value is None:
            continue
        if pa.types.is_integer(f.type):
            if type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX:
                return f"{f.name}: expected an integer, got {type(value).__name__} {str(value)[:40]!r}"
        elif not isinstance(value, str):
            return f"{f.name}: expected a string, got {type(value).__name__}"
    return None


def _split_lines(text: bytes) -> list[bytes]:
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _parse_json_lines(
    lines: list[bytes], first_line: int = 1
) -> tuple[pa.Table, pa.Array, list[tuple[int, str, str]], set[str]]:
    """Tier 2: drop the lines that are not JSON objects, then Arrow over the rest.

    Only when Arrow still rejects them (a field of the wrong type, rarer than broken lines) is every
    field of every event type-checked in Python.
    """
    good: list[bytes] = []
    parsed: list[Any] = []
    numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    extras: dict[int, str] = {}
    unknown: set[str] = set()
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    for number, line in enumerate(lines, start=first_line):
        try:
            obj = loads(line)
        except decode_error as exc:
            if line.strip():  # blank lines carry nothing (not an error)
                bad.append((number, raw_text(line), f"invalid JSON: {exc}"))
            continue
        if type(obj) is not dict:
            bad.append((number, raw_text(line), f"not a JSON object ({type(obj).__name__})"))
            continue
        if not obj.keys() <= _FIELD_NAMES:
            extra = {k: v for k, v in obj.items() if k not in _FIELD_NAMES}
            unknown.update(extra)
            extras[number] = orjson.dumps(extra).decode()
        good.append(line)
        parsed.append(obj)
        numbers.append(number)
    longest = max(map(len, good), default=0)
    try:
        table = _read_json(b"\n".join(good), longest) if good else CLICKSTREAM_FIELDS.empty_table()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        table = None
    if table is None or table.num_rows != len(good):
        kept_lines: list[bytes] = []
        kept_numbers: list[int] = []
        for line, obj, number in zip(good, parsed, numbers, strict=True):
            reason = _check_event(obj)
            if reason is None:
                kept_lines.append(line)
                kept_numbers.append(number)
            else:
                bad.append((number, raw_text(line), reason))
        good, numbers = kept_lines, kept_numbers
        try:
            table = _read_json(b"\n".join(good), longest) if good else CLICKSTREAM_FIELDS.empty_table()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            table = None
        if table is None or table.num_rows != len(good):
            # Arrow rejects something orjson and the type checks accept: isolate it line by line
            # (slow, never seen in practice) rather than block the object forever
            tables: list[pa.Table] = []
            kept_numbers = []
            for line, number in zip(good, numbers, strict=True):
                try:
                    single = _read_json(line, len(line))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    bad.append((number, raw_text(line), f"rejected by the JSON reader: {exc}"))
                    continue
                tables.append(single)
                kept_numbers.append(number)
            numbers = kept_numbers
            table = pa.concat_tables(tables) if tables else CLICKSTREAM_FIELDS.empty_table()
    extra_column = pa.array([extras.get(n) for n in numbers], pa.string()) if extras else None
    return _with_extras(table, extra_column), pa.array(numbers, pa.int64()), bad, unknown


def _bad_timestamps(values: pa.Array) -> list[int]:
    """Indexes of strings Arrow cannot read as an ISO-8601 timestamp with an explicit offset.

    A cast either succeeds for the whole array or fails: bisect to find the culprits, so the cost
    is paid only by objects that really hold bad timestamps.
    """
    try:
        pc.cast(values, TIMESTAMP)
        return []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) == 1:
            return [0]
    half = len(values) // 2
    return _bad_timestamps(values[:half]) + [half + i for i in _bad_timestamps(values[half:])]


class ClickstreamParser:
    """Parses the blocks of one clickstream object (gzipped JSON lines) into rows + quarantined lines."""

    def __init__(self, key: str, etag: str) -> None:
        self.key, self.etag = key, etag

    def parse(self, text: bytes, first_line: int) -> Parsed:
        """One block of whole lines; line numbers start at `first_line`."""
        # Tier 1 needs no per-line Python objects: count lines in C and let Arrow parse everything.
        count = text.count(b"\n") + (0 if text.endswith(b"\n") else 1)
        table: pa.Table | None = None
        if text and not text.startswith(b"\n") and b"\n\n" not in text:
            try:
                table = _read_json(text, strict=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # broken lines, wrong types, unknown fields
                table = None
            if table is not None and table.num_rows != count:  # whitespace-only lines
                table = None
        if table is not None:
            numbers: pa.Array = pa.array(np.arange(first_line, first_line + count, dtype=np.int64))
            table = _with_extras(table)
            return _validate_events(table, numbers, lambda: _split_lines(text), first_line, [], self.key, self.etag)
        lines = _split_lines(text)
        table, numbers, bad, unknown = _parse_json_lines(lines, first_line)
        parsed = _validate_events(table, numbers, lambda: lines, first_line, bad, self.key, self.etag)
        parsed.unknown_fields = unknown
        return parsed


def parse_clickstream(payload: bytes, key: str, etag: str) -> Parsed:
    """A whole clickstream object -> bronze rows + quarantined lines (the loader streams instead)."""
    return parse_object("clickstream", payload, key, etag)


def _validate_events(
    table: pa.Table,
    numbers: pa.Array,
    get_lines: Callable[[], list[bytes]],
    first_line: int,
    bad: list[tuple[int, str, str]],
    key: str,
    etag: str,
) -> Parsed:
    """Tier 3: column-wise checks of required fields and timestamps; derive event_ts/event_date."""
    reasons: dict[int, str] = {}
    missing_masks = [
        pc.fill_null(pc.or_(pc.is_null(table[name]), pc.equal(table[name], "")), True) for name in CLICKSTREAM_REQUIRED
    ]
    any_missing = missing_masks[0]
    for mask in missing_masks[1:]:
        any_missing = pc.or_(any_missing, mask)
    if pc.any(any_missing).as_py():
        for index in pc.indices_nonzero(any_missing).to_pylist():
            names = [n for n, m in zip(CLICKSTREAM_REQUIRED, missing_masks, strict=True) if m[index].as_py()]
            reasons[index] = f"missing required field(s): {', '.join(names)}"
    ts_text = pc.fill_null(table["event_ts"], "1970-01-01T00:00:00Z").combine_chunks()
    for index in _bad_timestamps(ts_text):
        reasons.setdefault(index, f"event_ts is not an ISO-8601 timestamp with offset: {ts_text[index]}")
    if reasons:
        lines = get_lines()
        keep = [i not in reasons for i in range(table.num_rows)]
        for index, reason in sorted(reasons.items()):
            number = int(numbers[index].as_py())
            bad.append((number, raw_text(lines[number - first_line]), reason))
        mask = pa.array(keep, pa.bool_())
        table, numbers, ts_text = table.filter(mask), numbers.filter(mask), ts_text.filter(mask)
    bad.sort()
    if table.num_rows == 0:
        return Parsed(None, bad)
    event_ts = pc.cast(ts_text, TIMESTAMP)
    table = table.set_column(table.schema.get_field_index("event_ts"), "event_ts", event_ts)
    table = table.append_column("event_date", pc.cast(event_ts, pa.date32()))
    return Parsed(_lineage(table, key, etag, numbers), bad)


# ------------------------------------------------------------------------------ partner feeds
FEED_COLUMNS: Final = ("partner_id", "sku", "partner_price", "currency", "stock_level", "feed_date")
PRICE_TYPE = pa.decimal128(18, 4)
PARTNER_FIELDS: Final = pa.schema(
    [
        ("partner_id", pa.string()),
        ("sku", pa.string()),
        ("partner_price", PRICE_TYPE),
        ("currency", pa.string()),
        ("stock_level", pa.int64()),
        ("feed_date", pa.date32()),
    ]
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INTEGER = re.compile(r"^[+-]?\d{1,18}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PRICE_LIMIT = Decimal(10) ** 14


def _feed_row(values: dict[str, str], partner: str) -> tuple[tuple[Any, ...] | None, str | None]:
    """Typed values of one CSV row, or the reason it is rejected."""
    partner_id, sku = values["partner_id"].strip(), values["sku"].strip()
    if not partner_id or not sku:
        return None, "missing required field(s): " + ", ".join(
            n for n, v in (("partner_id", partner_id), ("sku", sku)) if not v
        )
    if partner_id != partner:
        return None, f"partner_id {partner_id!r} does not match the object key's partner {partner!r}"
    raw_price = values["partner_price"].strip()
    try:
        price = Decimal(raw_price)
    except InvalidOperation:
        return None, f"non-numeric partner_price: {raw_price[:40]!r}"
    if not price.is_finite() or price < 0 or price >= _PRICE_LIMIT:
        return None, f"partner_price out of range: {raw_price[:40]!r}"
    if price != price.quantize(Decimal("0.0001")):
        return None, f"partner_price has more than 4 decimals: {raw_price[:40]!r}"
    currency = values["currency"].strip()
    if not _CURRENCY.match(currency):
        return None, f"currency is not a 3-letter ISO code: {currency[:40]!r}"
    raw_stock = values["stock_level"].strip()
    if not _INTEGER.match(raw_stock):
        return None, f"non-integer stock_level: {raw_stock[:40]!r}"
    raw_date = values["feed_date"].strip()
    try:
        if not _DATE.match(raw_date):
            raise ValueError(raw_date)
        feed_date = dt.date.fromisoformat(raw_date)
    except ValueError:
        return None, f"feed_date is not a YYYY-MM-DD date: {raw_date[:40]!r}"
    return (partner_id, sku, price, currency, int(raw_stock), feed_date), None


class PartnerFeedParser:
    """Parses the blocks of one partner CSV feed (header required, columns in any order).

    The header is the first non-blank line of the object; a header that does not name exactly the
    six columns quarantines every line. Text must be UTF-8 (a BOM is dropped): a block that is not
    makes the whole object unreadable (`UnreadableObject`).
    """

    def __init__(self, key: str, etag: str) -> None:
        self.key, self.etag = key, etag
        self.partner = validate_key("partner_feeds", key).group(1)
        self.header: list[str] | None = None
        self.header_error: str | None = None
        self.first_block = True

    def parse(self, data: bytes, first_line: int) -> Parsed:
        try:
            text = data.decode("utf-8-sig" if self.first_block else "utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableObject(f"cannot read object as (gzipped) UTF-8 text: {exc}") from exc
        self.first_block = False
        numbered = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=first_line) if line.strip()]
        if self.header is None and self.header_error is None and numbered:
            _number, header_line = numbered.pop(0)
            header = [h.strip().lower() for h in next(csv.reader([header_line]))]
            if sorted(header) == sorted(FEED_COLUMNS):
                self.header = header
            else:
                got = ", ".join(header)[:200]
                self.header_error = f"header mismatch: expected columns {', '.join(FEED_COLUMNS)}; got {got}"
                numbered.insert(0, (_number, header_line))
        if self.header_error is not None:
            return Parsed(None, [(n, raw_text(line), self.header_error) for n, line in numbered])
        header = self.header or []
        rows: list[tuple[Any, ...]] = []
        numbers: list[int] = []
        bad: list[tuple[int, str, str]] = []
        for number, line in numbered:
            try:
                cells = next(csv.reader([line], strict=True))
            except csv.Error as exc:
                bad.append((number, raw_text(line), f"invalid CSV: {exc}"))
                continue
            if len(cells) != len(header):
                bad.append((number, raw_text(line), f"wrong column count: expected {len(header)}, got {len(cells)}"))
                continue
            row, rejected = _feed_row(dict(zip(header, cells, strict=True)), self.partner)
            if row is None:
                bad.append((number, raw_text(line), rejected or "invalid row"))
                continue
            rows.append(row)
            numbers.append(number)
        if not rows:
            return Parsed(None, bad)
        columns = list(zip(*rows, strict=True))
        table = pa.table(
            [pa.array(col, f.type) for col, f in zip(columns, PARTNER_FIELDS, strict=True)], schema=PARTNER_FIELDS
        )
        return Parsed(_lineage(table, self.key, self.etag, pa.array(numbers, pa.int64())), bad)


def parse_partner_feed(payload: bytes, key: str, etag: str) -> Parsed:
    """A whole partner feed -> bronze rows + quarantined lines (the loader streams instead)."""
    return parse_object("partner_feeds", payload, key, etag)


#: Block parser per kind: `PARSERS[kind](key, etag).parse(block, first_line) -> Parsed`.
PARSERS: Final[dict[Kind, type[ClickstreamParser] | type[PartnerFeedParser]]] = {
    "clickstream": ClickstreamParser,
    "partner_feeds": PartnerFeedParser,
}
UNREADABLE_REASONS: Final[dict[Kind, str]] = {
    "clickstream": "cannot decompress object: {}",
    "partner_feeds": "cannot read object as (gzipped) UTF-8 text: {}",
}


def prefetched(items: Iterable[Any], depth: int = 1) -> Iterator[Any]:
    """`items` produced by a background thread, at most `depth` ahead (bounded memory).

    Lets reading + inflating the next block overlap with parsing the current one (zlib, sockets
    and Arrow release the GIL); an error of the producer is raised here, in order.
    """
    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((done, None))
        except BaseException as exc:  # handed to the consumer
            slots.put((done, exc))

    worker = threading.Thread(target=produce, name="landing-read", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def parse_stream(kind: Kind, chunks: Iterable[bytes], key: str, etag: str, prefetch: bool = False) -> Iterator[Parsed]:
    """Parsed blocks of one object's byte stream (raises `UnreadableObject` for a broken object).

    `prefetch` reads and inflates the next block in a background thread while one is parsed.
    """
    parser = PARSERS[kind](key, etag)
    blocks = line_blocks(gunzip_chunks(chunks))
    for item in prefetched(blocks) if prefetch else blocks:
        if isinstance(item, LongLine):
            yield Parsed(None, [(item.line_number, raw_text(item.head), long_line_reason())])
        else:
            yield parser.parse(item.data, item.first_line)


def parse_object(kind: Kind, payload: bytes, key: str, etag: str) -> Parsed:
    """A whole object in one `Parsed` (tests and tools; the loader stages block by block)."""
    try:
        parts = list(parse_stream(kind, [payload], key, etag))
    except UnreadableObject as exc:
        message = str(exc)
        if message.startswith("cannot "):
            return Parsed(None, [(0, "", message)])
        return Parsed(None, [(0, "", UNREADABLE_REASONS[kind].format(message))])
    tables = [p.rows for p in parts if p.rows is not None and p.rows.num_rows]
    bad = sorted(b for p in parts for b in p.bad)
    unknown = {name for p in parts for name in p.unknown_fields}
    return Parsed(pa.concat_tables(tables) if tables else None, bad, unknown)


# ------------------------------------------------------------------------------ bronze tables
_LINEAGE: Final = [
    ("_object_key", pa.string()),
    ("_object_etag", pa.string()),
    ("_line_number", pa.int64()),
    # named after dlt's column (the tables were first written by dlt): the load that wrote the row
    ("_dlt_load_id", pa.string()),
]
#: Columns of the bronze data tables, in table order.
BRONZE_SCHEMAS: Final[dict[Kind, pa.Schema]] = {
    "clickstream": pa.schema(
        [f if f.name != "event_ts" else pa.field("event_ts", TIMESTAMP) for f in CLICKSTREAM_FIELDS]
        + [pa.field("event_date", pa.date32())]
        + _LINEAGE
        # fields outside the contract, as one JSON object per row (null when none): never dropped
        + [pa.field(EXTRA_FIELDS, pa.string())]
    ),
    "partner_feeds": pa.schema(list(PARTNER_FIELDS) + _LINEAGE),
}
#: The day each row is about: what the manifest records per object version ("event days").
DAY_COLUMNS: Final[dict[Kind, str]] = {"clickstream": "event_date", "partner_feeds": "feed_date"}
#: Partition column of each data table (partner feeds are too small to partition).
PARTITION_COLUMNS: Final[dict[Kind, str | None]] = {"clickstream": "event_date", "partner_feeds": None}
