"""Property tests of the apply logic (hypothesis): random change histories of a few keys, delivered
with duplicates, in batches cut anywhere, or in any order, then applied with the sink's own `decode`
and `Applier` to local Delta tables.

- In Debezium's order (any batch boundaries, redelivered ranges, unchanged TOAST placeholders,
  key changes, deletes, re-inserts and TRUNCATEs, both replica identities): silver equals the fold
  of the history by LSN, value for value, and history holds exactly the history's versions with
  their values, as a valid SCD2 chain.
- In any order (REPLICA IDENTITY FULL, no placeholders: what crafted or replayed deliveries can
  do): silver's live rows still equal the fold by LSN and history is still a valid chain of exactly
  the history's versions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.cdc.apply import Applier, TableShape
from ingestion.cdc.decode import UNAVAILABLE, Message, decode
from ingestion.cdc.lake import DeltaStore

TOPIC = "ecom.shop.docs"
KEYS = (1, 2, 3, 4)
NOTES = ("a", "b", "NaN", "\x01__null__", "")
BODIES = ("body one " * 50, "body two " * 50, "body three " * 50)
XS = (1.5, 0.0, math.nan, math.inf, -math.inf)
#: examples per property in the default suite (each applies a few batches to local Delta tables)
EXAMPLES = 25

Event = tuple[str, dict | None, dict | None, int]  # op, before, after, lsn


@st.composite
def histories(draw: st.DrawFn, placeholders: bool = True, truncates: bool = True) -> tuple[str, list[Event], list]:
    """(identity, Debezium's events in LSN order, the state after each event: list of (lsn, {key: row}))."""
    identity = draw(st.sampled_from(["default", "full"])) if placeholders else "full"
    state: dict[int, dict[str, Any]] = {}
    events: list[Event] = []
    states: list[tuple[int, dict[int, dict[str, Any]]]] = []

    def row(key: int) -> dict[str, Any]:
        return {
            "id": key,
            "note": draw(st.sampled_from(NOTES)),
            "body": draw(st.sampled_from(BODIES)),
            "x": draw(st.sampled_from(XS)),
        }

    def key_only(key: int) -> dict[str, Any]:
        return {"id": key, "note": None, "body": None, "x": None}

    snapshot = draw(st.integers(0, 3))
    for key in KEYS[:snapshot]:
        state[key] = row(key)
        events.append(("r", None, dict(state[key]), 100))  # snapshot rows share the snapshot's LSN
    if snapshot:
        states.append((100, {k: dict(v) for k, v in state.items()}))
    lsn = 200
    for _step in range(draw(st.integers(1, 14))):
        lsn += draw(st.integers(1, 50))
        live = sorted(state)
        dead = [k for k in KEYS if k not in state]
        choices = ["insert"] if dead else []
        if live:
            choices += ["update", "update", "delete"]
            if dead:
                choices.append("key change")
            if truncates:
                choices.append("truncate")
        action = draw(st.sampled_from(choices))
        if action == "insert":
            key = draw(st.sampled_from(dead))
            state[key] = row(key)
            events.append(("c", None, dict(state[key]), lsn))
        elif action == "update":
            key = draw(st.sampled_from(live))
            before = dict(state[key])
            new = row(key)
            unchanged_body = draw(st.booleans())
            if unchanged_body:
                new["body"] = before["body"]
            state[key] = new
            after = dict(new)
            if unchanged_body and placeholders and (identity == "default" or draw(st.booleans())):
                after["body"] = UNAVAILABLE
            events.append(("u", before if identity == "full" else None, after, lsn))
        elif action == "delete":
            key = draw(st.sampled_from(live))
            before = state.pop(key)
            events.append(("d", dict(before) if identity == "full" else key_only(key), None, lsn))
        elif action == "key change":
            old, new_key = draw(st.sampled_from(live)), draw(st.sampled_from(dead))
            moved = dict(state.pop(old), id=new_key, note=draw(st.sampled_from(NOTES)))
            state[new_key] = moved
            after = dict(moved)
            if placeholders and identity == "default":
                after["body"] = UNAVAILABLE  # unchanged TOAST value of the insert half
            events.append(
                ("d", dict(state.get(old) or dict(moved, id=old)) if identity == "full" else key_only(old), None, lsn)
            )
            events.append(("c", None, after, lsn))
        else:
            state.clear()
            events.append(("t", None, None, lsn))
        states.append((lsn, {k: dict(v) for k, v in state.items()}))
    return identity, events, states


def _debezium(image: dict | None) -> dict | None:
    """Debezium's JSON spelling: double NaN and infinities as strings."""
    if image is None:
        return None
    spelled = {math.inf: "Infinity", -math.inf: "-Infinity"}
    return {
        k: ("NaN" if isinstance(v, float) and math.isnan(v) else spelled.get(v, v) if isinstance(v, float) else v)
        for k, v in image.items()
    }


def _message(event: Event, offset: int) -> Message:
    op, before, after, lsn = event
    before, after = _debezium(before), _debezium(after)
    image = after or before
    key = None if op == "t" else json.dumps({"id": image["id"]}).encode()  # type: ignore[index]
    source = {"schema": "shop", "table": "docs", "lsn": lsn, "txId": lsn, "ts_ms": 1_795_456_446_000 + lsn}
    envelope = {"before": before, "after": after, "source": source, "op": op}
    return Message(TOPIC, 0, offset, key, json.dumps(envelope).encode())


def _apply(root: Path, batches: list[list[Event]]) -> tuple[list[dict], list[dict]]:
    applier = Applier(DeltaStore({}))
    silver, history = str(root / "silver"), str(root / "history")
    # an established table: x is known as a number column (alone, a first value 'NaN' could be text)
    row_type = pa.struct([("id", pa.int64()), ("note", pa.string()), ("body", pa.string()), ("x", pa.float64())])
    offset = 0
    for batch in batches:
        messages = []
        for event in batch:
            messages.append(_message(event, offset))
            offset += 1
        decoded = decode(messages, "shop", "docs", row_type)
        assert not decoded.dead_letters, decoded.dead_letters
        row_type = decoded.row_type
        shape = TableShape("docs", row_type, ["id"])
        applier.apply_silver(silver, shape, decoded.rows, {f"cdc:{TOPIC}:0": offset - 1})
        applier.apply_history(history, shape, decoded.rows, {f"cdc:{TOPIC}:0": offset - 1})
    return DeltaTable(silver).to_pyarrow_table().to_pylist(), DeltaTable(history).to_pyarrow_table().to_pylist()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def _values(row: dict[str, Any]) -> tuple:
    return tuple(row[c] for c in ("note", "body", "x"))


def _same_values(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(_same(x, y) for x, y in zip(_values(a), _values(b), strict=True))


def _check(states: list, silver: list[dict], history: list[dict], exact_history: bool) -> None:
    final = states[-1][1] if states else {}
    live = {r["id"]: r for r in silver if not r["_cdc_deleted"]}
    assert set(live) == set(final), (sorted(live), sorted(final))
    for key, expected in final.items():
        assert _same_values(live[key], expected), (key, _values(live[key]), _values(expected))
        assert live[key]["_cdc_unavailable"] is None
    # history: the versions of each key, a valid chain
    by_key: dict[int, list[dict]] = {}
    for version in history:
        by_key.setdefault(version["id"], []).append(version)
    expected_versions: dict[int, list[int]] = {}
    previous: dict[int, dict[str, Any]] = {}
    for lsn, snapshot in states:
        for key in set(previous) | set(snapshot):
            if snapshot.get(key) != previous.get(key) or (key in snapshot) != (key in previous):
                expected_versions.setdefault(key, []).append(lsn)
        previous = snapshot
    for key, versions in by_key.items():
        versions.sort(key=lambda v: v["_cdc_lsn"])
        lsns = [v["_cdc_lsn"] for v in versions]
        assert len(lsns) == len(set(lsns)), f"key {key}: a version twice {lsns}"
        for current, following in zip(versions, [*versions[1:], None], strict=True):
            assert current["valid_to"] == (following["valid_from"] if following else None)
        currents = [v for v in versions if v["is_current"]]
        assert len(currents) == (1 if key in final else 0), (key, currents)
        assert all(v["_cdc_op"] not in ("d", "t") for v in currents)
        if exact_history:
            assert set(lsns) >= set(expected_versions.get(key, [])), (key, lsns, expected_versions.get(key))
            for version in versions:
                state = dict(next(s for lsn, s in states if lsn == version["_cdc_lsn"]))
                if version["_cdc_op"] not in ("d", "t"):
                    assert _same_values(version, state[key]), (
                        key,
                        version["_cdc_lsn"],
                        _values(version),
                        _values(state[key]),
                    )


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), data=st.data())
def test_debezium_order_with_duplicates_and_any_batches(history: tuple, data: st.DataObject) -> None:
    _identity, events, states = history
    deliveries = list(events)
    for _ in range(data.draw(st.integers(0, 2))):  # at-least-once: a range published again, later
        if not events:
            break
        start = data.draw(st.integers(0, len(events) - 1))
        end = data.draw(st.integers(start + 1, len(events)))
        position = data.draw(st.integers(end, len(deliveries)))
        deliveries[position:position] = events[start:end]
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(deliveries) - 1)), max_size=4))))
    batches = [deliveries[a:b] for a, b in zip([0, *cuts], [*cuts, len(deliveries)], strict=True) if deliveries[a:b]]
    with TemporaryDirectory() as root:
        silver, history_rows = _apply(Path(root), batches)
    _check(states, silver, history_rows, exact_history=True)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(placeholders=False, truncates=False), data=st.data())
def test_any_delivery_order_converges_to_the_fold_by_lsn(history: tuple, data: st.DataObject) -> None:
    _identity, events, states = history
    deliveries = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=3))))
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(deliveries) - 1)), max_size=4))))
    batches = [deliveries[a:b] for a, b in zip([0, *cuts], [*cuts, len(deliveries)], strict=True) if deliveries[a:b]]
    with TemporaryDirectory() as root:
        silver, history_rows = _apply(Path(root), batches)
    _check(states, silver, history_rows, exact_history=False)
