"""Values Debezium leaves out or spells oddly, applied with the sink's own `decode` and `Applier` to
local Delta tables: unchanged TOAST placeholders (both replica identities, key changes, deletes and
re-inserts, any batch boundary), TRUNCATE, double precision NaN/Infinity, and no internal marker
that can collide with a user's value. Silver and history must agree, and the one-pass rebuild job
must give the same tables."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from ingestion.cdc.apply import Applier, TableShape
from ingestion.cdc.decode import UNAVAILABLE, Message, decode
from ingestion.cdc.lake import DeltaStore
from ingestion.jobs.rebuild_silver import rebuild_rows

TOPIC = "ecom.shop.docs"
P = UNAVAILABLE
BODY = "a long TOASTed text " * 200


def _doc(doc_id: int, title: str = "t", body: str | None = BODY, x: float | str | None = 1.5) -> dict[str, Any]:
    return {"id": doc_id, "title": title, "body": body, "x": x}


def _key_only(doc_id: int) -> dict[str, Any]:
    return {"id": doc_id, "title": None, "body": None, "x": None}


Change = tuple[str, dict | None, dict | None, int]


class Docs:
    """Batches of crafted changes to shop.docs, applied incrementally to silver and history."""

    def __init__(self, tmp_path: Path, partition: int = 0) -> None:
        self.silver, self.history = str(tmp_path / "silver"), str(tmp_path / "history")
        self.applier = Applier(DeltaStore({}))
        self.offsets = {0: 0, 1: 0}
        self.row_type: pa.StructType | None = None
        self.bronze: list[pa.Table] = []
        self.results: list[dict[str, int]] = []

    def apply(self, *changes: Change, partition: int = 0) -> None:
        messages = []
        for op, before, after, lsn in changes:
            image = after or before
            key = None if op == "t" else json.dumps({"id": image["id"]}).encode()  # type: ignore[index]
            source = {"schema": "shop", "table": "docs", "lsn": lsn, "txId": lsn, "ts_ms": 1_795_456_446_000 + lsn}
            value = json.dumps({"before": before, "after": after, "source": source, "op": op}).encode()
            messages.append(Message(TOPIC, partition, self.offsets[partition], key, value))
            self.offsets[partition] += 1
        decoded = decode(messages, "shop", "docs", self.row_type)
        assert not decoded.dead_letters, decoded.dead_letters
        self.row_type = decoded.row_type
        self.bronze.append(decoded.rows)
        txns = {f"cdc:{TOPIC}:{p}": o - 1 for p, o in self.offsets.items() if o}
        self.results.append(self.applier.apply_silver(self.silver, self.shape, decoded.rows, txns))
        self.applier.apply_history(self.history, self.shape, decoded.rows, txns)

    @property
    def shape(self) -> TableShape:
        assert self.row_type is not None
        return TableShape("docs", self.row_type, ["id"])

    def silver_rows(self) -> dict[int, dict[str, Any]]:
        return {r["id"]: r for r in DeltaTable(self.silver).to_pyarrow_table().to_pylist()}

    def history_rows(self) -> list[dict[str, Any]]:
        rows = DeltaTable(self.history).to_pyarrow_table().to_pylist()
        return sorted(rows, key=lambda r: (r["id"], r["_cdc_lsn"]))

    def check(self) -> None:
        """No placeholder anywhere; the current history version of each live key equals silver; the
        one-pass rebuild gives the same silver and history."""
        silver, history = self.silver_rows(), self.history_rows()
        for row in [*silver.values(), *history]:
            assert P not in row.values(), f"placeholder stored: {row}"
        current = {r["id"]: r for r in history if r["is_current"]}
        assert set(current) == {k for k, r in silver.items() if not r["_cdc_deleted"]}
        for key, version in current.items():
            for column in ("title", "body", "x", "_cdc_lsn", "_cdc_unavailable"):
                assert _same(version[column], silver[key][column]), (key, column, version[column], silver[key][column])
        rebuilt_silver, rebuilt_history = rebuild_rows(
            self.shape, pa.concat_tables(self.bronze, promote_options="default")
        )
        drop = {"_cdc_updated_at"}
        assert _plain(rebuilt_silver.to_pylist(), drop) == _plain(list(silver.values()), drop)
        assert _plain(rebuilt_history.to_pylist(), drop) == _plain(history, drop)


def _same(a: Any, b: Any) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


def _plain(rows: list[dict[str, Any]], drop: set[str]) -> list[tuple]:
    out = [tuple((k, repr(v)) for k, v in sorted(r.items()) if k not in drop) for r in rows]
    return sorted(out)


# ---------------------------------------------------------------------------- unchanged TOAST values
@pytest.mark.parametrize("identity", ["default", "full"])
def test_placeholder_across_batches_keeps_the_stored_value(tmp_path: Path, identity: str) -> None:
    docs = Docs(tmp_path)
    docs.apply(("r", None, _doc(1), 100))
    before = _doc(1) if identity == "full" else None
    docs.apply(("u", before, _doc(1, "renamed", body=P), 200))
    docs.apply(("u", None if identity == "default" else _doc(1, "renamed"), _doc(1, "again", body=P), 300))
    row = docs.silver_rows()[1]
    assert (row["title"], row["body"], row["_cdc_unavailable"]) == ("again", BODY, None)
    docs.check()


def test_key_change_without_replica_identity_full(tmp_path: Path) -> None:
    """The failure the issue saw: UPDATE ... SET id = 10 arrives as a key-only delete of 2 and a
    create of 10 whose unchanged TOAST values are placeholders; 10 has no stored row."""
    docs = Docs(tmp_path)
    docs.apply(("r", None, _doc(2, body="second body"), 100), ("r", None, _doc(3, body="third"), 100))
    docs.apply(("d", _key_only(2), None, 200), ("c", None, _doc(10, "moved", body=P), 200))
    # the same within one batch, and with the delete in one batch and the create in the next
    docs.apply(("u", None, _doc(3, "x", body=P), 300), ("d", _key_only(3), None, 310))
    docs.apply(("c", None, _doc(11, "moved too", body=P), 310))
    silver = docs.silver_rows()
    assert (silver[10]["title"], silver[10]["body"]) == ("moved", "second body")
    assert (silver[11]["title"], silver[11]["body"]) == ("moved too", "third")
    assert silver[2]["_cdc_deleted"] and silver[2]["body"] == "second body", "a tombstone keeps the last values"
    assert silver[10]["_cdc_unavailable"] is None and silver[11]["_cdc_unavailable"] is None
    docs.check()


def test_key_change_with_replica_identity_full_uses_the_delete_image(tmp_path: Path) -> None:
    docs = Docs(tmp_path)
    docs.apply(("d", _doc(2, body="full image"), None, 200), ("c", None, _doc(10, "moved", body=P), 200))
    assert docs.silver_rows()[10]["body"] == "full image"
    docs.check()


def test_delete_and_reinsert_then_placeholder_takes_the_new_value(tmp_path: Path) -> None:
    docs = Docs(tmp_path)
    docs.apply(("r", None, _doc(1, body="old"), 100))
    docs.apply(("d", _key_only(1), None, 200))
    docs.apply(("c", None, _doc(1, body="new"), 300), ("u", None, _doc(1, "t2", body=P), 400))
    docs.apply(("u", None, _doc(1, "t3", body=P), 500))
    assert docs.silver_rows()[1]["body"] == "new"
    assert [r["body"] for r in docs.history_rows()] == ["old", "old", "new", "new", "new"]
    docs.check()


def test_a_value_nothing_knows_is_null_and_flagged_never_the_placeholder(tmp_path: Path) -> None:
    docs = Docs(tmp_path)
    docs.apply(("u", None, _doc(5, "no stored row", body=P), 100))
    row = docs.silver_rows()[5]
    assert (row["title"], row["body"], row["_cdc_unavailable"]) == ("no stored row", None, ["body"])
    assert docs.results[-1]["unavailable"] == 1
    # a later full value clears the flag
    docs.apply(("u", None, _doc(5, body="known now"), 200))
    assert docs.silver_rows()[5]["_cdc_unavailable"] is None
    docs.check()


def test_internal_markers_never_collide_with_user_values(tmp_path: Path) -> None:
    """A text that looks like an internal marker must come back as written, also in a batch that
    needs placeholder resolution."""
    docs = Docs(tmp_path)
    marker = "\x01__null__"
    docs.apply(("r", None, _doc(1, body="b"), 100), ("r", None, _doc(2, title=marker, body=None), 100))
    docs.apply(("u", None, _doc(1, title=marker, body=P), 200), ("u", None, _doc(2, title=marker, body=P), 210))
    silver = docs.silver_rows()
    assert (silver[1]["title"], silver[1]["body"]) == (marker, "b")
    assert (silver[2]["title"], silver[2]["body"], silver[2]["_cdc_unavailable"]) == (marker, None, None)
    docs.check()


def test_a_snapshot_row_keeps_a_literal_placeholder_text(tmp_path: Path) -> None:
    """Snapshots read every value: Debezium's marker there is the user's own text (documented)."""
    docs = Docs(tmp_path)
    docs.apply(("r", None, _doc(1, title=P), 100))
    assert docs.silver_rows()[1]["title"] == P


# ---------------------------------------------------------------------------- TRUNCATE
def test_truncate_deletes_what_came_before_it_and_keeps_what_came_after(tmp_path: Path) -> None:
    docs = Docs(tmp_path)
    docs.apply(("r", None, _doc(1), 100), ("r", None, _doc(2), 100), ("r", None, _doc(3), 100))
    docs.apply(("d", _doc(3), None, 150))
    docs.apply(
        ("c", None, _doc(4, body="inserted before the truncate"), 190),
        ("t", None, None, 200),
        ("c", None, _doc(1, "re-inserted after it"), 300),
    )
    silver = docs.silver_rows()
    assert {k for k, r in silver.items() if not r["_cdc_deleted"]} == {1}
    assert silver[1]["title"] == "re-inserted after it"
    assert (silver[2]["_cdc_op"], silver[2]["_cdc_lsn"], silver[2]["body"]) == ("t", 200, BODY)
    assert silver[4]["_cdc_deleted"] and silver[3]["_cdc_op"] == "d", "an earlier delete is not truncated again"
    history = docs.history_rows()
    assert [(r["_cdc_op"], r["_cdc_lsn"], r["is_current"]) for r in history if r["id"] == 1] == [
        ("r", 100, False),
        ("t", 200, False),
        ("c", 300, True),
    ]
    assert [r["_cdc_op"] for r in history if r["id"] == 3] == ["r", "d"]
    # a change older than the truncate that arrives only now (another partition lagged): truncated too
    docs.apply(("c", None, _doc(7, "late"), 180), partition=1)
    late = docs.silver_rows()[7]
    assert late["_cdc_deleted"] and late["_cdc_lsn"] == 200
    assert [r["_cdc_op"] for r in docs.history_rows() if r["id"] == 7] == ["c", "t"]
    docs.check()


def test_a_batch_of_only_a_truncate(tmp_path: Path) -> None:
    docs = Docs(tmp_path)
    docs.apply(("r", None, _doc(1), 100))
    docs.apply(("t", None, None, 200))
    assert docs.silver_rows()[1]["_cdc_deleted"]
    docs.apply(("t", None, None, 300))  # nothing live: nothing to add
    assert [r["_cdc_op"] for r in docs.history_rows()] == ["r", "t"]
    docs.check()


# ---------------------------------------------------------------------------- NaN and Infinity
def test_double_nan_and_infinity_are_floats_not_a_schema_change(tmp_path: Path) -> None:
    docs = Docs(tmp_path)
    docs.apply(("r", None, _doc(1, x=1.5), 100), ("r", None, _doc(2, x="NaN"), 100))
    docs.apply(("u", None, _doc(1, x="Infinity"), 200), ("u", None, _doc(2, x="-Infinity"), 210))
    docs.apply(("u", None, _doc(1, x="NaN"), 300), ("c", None, _doc(3, x=2), 310))
    silver = docs.silver_rows()
    assert math.isnan(silver[1]["x"]) and silver[2]["x"] == -math.inf and silver[3]["x"] == 2.0
    assert docs.shape.row_type.field("x").type == pa.float64()
    docs.check()


def test_a_number_column_whose_first_values_are_nan() -> None:
    first = [Message(TOPIC, 0, 0, b'{"id":1}', _envelope({"id": 1, "x": "NaN"}))]
    decoded = decode(first, "shop", "docs", None)
    assert decoded.row_type.field("x").type == pa.string(), "alone, 'NaN' could be text: kept as such"
    mixed = [
        Message(TOPIC, 0, 1, b'{"id":2}', _envelope({"id": 2, "x": "Infinity"})),
        Message(TOPIC, 0, 2, b'{"id":3}', _envelope({"id": 3, "x": 4.25})),
    ]
    decoded = decode(mixed, "shop", "docs", None)
    assert decoded.row_type.field("x").type == pa.float64()
    assert decoded.rows.column("after").combine_chunks().field("x").to_pylist() == [math.inf, 4.25]


def test_text_that_reads_nan_stays_text() -> None:
    known = pa.struct([("id", pa.int64()), ("title", pa.string())])
    messages = [Message(TOPIC, 0, 0, b'{"id":1}', _envelope({"id": 1, "title": "NaN"}))]
    decoded = decode(messages, "shop", "docs", known)
    assert decoded.rows.column("after").combine_chunks().field("title").to_pylist() == ["NaN"]


def test_numeric_specials_under_a_float64_override() -> None:
    """numeric NaN/Infinity arrive as 'NAN', 'POSITIVE_INFINITY', 'NEGATIVE_INFINITY' (decimal
    handling mode string); an operator's float64 override makes them floats, not nulls."""
    messages = [
        Message(TOPIC, 0, i, json.dumps({"id": i}).encode(), _envelope({"id": i, "n": value}))
        for i, value in enumerate(["2.5", "NAN", "POSITIVE_INFINITY", "NEGATIVE_INFINITY"])
    ]
    decoded = decode(messages, "shop", "docs", None, overrides={"n": "float64"})
    values = decoded.rows.column("after").combine_chunks().field("n").to_pylist()
    assert values[0] == 2.5 and math.isnan(values[1]) and values[2:] == [math.inf, -math.inf]


def _envelope(after: dict[str, Any], op: str = "c", lsn: int = 1) -> bytes:
    source = {"schema": "shop", "table": "docs", "lsn": lsn, "txId": lsn, "ts_ms": 1_795_456_446_000}
    return json.dumps({"before": None, "after": after, "source": source, "op": op}).encode()


def test_truncate_messages_have_no_key_and_are_not_dead_letters() -> None:
    messages = [
        Message(TOPIC, 0, 0, b'{"id":1}', _envelope({"id": 1, "x": 1.0})),
        Message(
            TOPIC,
            0,
            1,
            None,
            json.dumps(
                {"before": None, "after": None, "source": {"schema": "shop", "table": "docs", "lsn": 5}, "op": "t"}
            ).encode(),
        ),
    ]
    decoded = decode(messages, "shop", "docs", None)
    assert decoded.dead_letters == [] and decoded.key_columns == ["id"]
    assert decoded.rows.column("op").to_pylist() == ["c", "t"]
