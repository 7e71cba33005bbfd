"""Landing objects are streamed: never read or decompressed whole, parsed in bounded blocks."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from ingestion.dlt_sources import landing_parse
from ingestion.dlt_sources.landing import _stage_object
from lakehouse.settings import Settings

KEY = "clickstream/dt=2026-11-20/events-big.json.gz"
ETAG = "0123456789abcdef0123456789abcdef"


def event(i: int) -> dict[str, Any]:
    return {
        "event_id": f"ev-{i}",
        "event_type": "page_view",
        "event_ts": f"2026-11-{20 + i % 3}T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "session_id": f"s-{i // 4}",
        "customer_id": i,
        "page_url": f"https://shop.example/p/{i}/" + "x" * 100,
    }


class StreamingBody:
    """An S3 body that can only be streamed: a whole-object `read()` fails the test."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.largest_read = 0
        self.closed = False

    def read(self, amt: int | None = None) -> bytes:
        raise AssertionError("the loader read the whole object into memory")

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        for start in range(0, len(self.payload), chunk_size):
            self.largest_read = max(self.largest_read, chunk_size)
            yield self.payload[start : start + chunk_size]

    def close(self) -> None:
        self.closed = True


class FakeS3:
    def __init__(self, payload: bytes) -> None:
        self.body = StreamingBody(payload)

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["IfMatch"] == f'"{ETAG}"'
        return {"Body": self.body}


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Blocks (and lines) of at most 64 KiB; records the size of every block parsed."""
    monkeypatch.setattr(landing_parse, "BLOCK_BYTES", 64 * 1024)
    sizes: list[int] = []
    real = landing_parse.ClickstreamParser.parse

    def recording(self: Any, data: bytes, first_line: int) -> Any:
        sizes.append(len(data))
        return real(self, data, first_line)

    monkeypatch.setattr(landing_parse.ClickstreamParser, "parse", recording)
    return sizes


def stage(tmp_path: Path, payload: bytes) -> tuple[Any, FakeS3]:
    settings = Settings(_env_file=None, environment="local", state_dir=tmp_path, name_prefix="stream-test")
    client = FakeS3(payload)
    staged = _stage_object(settings, client, "clickstream", KEY, ETAG, "1.0", tmp_path)
    return staged, client


def rows_of(staged: Any) -> list[dict[str, Any]]:
    rows = [r for f in staged.data for r in pq.read_table(f.path).to_pylist()]
    return sorted(rows, key=lambda r: r["_line_number"])


def test_an_object_is_streamed_in_bounded_blocks(tmp_path: Path, small_blocks: list[int]) -> None:
    lines = [json.dumps(event(i)) for i in range(6000)]  # ~1.3 MB of JSON lines
    staged, client = stage(tmp_path, gzip.compress(("\n".join(lines) + "\n").encode()))
    assert client.body.closed
    assert len(small_blocks) > 10 and max(small_blocks) <= 64 * 1024
    rows = rows_of(staged)
    assert staged.rows == len(rows) == 6000 and staged.quarantined == 0
    assert [r["_line_number"] for r in rows] == list(range(1, 6001))
    assert [r["event_id"] for r in rows[:3]] == ["ev-0", "ev-1", "ev-2"] and rows[-1]["event_id"] == "ev-5999"
    assert staged.days == {"2026-11-20", "2026-11-21", "2026-11-22"}


def test_a_runaway_line_is_quarantined_without_being_buffered(tmp_path: Path, small_blocks: list[int]) -> None:
    lines = [json.dumps(event(i)) for i in range(2000)]
    lines[700] = '{"event_id": "' + "y" * 200_000 + '"}'  # 200 KB on one line, limit 64 KiB
    staged, _ = stage(tmp_path, gzip.compress(("\n".join(lines)).encode()))  # no final newline
    rows = rows_of(staged)
    assert staged.rows == 1999 and staged.quarantined == 1
    assert [r["_line_number"] for r in rows] == [n for n in range(1, 2001) if n != 701]
    assert max(small_blocks) <= 64 * 1024
    [bad] = pq.read_table(staged.quarantine[0].path).to_pylist()
    assert bad["line_number"] == 701 and bad["reason"].startswith("line longer than")
    assert len(bad["raw"]) <= landing_parse.MAX_RAW_CHARS


def test_a_gzip_broken_midway_discards_the_object_and_quarantines_it(tmp_path: Path, small_blocks: list[int]) -> None:
    payload = gzip.compress(("\n".join(json.dumps(event(i)) for i in range(6000)) + "\n").encode())
    staged, _ = stage(tmp_path, payload[: len(payload) * 3 // 4])  # truncated: rows were staged already
    assert staged.rows == 0 and staged.data == [] and list(tmp_path.glob("data-*")) == []
    [bad] = pq.read_table(staged.quarantine[0].path).to_pylist()
    assert bad["line_number"] == 0 and bad["reason"].startswith("cannot decompress object")


def test_gunzip_streams_concatenated_members_and_plain_text() -> None:
    members = gzip.compress(b"a\nb\n") + gzip.compress(b"c\n") + b"\x00\x00"
    chunks = [members[i : i + 3] for i in range(0, len(members), 3)]
    assert b"".join(landing_parse.gunzip_chunks(chunks)) == b"a\nb\nc\n"
    assert b"".join(landing_parse.gunzip_chunks([b"p", b"lain\n"])) == b"plain\n"
    # a bomb inflates in bounded pieces, never in one buffer
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    payload = bomb.compress(b"\n" * (20 << 20)) + bomb.flush()
    assert max(len(c) for c in landing_parse.gunzip_chunks([payload])) <= landing_parse.INFLATE_BYTES
    with pytest.raises(landing_parse.UnreadableObject, match="trailing garbage"):
        list(landing_parse.gunzip_chunks([gzip.compress(b"a\n") + b"junk"]))
    with pytest.raises(landing_parse.UnreadableObject, match="truncated"):
        list(landing_parse.gunzip_chunks([gzip.compress(b"a\n" * 100)[:-6]]))


def test_partner_feeds_stream_with_the_header_of_the_first_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(landing_parse, "BLOCK_BYTES", 256)
    key = "partner_feeds/partner_001/dt=2026-11-20/feed.csv"
    body = "\ufeffpartner_id,sku,partner_price,currency,stock_level,feed_date\n" + "".join(
        f"partner_001,SKU-{i},{i}.5,USD,{i},2026-11-20\n" for i in range(40)
    )
    settings = Settings(_env_file=None, environment="local", state_dir=tmp_path, name_prefix="stream-test")
    staged = _stage_object(settings, FakeS3(body.encode()), "partner_feeds", key, ETAG, "1.0", tmp_path)
    assert (staged.rows, staged.quarantined, staged.days) == (40, 0, {"2026-11-20"})
    rows = sorted((r for f in staged.data for r in pq.read_table(f.path).to_pylist()), key=lambda r: r["_line_number"])
    assert [r["sku"] for r in rows[:2]] == ["SKU-0", "SKU-1"] and rows[-1]["_line_number"] == 41
