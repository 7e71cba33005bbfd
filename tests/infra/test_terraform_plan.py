"""`terraform plan` of every environment against the session stack's emulator: what Terraform will
create, named as lakehouse.settings names it.

The plans (conftest.py: `prod_plans` per profile with the variables of terraform.tfvars.example,
`local_plan`) run the real provider with its data sources answered by the emulator. Values known
only after apply (bucket-derived locations, ARNs) are checked after the apply of profile small
(test_terraform_apply.py).
"""

from __future__ import annotations

import pytest

from lakehouse.settings import DYNAMODB_TABLES, OLTP_TABLES, Settings
from lakehouse.stack.resources import DYNAMODB_KEYS

from .support import PROFILES, expected_delta_tables
from .terraform_cli import Plan

#: buckets Terraform creates that the application never uses (not in Settings.buckets)
INFRA_ONLY_BUCKET_SUFFIXES = ("-s3-access-logs",)


@pytest.fixture(scope="module")
def prod_settings() -> Settings:
    """Settings of production with terraform.tfvars.example's name_prefix."""
    return Settings(_env_file=None, environment="prod", name_prefix="ecom-lakehouse-prod")  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def local_settings() -> Settings:
    return Settings(_env_file=None, environment="local")  # type: ignore[call-arg]


def check_names(plan: Plan, settings: Settings) -> None:
    """Buckets, Glue databases and tables, DynamoDB tables of a plan equal the settings' names."""
    buckets = {r.values["bucket"] for r in plan.of_type("aws_s3_bucket")}
    infra_only = {b for b in buckets if b.endswith(INFRA_ONLY_BUCKET_SUFFIXES)}
    assert buckets - infra_only == set(settings.buckets)
    assert infra_only == {f"{settings.name_prefix}-s3-access-logs"}
    assert {r.values["name"] for r in plan.of_type("aws_glue_catalog_database")} == set(
        settings.glue_databases.values()
    )
    tables = {(r.values["database_name"], r.values["name"]): r.values for r in plan.of_type("aws_glue_catalog_table")}
    assert set(tables) == set(expected_delta_tables(settings))
    for table in tables.values():
        assert table["table_type"] == "EXTERNAL_TABLE"
        assert table["parameters"]["table_type"] == "DELTA"  # Athena reads the schema from the Delta log
        assert table["parameters"]["spark.sql.sources.provider"] == "delta"
    dynamodb = {r.values["name"]: r.values for r in plan.of_type("aws_dynamodb_table")}
    assert {name: t["hash_key"] for name, t in dynamodb.items()} == {
        settings.dynamodb_table(t): DYNAMODB_KEYS[t] for t in DYNAMODB_TABLES
    }
    for table in dynamodb.values():
        assert table["attribute"] == [{"name": table["hash_key"], "type": "S"}]
        assert table["point_in_time_recovery"] == [{"enabled": True}]
        assert table["server_side_encryption"][0]["enabled"] is True


@pytest.mark.parametrize("profile", PROFILES)
def test_prod_plan_uses_the_settings_names(prod_plans: dict[str, Plan], prod_settings: Settings, profile: str) -> None:
    plan = prod_plans[profile]
    assert plan.actions() == {"create"}
    check_names(plan, prod_settings)
    assert plan.output("glue_databases") == prod_settings.glue_databases
    assert plan.output("dynamodb_tables") == {t: prod_settings.dynamodb_table(t) for t in DYNAMODB_TABLES}
    workgroup = plan.one("aws_athena_workgroup").values
    assert workgroup["name"] == prod_settings.athena_workgroup_name
    config = workgroup["configuration"][0]
    assert config["enforce_workgroup_configuration"] is True
    assert config["bytes_scanned_cutoff_per_query"] >= 10 * 1024 * 1024
    assert config["result_configuration"][0]["encryption_configuration"][0]["encryption_option"] == "SSE_KMS"
    assert plan.one("aws_ecs_service").values["name"] == f"{prod_settings.name_prefix}-lakehouse"


