"""Asset selections for whole-graph runs (the demo, benchmarks): derived from the definitions.

Ingestion = every materializable asset without partitions (CDC, dlt); maintenance and the on-demand
silver rebuild (EMR Serverless in AWS) are not part of a normal build. Partitioned = the daily dbt
models, which a partition-range run materializes as ONE run.
"""

from __future__ import annotations

import functools

#: groups that a whole-graph build leaves out: operations, not data products
OPERATIONAL_GROUPS = frozenset({"maintenance", "sources", "silver_rebuild"})


@functools.cache
def _groups() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    unpartitioned: set[str] = set()
    partitioned: set[str] = set()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable or node.group_name in OPERATIONAL_GROUPS:
            continue
        (partitioned if node.partitions_def else unpartitioned).add(node.group_name)
    mixed = unpartitioned & partitioned
    if mixed:
        raise ValueError(f"asset groups mix partitioned and unpartitioned assets: {sorted(mixed)}")
    return tuple(sorted(unpartitioned)), tuple(sorted(partitioned))


def _selection(groups: tuple[str, ...]) -> str:
    return " or ".join(f"group:{g}" for g in groups)


def ingestion_selection() -> str:
    return _selection(_groups()[0])


def partitioned_selection() -> str:
    return _selection(_groups()[1])
