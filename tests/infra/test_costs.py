"""The cost tables (terraform/costs.toml, rendered in terraform/COSTS.md) against the Terraform.

Fails when a profile creates a billable resource type that its table has no line for, when a line
uses a price that the dated price table lacks, when the stated sizes differ from the profile in
Terraform, when `small` exceeds its budget, or when COSTS.md is stale. What a profile creates, and
its sizes, come from `terraform plan` of that profile (conftest.py `prod_plans`).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from .costs import COSTS_DOC, lines, load, render, total
from .hcl_eval import Module, unknown_resolver
from .support import PROFILES, TERRAFORM_DIR
from .terraform_cli import Plan

REQUIRED_ROOT = {
    "oltp": {"host": "shop-db.example.com", "port": 5432, "database": "shop", "user": "lakehouse"},
    "image_tag": "git-0123abc",
}


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return load()


@pytest.mark.parametrize("profile", PROFILES)
def test_every_billable_resource_has_a_price_line(
    prod_plans: dict[str, Plan], model: dict[str, Any], profile: str
) -> None:
    """The resource types `terraform plan` creates in this profile, each priced or free."""
    created = prod_plans[profile].types()
    priced = {resource for line in lines(model, profile) for resource in line.resources}
    unpriced = sorted(created - priced - set(model["free"]))
    assert not unpriced, (
        f"profile {profile} creates {unpriced}: add a line to terraform/costs.toml (or a [free] reason)"
    )
    assert len(created) > 40


def test_profiles_differ_where_the_cost_is(prod_plans: dict[str, Plan]) -> None:
    small, scale = (prod_plans[p].types() for p in PROFILES)
    assert {"aws_kinesis_stream"} <= small - scale
    assert {"aws_nat_gateway", "aws_eip", "aws_msk_serverless_cluster", "aws_mskconnect_connector"} <= scale - small


def test_lines_use_dated_prices(model: dict[str, Any]) -> None:
    prices = model["prices"]
    for name, price in prices.items():
        assert price["usd"] > 0, name
        assert re.match(r"https://", price["source"]), name
        assert date.fromisoformat(price["as_of"]) >= date(2024, 1, 1), name
    for profile in PROFILES:
        for line in lines(model, profile):
            for price, quantity in line.items:
                assert price in prices, f"{profile}: {line.component} uses unknown price {price}"
                assert quantity > 0


def test_small_fits_the_budget(model: dict[str, Any]) -> None:
    budget = model["meta"]["budget_small"]
    assert budget == 45.0
    assert total(model, "small") <= budget, f"small costs ${total(model, 'small'):.2f} > ${budget}"
    assert total(model, "scale") > total(model, "small")


def test_stated_sizes_match_the_terraform_profiles(prod_plans: dict[str, Plan], model: dict[str, Any]) -> None:
    """The sizes each cost line states are the planned ones: the always-on task's CPU, memory and
    capacity provider, the RDS class, the Kinesis shards."""
    hours = model["meta"]["hours_per_month"]
    for profile in PROFILES:
        plan = prod_plans[profile]
        by_component = {line.component: line for line in lines(model, profile)}
        always_on = next(line for name, line in by_component.items() if name.startswith("Always-on task"))
        service = plan.one("aws_ecs_service").values
        task = next(
            r.values for r in plan.of_type("aws_ecs_task_definition") if r.values["family"].endswith("-lakehouse")
        )
        provider = service["capacity_provider_strategy"][0]["capacity_provider"]
        prefix = "fargate_spot" if provider == "FARGATE_SPOT" else "fargate"
        expected = {
            f"{prefix}_vcpu_hour": int(task["cpu"]) / 1024 * hours,
            f"{prefix}_gb_hour": int(task["memory"]) / 1024 * hours,
        }
        assert dict(always_on.items) == pytest.approx(expected), profile
        rds = next(line for line in by_component.values() if "aws_db_instance" in line.resources)
        rds_class = plan.one("aws_db_instance").values["instance_class"].removeprefix("db.").replace(".", "_")
        assert f"rds_{rds_class}_hour" in dict(rds.items), (profile, rds.items)
        if "aws_kinesis_stream" in plan.types():
            kinesis = next(line for line in by_component.values() if "aws_kinesis_stream" in line.resources)
            assert (
                dict(kinesis.items)["kinesis_shard_hour"]
                == plan.one("aws_kinesis_stream").values["shard_count"] * hours
            )


def test_s3_request_line_follows_the_measured_sink(
    terraform_documents: dict[Path, dict[str, Any]], model: dict[str, Any]
) -> None:
    """The request quantities are what the measured per-batch figures (test_sink_s3_requests.py)
    give at the stated pace and usage, and the pace is the profile's default in Terraform."""
    measured, usage = model["sink_requests"], model["profiles"]["small"]["requests"]
    pace = usage["pace_seconds"]
    batches = usage["active_hours"] * 3600 / pace * 30
    history_passes = 24 * 3600 / (5 * pace) * 30  # orchestration/cdc_events.py: history every 5 paces
    put_list = (
        batches * usage["tables_per_batch"] * measured["put_list_per_table_batch"]
        + history_passes * usage["captured_tables"] * measured["put_list_per_table_idle_pass"]
        + usage["sensor_lists"]
        + usage["run_put_list"]
    )
    get = (
        batches * usage["tables_per_batch"] * measured["get_per_table_batch"]
        + history_passes * usage["captured_tables"] * measured["get_per_table_idle_pass"]
        + usage["run_get"]
    )
    line = next(line for line in lines(model, "small") if line.component.startswith("S3: requests"))
    assert dict(line.items) == pytest.approx({"s3_put_1k": put_list / 1000, "s3_get_1k": get / 1000}, rel=1e-3)
    root = Module.from_documents((TERRAFORM_DIR / "environments/prod").resolve(), terraform_documents)
    profile = root.scope({**REQUIRED_ROOT, "profile": "small"}, resolver=unknown_resolver()).local("profile")
    assert profile["cdc_sink_pace_seconds"] == pace


def test_a_missing_price_line_is_reported(prod_plans: dict[str, Plan], model: dict[str, Any]) -> None:
    """The check itself: drop the Kinesis line and the stream is reported as unpriced."""
    created = prod_plans["small"].types()
    priced = {r for line in lines(model, "small") if "aws_kinesis_stream" not in line.resources for r in line.resources}
    assert "aws_kinesis_stream" in created - priced - set(model["free"])


def test_costs_doc_is_rendered_from_the_model(model: dict[str, Any]) -> None:
    assert COSTS_DOC.read_text() == render(model), "run: python -m tests.infra.costs > terraform/COSTS.md"
