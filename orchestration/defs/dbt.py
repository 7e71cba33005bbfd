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
#: Group and first asset-key component of the dbt seeds (reference data such as currency_rates).
SEEDS_GROUP = "seeds"
#: Asset check that `dbt source freshness` gives each lake asset a dbt source reads.
SOURCE_FRESHNESS_CHECK = "dbt_source_freshness"
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
    """Models keyed `[layer, model]` and grouped by layer, seeds `[seeds, seed]`; sources keyed by
    their meta (dagster-dbt default)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "model":
            return dg.AssetKey([model_layer(dbt_resource_props), dbt_resource_props["name"]])
        if dbt_resource_props["resource_type"] == "seed":
            return dg.AssetKey([SEEDS_GROUP, dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "model":
            return model_layer(dbt_resource_props)
        if dbt_resource_props["resource_type"] == "seed":
            return SEEDS_GROUP
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
        invocation = dbt.cli(args, context=context)  # the subprocess (and dbt's adapter) start here, with this env
    # column schema (types as built) and column-level lineage (sqlglot over the compiled SQL) on each
    # model's materialization; on DuckDB read after dbt exits (one process may hold the file)
    yield from invocation.stream().fetch_column_metadata()
    release_warehouse(invocation.adapter)


def release_warehouse(adapter: Any) -> None:
    """Close the in-process dbt adapter's connections (column metadata). dbt-duckdb also keeps the
    database open process-wide: close it, or nothing else in this process (a later step of an
    in-process run) could open the warehouse file with other settings."""
    if adapter is None:
        return
    adapter.cleanup_connections()
    close_all = getattr(type(adapter.connections), "close_all_connections", None)
    if close_all is not None:
        close_all()


def source_freshness_specs(manifest: Mapping[str, Any]) -> list[dg.AssetCheckSpec]:
    """One `dbt_source_freshness` check on each lake asset a dbt source with a freshness policy
    maps to (models/staging/_sources.yml: loaded_at_field, warn_after/error_after)."""
    specs: dict[dg.AssetKey, dg.AssetCheckSpec] = {}
    for source in manifest["sources"].values():
        freshness = source.get("freshness") or {}
        if not any((freshness.get(level) or {}).get("count") for level in ("warn_after", "error_after")):
            continue
        key = translator.get_asset_key(source)
        specs[key] = dg.AssetCheckSpec(
            SOURCE_FRESHNESS_CHECK,
            asset=key,
            description=f"dbt source freshness of {source['source_name']}.{source['name']}: newest "
            f"{source.get('loaded_at_field') or 'row'} against {_criteria(freshness)}.",
        )
    return list(specs.values())


def _criteria(freshness: Mapping[str, Any]) -> str:
    parts = []
    for level in ("warn_after", "error_after"):
        rule = freshness.get(level) or {}
        if rule.get("count"):
            parts.append(f"{level.split('_')[0]} after {rule['count']} {rule['period']}(s)")
    return ", ".join(parts)


def freshness_check_results(
    sources_json: Mapping[str, Any], manifest: Mapping[str, Any], specs: list[dg.AssetCheckSpec]
) -> list[dg.AssetCheckResult]:
    """dbt's sources.json as one result per check: pass = passed; warn = failed with WARN severity;
    error and runtime error (e.g. an unreadable table) = failed with ERROR severity. A check dbt did
    not evaluate fails too, saying so."""
    results: dict[dg.AssetKey, dg.AssetCheckResult] = {}
    for result in sources_json.get("results", []):
        source = manifest["sources"].get(result.get("unique_id"))
        if source is None:
            continue
        key = translator.get_asset_key(source)
        status = str(result.get("status"))
        metadata: dict[str, Any] = {"dbt_source": f"{source['source_name']}.{source['name']}", "status": status}
        if status == "runtime error":
            metadata["error"] = str(result.get("error") or result.get("message") or "")[:2000]
        else:
            metadata["max_loaded_at"] = str(result.get("max_loaded_at"))
            metadata["snapshotted_at"] = str(result.get("snapshotted_at"))
            age = result.get("max_loaded_at_time_ago_in_s")
            metadata["age_hours"] = dg.MetadataValue.float(round(float(age) / 3600, 2)) if age is not None else None
            metadata["criteria"] = _criteria(result.get("criteria") or {})
        results[key] = dg.AssetCheckResult(
            asset_key=key,
            check_name=SOURCE_FRESHNESS_CHECK,
            passed=status == "pass",
            severity=dg.AssetCheckSeverity.WARN if status == "warn" else dg.AssetCheckSeverity.ERROR,
            metadata={name: value for name, value in metadata.items() if value is not None},
        )
    for spec in specs:
        if spec.asset_key not in results:
            results[spec.asset_key] = dg.AssetCheckResult(
                asset_key=spec.asset_key,
                check_name=SOURCE_FRESHNESS_CHECK,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"status": "not evaluated by dbt source freshness"},
            )
    return [results[spec.asset_key] for spec in specs]


_manifest = json.loads(dbt_project.manifest_path.read_text())
freshness_specs = source_freshness_specs(_manifest)


@dg.multi_asset_check(
    specs=freshness_specs,
    name="dbt_source_freshness",
    description="`dbt source freshness` over every lake table the dbt project reads.",
    pool="dbt_warehouse",
    # a run selecting asset groups takes the checks of its lake assets only (the landing manifest
    # has no asset): without subsetting, such a job cannot be built at all
    can_subset=True,
)
def dbt_source_freshness(context: dg.AssetCheckExecutionContext, dbt: DbtCliResource) -> Iterator[dg.AssetCheckResult]:
    settings = get_settings()
    extension_directory(settings)
    with settings_environment(settings):
        # exit code 1 = some source is stale: that is a check result, not a failure of the op
        invocation = dbt.cli(["source", "freshness"], raise_on_error=False, manifest=dbt_project.manifest_path)
    invocation.wait()
    try:
        sources = invocation.get_artifact("sources.json")
    except FileNotFoundError:
        raise dg.Failure(f"dbt source freshness wrote no sources.json:\n{invocation.get_error()}") from None
    context.log.info(f"dbt source freshness: {len(sources.get('results', []))} sources evaluated")
    selected = [spec for spec in freshness_specs if spec.key in context.selected_asset_check_keys]
    yield from freshness_check_results(sources, _manifest, selected)


dbt_source_freshness_job = dg.define_asset_job(
    "dbt_source_freshness_job",
    selection=dg.AssetSelection.checks(dbt_source_freshness),
    description="dbt source freshness of the lake tables dbt reads, as asset checks on them.",
)

dbt_source_freshness_schedule = dg.ScheduleDefinition(
    name="dbt_source_freshness_schedule",
    job=dbt_source_freshness_job,
    cron_schedule="45 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


dbt_daily_job = dg.define_asset_job(
    "dbt_daily",
    selection=dg.AssetSelection.assets(dbt_lakehouse),
    description="dbt build of one day (plus the lookback) over every layer.",
)

# Running by default: every day at 01:30 UTC, yesterday's partition (plus the lookback) is built,
# so marts exist without anyone finding and starting the schedule (docs/transformation.md).
dbt_daily_schedule = dg.build_schedule_from_partitioned_job(
    dbt_daily_job,
    hour_of_day=1,
    minute_of_hour=30,
    name="dbt_daily_schedule",
    default_status=dg.DefaultScheduleStatus.RUNNING,
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
        asset_checks=[dbt_source_freshness],
        jobs=[dbt_daily_job, dbt_source_freshness_job],
        schedules=[dbt_daily_schedule, dbt_source_freshness_schedule],
        resources={"dbt": dbt_resource(get_settings())},
    )
