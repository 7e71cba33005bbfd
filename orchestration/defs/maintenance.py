"""Delta table maintenance: compaction (OPTIMIZE) and VACUUM of every lake table, daily; old silver
tombstones are purged first.

One multi-asset per writer, sharing the writer's concurrency pool: maintenance of a table never
runs while Dagster runs the ingestion that writes it (outside writers such as the follow-mode CDC
sink are safe too: their commits are fenced and retried).
"""

import json

import dagster as dg

from lakehouse.lake import LAKE_TABLES, LakeTable, compact, purge_tombstones, vacuum
from lakehouse.settings import Settings, get_settings
from orchestration.resources import LakehouseSettings

#: writer → the concurrency pool its Dagster assets use
WRITER_POOLS = {
    "cdc": "cdc_sink",
    "dlt_dynamodb": "dlt_dynamodb",
    "dlt_landing": "dlt_landing",
    "dlt_marketing": "dlt_marketing",
}


def maintenance_key(table: LakeTable) -> dg.AssetKey:
    return dg.AssetKey(["maintenance", *table.path])


def _spec(table: LakeTable) -> dg.AssetSpec:
    internal = table.path[-1].startswith("_")  # dead letters / quarantine: written as side tables
    return dg.AssetSpec(
        maintenance_key(table),
        deps=[] if internal else [dg.AssetKey(list(table.path))],
        description=f"OPTIMIZE + VACUUM of the Delta table {table.name}.",
        group_name="maintenance",
        kinds={"delta"},
        owners=["team:data-platform"],
    )


def _maintenance_asset(writer: str) -> dg.AssetsDefinition:
    tables = [t for t in LAKE_TABLES if t.writer == writer]

    @dg.multi_asset(
        name=f"maintain_{writer}_tables",
        specs=[_spec(t) for t in tables],
        can_subset=True,
        pool=WRITER_POOLS[writer],
    )
    def maintain(context: dg.AssetExecutionContext, lakehouse: LakehouseSettings):  # type: ignore[no-untyped-def]
        settings = lakehouse.get()
        for table in tables:
            key = maintenance_key(table)
            if key not in context.selected_asset_keys:
                continue
            uri = table.uri(settings)
            purged = (
                purge_tombstones(settings, uri, settings.cdc_tombstone_retention_hours) if table.is_silver_state else {}
            )
            compacted = compact(settings, uri, target_size=settings.delta_target_file_size)
            vacuumed = vacuum(settings, uri, settings.delta_vacuum_retention_hours)
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "table_uri": dg.MetadataValue.url(uri),
                    **purged,
                    **{f"optimize_{k}": v for k, v in compacted.items()},
                    **{f"vacuum_{k}": v for k, v in vacuumed.items()},
                },
            )

    return maintain


maintenance_assets = [_maintenance_asset(writer) for writer in WRITER_POOLS]


def maintenance_run_tags(settings: Settings) -> dict[str, str]:
    """On ECS, runs of this job take the maintenance task role (EcsRunLauncher task override): only
    it may delete bronze/cdc files, which VACUUM needs and no other run may do (terraform iam.tf)."""
    if not settings.maintenance_task_role_arn:
        return {}
    return {"ecs/task_overrides": json.dumps({"taskRoleArn": settings.maintenance_task_role_arn})}


delta_maintenance_job = dg.define_asset_job(
    "delta_maintenance",
    selection=dg.AssetSelection.groups("maintenance"),
    executor_def=dg.in_process_executor,
    description="Compact and vacuum every Delta table of the lake.",
    tags=maintenance_run_tags(get_settings()),
)

defs = dg.Definitions(
    assets=maintenance_assets,
    jobs=[delta_maintenance_job],
    schedules=[
        dg.ScheduleDefinition(
            name="delta_maintenance_daily",
            job=delta_maintenance_job,
            cron_schedule="0 3 * * *",
            default_status=dg.DefaultScheduleStatus.RUNNING,
        )
    ],
)
