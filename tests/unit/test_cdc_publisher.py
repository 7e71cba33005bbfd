"""Publisher pieces without services: the slot health check that must not flap, and the connector
configuration shared with docker-compose's Debezium Connect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingestion.cdc import publisher
from lakehouse.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("slot", "health"),
    [
        (None, "replication slot not created yet"),
        ({"active": False, "lag_bytes": 0, "active_seconds": None}, "replication slot inactive"),
        # Debezium opens the slot, closes it and opens it again a few hundred ms later
        ({"active": True, "lag_bytes": 0, "active_seconds": 0.07}, "replication slot just opened (settling)"),
        ({"active": True, "lag_bytes": 0, "active_seconds": publisher.SLOT_SETTLE_SECONDS + 0.1}, None),
    ],
)
def test_slot_is_healthy_only_once_one_connection_holds_it(
    monkeypatch: pytest.MonkeyPatch, slot: dict[str, Any] | None, health: str | None
) -> None:
    monkeypatch.setattr(publisher, "slot_status", lambda _settings: slot)
    assert publisher.slot_health(Settings(_env_file=None)) == health


def test_truncate_is_published_by_both_connector_configurations(tmp_path: Path) -> None:
    ours = publisher.connector_properties(Settings(_env_file=None), tmp_path / "offsets.dat")
    compose = json.loads((REPO_ROOT / "docker/debezium/register-postgres.json").read_text())["config"]
    assert ours["skipped.operations"] == compose["skipped.operations"] == "none"
