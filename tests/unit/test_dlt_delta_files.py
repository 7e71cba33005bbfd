"""The replace-commit helpers of the landing loader, on local files (no stack)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from ingestion.dlt_sources import delta_files
from ingestion.dlt_sources.delta_files import FileWriter, PartitionedStager, Replace, candidate_files

SCHEMA = pa.schema([("k", pa.string()), ("event_date", pa.date32()), ("n", pa.int64())])
D1, D2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)


def rows(keys: list[str], day: dt.date, start: int = 0) -> pa.Table:
    return pa.table(
        {"k": keys, "event_date": [day] * len(keys), "n": list(range(start, start + len(keys)))}, schema=SCHEMA
    )


def test_replace_matches_single_and_composite_keys() -> None:
    batch = pa.table({"k": ["a", "b", None, "c"], "e": ["1", "2", "1", "1"]})
    assert Replace(("k",), frozenset({("a",), ("c",)})).mask(batch).to_pylist() == [True, False, False, True]
    pairs = Replace(("k", "e"), frozenset({("a", "1"), ("b", "1")}))
    assert pairs.mask(batch).to_pylist() == [True, False, False, False]  # b has another etag


def test_stager_writes_one_file_per_partition_in_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delta_files, "ROW_GROUP_ROWS", 4)  # small groups, to see the buffering
    stager = PartitionedStager(tmp_path, SCHEMA, "event_date", "obj")
    for i in range(5):
        stager.write(pa.concat_tables([rows(["a", "b"], D1, 10 * i), rows(["c"], D2, 10 * i)]))
    staged = {f.partition: f for f in stager.close()}
    assert json.loads(staged["2026-11-21"].stats)["numRecords"] == 5
    assert set(staged) == {"2026-11-20", "2026-11-21"} and stager.partitions == {"2026-11-20", "2026-11-21"}
    first = pq.ParquetFile(staged["2026-11-20"].path)
    assert first.schema_arrow.names == ["k", "n"]  # the partition column lives in the path, not the file
    assert first.metadata.num_rows == staged["2026-11-20"].rows == 10 and first.metadata.num_row_groups > 1
    assert stager.rows == 15


def test_stager_discard_removes_what_it_wrote(tmp_path: Path) -> None:
    stager = PartitionedStager(tmp_path, SCHEMA, "event_date", "obj")
    stager.write(rows(["a"], D1))
    stager._flush("2026-11-20")  # a file is open on disk
    assert len(list(tmp_path.iterdir())) == 1
    stager.discard()
    assert list(tmp_path.iterdir()) == [] and stager.rows == 0 and stager.close() == []


def test_file_statistics_are_exact_for_the_columns_they_cover(tmp_path: Path) -> None:
    writer = FileWriter(
        tmp_path / "f.parquet", pa.schema([("k", pa.string()), ("n", pa.int64()), ("t", pa.timestamp("us", "UTC"))])
    )
    writer.write(pa.table({"k": ["m", None], "n": [5, 2], "t": [None, None]}, schema=writer.schema))
    writer.write(pa.table({"k": ["b"], "n": [9], "t": [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]}, schema=writer.schema))
    stats = json.loads(writer.close())
    assert stats == {
        "numRecords": 3,
        "minValues": {"k": "b", "n": 2},  # no timestamp bounds: truncation would make them unsafe
        "maxValues": {"k": "m", "n": 9},
        "nullCount": {"k": 1, "n": 0, "t": 2},
    }


def test_candidate_files_prune_by_partition_and_key_range(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_deltalake(uri, rows(["a", "b"], D1), partition_by=["event_date"])
    write_deltalake(uri, rows(["x", "y"], D1), partition_by=["event_date"], mode="append")
    write_deltalake(uri, rows(["a"], D2), partition_by=["event_date"], mode="append")
    table = DeltaTable(uri)

    def found(replace: Replace) -> list[tuple[str, list[str]]]:
        picked = candidate_files(table, replace, "event_date")
        data = [pq.read_table(f"{uri}/{a['path']}")["k"].to_pylist() for a in picked]
        return sorted((str(a["partition.event_date"]), keys) for a, keys in zip(picked, data, strict=True))

    assert found(Replace(("k",), frozenset({("a",)}), frozenset({"2026-11-20"}))) == [("2026-11-20", ["a", "b"])]
    assert found(Replace(("k",), frozenset({("a",)}), None)) == [("2026-11-20", ["a", "b"]), ("2026-11-21", ["a"])]
    assert found(Replace(("k",), frozenset({("c",)}), None)) == []  # outside every file's min/max
