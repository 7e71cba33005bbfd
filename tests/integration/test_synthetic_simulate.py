"""`simulate` against a real PostgreSQL: a steady mix of inserts, updates and deletes, integrity kept."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

import lakehouse.synthetic.commands as commands
from lakehouse.cli import app as cli_app
from lakehouse.settings import Settings
from lakehouse.synthetic.checks import integrity_violations, table_counts
from lakehouse.synthetic.common import SyntheticDataError
from lakehouse.synthetic.entities import generate
from lakehouse.synthetic.simulate import simulate


@pytest.fixture
def shop(isolated_settings: Callable[[], Settings]) -> Settings:
    settings = isolated_settings()
    for entity, count in (("customers", 200), ("products", 50), ("campaigns", 5), ("orders", 1_000)):
        generate(settings, entity, count, seed=1)
    return settings


def test_simulate_streams_inserts_updates_and_deletes(shop: Settings) -> None:
    before = table_counts(shop)
    summary = simulate(shop, rate=600, duration=2.5, seed=3)
    after = table_counts(shop)

    assert summary.totals("insert") > 0 and summary.totals("update") > 0 and summary.totals("delete") > 0
    for name in ("orders", "order_items", "payments", "addresses"):
        assert summary.changes[name]["delete"] > 0, summary.changes
    for name in ("customers", "products", "inventory", "orders", "payments"):
        assert summary.changes[name]["update"] > 0, summary.changes
    # the summary is what was committed: row counts moved by exactly inserts - deletes
    for name, ops in summary.changes.items():
        assert after[name] - before[name] == ops["insert"] - ops["delete"], name
    # ~600 changes/s in small transactions (several per second)
    assert 0.7 * 600 < summary.rate < 1.3 * 600, summary.to_dict()
    assert summary.transactions >= 10
    assert set(integrity_violations(shop).values()) == {0}, integrity_violations(shop)


def test_simulate_stops_cleanly_when_asked(shop: Settings) -> None:
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    summary = simulate(shop, rate=300, duration=0, seed=5, stop=stop)  # 0 = until stopped
    assert summary.interrupted and 0.8 < summary.elapsed_seconds < 5 and summary.total > 0


def test_simulate_needs_customers_and_products(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    with pytest.raises(SyntheticDataError, match="customers"):
        simulate(settings, rate=100, duration=1)


def test_cli_simulate_prints_a_summary(shop: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "get_settings", lambda: shop)
    result = CliRunner().invoke(cli_app, ["simulate", "--rate", "200", "--duration", "1", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "order_items" in result.output and "changes/s" in result.output
    result = CliRunner().invoke(cli_app, ["simulate", "--rate", "0", "--duration", "1"])
    assert result.exit_code == 2 and "rate" in result.output
