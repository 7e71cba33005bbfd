"""dbt models as Dagster assets: one daily-partitioned, single-run-backfill `@dbt_assets` op.

Asset keys: models -> `[<layer>, <model>]` (layer = staging | intermediate | marts, also the group);
sources -> the upstream lake assets declared in `meta.dagster.asset_key` of
models/staging/_sources.yml (`["silver", <table>]`, `["bronze", "dynamodb" | "landing" |
"marketing", <table>]`). dbt tests are asset checks.

Every dbt asset carries the same daily partitions. A run for a partition (range) runs `dbt build`
over the selection with `--vars {min_date, max_date, lookback_days}`: the incremental marts (tag
`daily`) rebuild the days of [min_date - lookback_days, max_date), while views and the dimension
tables, which are cheap and not date-keyed, are simply rebuilt. Because all assets share one
partitions definition and a single-run backfill policy, `dagster asset materialize --select
'kind:dbt' --partition-range A...B` and a UI backfill of any range are ONE run (one `dbt build`).
"""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from lakehouse.duck import extension_directory
from lakehouse.settings import Settings, get_settings
from orchestration.dbt_project import DBT_EXECUTABLE, dbt_project

#: First partition. The lake's history starts here; earlier keys are rejected by Dagster.
PARTITIONS_START_DATE = "2026-01-01"
#: Layers of the dbt project (models/<layer>/), used as the first asset-key component and group.
LAYERS: tuple[str, ...] = ("staging", "intermediate", "marts")
#: Default of the late-arrival lookback (days rebuilt before a partition); the dbt var's default too.
DEFAULT_LOOKBACK_DAYS = 2

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START_DATE, timezone="UTC")


def model_layer(dbt_resource_props: Mapping[str, Any]) -> str:
    """`staging` | `intermediate` | `marts`, from the model's folder (fqn: [project, layer, ..., name])."""
    fqn = dbt_resource_props.get("fqn") or []
    layer = fqn[1] if len(fqn) > 2 else ""
    if layer not in LAYERS:
        raise ValueError(f"dbt model {dbt_resource_props.get('name')!r} is outside models/{{{','.join(LAYERS)}}}/")
    return str(layer)


class LakehouseDbtTranslator(DagsterDbtTranslator):
    """Models keyed `[layer, model]` and grouped by layer; sources keyed by their meta (dagster-dbt default)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "model":
            return dg.AssetKey([model_layer(dbt_resource_props), dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "model":
            return model_layer(dbt_resource_props)
        return super().get_group_name(dbt_resource_props)

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        tags = dict(super().get_tags(dbt_resource_props))
        if "daily" in dbt_resource_props.get("tags", []):
            tags["lakehouse/partitioning"] = "daily-window"
        return tags


translator = LakehouseDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


class DbtBuildConfig(dg.Config):
    """Run options of the dbt assets."""

    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    full_refresh: bool = False  # rebuild everything (ignores the partition window)


def dbt_vars(window: dg.TimeWindow, config: DbtBuildConfig) -> dict[str, Any]:
    """`--vars` of a run: its partition (range) window as [min_date, max_date) plus the lookback.

    A full refresh passes no window: dbt then rebuilds every day.
    """
    if config.lookback_days < 0:
        raise dg.Failure(f"lookback_days must be >= 0, got {config.lookback_days}")
    if config.full_refresh:
        return {}
    return {
        "min_date": window.start.date().isoformat(),
        "max_date": window.end.date().isoformat(),
        "lookback_days": config.lookback_days,
    }


@contextmanager
def settings_environment(settings: Settings) -> Iterator[None]:
    """os.environ with the settings as LAKEHOUSE_* (DbtCliResource passes os.environ to dbt)."""
    wanted = settings.to_env()
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    name="dbt_lakehouse",
    pool="dbt_warehouse",
)
def dbt_lakehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig) -> Iterator[Any]:
    settings = get_settings()
    extension_directory(settings)  # offline DuckDB extensions for the local target
    args = ["build"]
    dbt_run_vars = dbt_vars(context.partition_time_window, config)
    if dbt_run_vars:
        args += ["--vars", json.dumps(dbt_run_vars)]
    if config.full_refresh:
        args.append("--full-refresh")
    context.log.info(f"dbt {' '.join(args)} (target {settings.resolved_dbt_target})")
    with settings_environment(settings):
        invocation = dbt.cli(args, context=context)  # the subprocess starts here, with this env
    yield from invocation.stream()


dbt_daily_job = dg.define_asset_job(
    "dbt_daily",
    selection=dg.AssetSelection.assets(dbt_lakehouse),
    description="dbt build of one day (plus the lookback) over every layer.",
)

dbt_daily_schedule = dg.build_schedule_from_partitioned_job(
    dbt_daily_job, hour_of_day=1, minute_of_hour=30, name="dbt_daily_schedule"
)


def dbt_resource(settings: Settings) -> DbtCliResource:
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(dbt_project.profiles_dir),
        target=settings.resolved_dbt_target,
        dbt_executable=str(DBT_EXECUTABLE),
    )


@dg.definitions
def dbt_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[dbt_lakehouse],
        jobs=[dbt_daily_job],
        schedules=[dbt_daily_schedule],
        resources={"dbt": dbt_resource(get_settings())},
    )
