"""The dbt assets as Dagster definitions: keys, deps, partitions, backfill policy, checks."""

from __future__ import annotations

import datetime as dt
from types import ModuleType

import dagster as dg
import pytest
import yaml

from lakehouse.settings import DYNAMODB_TABLES, OLTP_TABLES, get_settings

UTC = dt.UTC


@pytest.fixture(scope="module")
def dbt_defs() -> ModuleType:
    """orchestration.defs.dbt over a freshly parsed manifest (target/manifest.json of the repo)."""
    from orchestration.dbt_project import build_manifest, dbt_project

    build_manifest(dbt_project, get_settings())  # never test against a stale manifest
    from orchestration.defs import dbt

    return dbt


@pytest.fixture(scope="module")
def defs(dbt_defs: ModuleType) -> dg.Definitions:
    return dg.Definitions.merge(dbt_defs.dbt_definitions())


def _key(*parts: str) -> dg.AssetKey:
    return dg.AssetKey(list(parts))


def test_model_keys_are_layer_and_name(dbt_defs: ModuleType) -> None:
    assets = dbt_defs.dbt_lakehouse
    keys = {key.path[0] for key in assets.keys}
    assert keys == {"staging", "intermediate", "marts", "seeds"}
    for key in assets.keys:
        spec = assets.specs_by_key[key]
        assert spec.group_name == key.path[0]
        assert spec.kinds == {"dbt", "duckdb"}
        if key.path[0] == "seeds":
            continue
        prefix = {"staging": ("stg_",), "intermediate": ("int_",), "marts": ("fct_", "dim_")}[key.path[0]]
        assert key.path[1].startswith(prefix)
    assert _key("seeds", "currency_rates") in assets.keys
    for mart in ("fct_orders", "fct_order_items", "dim_customers", "dim_products", "fct_daily_revenue",
                 "fct_web_sessions", "fct_conversion_funnel_daily", "fct_campaign_performance_daily",
                 "fct_inventory_levels"):  # fmt: skip
        assert _key("marts", mart) in assets.keys


def test_sources_map_to_the_lake_assets(dbt_defs: ModuleType) -> None:
    assets = dbt_defs.dbt_lakehouse
    upstream = {dep for deps in assets.asset_deps.values() for dep in deps} - set(assets.keys)
    expected = {_key("silver", t) for t in OLTP_TABLES}
    expected |= {_key("bronze", "dynamodb", t) for t in DYNAMODB_TABLES}
    expected |= {_key("bronze", "landing", t) for t in ("clickstream", "partner_feeds")}
    expected |= {_key("bronze", "marketing", t) for t in ("campaigns", "ad_spend")}
    expected.add(_key("bronze", "landing", "_objects"))  # the landing loaders' manifest
    assert upstream == expected
    assert assets.asset_deps[_key("staging", "stg_shop__orders")] == {_key("silver", "orders")}
    assert _key("staging", "stg_shop__orders") in assets.asset_deps[_key("marts", "fct_orders")]
    assert _key("marts", "fct_orders") in assets.asset_deps[_key("marts", "fct_daily_revenue")]


def test_one_daily_partitioned_single_run_op(dbt_defs: ModuleType, defs: dg.Definitions) -> None:
    assets = dbt_defs.dbt_lakehouse
    partitions = assets.partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.start == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert partitions.timezone == "UTC"
    assert assets.backfill_policy == dg.BackfillPolicy.single_run()
    # every dbt asset (views and dimensions included) shares the partitions: one run per range
    graph = defs.resolve_asset_graph()
    for key in assets.keys:
        node = graph.get(key)
        assert node.partitions_def == partitions
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
    assert defs.resolve_job_def("dbt_daily").partitions_def == partitions
    # what `dagster asset materialize --select 'kind:dbt' --partition-range A...B` needs: one implicit
    # job over the selection, single-run policy on every selected asset
    selected = dg.AssetSelection.from_coercible(["kind:dbt"]).resolve(graph)
    assert selected == set(assets.keys)
    job = defs.get_repository_def().get_implicit_job_def_for_assets(selected)
    assert job is not None
    assert all(job.asset_layer.get(key).backfill_policy == dg.BackfillPolicy.single_run() for key in selected)


