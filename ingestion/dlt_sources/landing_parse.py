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
import re
import zlib
from collections.abc import Callable, Sequence
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


def decompress(payload: bytes) -> bytes:
    """gzip is detected by its magic bytes, not the key suffix or Content-Encoding.

    zlib checks the CRC while inflating (the gzip module computes it a second time); concatenated
    gzip members, as some writers append them, are all read.
    """
    if payload[:2] != b"\x1f\x8b":
        return payload
    parts: list[bytes] = []
    rest = payload
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        parts.append(inflater.decompress(rest))
        if not inflater.eof:
            raise EOFError("truncated gzip stream")
        rest = inflater.unused_data
        if rest[:2] != b"\x1f\x8b":
            if rest.strip(b"\x00"):
                raise OSError("trailing garbage after gzip stream")
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


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
_PARSE_OPTIONS = pa_json.ParseOptions(explicit_schema=CLICKSTREAM_FIELDS, unexpected_field_behavior="ignore")
_READ_OPTIONS = pa_json.ReadOptions(block_size=8 << 20)


def _read_json(data: bytes) -> pa.Table:
    return pa_json.read_json(io.BytesIO(data), read_options=_READ_OPTIONS, parse_options=_PARSE_OPTIONS)


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


def _parse_json_lines(lines: list[bytes]) -> tuple[pa.Table, pa.Array, list[tuple[int, str, str]]]:
    """Tier 2: drop the lines that are not JSON objects, then Arrow over the rest.

    Only when Arrow still rejects them (a field of the wrong type, rarer than broken lines) is every
    field of every event type-checked in Python.
    """
    good: list[bytes] = []
    parsed: list[Any] = []
    numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    for number, line in enumerate(lines, start=1):
        try:
            obj = loads(line)
        except decode_error as exc:
            if line.strip():  # blank lines carry nothing (not an error)
                bad.append((number, raw_text(line), f"invalid JSON: {exc}"))
            continue
        if type(obj) is not dict:
            bad.append((number, raw_text(line), f"not a JSON object ({type(obj).__name__})"))
            continue
        good.append(line)
        parsed.append(obj)
        numbers.append(number)
    try:
        table = _read_json(b"\n".join(good)) if good else CLICKSTREAM_FIELDS.empty_table()
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
            table = _read_json(b"\n".join(good)) if good else CLICKSTREAM_FIELDS.empty_table()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            table = None
        if table is None or table.num_rows != len(good):
            # Arrow rejects something orjson and the type checks accept: isolate it line by line
            # (slow, never seen in practice) rather than block the object forever
            tables: list[pa.Table] = []
            kept_numbers = []
            for line, number in zip(good, numbers, strict=True):
                try:
                    single = _read_json(line)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    bad.append((number, raw_text(line), f"rejected by the JSON reader: {exc}"))
                    continue
                tables.append(single)
                kept_numbers.append(number)
            numbers = kept_numbers
            table = pa.concat_tables(tables) if tables else CLICKSTREAM_FIELDS.empty_table()
    return table, pa.array(numbers, pa.int64()), bad


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


def parse_clickstream(payload: bytes, key: str, etag: str) -> Parsed:
    """One clickstream object (gzipped JSON lines) -> bronze rows + quarantined lines."""
    try:
        text = decompress(payload)
    except (OSError, EOFError, zlib.error) as exc:
        return Parsed(None, [(0, "", f"cannot decompress object: {exc}")])
    # Tier 1 needs no per-line Python objects: count lines in C and let Arrow parse everything.
    count = text.count(b"\n") + (0 if text.endswith(b"\n") else 1)
    table: pa.Table | None = None
    if text and not text.startswith(b"\n") and b"\n\n" not in text:
        try:
            table = _read_json(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            table = None
        if table is not None and table.num_rows != count:  # whitespace-only lines
            table = None
    if table is not None:
        numbers: pa.Array = pa.array(np.arange(1, count + 1, dtype=np.int64))
        return _validate_events(table, numbers, lambda: _split_lines(text), [], key, etag)
    lines = _split_lines(text)
    table, numbers, bad = _parse_json_lines(lines)
    return _validate_events(table, numbers, lambda: lines, bad, key, etag)


def _validate_events(
    table: pa.Table,
    numbers: pa.Array,
    get_lines: Callable[[], list[bytes]],
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
            bad.append((number, raw_text(lines[number - 1]), reason))
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


def parse_partner_feed(payload: bytes, key: str, etag: str) -> Parsed:
    """One partner CSV feed (header required, columns in any order) -> bronze rows + quarantine."""
    match = validate_key("partner_feeds", key)
    partner = match.group(1)
    try:
        text = decompress(payload).decode("utf-8-sig")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        return Parsed(None, [(0, "", f"cannot read object as (gzipped) UTF-8 text: {exc}")])
    lines = text.split("\n")
    numbered = [(n, line.rstrip("\r")) for n, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        return Parsed(None)
    header_line = numbered[0][1]
    header = [h.strip().lower() for h in next(csv.reader([header_line]))]
    if sorted(header) != sorted(FEED_COLUMNS):
        reason = f"header mismatch: expected columns {', '.join(FEED_COLUMNS)}; got {', '.join(header)[:200]}"
        return Parsed(None, [(n, raw_text(line), reason) for n, line in numbered])
    rows: list[tuple[Any, ...]] = []
    numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for number, line in numbered[1:]:
        try:
            cells = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            bad.append((number, raw_text(line), f"invalid CSV: {exc}"))
            continue
        if len(cells) != len(header):
            bad.append((number, raw_text(line), f"wrong column count: expected {len(header)}, got {len(cells)}"))
            continue
        row, rejected = _feed_row(dict(zip(header, cells, strict=True)), partner)
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
    return Parsed(_lineage(table, key, etag, pa.array(numbers, pa.int64())), bad)


PARSERS: Final = {"clickstream": parse_clickstream, "partner_feeds": parse_partner_feed}
