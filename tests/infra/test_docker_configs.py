"""Dagster instance/workspace files and the Debezium connector agree with Dagster, settings and TF."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.settings import OLTP_TABLES, Settings

from .support import DOCKER_DIR, REPO_ROOT
from .terraform_cli import Plan

DAGSTER_ENV = {
    "DAGSTER_PG_HOST": "db",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "u",
    "DAGSTER_PG_PASSWORD": "p",
    "DAGSTER_RUN_TASK_DEFINITION": "run",
    "DAGSTER_COMPUTE_LOGS_BUCKET": "bucket",
    "DAGSTER_CODE_LOCATION_HOST": "code-location.internal",
    "DAGSTER_CODE_LOCATION_PORT": "4000",
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
    # psycopg2 explicitly: SQLAlchemy >= 2.1 would pick psycopg 3 for postgresql://, and dagster-postgres'
    # event writes (NOTIFY run_events, :id) fail with it
    from dagster_postgres.utils import pg_url_from_config
    from sqlalchemy.engine import make_url

    assert make_url(pg_url_from_config(storage.value)).get_driver_name() == "psycopg2"
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
    assert server["host"] == DAGSTER_ENV["DAGSTER_CODE_LOCATION_HOST"]


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


def test_terraform_connector_matches_compose_connector(prod_plans: dict[str, Plan], connector: dict[str, str]) -> None:
    """MSK Connect (prod, as `terraform plan` of profile scale configures it) and Kafka Connect
    (compose) run the same connector; only the connection differs."""
    planned = prod_plans["scale"].one("aws_mskconnect_connector").values["connector_configuration"]
    connection = {
        "database.hostname",
        "database.port",
        "database.dbname",
        "database.user",
        "database.password",
        "database.sslmode",
    }
    local_only = {"replica.identity.autoset.values"}  # prod: the DBA sets REPLICA IDENTITY FULL
    assert set(planned) - connection == set(connector) - connection - local_only
    # The one deliberate difference: in prod the DBA owns the publication (the lakehouse role does
    # not own the tables, so Debezium must never create or alter it); compose owns its tables.
    differs = {"publication.autocreate.mode": ("disabled", "filtered")}
    for key, (in_prod, in_compose) in differs.items():
        assert (planned[key], connector[key]) == (in_prod, in_compose), key
    for key in set(planned) - connection - set(differs):
        assert planned[key] == connector[key], key


# ---------------------------------------------------------------------------- Dockerfiles
DOCKERFILES = {
    "app": DOCKER_DIR / "Dockerfile",
    "postgres": DOCKER_DIR / "postgres" / "Dockerfile",
    "emr": REPO_ROOT / "ingestion" / "jobs" / "Dockerfile.emr",
}
OFFICIAL_BASES = {
    "app": "python:3.11-slim-bookworm",
    "postgres": "debian:bookworm-slim",
    "emr": "public.ecr.aws/amazonlinux/amazonlinux:2023",
}


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfiles_pull_nothing_but_their_base_image(name: str) -> None:
    """Machines without a registry build them from a local base: no `# syntax=` frontend, no
    `COPY --from=<image>`, every FROM is the BASE_IMAGE argument (official by default) or a stage."""
    text = DOCKERFILES[name].read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I), "a # syntax= line pulls the BuildKit frontend"
    assert re.search(rf"^ARG BASE_IMAGE={re.escape(OFFICIAL_BASES[name])}$", text, re.M)
    stages: set[str] = set()
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = re.match(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", line, re.I)
        if match:
            image, stage = match.groups()
            assert image == "${BASE_IMAGE}" or image in stages or image == "scratch", f"{name}: FROM {image}"
            if stage:
                stages.add(stage)
        for source in re.findall(r"--from=(\S+)", line):
            assert source in stages, f"{name}: {line.strip()} copies from an image, not a stage"


def test_uv_version_matches_the_makefile() -> None:
    makefile = re.search(r"^UV_VERSION := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert makefile
    for name in ("app", "emr"):
        assert f"ARG UV_VERSION={makefile.group(1)}" in DOCKERFILES[name].read_text(), name


def test_production_image_leaves_the_local_tooling_out() -> None:
    """The runtime target removes exactly the tooling of the import-linter contract; dev adds it back."""
    import tomllib

    text = DOCKERFILES["app"].read_text()
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in pyproject["tool"]["importlinter"]["contracts"] if c["id"] == "core-without-tooling"]
    removed = re.search(r"^RUN rm -rf (.+)$", text, re.M)
    assert removed
    paths = set(removed.group(1).split())
    for module in contract["forbidden_modules"]:
        relative = module.replace(".", "/")
        assert f"/app/{relative}" in paths or f"/app/{relative}.py" in paths, module
        assert re.search(rf"^COPY {relative}(\.py)? /app/{relative}", text, re.M), f"dev target lacks {module}"
    assert "uv sync --frozen --no-dev --extra local" in text.split("AS dev")[1]
    assert "--extra" not in text.split("AS dev")[0], "the production stages install core only"
    assert text.rstrip().endswith("FROM app AS runtime"), "the default target (last stage) is production"


def test_ecs_scratch_mounts_are_volumes_of_the_image(terraform_documents: dict[Path, dict[str, Any]]) -> None:
    """Fargate mounts fresh root-owned 0755 volumes; only a VOLUME of the image gets the image's owner
    and mode copied in (tests/containers/test_ecs_roles.py runs it)."""
    from .ecs_tasks import render_task_definitions

    text = DOCKERFILES["app"].read_text()
    declared = re.search(r"^VOLUME (\[.*\])$", text, re.M)
    assert declared, "the production image declares no VOLUME"
    volumes = set(json.loads(declared.group(1)))
    tasks = render_task_definitions(terraform_documents)
    assert tasks
    for key, task in tasks.items():
        mounted = {p["containerPath"] for p in task.mount_points}
        assert mounted <= volumes, f"{key} mounts {mounted - volumes}, which the image does not declare a VOLUME"
        assert {v["name"] for v in task.volumes} >= {p["sourceVolume"] for p in task.mount_points}, key
        if task.read_only_root:
            assert {"/tmp", "/var/lib/lakehouse", "/home/lakehouse"} <= mounted, f"{key}: read-only without scratch"
    app_home = re.search(r"--home-dir (\S+) lakehouse", text)
    assert app_home and app_home.group(1) in volumes, "$HOME of the app user must be a volume"
