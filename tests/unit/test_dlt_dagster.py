"""The dlt and landing assets as Dagster definitions: keys, schedules, run config (no services)."""

from __future__ import annotations

import dagster as dg
import pytest

from lakehouse.settings import Settings


@pytest.fixture(scope="module")
def dlt_defs() -> dg.Definitions:
    from orchestration.defs import dlt, landing

    return dg.Definitions.merge(dlt.defs, landing.defs)


def test_bronze_keys_and_groups(dlt_defs: dg.Definitions) -> None:
    graph = dlt_defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).is_materializable}
    assert keys == {
        "bronze/dynamodb/carts",
        "bronze/dynamodb/sessions",
        "bronze/dynamodb/reviews",
        "bronze/marketing/campaigns",
        "bronze/marketing/ad_spend",
        "bronze/landing/clickstream",
        "bronze/landing/partner_feeds",
    }
    carts = graph.get(dg.AssetKey(["bronze", "dynamodb", "carts"]))
    assert carts.group_name == "bronze_dynamodb" and carts.owners == ["team:data-platform"]
    assert dg.AssetKey(["dynamodb", "carts"]) in carts.parent_keys


def test_the_catch_up_job_accepts_the_repair_config(dlt_defs: dg.Definitions) -> None:
    """`verify: true` is how an operator runs the landing repair from the UI or CLI."""
    job = dlt_defs.resolve_job_def("load_landing_catch_up")
    ok = {"ops": {"bronze_landing_clickstream": {"config": {"verify": True}}}}
    assert dg.validate_run_config(job, ok)
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, {"ops": {"bronze_landing_clickstream": {"config": {"verify": "yes please"}}}})


def test_marketing_schedule_is_off_without_an_api(dlt_defs: dg.Definitions) -> None:
    """In prod without LAKEHOUSE_MARKETING_API_URL the hourly load would only fail: it starts stopped."""
    from orchestration.defs.dlt import marketing_schedule_status

    stopped, running = dg.DefaultScheduleStatus.STOPPED, dg.DefaultScheduleStatus.RUNNING
    assert marketing_schedule_status(Settings(_env_file=None, environment="prod")) == stopped
    configured = Settings(_env_file=None, environment="prod", marketing_api_url="https://ads.example.com")
    assert marketing_schedule_status(configured) == running
    assert dlt_defs.resolve_schedule_def("load_marketing_api_schedule").default_status == running  # local


def test_drift_checks_guard_every_bronze_table_and_run_with_the_loads(dlt_defs: dg.Definitions) -> None:
    graph = dlt_defs.resolve_asset_graph()
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    variants = {
        (f"bronze/{d}/{t}", "variant_columns")
        for d, ts in (("dynamodb", ("carts", "sessions", "reviews")), ("marketing", ("campaigns", "ad_spend")))
        for t in ts
    }
    assert checks == variants | {
        ("bronze/landing/clickstream", "quarantine_rate"),
        ("bronze/landing/clickstream", "unknown_fields"),
        ("bronze/landing/partner_feeds", "quarantine_rate"),
    }
    for job_name, dataset in (("load_dynamodb", "dynamodb"), ("load_marketing_api", "marketing")):
        in_job = {key.name for key in dlt_defs.resolve_job_def(job_name).asset_layer.asset_graph.asset_check_keys}
        assert in_job == {"variant_columns"}, job_name
        selected = dlt_defs.resolve_job_def(job_name).asset_layer.asset_graph.asset_check_keys
        assert {k.asset_key.path[1] for k in selected} == {dataset}


def test_the_nightly_catch_up_verifies_bronze_against_the_manifest(dlt_defs: dg.Definitions) -> None:
    schedule = dlt_defs.resolve_schedule_def("load_landing_catch_up_schedule")
    assert schedule.cron_schedule == "30 2 * * *"
    with dg.build_schedule_context() as context:
        [request] = schedule.evaluate_tick(context).run_requests or []
    ops = request.run_config["ops"]
    assert {op: config["config"]["verify"] for op, config in ops.items()} == {
        "bronze_landing_clickstream": True,
        "bronze_landing_partner_feeds": True,
    }
    assert dg.validate_run_config(dlt_defs.resolve_job_def("load_landing_catch_up"), request.run_config)
