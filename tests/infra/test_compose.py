"""docker-compose.yml and its overrides: valid Compose spec (docker compose config) and consistent with settings.

The stack itself runs in tests/containers/test_compose_stack.py; these checks need no Docker engine.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from lakehouse.settings import Settings

from .support import REPO_ROOT, run_tool

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (the containers' listen address, compared as text)
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
LOCALSTACK_OVERRIDE = REPO_ROOT / "docker" / "compose.localstack.yml"
OFFLINE_OVERRIDE = REPO_ROOT / "docker" / "compose.offline.yml"
ONE_SHOT = {"init", "connect-init"}
#: images built from docker/ (never pulled)
BUILT_IMAGES = {"ecom-lakehouse:local", "ecom-lakehouse-dev:local", "ecom-lakehouse-postgres:local"}
#: ports the offline test below moves every service to (none of them a default)
OFFLINE_PORTS = {
    "LAKEHOUSE_S3_PORT": "14566",
    "LAKEHOUSE_KAFKA_PORT": "19092",
    "LAKEHOUSE_POSTGRES_PORT": "15432",
    "LAKEHOUSE_API_PORT": "18000",
    "LAKEHOUSE_DAGSTER_PORT": "13000",
    "DAGSTER_CODE_SERVER_PORT": "14000",
}


def _compose(command: tuple[list[str], dict[str, str]], *args: str, extra_env: dict[str, str] | None = None):
    base, env = command
    env = {k: v for k, v in env.items() if not k.startswith("LAKEHOUSE_")}
    return run_tool([*base, *args], env={**env, **(extra_env or {})}, timeout=120)


def _render(command: tuple[list[str], dict[str, str]], *files: Path, env: dict[str, str] | None = None) -> dict:
    args = [a for f in files for a in ("-f", str(f))]
    result = _compose(command, *args, "config", "--format", "json", extra_env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


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
    return _render(compose_command, COMPOSE_FILE)


@pytest.fixture(scope="module")
def offline(compose_command: tuple[list[str], dict[str, str]]) -> dict[str, Any]:
    return _render(compose_command, COMPOSE_FILE, OFFLINE_OVERRIDE, env=OFFLINE_PORTS)


def test_published_ports_are_local_and_match_settings(rendered: dict[str, Any]) -> None:
    settings = Settings(_env_file=None, environment="local")  # type: ignore[call-arg]
    published: dict[str, set[int]] = {}
    for name, service in rendered["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} on all interfaces"
            published.setdefault(name, set()).add(int(port["published"]))
    assert settings.s3_port in published["localstack"]
    assert settings.kafka_port in published["kafka"]
    assert settings.postgres_port in published["postgres"]
    assert settings.api_port in published["api"]
    assert settings.dagster_port in published["webserver"]


def test_health_checks_and_dependencies(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    expected = {
        "localstack",
        "kafka",
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


def test_images_production_for_dagster_dev_for_the_tooling(rendered: dict[str, Any]) -> None:
    """The Dagster roles run the production image (core only); the emulator, API and setup the dev image."""
    services = rendered["services"]
    for name in ("code-location", "webserver", "daemon"):
        assert services[name]["image"] == "ecom-lakehouse:local", name
    for name in ("localstack", "api", "init"):
        assert services[name]["image"] == "ecom-lakehouse-dev:local", name
    builds = {name: s["build"] for name, s in services.items() if "build" in s}
    assert {name: b.get("target") for name, b in builds.items()} == {"code-location": "runtime", "api": "dev"}
    for build in builds.values():
        assert Path(build["dockerfile"]).name == "Dockerfile" and build["args"]["BASE_IMAGE"].startswith("python:3.11")
    for name, service in services.items():
        if service["image"] in BUILT_IMAGES:
            assert service.get("pull_policy") == "never", f"{name} must never try to pull a locally built image"


def test_app_environment_is_valid_settings(rendered: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    env = rendered["services"]["code-location"]["environment"]
    settings = _settings_from(env, monkeypatch)
    assert settings.environment == "local"
    assert settings.s3_endpoint == "http://localstack:4566"
    assert settings.kafka_bootstrap == "kafka:29092"
    assert settings.pg_host == "postgres"
    assert settings.api_url == "http://api:8000"
    assert settings.postgres_db == "shop" and settings.postgres_user == "lakehouse"
    lakehouse_env = {k: v for k, v in env.items() if k.startswith("LAKEHOUSE_")}
    assert rendered["services"]["api"]["environment"] == lakehouse_env


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    fields = {f"LAKEHOUSE_{name.upper()}" for name in Settings.model_fields}
    lakehouse_env = {k: v for k, v in env.items() if k.startswith("LAKEHOUSE_")}
    assert set(lakehouse_env) <= fields, set(lakehouse_env) - fields
    for name in list(os.environ):
        if name.startswith("LAKEHOUSE_"):
            monkeypatch.delenv(name)
    for key, value in lakehouse_env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


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


# ---------------------------------------------------------------------------- docker/compose.offline.yml
def test_offline_override_is_valid(compose_command: tuple[list[str], dict[str, str]]) -> None:
    result = _compose(compose_command, "-f", str(COMPOSE_FILE), "-f", str(OFFLINE_OVERRIDE), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_offline_uses_only_built_images_and_host_networking(offline: dict[str, Any], rendered: dict[str, Any]) -> None:
    services = offline["services"]
    assert "networks" not in offline or not offline["networks"], "host networking only: no compose network"
    for name, service in services.items():
        assert service["image"] in BUILT_IMAGES, f"{name} would pull {service['image']}"
        assert service.get("network_mode") == "host", name
        assert not service.get("ports"), f"{name}: published ports are meaningless with host networking"
        assert "networks" not in service, name
    # every service of the default file runs here, or is replaced (and not started: profile online-only)
    replaced = {"connect": "cdc-publisher", "connect-init": "cdc-publisher", "redpanda-console": None}
    assert set(rendered["services"]) - set(services) == set(replaced)
    assert {"cdc-publisher"} == set(services) - set(rendered["services"])
    assert services["cdc-publisher"]["command"] == ["lakehouse", "cdc", "publish"]
    assert services["cdc-publisher"]["image"] == "ecom-lakehouse:local"
    assert services["postgres"]["image"] == "ecom-lakehouse-postgres:local"
    assert "wal_level=logical" in services["postgres"]["command"]


def test_offline_binds_loopback_only_on_the_chosen_ports(offline: dict[str, Any]) -> None:
    """With host networking a 0.0.0.0 listener would be reachable from the whole network."""
    services = offline["services"]
    for name, service in services.items():
        command = " ".join(service.get("command") or [])
        assert ALL_INTERFACES not in command, f"{name} listens on all interfaces: {command}"
    ports = OFFLINE_PORTS
    expect = {
        "localstack": ["-H", "127.0.0.1", "-p", ports["LAKEHOUSE_S3_PORT"]],
        "api": ["--host", "127.0.0.1", "--port", ports["LAKEHOUSE_API_PORT"]],
        "code-location": ["-h", "127.0.0.1", "-p", ports["DAGSTER_CODE_SERVER_PORT"]],
        "webserver": ["-h", "127.0.0.1", "-p", ports["LAKEHOUSE_DAGSTER_PORT"]],
        "postgres": ["listen_addresses=127.0.0.1", f"port={ports['LAKEHOUSE_POSTGRES_PORT']}"],
        "kafka": [f"tcp://127.0.0.1:{ports['LAKEHOUSE_KAFKA_PORT']}"],
    }
    for name, parts in expect.items():
        command = services[name]["command"]
        for part in parts:
            assert part in command, f"{name}: {part} not in {command}"
    # health checks probe the moved ports, not the defaults
    for name in ("localstack", "api", "webserver", "postgres", "kafka", "code-location"):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert any(port in test for port in ports.values()), f"{name} health check: {test}"
        assert not re.search(r"\b(4566|9092|5432|8000|3000|4000)\b", test), f"{name} probes a default port: {test}"


def test_offline_environment_reaches_the_services_on_loopback(
    offline: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = offline["services"]
    ports = OFFLINE_PORTS
    for name in ("code-location", "api", "init", "cdc-publisher"):
        settings = _settings_from(services[name]["environment"], monkeypatch)
        assert settings.s3_endpoint == f"http://127.0.0.1:{ports['LAKEHOUSE_S3_PORT']}", name
        assert settings.kafka_bootstrap == f"127.0.0.1:{ports['LAKEHOUSE_KAFKA_PORT']}", name
        assert (settings.pg_host, str(settings.postgres_port)) == ("127.0.0.1", ports["LAKEHOUSE_POSTGRES_PORT"])
        assert settings.api_url == f"http://127.0.0.1:{ports['LAKEHOUSE_API_PORT']}", name
        assert settings.state_dir == Path("/var/lib/lakehouse")
    for name in ("code-location", "webserver", "daemon"):
        env = services[name]["environment"]
        assert (env["DAGSTER_PG_HOST"], env["DAGSTER_PG_PORT"]) == ("127.0.0.1", ports["LAKEHOUSE_POSTGRES_PORT"])
        assert env["DAGSTER_CODE_LOCATION_HOST"] == "127.0.0.1"
        assert env["DAGSTER_CODE_LOCATION_PORT"] == ports["DAGSTER_CODE_SERVER_PORT"]
    # the publisher keeps its Debezium offsets in its own volume
    mounts = {v["target"]: v["source"] for v in services["cdc-publisher"]["volumes"]}
    assert mounts == {"/var/lib/lakehouse": "cdc-state"}