def test_dbt_tests_are_asset_checks(dbt_defs: ModuleType) -> None:
    checks = {spec.key for spec in dbt_defs.dbt_lakehouse.check_specs}
    assert len(checks) > 100
    for asset, name in (
        (("marts", "fct_orders"), "assert_order_total_equals_line_items"),
        (("marts", "fct_orders"), "assert_no_deleted_orders_in_marts"),
        (("marts", "fct_daily_revenue"), "assert_daily_revenue_non_negative"),
        (("marts", "fct_daily_revenue"), "assert_daily_revenue_matches_orders"),
        (("marts", "fct_conversion_funnel_daily"), "assert_conversion_funnel_monotonic"),
        (("marts", "fct_orders"), "unique_fct_orders_order_id"),
        (("staging", "stg_shop__orders"), "not_null_stg_shop__orders_order_id"),
    ):
        assert dg.AssetCheckKey(_key(*asset), name) in checks, (asset, name)


def test_partition_window_becomes_dbt_vars(dbt_defs: ModuleType) -> None:
    partitions = dbt_defs.daily_partitions
    config = dbt_defs.DbtBuildConfig()
    one_day = partitions.time_window_for_partition_key("2026-03-03")
    assert dbt_defs.dbt_vars(one_day, config) == {
        "min_date": "2026-03-03",
        "max_date": "2026-03-04",
        "lookback_days": 2,
    }
    keys = partitions.get_partition_keys_in_range(dg.PartitionKeyRange("2026-03-01", "2026-03-05"))
    start = partitions.time_window_for_partition_key(keys[0]).start
    end = partitions.time_window_for_partition_key(keys[-1]).end
    assert dbt_defs.dbt_vars(dg.TimeWindow(start, end), dbt_defs.DbtBuildConfig(lookback_days=0)) == {
        "min_date": "2026-03-01",
        "max_date": "2026-03-06",
        "lookback_days": 0,
    }
    assert dbt_defs.dbt_vars(one_day, dbt_defs.DbtBuildConfig(full_refresh=True)) == {}
    with pytest.raises(dg.Failure, match="lookback_days"):
        dbt_defs.dbt_vars(one_day, dbt_defs.DbtBuildConfig(lookback_days=-1))


def test_first_partition_is_the_dbt_var(dbt_defs: ModuleType) -> None:
    """dbt builds the days before the first partition in that partition's run (var
    first_partition_date): it must be Dagster's first partition."""
    from orchestration.dbt_project import REPO_ROOT

    project = yaml.safe_load((REPO_ROOT / "dbt_project.yml").read_text())
    assert project["vars"]["first_partition_date"] == dbt_defs.PARTITIONS_START_DATE
    assert dbt_defs.daily_partitions.get_first_partition_key() == dbt_defs.PARTITIONS_START_DATE


@pytest.mark.parametrize("bad_key", ["2025-12-31", "yesterday", "2026-13-01"])
def test_invalid_partition_key_is_rejected(defs: dg.Definitions, bad_key: str) -> None:
    job = defs.resolve_job_def("dbt_daily")
    with pytest.raises(dg.DagsterUnknownPartitionError, match=f"Could not find a partition with key `{bad_key}`"):
        job.execute_in_process(partition_key=bad_key)


def test_dbt_resource_uses_the_venv_dbt(dbt_defs: ModuleType) -> None:
    from orchestration.dbt_project import DBT_EXECUTABLE, REPO_ROOT

    resource = dbt_defs.dbt_resource(get_settings())
    assert resource.dbt_executable == str(DBT_EXECUTABLE)
    assert DBT_EXECUTABLE.exists()
    assert resource.profiles_dir == str(REPO_ROOT)
    assert resource.target == get_settings().resolved_dbt_target


def test_code_location_loads_with_the_dbt_assets(dbt_defs: ModuleType) -> None:
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    assert _key("marts", "fct_daily_revenue") in graph.get_all_asset_keys()
    assert "dbt" in (defs.resources or {})
    # what `dagster dev` and the code server do: every job builds, no two ops/graphs share a name
    # (a job named like the freshness check's op once broke the code location)
    dg.Definitions.validate_loadable(defs)


def test_every_source_has_a_freshness_check(dbt_defs: ModuleType, defs: dg.Definitions) -> None:
    """`dbt source freshness` is surfaced as the check dbt_source_freshness on each lake asset dbt
    reads, run hourly by its own job."""
    upstream = {dep for deps in dbt_defs.dbt_lakehouse.asset_deps.values() for dep in deps}
    upstream -= set(dbt_defs.dbt_lakehouse.keys)
    checks = {spec.key for spec in dbt_defs.freshness_specs}
    assert checks == {dg.AssetCheckKey(key, "dbt_source_freshness") for key in upstream}
    assert defs.resolve_job_def("dbt_source_freshness_job") is not None
    schedule = defs.resolve_schedule_def("dbt_source_freshness_schedule")
    assert schedule.cron_schedule == "45 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.parametrize("selection", ["ingestion", "partitioned"])
