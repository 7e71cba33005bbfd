"""Validation of the synthetic-data API and CLI, with no services running.

Settings point at closed ports: a request that got past validation would fail with a connection
error (503 / exit 1) instead of the 422 / exit 2 asserted here, which proves nothing was attempted.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import lakehouse.synthetic.commands as commands
from lakehouse.cli import app as cli_app
from lakehouse.settings import Settings
from lakehouse.stack.process import free_port
from lakehouse.synthetic.api import create_app
from lakehouse.synthetic.common import SyntheticDataError
from lakehouse.synthetic.entities import ENTITIES, generate
from lakehouse.synthetic.simulate import simulate


@pytest.fixture(scope="module")
def offline() -> Settings:
    return Settings(
        _env_file=None,
        postgres_port=free_port(),
        s3_port=free_port(),
        name_prefix="offline-test",
    )


@pytest.fixture(scope="module")
def client(offline: Settings) -> TestClient:
    return TestClient(create_app(offline))


@pytest.mark.parametrize(
    ("entity", "kwargs", "message"),
    [
        ("nope", {}, "unknown entity"),
        ("orders", {"count": 0}, "count for orders"),
        ("orders", {"count": -3}, "count for orders"),
        ("orders", {"count": 10**9}, "count for orders"),
        ("customers", {"days": 0}, "days"),
        ("customers", {"start_date": "2024-02-30"}, "start_date"),
        ("customers", {"malformed_rate": 0.1}, "malformed_rate"),
        ("clickstream", {"malformed_rate": 1.5}, "malformed_rate"),
        ("starter", {"count": 0}, "scale"),
        ("carts", {"seed": -1}, "seed"),
    ],
)
def test_generate_validates_before_touching_anything(
    offline: Settings, entity: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SyntheticDataError, match=message):
        generate(offline, entity, **kwargs)  # type: ignore[arg-type]


def test_simulate_validates_rate_and_duration(offline: Settings) -> None:
    for rate, duration in ((0, 1), (-5, 1), (10**6, 1), (10, -1)):
        with pytest.raises(SyntheticDataError):
            simulate(offline, rate, duration)


def test_api_health_and_docs(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/generate/{entity}", "/api/marketing/campaigns", "/api/marketing/ad_spend"} <= paths.keys()
    names = {e["name"] for e in client.get("/api/entities").json()}
    assert names == {*ENTITIES, "starter"}


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("/api/generate/nope?count=5", "unknown entity"),
        ("/api/generate/orders?count=0", "count"),
        ("/api/generate/orders?count=-1", "count"),
        ("/api/generate/products?count=50001", "count"),
        ("/api/generate/orders?count=abc", "count"),
        ("/api/generate/orders?count=5&start_date=2024-1-99", "start_date"),
        ("/api/generate/orders?count=5&days=400", "days"),
        ("/api/generate/orders?count=5&seed=-2", "seed"),
        ("/api/generate/carts?count=5&malformed_rate=0.2", "malformed_rate"),
    ],
)
def test_api_rejects_bad_generate_parameters(client: TestClient, url: str, needle: str) -> None:
    response = client.post(url)
    assert response.status_code == 422, response.text
    assert needle in response.text


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page_size=0",
        "page_size=1001",
        "updated_since=not-a-date",
        "updated_since=2024-13-01",
        "after=not-a-cursor",
        "after=WyJ4Il0",  # base64 of '["x"]': JSON, but not a cursor of this resource
        "page=2&after=WyIyMDI2LTExLTAxVDAwOjAwOjAwWiIsICJjbXBfMDAwMDAxIiwgIjIwMjYtMTEtMDEiXQ",
    ],
)
def test_api_rejects_bad_marketing_parameters(client: TestClient, query: str) -> None:
    for resource in ("campaigns", "ad_spend"):
        response = client.get(f"/api/marketing/{resource}?{query}")
        assert response.status_code == 422, response.text


def test_api_reports_an_unreachable_database_as_503(client: TestClient) -> None:
    response = client.post("/api/generate/customers?count=1")
    assert response.status_code == 503
    assert "PostgreSQL unavailable" in response.json()["detail"]


@pytest.fixture
def runner(offline: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(commands, "get_settings", lambda: offline)
    return CliRunner()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["generate", "nope"], "unknown entity"),
        (["generate", "customers", "--count", "-5"], "count"),
        (["generate", "orders", "-n", "0"], "count"),
        (["generate", "orders", "--start-date", "2024-02-30"], "start_date"),
        (["generate", "orders", "--days", "0"], "days"),
        (["simulate", "--rate", "0", "--duration", "1"], "rate"),
        (["simulate", "--rate", "-10", "--duration", "1"], "rate"),
        (["simulate", "--rate", "10", "--duration", "-1"], "duration"),
    ],
)
def test_cli_rejects_bad_input_with_exit_code_2(runner: CliRunner, args: list[str], needle: str) -> None:
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_cli_reports_unreachable_services_with_exit_code_1(runner: CliRunner) -> None:
    result = runner.invoke(cli_app, ["generate", "customers", "--count", "3"])
    assert result.exit_code == 1, result.output
    assert "lakehouse up" in result.output
