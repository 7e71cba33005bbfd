"""The Dagster side of the silver rebuild: the local/prod switch, the EMR job-run request, the assets.

The EMR path runs the real `PipesEMRServerlessClient` against boto3 clients stubbed with botocore's
Stubber: botocore validates the request against the EMR Serverless API model, so a malformed
payload fails here, not in AWS.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import dagster as dg
import dagster._core.pipes.utils
import pytest
from botocore.stub import Stubber
from dagster_aws.pipes import PipesCloudWatchMessageReader, PipesEMRServerlessClient

import orchestration.resources
from ingestion.jobs.rebuild_silver import job_arguments, job_settings, parse_args
from lakehouse.settings import OLTP_TABLES, Settings
from orchestration.defs import emr
from orchestration.defs.cdc import bronze_key, history_key, silver_key
from orchestration.resources import LakehouseSettings

APP_ID = "00fabcdef1234567"
ROLE = "arn:aws:iam::123456789012:role/ecom-lakehouse-prod-emr-job"
RUN_ID = "00fjobrun0000001"
RUN_ARN = f"arn:aws:emr-serverless:eu-west-1:123456789012:/applications/{APP_ID}/jobruns/{RUN_ID}"
APP_ARN = f"arn:aws:emr-serverless:eu-west-1:123456789012:/applications/{APP_ID}"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def _prod(**values: Any) -> Settings:
    return _settings(
        environment="prod",
        name_prefix="ecom-lakehouse-prod",
        aws_region="eu-west-1",
        emr_application_id=APP_ID,
        emr_job_role_arn=ROLE,
        **values,
    )


# ---------------------------------------------------------------------------- the switch
def test_local_uses_a_subprocess_with_the_settings_in_its_environment() -> None:
    settings = _settings(environment="local", name_prefix="t-abc")
    client = emr.silver_rebuild_pipes_client(settings)
    assert isinstance(client, dg.PipesSubprocessClient)
    assert client.env["LAKEHOUSE_NAME_PREFIX"] == "t-abc"
    assert client.env["LAKEHOUSE_ENVIRONMENT"] == "local"


def test_prod_with_an_emr_application_uses_emr_serverless() -> None:
    client = emr.silver_rebuild_pipes_client(_prod())
    assert isinstance(client, PipesEMRServerlessClient)
    assert client.client.meta.region_name == "eu-west-1"
    assert isinstance(client.message_reader, PipesCloudWatchMessageReader)
    assert client.message_reader.client.meta.region_name == "eu-west-1"


def test_prod_without_emr_falls_back_to_the_local_subprocess() -> None:
    settings = _settings(environment="prod", name_prefix="ecom-lakehouse-prod")
    assert isinstance(emr.silver_rebuild_pipes_client(settings), dg.PipesSubprocessClient)
    # an EMR application id alone never means "local": the local stack ignores it
    local = _settings(environment="local", emr_application_id=APP_ID)
    assert isinstance(emr.silver_rebuild_pipes_client(local), dg.PipesSubprocessClient)


def test_prod_with_an_application_but_no_job_role_is_a_configuration_error() -> None:
    settings = _settings(environment="prod", emr_application_id=APP_ID)
    with pytest.raises(ValueError, match="LAKEHOUSE_EMR_JOB_ROLE_ARN"):
        emr.silver_rebuild_pipes_client(settings)
    with pytest.raises(ValueError, match="LAKEHOUSE_EMR_JOB_ROLE_ARN"):
        emr.emr_job_run_request(settings, "orders")


# ---------------------------------------------------------------------------- the request
def test_emr_job_run_request_runs_the_same_module_with_the_same_arguments() -> None:
    settings = _prod()
    request = emr.emr_job_run_request(settings, "orders")
    base = f"s3://ecom-lakehouse-prod-artifacts/emr/silver-rebuild/{emr._package_version()}"
    driver = request["jobDriver"]["sparkSubmit"]
    assert request["applicationId"] == APP_ID and request["executionRoleArn"] == ROLE
    assert driver["entryPoint"] == f"{base}/rebuild_silver.py"
    assert driver["entryPointArguments"] == job_arguments(settings, "orders")
    received = job_settings(parse_args(driver["entryPointArguments"]).settings_json)
    assert received.environment == "prod" and received.lake_bucket == "ecom-lakehouse-prod-lake"
    assert received.s3_endpoint is None, "the job must reach real S3 in prod"
    params = driver["sparkSubmitParameters"]
    assert f"--conf spark.archives={base}/environment.tar.gz#environment" in params
    assert "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python3" in params
    logging = request["configurationOverrides"]["monitoringConfiguration"]["cloudWatchLoggingConfiguration"]
    assert logging == {
        "enabled": True,
        "logGroupName": "/aws/emr-serverless/ecom-lakehouse-prod",
        "logTypes": {"SPARK_DRIVER": ["STDOUT", "STDERR"]},
    }
    custom = emr.emr_job_run_request(settings, "payments", "s3://elsewhere/build-42/", 8, "30g")
    assert custom["jobDriver"]["sparkSubmit"]["entryPoint"] == "s3://elsewhere/build-42/rebuild_silver.py"
    assert (
        "--conf spark.driver.cores=8 --conf spark.driver.memory=30g"
        in custom["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
    )


class RecordingSubprocessClient(dg.PipesSubprocessClient):
    def __init__(self) -> None:
        super().__init__()
        self.commands: list[list[str]] = []

    def run(self, *, context: Any, command: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.commands.append(list(command))
        raise RuntimeError("recorded")


def test_local_path_runs_the_module_with_the_same_arguments() -> None:
    client = RecordingSubprocessClient()
    settings = _settings(environment="local", name_prefix="t-abc")
    with pytest.raises(RuntimeError, match="recorded"):
        emr.run_silver_rebuild(dg.build_asset_context(), client, settings, "orders")
    assert client.commands == [
        [sys.executable, "-m", "ingestion.jobs.rebuild_silver", *job_arguments(settings, "orders")]
    ]


# ---------------------------------------------------------------------------- assets
def test_one_rebuild_asset_per_table_in_the_cdc_sink_pool() -> None:
    settings = _settings(environment="local")
    definitions = dg.Definitions.merge(
        emr.rebuild_definitions(settings),
        dg.Definitions(resources=orchestration.resources.build_resources(settings)),
    )
    graph = definitions.resolve_asset_graph()
    keys = {k for k in graph.get_all_asset_keys() if k.path[:2] == ["silver", "rebuild"]}
    assert keys == {emr.rebuild_key(t) for t in OLTP_TABLES}
    asset = definitions.get_assets_def(emr.rebuild_key("orders"))
    assert asset.op.pool == "cdc_sink"
    assert asset.group_names_by_key[emr.rebuild_key("orders")] == "silver_rebuild"
    assert graph.get(emr.rebuild_key("orders")).parent_keys == {bronze_key("orders")}
    assert emr.RESOURCE_KEY in asset.required_resource_keys
    spec = asset.specs_by_key[emr.rebuild_key("orders")]
    assert spec.kinds == {"delta", "python"} and "local fallback" in (spec.description or "")
    prod_asset = emr.rebuild_definitions(_prod()).get_assets_def(emr.rebuild_key("orders"))
    assert prod_asset.specs_by_key[emr.rebuild_key("orders")].kinds == {"delta", "emr"}


# ---------------------------------------------------------------------------- EMR through Pipes, stubbed
def _job_run(state: str) -> dict[str, Any]:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    return {
        "jobRun": {
            "applicationId": APP_ID,
            "jobRunId": RUN_ID,
            "arn": RUN_ARN,
            "createdBy": "arn:aws:sts::123456789012:assumed-role/run-task/x",
            "createdAt": now,
            "updatedAt": now,
            "executionRole": ROLE,
            "state": state,
            "stateDetails": "boom" if state == "FAILED" else state.lower(),
            "releaseLabel": "emr-7.8.0",
            "jobDriver": {"sparkSubmit": {"entryPoint": "s3://x/rebuild_silver.py"}},
        }
    }


@pytest.fixture
def stubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[PipesEMRServerlessClient, Stubber, list[dict[str, Any]]]]:
    # the reader waits 10 s for late CloudWatch events after the job; nothing comes from a stub
    monkeypatch.setattr(dagster._core.pipes.utils, "WAIT_FOR_LOGS_AFTER_EXECUTION_INTERVAL", 0)
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1")
    emr_client = session.client("emr-serverless")
    logs_client = session.client("logs")
    requests: list[dict[str, Any]] = []
    emr_client.meta.events.register(
        "provide-client-params.emr-serverless.StartJobRun", lambda params, **_: requests.append(copy.deepcopy(params))
    )
    client = PipesEMRServerlessClient(
        client=emr_client, message_reader=PipesCloudWatchMessageReader(client=logs_client), poll_interval=0.01
    )
    with Stubber(emr_client) as stubber, Stubber(logs_client):
        yield client, stubber, requests


def _materialize(client: PipesEMRServerlessClient, monkeypatch: pytest.MonkeyPatch) -> dg.ExecuteInProcessResult:
    settings = _prod()
    monkeypatch.setattr(orchestration.resources, "get_settings", lambda: settings)
    asset = emr.rebuild_definitions(settings).get_assets_def(emr.rebuild_key("orders"))
    return dg.materialize(
        [asset],
        resources={"lakehouse": LakehouseSettings(environment="prod"), emr.RESOURCE_KEY: client},
        raise_on_error=False,
    )


def test_emr_job_run_succeeds_through_the_real_pipes_client(
    stubbed: tuple[PipesEMRServerlessClient, Stubber, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber, requests = stubbed
    stubber.add_response("start_job_run", {"applicationId": APP_ID, "jobRunId": RUN_ID, "arn": RUN_ARN})
    stubber.add_response("get_job_run", _job_run("RUNNING"))
    stubber.add_response("get_dashboard_for_job_run", {"url": "https://dashboard.example/running"})
    stubber.add_response("get_job_run", _job_run("SUCCESS"))
    now = datetime(2026, 11, 23, tzinfo=UTC)
    application = {
        "applicationId": APP_ID,
        "arn": APP_ARN,
        "releaseLabel": "emr-7.8.0",
        "type": "Spark",
        "state": "STARTED",
        "createdAt": now,
        "updatedAt": now,
    }
    stubber.add_response("get_application", {"application": application})

    result = _materialize(client, monkeypatch)

    assert result.success, result.all_events
    stubber.assert_no_pending_responses()
    (request,) = requests
    expected = emr.emr_job_run_request(_prod(), "orders")
    driver = request["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == expected["jobDriver"]["sparkSubmit"]["entryPoint"]
    assert driver["entryPointArguments"] == expected["jobDriver"]["sparkSubmit"]["entryPointArguments"]
    params = driver["sparkSubmitParameters"]
    assert params.startswith(expected["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"])
    assert "--conf spark.emr-serverless.driverEnv.DAGSTER_PIPES_CONTEXT=" in params
    assert "--conf spark.emr-serverless.driverEnv.DAGSTER_PIPES_MESSAGES=" in params
    assert request["tags"]["dagster/run-id"] == result.run_id and request["tags"]["lakehouse/table"] == "orders"
    assert request["configurationOverrides"] == expected["configurationOverrides"]
    materializations = {m.asset_key: m for m in result.asset_materializations_for_node("silver__rebuild__orders")}
    assert set(materializations) == {emr.rebuild_key("orders"), silver_key("orders"), history_key("orders")}
    metadata = materializations[emr.rebuild_key("orders")].metadata
    assert metadata["AWS EMR Serverless Job Run ID"].value == RUN_ID


def test_a_failed_emr_job_run_fails_the_asset(
    stubbed: tuple[PipesEMRServerlessClient, Stubber, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber, requests = stubbed
    stubber.add_response("start_job_run", {"applicationId": APP_ID, "jobRunId": RUN_ID, "arn": RUN_ARN})
    stubber.add_response("get_job_run", _job_run("FAILED"))
    stubber.add_response("get_dashboard_for_job_run", {"url": "https://dashboard.example/failed"})
    result = _materialize(client, monkeypatch)
    assert not result.success
    stubber.assert_no_pending_responses()
    assert len(requests) == 1
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "EMR Serverless job failed" in str(failure.step_failure_data.error)
