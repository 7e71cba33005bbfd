"""Dagster instance/workspace files and the Debezium connector agree with Dagster, settings and TF."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.settings import OLTP_TABLES, Settings

from .hcl_eval import Module, evaluate
from .support import DOCKER_DIR, REPO_ROOT, TERRAFORM_DIR

DAGSTER_ENV = {
    "DAGSTER_PG_HOST": "db",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "u",
    "DAGSTER_PG_PASSWORD": "p",
    "DAGSTER_RUN_TASK_DEFINITION": "run",
    "DAGSTER_COMPUTE_LOGS_BUCKET": "bucket",
    "DAGSTER_CODE_LOCATION_HOST": "code-location.internal",
}
CONNECTOR = DOCKER_DIR / "debezium" / "register-postgres.json"


@pytest.fixture
def dagster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in DAGSTER_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("path", ["dagster.yaml", "ecs/dagster.yaml"])
def test_dagster_instance_config_is_valid(path: str, dagster_env: None, tmp_path: Path) -> None:
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.storage.config import pg_config

    (tmp_path / "dagster.yaml").write_text((DOCKER_DIR / path).read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["telemetry"]["enabled"] is False
    assert config["nux"]["enabled"] is False
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    storage = process_config(resolve_to_config_type(pg_config()), config["storage"]["postgres"])
    assert storage.success, storage.errors
    for key in ("run_coordinator", "run_launcher", "compute_logs", "local_artifact_storage"):
        section = config[key]
        klass = getattr(importlib.import_module(section["module"]), section["class"])
        result = process_config(resolve_to_config_type(klass.config_type()), section.get("config", {}))
        assert result.success, (path, key, result.errors)
    expected_launcher = "EcsRunLauncher" if path.startswith("ecs/") else "DefaultRunLauncher"
    assert config["run_launcher"]["class"] == expected_launcher
    # pools exclude nothing without a limit: the writers and their maintenance share pools (docs/prod-wiring.md)
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_retries"] == {"enabled": True, "max_retries": 1}  # sensor-launched runs retry too


@pytest.mark.parametrize("path", ["workspace.yaml", "ecs/workspace.yaml"])
def test_workspace_points_at_code_server(path: str, dagster_env: None) -> None:
    from dagster._core.workspace.config_schema import ensure_workspace_config

    config: dict[str, Any] = dict(
        ensure_workspace_config(yaml.safe_load((DOCKER_DIR / path).read_text()), str(DOCKER_DIR))
    )
    (server,) = [entry["grpc_server"] for entry in config["load_from"]]
    assert server["port"] == 4000
    assert server["host"] == (
        "code-location" if path == "workspace.yaml" else DAGSTER_ENV["DAGSTER_CODE_LOCATION_HOST"]
    )


@pytest.fixture(scope="module")
def connector() -> dict[str, str]:
    document = json.loads(CONNECTOR.read_text())
    assert set(document) == {"name", "config"}
    return document["config"]


def test_connector_uses_settings_names(connector: dict[str, str]) -> None:
    settings = Settings(environment="local")
    assert connector["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert connector["plugin.name"] == "pgoutput"
    assert connector["database.hostname"] == "postgres"
    assert connector["database.port"] == str(settings.postgres_port)
    assert connector["database.dbname"] == settings.postgres_db
    assert connector["topic.prefix"] == settings.cdc_topic_prefix
    assert connector["slot.name"] == settings.cdc_slot_name
    assert connector["publication.name"] == settings.cdc_publication_name
    assert connector["publication.autocreate.mode"] == "filtered"
    assert connector["table.include.list"] == ",".join(f"{settings.oltp_schema}.{t}" for t in OLTP_TABLES)
    assert connector["snapshot.mode"] == "initial"
    assert connector["decimal.handling.mode"] == "string"
    assert connector.get("tombstones.on.delete", "true") == "true"
    for side in ("key", "value"):
        assert connector[f"{side}.converter"] == "org.apache.kafka.connect.json.JsonConverter"
        assert connector[f"{side}.converter.schemas.enable"] == "false"
    # Topics Debezium will write equal the settings' topic names.
    topics = {f"{connector['topic.prefix']}.{t}" for t in connector["table.include.list"].split(",")}
    assert topics == {settings.cdc_topic(t) for t in OLTP_TABLES}


def test_connector_has_no_literal_credentials(connector: dict[str, str]) -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    connect_env = compose["services"]["connect"]["environment"]
    assert connect_env["CONNECT_CONFIG_PROVIDERS"] == "env"
    assert connect_env["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"].endswith("EnvVarConfigProvider")
    for key in ("database.user", "database.password"):
        value = connector[key]
        assert value.startswith("${env:") and value.endswith("}"), f"{key} must come from the worker environment"
        assert value[len("${env:") : -1] in connect_env, f"{value} is not set on the connect service"


def test_terraform_connector_matches_compose_connector(
    terraform_documents: dict[Path, dict[str, Any]], connector: dict[str, str]
) -> None:
    """MSK Connect (prod) and Kafka Connect (compose) run the same connector; only the connection differs."""
    prod = Module.from_documents((TERRAFORM_DIR / "environments/prod").resolve(), terraform_documents)
    streaming = Module.from_documents(prod.module_source("streaming"), terraform_documents)
    scope = streaming.scope(prod.module_inputs("streaming", prod.scope()))
    raw = scope.locals_raw["connector_configuration"]
    connection = {
        "database.hostname",
        "database.port",
        "database.dbname",
        "database.user",
        "database.password",
        "database.sslmode",
    }
    local_only = {"replica.identity.autoset.values"}  # prod: the DBA sets REPLICA IDENTITY FULL
    assert set(raw) - connection == set(connector) - connection - local_only
    for key in set(raw) - connection:
        assert evaluate(raw[key], scope) == connector[key], key
    assert (
        evaluate(
            raw["database.password"],
            scope.__class__(
                variables={**scope.variables, "oltp_secret_name": "ecom-lakehouse-prod/oltp-source"},
                locals_raw=scope.locals_raw,
            ),
        )
        == "${secretsmanager:ecom-lakehouse-prod/oltp-source:password}"
    )
