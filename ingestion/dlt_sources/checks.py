"""Data-quality outcomes of the bronze loads: schema drift made visible (no Dagster here).

- landing: the share of an object's lines that went to quarantine (a producer type change sends
  every line there) and the fields outside the contract (kept in `_extra_fields`);
- DynamoDB and marketing (dlt): values that did not fit a column's type. dlt's schema contract
  lets them evolve into variant columns (`<column>__v_<type>`) rather than fail or drop the row, and
  staging never reads those, so any value in one is reported with the keys of its rows.

The Dagster layer turns each `CheckOutcome` into an asset check result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from lakehouse.settings import Settings

from .core import bronze_table_uri
from .landing import LandingLoad

#: dlt names a column that received a value of another type `<column>__v_<type>`.
VARIANT_COLUMN: Final = re.compile(r"^(?P<column>.+)__v_(?P<type>[a-z0-9_]+)$")
#: Offending objects / keys listed in a check's metadata.
MAX_LISTED: Final = 20


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def quarantine_outcome(report: LandingLoad, max_rate: float) -> CheckOutcome:
    """Fails when an object of this load has more than `max_rate` of its lines quarantined."""
    offending = sorted(
        (o for o in report.objects if o.quarantined and o.quarantine_rate > max_rate),
        key=lambda o: (-o.quarantine_rate, o.key),
    )
    lines = sum(o.rows + o.quarantined for o in report.objects)
    metadata: dict[str, Any] = {
        "objects_checked": len(report.objects),
        "max_quarantine_rate": max_rate,
        "quarantined_lines": report.quarantined,
        "lines": lines,
        "load_id": report.load_id,
        "offending_objects": [
            f"{o.key} (etag {o.etag}): {o.quarantine_rate:.0%} of {o.rows + o.quarantined} lines quarantined, "
            f"mostly: {o.top_reason}"
            for o in offending[:MAX_LISTED]
        ],
    }
    if not offending:
        return CheckOutcome(True, f"no object above {max_rate:.1%} quarantined lines", metadata)
    worst = offending[0]
    return CheckOutcome(
        False,
        f"{len(offending)} object(s) above {max_rate:.1%} quarantined lines, e.g. {worst.key} "
        f"({worst.quarantine_rate:.0%}: {worst.top_reason}); see bronze/landing/_quarantine",
        metadata,
    )


def unknown_fields_outcome(report: LandingLoad) -> CheckOutcome:
    """Fails (as a warning) when objects of this load carried fields outside the contract."""
    offending = [o for o in report.objects if o.unknown_fields]
    names = sorted({name for o in offending for name in o.unknown_fields})
    metadata: dict[str, Any] = {
        "objects_checked": len(report.objects),
        "unknown_fields": names,
        "objects_with_unknown_fields": [f"{o.key}: {', '.join(o.unknown_fields)}" for o in offending[:MAX_LISTED]],
    }
    if not offending:
        return CheckOutcome(True, "every field is in the contract", metadata)
    return CheckOutcome(
        False,
        f"{len(offending)} object(s) carry fields outside the contract ({', '.join(names[:10])}), e.g. "
        f"{offending[0].key}: kept as JSON in _extra_fields; extend the contract to load them as columns",
        metadata,
    )


def variant_outcome(
    settings: Settings, dataset: str, table: str, key_columns: tuple[str, ...], max_rows: int
) -> CheckOutcome:
    """Fails when more than `max_rows` rows of a dlt bronze table hold a value in a variant column."""
    uri = bronze_table_uri(settings, dataset, table)
    try:
        delta = DeltaTable(uri, storage_options=settings.delta_storage_options)
    except TableNotFoundError:
        return CheckOutcome(True, "table not loaded yet", {"table_uri": uri})
    names = delta.schema().to_arrow().names
    variants = [n for n in names if VARIANT_COLUMN.match(n)]
    data = delta.to_pyarrow_dataset()
    counts: dict[str, int] = dict.fromkeys(variants, 0)
    offending: list[str] = []
    if variants:
        # filtered in memory, batch by batch: a dataset filter on a column that older files lack
        # matches every row of those files (pyarrow), so the columns are read and tested here
        for batch in data.to_batches(columns=[*key_columns, *variants], batch_size=65536):
            for column in variants:
                present = pc.is_valid(batch[column])
                found = int(pc.sum(present).as_py() or 0)
                counts[column] += found
                if found and len(offending) < MAX_LISTED:
                    for row in batch.filter(present).slice(0, MAX_LISTED - len(offending)).to_pylist():
                        key = "/".join(str(row[k]) for k in key_columns)
                        offending.append(f"{key}: {column} = {str(row[column])[:80]!r}")
    rows = sum(counts.values())
    metadata: dict[str, Any] = {
        "table_uri": uri,
        "variant_columns": counts,
        "rows_in_variant_columns": rows,
        "max_variant_rows": max_rows,
        "offending_keys": offending,
    }
    if rows <= max_rows:
        detail = f"{rows} row(s) in variant columns" if variants else "no variant columns"
        return CheckOutcome(True, f"{detail} (allowed: {max_rows})", metadata)
    columns = ", ".join(f"{c} ({n})" for c, n in counts.items() if n)
    return CheckOutcome(
        False,
        f"{rows} row(s) of {dataset}/{table} hold values of another type in variant columns ({columns}), "
        f"e.g. {offending[0] if offending else '?'}; staging does not read them: fix the source or the declared type",
        metadata,
    )


__all__ = ["CheckOutcome", "quarantine_outcome", "unknown_fields_outcome", "variant_outcome"]
