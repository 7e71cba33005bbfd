"""docker-compose.yml: valid Compose spec (docker compose config -q) and consistent with settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakehouse.settings import Settings

from .support import REPO_ROOT, run_tool

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (the containers' listen address, compared as text)
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
LOCALSTACK_OVERRIDE = REPO_ROOT / "docker" / "compose.localstack.yml"
ONE_SHOT = {"init", "connect-init"}


def _compose(command: tuple[list[str], dict[str, str]], *args: str, extra_env: dict[str, str] | None = None):
    base, env = command
    return run_tool([*base, *args], env={**env, **(extra_env or {})}, timeout=120)


def test_compose_config_is_valid(compose_command: tuple[list[str], dict[str, str]]) -> None:
    result = _compose(compose_command, "-f", str(COMPOSE_FILE), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_localstack_override_is_valid(compose_command: tuple[list[str], dict[str, str]]) -> None:
    result = _compose(
        compose_command,
        "-f",
        str(COMPOSE_FILE),
        "-f",
        str(LOCALSTACK_OVERRIDE),
        "config",
        "-q",
        extra_env={"LOCALSTACK_AUTH_TOKEN": "dummy-token-for-validation"},
    )
    assert result.returncode == 0, result.stderr


def test_compose_validation_detects_errors(compose_command: tuple[list[str], dict[str, str]], tmp_path: Path) -> None:
    """Guards the harness itself: an invalid file must make the command fail."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  app:\n    image: busybox:1.36\n    imagex: oops\n")
    result = _compose(compose_command, "-f", str(broken), "config", "-q")
    assert result.returncode != 0
    assert "imagex" in result.stderr


@pytest.fixture(scope="module")
def rendered(compose_command: tuple[list[str], dict[str, str]]) -> dict[str, Any]:
    result = _compose(compose_command, "-f", str(COMPOSE_FILE), "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_published_ports_are_local_and_match_settings(rendered: dict[str, Any]) -> None:
    settings = Settings(environment="local")
    published: dict[str, set[int]] = {}
    for name, service in rendered["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} on all interfaces"
            published.setdefault(name, set()).add(int(port["published"]))
    assert settings.s3_port in published["localstack"]
    assert settings.kafka_port in published["redpanda"]
    assert settings.postgres_port in published["postgres"]
    assert settings.api_port in published["api"]
    assert settings.dagster_port in published["webserver"]


def test_health_checks_and_dependencies(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    expected = {
        "localstack",
        "redpanda",
        "redpanda-console",
        "postgres",
        "connect",
        "webserver",
        "daemon",
        "code-location",
        "api",
        "init",
        "connect-init",
    }
    assert expected <= set(services)
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
        else:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, spec in service.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert spec["condition"] == wanted, f"{name} -> {dependency}"
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["code-location"]["condition"] == "service_healthy"
    volumes = {v["source"] for s in services.values() for v in s.get("volumes", []) if v["type"] == "volume"}
    assert volumes == set(rendered["volumes"]) and {"postgres-data", "redpanda-data"} <= volumes


def test_app_environment_is_valid_settings(rendered: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {f"LAKEHOUSE_{name.upper()}" for name in Settings.model_fields}
    env = rendered["services"]["code-location"]["environment"]
    lakehouse_env = {k: v for k, v in env.items() if k.startswith("LAKEHOUSE_")}
    assert set(lakehouse_env) <= fields, set(lakehouse_env) - fields
    for name in list(__import__("os").environ):
        if name.startswith("LAKEHOUSE_"):
            monkeypatch.delenv(name)
    for key, value in lakehouse_env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.environment == "local"
    assert settings.s3_endpoint == "http://localstack:4566"
    assert settings.kafka_bootstrap == "redpanda:29092"
    assert settings.pg_host == "postgres"
    assert settings.api_url == "http://api:8000"
    assert settings.postgres_db == "shop" and settings.postgres_user == "lakehouse"
    assert rendered["services"]["api"]["environment"] == {k: v for k, v in env.items() if k in lakehouse_env}


def test_commands(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    assert services["api"]["command"] == ["lakehouse", "api", "--host", ALL_INTERFACES, "--port", "8000"]
    assert services["code-location"]["command"] == [
        "dagster",
        "code-server",
        "start",
        "-m",
        "orchestration.definitions",
        "-h",
        ALL_INTERFACES,
        "-p",
        "4000",
    ]
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["init"]["command"] == ["lakehouse", "stack", "init-resources"]
    assert "wal_level=logical" in services["postgres"]["command"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["connect"]["image"].startswith("quay.io/debezium/connect:3.")
