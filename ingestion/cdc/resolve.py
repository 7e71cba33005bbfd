"""Complete each change's row image before it is applied: Debezium leaves values out.

- An UPDATE that leaves a TOASTed value unchanged carries `__debezium_unavailable_value` instead of
  it (tables without REPLICA IDENTITY FULL). So does the insert half of an UPDATE that changed the
  primary key: Debezium sends it as a delete of the old key and a create of the new key, both at the
  LSN of the update, and the unchanged TOAST values of the create are placeholders.
- A DELETE on a table without REPLICA IDENTITY FULL carries only the key in its before-image.
- A TRUNCATE carries no row at all: it deletes every row whose last change is older than its LSN
  (PostgreSQL's ACCESS EXCLUSIVE lock makes that exact). It becomes one delete (`op = 't'`) per key
  that was live at that LSN.

Each missing value is the row's previous state: the change's own before-image (REPLICA IDENTITY
FULL), the key's earlier change in the batch, or what the target layer stores (silver's row,
history's previous version); for a key change, the old key's state at that LSN (silver tombstones
and history delete versions keep the row's last values for exactly this). A value nothing knows is
stored as null and its column named in `_cdc_unavailable`, never as the placeholder. Silver and
history each resolve against their own stored state, so they agree with each other.

Snapshot rows (`op = r`) and inserts carry every value, so a placeholder there is ambiguous:
Debezium cannot tell its marker from a user's text. Snapshot rows keep it as text; an insert that
is not the second half of a key change stores it as unknown (documented in docs/cdc.md).

Only the rows that need it are converted to Python (most batches need nothing: fast path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

#: Debezium's stand-in for an unchanged TOASTed column value.
UNAVAILABLE = "__debezium_unavailable_value"
#: Column of the resolved changes: names of the columns whose value is unknown (silver/history
#: store it as `_cdc_unavailable`)
UNAVAILABLE_COLUMN = "_unavailable"
UNAVAILABLE_TYPE = pa.list_(pa.string())
#: Operations that end a key: a delete, or a TRUNCATE expanded to one row per key
DELETES = ("d", "t")

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Truncation:
    """The newest TRUNCATE a layer has applied (kept in its Delta log, see `apply.py`)."""

    lsn: int
    ts_us: int

    @property
    def source_ts(self) -> datetime:
        return datetime.fromtimestamp(self.ts_us / 1_000_000, UTC)


@dataclass
class StoredRows:
    """What the target layer holds, in its own shape: the row columns, `_cdc_lsn`, `deleted` and
    (when present) `_cdc_unavailable`.

    The callables read only what a batch needs: the rows of some keys (a superset: filtered by the
    first key column), the deletes at some LSNs (the old key of a key change applied in an earlier
    batch), and the rows a TRUNCATE at some LSN may delete (live ones, and any changed after it).
    """

    of_keys: Callable[[list[Any]], pa.Table]
    deleted_at: Callable[[list[int]], pa.Table]
    truncation_candidates: Callable[[int], pa.Table]


NOTHING_STORED = StoredRows(
    of_keys=lambda _keys: pa.table({}),
    deleted_at=lambda _lsns: pa.table({}),
    truncation_candidates=lambda _lsn: pa.table({}),
)


@dataclass
class Resolved:
    """The batch ready to apply, and what resolving it found."""

    #: bronze shape plus UNAVAILABLE_COLUMN, without TRUNCATE rows, with one 't' row per truncated key
    changes: pa.Table
    #: the newest TRUNCATE known to the layer after this batch (None: never truncated)
    truncation: Truncation | None = None
    #: values of inserts/updates stored as unknown (null), and where
    unknown_values: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class _State:
    values: dict[str, Any]
    unknown: frozenset[str]
    live: bool
    lsn: int


def placeholder_columns(changes: pa.Table) -> set[str]:
    """String columns whose `after` image carries Debezium's placeholder in this batch."""
    if changes.num_rows == 0:
        return set()
    after = changes.column("after").combine_chunks()
    return {
        f.name
        for index, f in enumerate(after.type)
        if pa.types.is_string(f.type) and pc.any(pc.equal(after.field(index), UNAVAILABLE)).as_py()
    }


def with_unavailable(changes: pa.Table) -> pa.Table:
    if UNAVAILABLE_COLUMN in changes.column_names:
        return changes
    return changes.append_column(UNAVAILABLE_COLUMN, pa.nulls(changes.num_rows, UNAVAILABLE_TYPE))