def test_whole_graph_selections_build_a_job(dbt_defs: ModuleType, selection: str) -> None:
    """The demo's runs select asset groups, which takes the freshness checks of the selected lake
    assets but not those of a lake table no asset materializes (the landing manifest): the
    freshness check must run for a subset of its checks, or the job cannot even be built."""
    from orchestration import selection as selections
    from orchestration.definitions import defs as all_defs

    query = getattr(selections, f"{selection}_selection")()
    job = dg.define_asset_job(f"whole_{selection}", selection=query).resolve(asset_graph=all_defs.resolve_asset_graph())
    expected = _key("bronze", "landing", "clickstream") if selection == "ingestion" else _key("marts", "fct_orders")
    assert expected in job.asset_layer.executable_asset_keys


def test_freshness_results_become_check_results(dbt_defs: ModuleType) -> None:
    """pass -> passed; warn -> failed, WARN; error and runtime error -> failed, ERROR; a source dbt
    did not evaluate -> failed, saying so."""
    manifest = {
        "sources": {
            f"source.p.{name}": {
                "resource_type": "source",
                "source_name": "s",
                "name": name,
                "meta": {"dagster": {"asset_key": ["lake", name]}},
            }
            for name in ("fresh", "late", "stale", "broken", "skipped")
        }
    }
    specs = [
        dg.AssetCheckSpec("dbt_source_freshness", asset=_key("lake", n.split(".")[-1])) for n in manifest["sources"]
    ]
    rows = {"warn_after": {"count": 2, "period": "hour"}, "error_after": {"count": 12, "period": "hour"}}

    def result(name: str, status: str, age: float) -> dict[str, object]:
        return {
            "unique_id": f"source.p.{name}", "status": status, "max_loaded_at": "2026-03-01T10:00:00+00:00",
            "snapshotted_at": "2026-03-01T12:00:00+00:00", "max_loaded_at_time_ago_in_s": age, "criteria": rows,
        }  # fmt: skip

    sources_json = {
        "results": [
            result("fresh", "pass", 60.0),
            result("late", "warn", 3 * 3600.0),
            result("stale", "error", 13 * 3600.0),
            {"unique_id": "source.p.broken", "status": "runtime error", "error": "IO Error: no such table"},
        ]
    }
    by_asset = {r.asset_key.path[-1]: r for r in dbt_defs.freshness_check_results(sources_json, manifest, specs)}
    assert set(by_asset) == {"fresh", "late", "stale", "broken", "skipped"}
    assert by_asset["fresh"].passed
    assert by_asset["late"].passed is False and by_asset["late"].severity == dg.AssetCheckSeverity.WARN
    assert by_asset["stale"].passed is False and by_asset["stale"].severity == dg.AssetCheckSeverity.ERROR
    assert by_asset["stale"].metadata["age_hours"] == dg.MetadataValue.float(13.0)
    assert by_asset["stale"].metadata["criteria"] == dg.MetadataValue.text(
        "warn after 2 hour(s), error after 12 hour(s)"
    )
    assert by_asset["broken"].severity == dg.AssetCheckSeverity.ERROR
    assert "no such table" in by_asset["broken"].metadata["error"].value
    assert by_asset["skipped"].passed is False
    assert "not evaluated" in by_asset["skipped"].metadata["status"].value


def test_marts_carry_their_typed_column_schema(dbt_defs: ModuleType) -> None:
    """Column-level metadata at definition time: each mart's contract (name, type, description of
    every column) is its dagster/column_schema; types as built and lineage come with each run."""
    marts = [key for key in dbt_defs.dbt_lakehouse.keys if key.path[0] == "marts"]
    assert len(marts) >= 9
    for key in marts:
        schema = dbt_defs.dbt_lakehouse.specs_by_key[key].metadata["dagster/column_schema"]
        assert schema.columns, key
        for column in schema.columns:
            assert column.type != "?" and column.description, (key, column.name)
    revenue = dbt_defs.dbt_lakehouse.specs_by_key[_key("marts", "fct_daily_revenue")].metadata
    types = {c.name: c.type for c in revenue["dagster/column_schema"].columns}
    assert types["gross_revenue"] == "decimal(12,2)" and types["order_date"] == "date"
