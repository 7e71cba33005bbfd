"""Decoding Debezium envelopes: malformed messages are isolated, no column is dropped, key shapes
are judged against the table's known keys. Crafted messages, no services."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from ingestion.cdc.decode import Message, decode
from ingestion.cdc.schema import IncompatibleSchemaChange

TOPIC = "ecom.shop.customers"


def _message(offset: int, value: bytes | None, key: dict | None = None) -> Message:
    key = key if key is not None else {"customer_id": offset}
    return Message(TOPIC, 0, offset, json.dumps(key).encode(), value)


def _envelope(row: dict, lsn: int, op: str = "c", indent: int | None = None, source: dict | None = None) -> bytes:
    src = {"schema": "shop", "table": "customers", "lsn": lsn, "txId": lsn, "ts_ms": 1_795_456_446_000 + lsn}
    src.update(source or {})
    return json.dumps({"before": None, "after": row, "source": src, "op": op}, indent=indent).encode()


def _good(offset: int, **extra: object) -> Message:
    return _message(offset, _envelope({"customer_id": offset, "email": f"c{offset}@x", **extra}, 100 + offset))


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ({"lsn": "x"}, "source.lsn is not an integer"),
        ({"ts_ms": 1.5}, "source.ts_ms is not an integer"),
        ({"txId": True}, "source.txId is not an integer"),
        ({"table": 5}, "source.table is not a string"),
    ],
)
def test_source_field_of_the_wrong_type_is_a_dead_letter_not_a_blocked_table(source: dict, reason: str) -> None:
    bad = _message(2, _envelope({"customer_id": 2, "email": "b@x"}, 102, source=source))
    decoded = decode([_good(1), bad, _good(3)], "shop", "customers", None)
    assert decoded.rows.column("kafka_offset").to_pylist() == [1, 3]
    value = next(iter(source.values()))
    assert [(d.message.offset, d.error) for d in decoded.dead_letters] == [
        (2, f"malformed envelope: {reason} ({value!r})")
    ]


def test_op_that_is_not_a_string_is_a_dead_letter() -> None:
    bad = _message(2, json.dumps({"before": None, "after": {"customer_id": 2}, "source": {"lsn": 1}, "op": 1}).encode())
    decoded = decode([_good(1), bad], "shop", "customers", None)
    assert decoded.rows.num_rows == 1
    assert decoded.dead_letters[0].error == "malformed envelope: 'op' is not a string"


def test_pretty_printed_json_is_valid_json() -> None:
    """Arrow reads newline-delimited JSON in 1 MB blocks: a block boundary inside a multi-line
    value broke the whole batch (it became an "incompatible schema change")."""
    messages = [
        _message(i, _envelope({"customer_id": i, "email": f"{i}@" + "x" * 400}, 100 + i, indent=2))
        for i in range(10_000)
    ]
    assert all(b"\n" in (m.value or b"") for m in messages)
    decoded = decode(messages, "shop", "customers", None)
    assert decoded.dead_letters == []
    assert decoded.rows.column("kafka_offset").to_pylist() == list(range(10_000))
    assert decoded.rows.column("after").combine_chunks().field("customer_id").to_pylist() == list(range(10_000))


def test_a_row_column_changing_type_still_goes_through_schema_evolution() -> None:
    known = pa.struct([("customer_id", pa.int64()), ("email", pa.string())])
    changed = _message(2, _envelope({"customer_id": 2, "email": 42}, 102))
    with pytest.raises(IncompatibleSchemaChange) as raised:
        decode([_good(1), changed], "shop", "customers", known)
    assert raised.value.column == "email"


def test_a_column_seen_only_in_the_middle_of_a_batch_is_kept() -> None:
    decoded = decode([_good(1), _good(2, loyalty_tier="gold"), _good(3)], "shop", "customers", None)
    assert decoded.row_type.names == ["customer_id", "email", "loyalty_tier"]
    assert decoded.rows.column("after").combine_chunks().field("loyalty_tier").to_pylist() == [None, "gold", None]


def test_known_columns_come_first_then_new_ones() -> None:
    known = pa.struct([("email", pa.string()), ("customer_id", pa.int64())])
    decoded = decode([_good(1), _good(2, loyalty_tier="gold"), _good(3)], "shop", "customers", known)
    assert decoded.row_type.names == ["email", "customer_id", "loyalty_tier"]


def test_key_shape_is_judged_against_the_tables_known_keys() -> None:
    stray = _message(1, _envelope({"customer_id": 1, "email": "s@x"}, 101), key={"id": 1})
    messages = [stray, _good(2), _good(3)]
    decoded = decode(messages, "shop", "customers", None, known_keys=["customer_id"])
    assert decoded.key_columns == ["customer_id"]
    assert decoded.rows.column("kafka_offset").to_pylist() == [2, 3]
    assert [d.message.offset for d in decoded.dead_letters] == [1]
    assert "differ from the table's ['customer_id']" in decoded.dead_letters[0].error


def test_a_new_table_takes_the_key_shape_of_most_of_its_first_batch() -> None:
    stray = _message(1, _envelope({"customer_id": 1, "email": "s@x"}, 101), key={"id": 1})
    decoded = decode([stray, _good(2), _good(3)], "shop", "customers", None)
    assert decoded.key_columns == ["customer_id"]
    assert [d.message.offset for d in decoded.dead_letters] == [1]