def _key_only(image: dict[str, Any] | None, keys: list[str]) -> bool:
    """A before-image that carries only the key (REPLICA IDENTITY DEFAULT or USING INDEX)."""
    return image is None or all(v is None for name, v in image.items() if name not in keys)


def resolve(
    changes: pa.Table,
    key_columns: list[str],
    stored: StoredRows = NOTHING_STORED,
    truncated: Truncation | None = None,
) -> Resolved:
    """Replace placeholders, fill key-only delete images, expand TRUNCATEs (see the module doc).

    `truncated` is the newest TRUNCATE the layer has applied: a change older than it that arrives
    only now (its partition lagged behind the TRUNCATE's) is applied and then truncated too.
    """
    ops = changes.column("op").to_pylist() if changes.num_rows else []
    truncates = [i for i, op in enumerate(ops) if op == "t"]
    truncation = truncated
    for index in truncates:
        lsn = changes.column("lsn")[index].as_py()
        ts = changes.column("source_ts")[index].as_py()
        if truncation is None or lsn > truncation.lsn:
            ts_us = int(ts.timestamp() * 1_000_000) if ts is not None else 0
            truncation = Truncation(lsn, ts_us)
    placeholders = placeholder_columns(changes)
    needs = _rows_needing_work(changes, ops, placeholders, key_columns, truncated)
    if not needs and not truncates:
        return Resolved(with_unavailable(changes), truncation)
    resolver = _Resolver(changes, ops, key_columns, placeholders, stored, truncated)
    return resolver.run(needs, truncates, truncation)


def _rows_needing_work(
    changes: pa.Table, ops: list[str], placeholders: set[str], keys: list[str], truncated: Truncation | None
) -> list[int]:
    if changes.num_rows == 0:
        return []
    rows: set[int] = set()
    op = changes.column("op").combine_chunks()
    if placeholders:
        after = changes.column("after").combine_chunks()
        changed = pc.is_in(op, value_set=pa.array(["c", "u"]))
        for name in placeholders:
            hit = pc.and_(changed, pc.fill_null(pc.equal(after.field(name), UNAVAILABLE), False))
            rows.update(pc.indices_nonzero(hit).to_pylist())
    if "d" in ops:
        before = changes.column("before").combine_chunks()
        others = [f.name for f in before.type if f.name not in keys]
        key_only = pa.array([True] * changes.num_rows)
        for name in others:
            key_only = pc.and_(key_only, pc.is_null(before.field(name)))
        placeholder_before = pa.array([False] * changes.num_rows)
        for f in before.type:
            if pa.types.is_string(f.type):
                hit = pc.fill_null(pc.equal(before.field(f.name), UNAVAILABLE), False)
                placeholder_before = pc.or_(placeholder_before, hit)
        deletes = pc.and_(pc.equal(op, "d"), pc.or_(key_only, placeholder_before))
        rows.update(pc.indices_nonzero(deletes).to_pylist())
    if truncated is not None:
        late = pc.and_(pc.fill_null(pc.less(changes.column("lsn"), truncated.lsn), False), pc.not_equal(op, "t"))
        rows.update(pc.indices_nonzero(late).to_pylist())
    return sorted(rows)