def test_local_plan_uses_the_settings_names(local_plan: Plan, local_settings: Settings) -> None:
    """environments/local creates what `lakehouse stack init-resources` creates (broker bucket included)."""
    assert local_plan.actions() == {"create"}
    check_names(local_plan, local_settings)
    assert local_settings.broker_bucket in {r.values["bucket"] for r in local_plan.of_type("aws_s3_bucket")}


def test_small_streams_cdc_through_one_kinesis_stream(prod_plans: dict[str, Plan], prod_settings: Settings) -> None:
    plan = prod_plans["small"]
    stream = plan.one("aws_kinesis_stream").values
    assert stream["name"] == prod_settings.kinesis_stream == plan.output("cdc_kinesis_stream")
    assert stream["shard_count"] == Settings().cdc_kinesis_shards == 1
    assert stream["stream_mode_details"] == [{"stream_mode": "PROVISIONED"}]  # on-demand has a fixed hourly fee
    assert stream["encryption_type"] == "KMS"
    assert not plan.of_type("aws_msk_serverless_cluster") and plan.output("cdc_topics") == {}


def test_scale_connector_uses_the_settings_names(prod_plans: dict[str, Plan], prod_settings: Settings) -> None:
    plan = prod_plans["scale"]
    assert plan.output("cdc_topics") == {t: prod_settings.cdc_topic(t) for t in OLTP_TABLES}
    assert not plan.of_type("aws_kinesis_stream") and plan.output("cdc_kinesis_stream") is None
    config = plan.one("aws_mskconnect_connector").values["connector_configuration"]
    assert config["topic.prefix"] == prod_settings.cdc_topic_prefix
    assert config["slot.name"] == prod_settings.cdc_slot_name
    assert config["publication.name"] == prod_settings.cdc_publication_name
    assert config["table.include.list"] == ",".join(f"{prod_settings.oltp_schema}.{t}" for t in OLTP_TABLES)
    # The source database and user default to the settings' values (optional() defaults of var.oltp).
    assert (config["database.dbname"], config["database.user"]) == (
        prod_settings.postgres_db,
        prod_settings.postgres_user,
    )
    # Prod: the DBA's publication, never created or altered by Debezium (the role does not own the
    # tables). The local stack and compose own their tables and keep "filtered": that key is the one
    # deliberate difference (test_docker_configs.py compares the rest with compose).
    assert config["publication.autocreate.mode"] == "disabled"
    assert Settings().cdc_publication_autocreate_mode == "filtered"
    assert config["database.password"] == f"${{secretsmanager:{prod_settings.name_prefix}/oltp-source:password}}"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_bucket_has_lifecycle_rules_with_explicit_filters(prod_plans: dict[str, Plan], profile: str) -> None:
    """Lifecycle configurations are planned, not applied, on the emulator (terraform_cli.py,
    PLAN_ONLY_FOR_TIME): here every bucket gets one, each rule enabled with an explicit prefix
    filter (an empty `filter {}` is ambiguous to the provider) and incomplete uploads aborted."""
    plan = prod_plans[profile]
    configs = {
        r.address.removeprefix("module.lake_storage.aws_s3_bucket_lifecycle_configuration."): r.values
        for r in plan.of_type("aws_s3_bucket_lifecycle_configuration")
    }
    buckets = {r.address.removeprefix("module.lake_storage.aws_s3_bucket."): r for r in plan.of_type("aws_s3_bucket")}
    assert set(configs) == set(buckets)
    for address, config in configs.items():
        for rule in config["rule"]:
            assert rule["status"] == "Enabled", (address, rule["id"])
            ((rule_filter,),) = (rule["filter"],)
            assert rule_filter["prefix"] is not None, (address, rule["id"])
        aborting = [
            (r["filter"][0]["prefix"], r["abort_incomplete_multipart_upload"][0]["days_after_initiation"])
            for r in config["rule"]
            if r["abort_incomplete_multipart_upload"]
        ]
        assert aborting == [("", 7)], address  # one rule over the whole bucket
