"""`lakehouse docs` without dbt: argument checks, the server's address, failures reported clearly.
(tests/integration/test_dbt_local.py generates and serves the real site.)"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lakehouse import cli, dbt_docs
from lakehouse.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = Settings(_env_file=None, state_dir=tmp_path)
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    return settings


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_serve_rejects_bad_ports(settings: Settings, port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        dbt_docs.serve_docs(settings, port)


def test_serve_needs_a_generated_site(settings: Settings) -> None:
    with pytest.raises(dbt_docs.DocsError, match="run generate_docs first"):
        dbt_docs.serve_docs(settings, 8580)


def test_serve_binds_the_settings_host_only(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    site = dbt_docs.docs_target_path(settings)
    site.mkdir(parents=True)
    (site / "index.html").write_text("<html></html>")
    started: dict[str, Any] = {}
    monkeypatch.setattr(subprocess, "Popen", lambda command, **kwargs: started.update(command=command, **kwargs))
    dbt_docs.serve_docs(settings, 8581)
    command = started["command"]
    assert command[1:3] == ["docs", "serve"]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "8581"
    assert command[command.index("--target-path") + 1] == str(site)
    assert "--no-browser" in command


def test_cli_reports_a_failed_generation(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(_: Settings) -> Path:
        raise dbt_docs.DocsError("dbt docs generate failed (2): Catalog Error: no such table")

    monkeypatch.setattr(dbt_docs, "generate_docs", fail)
    result = CliRunner().invoke(cli.app, ["docs", "--no-serve"])
    assert result.exit_code == 1
    assert "no such table" in result.output


def test_cli_generates_without_serving(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(dbt_docs, "generate_docs", lambda s: calls.append("generate") or Path("/site"))
    monkeypatch.setattr(dbt_docs, "serve_docs", lambda s, port: calls.append("serve"))
    result = CliRunner().invoke(cli.app, ["docs", "--no-serve"])
    assert result.exit_code == 0, result.output
    assert calls == ["generate"]
    assert "static_index.html" in result.output