class _Resolver:
    def __init__(
        self,
        changes: pa.Table,
        ops: list[str],
        keys: list[str],
        placeholders: set[str],
        stored: StoredRows,
        truncated: Truncation | None,
    ) -> None:
        self.changes = changes
        self.ops = ops
        self.keys = keys
        self.placeholders = placeholders
        self.stored = stored
        self.truncated = truncated
        self.columns = [f.name for f in changes.schema.field("after").type]

    # ------------------------------------------------------------------ keys
    def _key_of(self, row: dict[str, Any]) -> Key | None:
        image = row["before"] if row["op"] in DELETES else (row["after"] or row["before"])
        return None if image is None else tuple(image.get(k) for k in self.keys)

    def _first_keys(self) -> pa.Array:
        """The first key column of every row (deletes: before-image; others: after-image)."""
        name = self.keys[0]
        before = self.changes.column("before").combine_chunks().field(name)
        after = self.changes.column("after").combine_chunks().field(name)
        is_delete = pc.equal(self.changes.column("op").combine_chunks(), "d")
        return pc.if_else(is_delete, before, pc.coalesce(after, before))

    def _rows_of_keys(self, keys: set[Key]) -> list[int]:
        if not keys:
            return []
        firsts = pa.array(list({k[0] for k in keys}), self.changes.schema.field("after").type.field(self.keys[0]).type)
        candidates = pc.indices_nonzero(pc.fill_null(pc.is_in(self._first_keys(), value_set=firsts), False))
        rows = self.changes.select(["op", "before", "after"]).take(candidates).to_pylist()
        return [i for i, row in zip(candidates.to_pylist(), rows, strict=True) if self._key_of(row) in keys]

    def _stored(self, table: pa.Table) -> list[tuple[Key, _State]]:
        if table.num_rows == 0:
            return []
        with_unknown = "_cdc_unavailable" in table.column_names
        out = []
        for row in table.to_pylist():
            unknown = frozenset(row.get("_cdc_unavailable") or ()) if with_unknown else frozenset()
            state = _State({c: row.get(c) for c in self.columns}, unknown, not row["deleted"], row["_cdc_lsn"])
            out.append((tuple(row.get(k) for k in self.keys), state))
        return out

    # ------------------------------------------------------------------ the walk
    def run(self, needs: list[int], truncates: list[int], truncation: Truncation | None) -> Resolved:
        changes, ops = self.changes, self.ops
        truncate_rows = changes.take(truncates).to_pylist() if truncates else []
        if truncates:  # a TRUNCATE concerns every key
            involved = [i for i, op in enumerate(ops) if op != "t"]
        else:
            needed = changes.take(needs).to_pylist()
            create_lsns = {r["lsn"] for r in needed if r["op"] == "c"}
            keys = {k for k in map(self._key_of, needed) if k is not None}
            if create_lsns:  # the delete half of a key change, in this batch
                lsn = changes.column("lsn").combine_chunks()
                pairs = pc.and_(
                    pc.equal(changes.column("op").combine_chunks(), "d"), pc.is_in(lsn, pa.array(create_lsns))
                )
                keys |= {k for k in map(self._key_of, changes.take(pc.indices_nonzero(pairs)).to_pylist()) if k}
            involved = self._rows_of_keys(keys)
        rows = changes.take(involved).to_pylist() if involved else []
        for row, index in zip(rows, involved, strict=True):
            row["_index"] = index

        delete_keys = {r["lsn"]: self._key_of(r) for r in rows if r["op"] == "d"}
        lonely = sorted({r["lsn"] for r in rows if r["op"] == "c" and r["lsn"] not in delete_keys and self._needs(r)})
        stored_pairs = self._stored(self.stored.deleted_at(lonely)) if lonely else []
        for key, state in stored_pairs:
            delete_keys.setdefault(state.lsn, key)

        wanted = {k for k in map(self._key_of, rows) if k is not None} | {k for k, _s in stored_pairs}
        firsts = sorted({k[0] for k in wanted}, key=repr)
        versions = [(k, s) for k, s in self._stored(self.stored.of_keys(firsts)) if k in wanted] if firsts else []
        if truncates:
            versions += self._stored(self.stored.truncation_candidates(min(r["lsn"] for r in truncate_rows)))
        versions += stored_pairs
        unique: dict[tuple[Key, int], _State] = {}
        for key, state in versions:
            unique.setdefault((key, state.lsn), state)

        # events in LSN order; at one LSN: stored state first, then deletes (the old key of a key
        # change), then the other changes, then a TRUNCATE
        events: list[tuple[int, int, int, str, Any]] = [
            (lsn, 0, n, "stored", (key, state)) for n, ((key, lsn), state) in enumerate(unique.items())
        ]
        events += [(r["lsn"], 1 if r["op"] == "d" else 2, r["_index"], "change", r) for r in rows]
        events += [(r["lsn"], 3, n, "truncate", r) for n, r in enumerate(truncate_rows)]
        late_keys: set[Key] = set()
        if self.truncated is not None:
            late_keys = {k for r in rows if r["lsn"] < self.truncated.lsn and (k := self._key_of(r)) is not None}
            if late_keys:
                template = {"lsn": self.truncated.lsn, "source_ts": self.truncated.source_ts}
                events.append((self.truncated.lsn, 3, -1, "late-truncate", template))
        events.sort(key=lambda e: (e[0], e[1], e[2]))

        states: dict[Key, _State] = {}
        resolved: dict[int, tuple[dict[str, Any], frozenset[str]]] = {}
        added: list[dict[str, Any]] = []
        for lsn, _rank, _n, kind, item in events:
            if kind == "stored":
                key, stored_state = item
                states[key] = stored_state
            elif kind == "change":
                change_key = self._key_of(item)
                known = unique.get((change_key, lsn)) if change_key is not None else None
                # a redelivered change the layer already holds resolves as it did then
                values, unknown = (
                    (dict(known.values), known.unknown) if known else self._image(item, change_key, states, delete_keys)
                )
                resolved[item["_index"]] = (values, unknown)
                if change_key is not None:
                    states[change_key] = _State(values, unknown, item["op"] not in DELETES, lsn)
            else:  # TRUNCATE: every key live before it is deleted at its LSN
                targets = list(states) if kind == "truncate" else [k for k in states if k in late_keys]
                for key in targets:
                    current = states[key]
                    if current.live and current.lsn < lsn and (key, lsn) not in unique:
                        added.append(self._truncate_row(item, key, current))
                        states[key] = _State(current.values, current.unknown, False, lsn)
        return self._assemble(rows, resolved, added, set(truncates), truncation)

    def _needs(self, row: dict[str, Any]) -> bool:
        after = row["after"] or {}
        return any(after.get(c) == UNAVAILABLE for c in self.placeholders)

    def _image(
        self, row: dict[str, Any], key: Key | None, state: dict[Key, _State], delete_keys: dict[int, Key | None]
    ) -> tuple[dict[str, Any], frozenset[str]]:
        """The row's values (before-image for a delete, after-image otherwise) and the unknown columns."""
        op, lsn = row["op"], row["lsn"]
        prior = state.get(key) if key is not None else None
        if op == "d":
            before = dict(row["before"] or {})
            full = not _key_only(before, self.keys)
            unknown: set[str] = set()
            for column in self.columns:
                value = before.get(column)
                if column in self.keys or (full and value != UNAVAILABLE):
                    continue
                if prior is not None and column not in prior.unknown:
                    before[column] = prior.values.get(column)
                else:
                    before[column] = None
                    unknown.add(column)
            return before, frozenset(unknown)
        after = dict(row["after"] or {})
        if op == "r" or not self._needs(row):
            return after, frozenset()
        if op == "c":  # the insert half of a key change: the old key's state at this LSN
            old_key = delete_keys.get(lsn)
            prior = state.get(old_key) if old_key is not None and old_key != key else None
            full_before = None
        else:
            before = row["before"]
            full_before = before if not _key_only(before, self.keys) else None
        unknown = set()
        for column in self.placeholders:
            if after.get(column) != UNAVAILABLE:
                continue
            if full_before is not None and full_before.get(column) != UNAVAILABLE:
                after[column] = full_before.get(column)
            elif prior is not None and prior.lsn <= lsn and column not in prior.unknown:
                after[column] = prior.values.get(column)
            else:
                after[column] = None
                unknown.add(column)
        return after, frozenset(unknown)

    def _truncate_row(self, truncate: dict[str, Any], key: Key, state: _State) -> dict[str, Any]:
        values = dict(state.values)
        values.update(zip(self.keys, key, strict=True))
        return {
            "op": "t",
            "before": values,
            "after": None,
            "lsn": truncate["lsn"],
            "tx_id": truncate.get("tx_id"),
            "source_ts": truncate.get("source_ts"),
            "snapshot": truncate.get("snapshot"),
            "kafka_topic": truncate.get("kafka_topic"),
            "kafka_partition": truncate.get("kafka_partition"),
            "kafka_offset": truncate.get("kafka_offset"),
            "kafka_key": orjson.dumps(dict(zip(self.keys, key, strict=True)), default=str).decode(),
            "ingested_at": truncate.get("ingested_at"),
            UNAVAILABLE_COLUMN: sorted(state.unknown) or None,
        }

    # ------------------------------------------------------------------ output
    def _assemble(
        self,
        rows: list[dict[str, Any]],
        resolved: dict[int, tuple[dict[str, Any], frozenset[str]]],
        added: list[dict[str, Any]],
        truncates: set[int],
        truncation: Truncation | None,
    ) -> Resolved:
        changes = self.changes
        schema = with_unavailable(changes.slice(0, 0)).schema
        touched = {r["_index"] for r in rows} | truncates
        untouched = [i for i in range(changes.num_rows) if i not in touched]
        parts = [with_unavailable(changes.take(untouched))] if untouched else []
        out: list[dict[str, Any]] = []
        unknown_values = 0
        notes = []
        for row in rows:
            values, unknown = resolved[row.pop("_index")]
            row["before" if row["op"] == "d" else "after"] = values
            row[UNAVAILABLE_COLUMN] = sorted(unknown) or None
            if unknown and row["op"] not in DELETES:
                unknown_values += len(unknown)
                notes.append(f"lsn {row['lsn']}: {', '.join(sorted(unknown))}")
            out.append(row)
        out += added
        if out:
            parts.append(pa.Table.from_pylist(out, schema=schema))
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        return Resolved(table, truncation, unknown_values, notes)
