"""Choosing the S3/DynamoDB emulator (moto, LocalStack, or an external endpoint) and LocalStack's install."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from pydantic import ValidationError

from lakehouse.settings import Settings
from lakehouse.stack import LocalStack
from lakehouse.stack.localstack_emulator import (
    AGENT_JAR,
    DYNAMODB_LOCAL_DIR,
    JAVA_DIR,
    KINESIS_MOCK_DIR,
    LOCALSTACK_VERSION,
    MIN_PYTHON,
    REQUIREMENTS,
    LocalStackInstall,
    find_python,
    java_home,
    write_noop_agent_jar,
)
from lakehouse.stack.process import ProcessTable, StackError
from lakehouse.stack.services import (
    ExternalEmulator,
    LocalStackEmulator,
    MotoEmulator,
    S3Emulator,
    s3_service,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def make(tmp_path: Path, **kwargs: object) -> Settings:
    return Settings(_env_file=None, state_dir=tmp_path / "state", **kwargs)  # type: ignore[call-arg, arg-type]


def test_moto_is_the_default_and_localstack_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(s3_service(make(tmp_path)), MotoEmulator)
    monkeypatch.setenv("LAKEHOUSE_EMULATOR", "localstack")
    settings = make(tmp_path)
    assert settings.emulator == "localstack"
    assert isinstance(s3_service(settings), LocalStackEmulator)
    assert settings.to_env()["LAKEHOUSE_EMULATOR"] == "localstack"  # children (dagster, demo) see it too
    with pytest.raises(ValidationError, match="emulator"):
        make(tmp_path, emulator="minio")


def test_an_endpoint_url_is_external_whatever_the_emulator(tmp_path: Path) -> None:
    settings = make(tmp_path, emulator="localstack", s3_endpoint_url="http://127.0.0.1:4566")
    svc = s3_service(settings)
    assert isinstance(svc, ExternalEmulator) and not svc.managed
    assert svc.address == "http://127.0.0.1:4566"
    with pytest.raises(StackError, match="external"):
        svc.argv()
    # a running process of ours is described as what it was started as, external or not
    assert isinstance(s3_service(settings, "moto"), MotoEmulator)


@pytest.mark.parametrize("url", ["", None])
def test_an_empty_endpoint_url_means_the_embedded_emulator(tmp_path: Path, url: str | None) -> None:
    settings = make(tmp_path, s3_endpoint_url=url)
    assert not settings.s3_endpoint_is_external
    assert settings.s3_endpoint == f"http://127.0.0.1:{settings.s3_port}"


@pytest.mark.parametrize("url", ["127.0.0.1:4566", "ftp://host:21", "http://host:1/path?q=1", "http://a b"])
def test_a_malformed_endpoint_url_is_rejected(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValidationError, match="s3_endpoint_url"):
        make(tmp_path, s3_endpoint_url=url)


def test_kind_of_a_recorded_command_line() -> None:
    assert S3Emulator.kind_of([sys.executable, "-m", "moto.server", "-p", "1"]) == "moto"
    assert S3Emulator.kind_of(["/x/.venv-localstack/bin/python", "-m", "localstack.runtime.main"]) == "localstack"


def test_status_and_up_follow_the_emulator_actually_running(tmp_path: Path) -> None:
    """`up --emulator localstack` then plain `status`: the running LocalStack is reported, not moto."""
    settings = make(tmp_path)  # emulator: moto
    table = ProcessTable(settings.state_path)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", "-m", "localstack.runtime.main"]
    table.start("s3", sleeper, env={})
    try:
        svc = LocalStack(settings, services=["s3"]).service("s3")
        assert isinstance(svc, LocalStackEmulator)
    finally:
        table.stop("s3", timeout=5)
    assert isinstance(LocalStack(settings, services=["s3"]).service("s3"), MotoEmulator)  # nothing runs: setting


def test_stop_also_stops_children_that_left_the_process_group(tmp_path: Path) -> None:
    """LocalStack starts DynamoDB Local and kinesis-mock in sessions of their own: `down` must stop them."""
    table = ProcessTable(tmp_path)
    child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True); time.sleep(60)"  # noqa: E501
    record = table.start("parent", [sys.executable, "-c", child], env={})
    deadline = time.monotonic() + 10
    while not (children := psutil.Process(record.pid).children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert children, "the child never started"
    assert children[0].pid == psutil.Process(children[0].pid).pid != record.pid
    assert table.stop("parent", timeout=5)
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


# ---------------------------------------------------------------------------------------- LocalStack install


def test_requirements_pin_every_package_and_localstack_at_least_4_14() -> None:
    lines = [line for line in REQUIREMENTS.read_text().splitlines() if line and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", line) for line in lines), lines
    pins = dict(line.split("==") for line in lines)
    assert pins["localstack-core"] == LOCALSTACK_VERSION
    assert tuple(map(int, LOCALSTACK_VERSION.split("."))) >= (4, 14, 0)  # 4.13.x loses listing pages
    assert int(pins["cbor2"].split(".")[0]) < 6 and pins["pyopenssl"] == "24.3.0"


def test_compose_override_pins_localstack_4_14_or_later() -> None:
    class ComposeLoader(yaml.SafeLoader):
        """Compose's `!reset` tag (drop the base file's value) read as plain null."""

    ComposeLoader.add_constructor("!reset", lambda loader, node: None)
    compose = yaml.load((REPO_ROOT / "docker" / "compose.localstack.yml").read_text(), Loader=ComposeLoader)  # noqa: S506
    image = compose["services"]["localstack"]["image"]
    name, tag = image.split(":")
    assert name == "localstack/localstack"
    assert tuple(map(int, tag.split("."))) >= (4, 14)
    assert "kinesis" in compose["services"]["localstack"]["environment"]["SERVICES"].split(",")


def test_find_python_refuses_an_interpreter_below_3_13() -> None:
    if sys.version_info[:2] >= MIN_PYTHON:
        pytest.skip("the test runs on the project's Python 3.11")
    with pytest.raises(StackError, match=r"Python >= 3\.13.*LAKEHOUSE_LOCALSTACK_PYTHON"):
        find_python(sys.executable)
    with pytest.raises(StackError):
        find_python(str(Path("/nonexistent/python3.13")))


def test_noop_agent_jar_loads_in_the_jvm(tmp_path: Path) -> None:
    """DynamoDB Local starts with `-javaagent:<this jar>`: a bad class file or manifest stops the JVM."""
    jar = tmp_path / AGENT_JAR
    write_noop_agent_jar(jar)
    java = shutil.which("java")
    assert java, "Java is a system dependency of the stack (scripts/system-deps.sh)"
    ok = subprocess.run([java, f"-javaagent:{jar}", "-version"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "broken.jar"
    broken.write_bytes(jar.read_bytes()[:-40])
    bad = subprocess.run([java, f"-javaagent:{broken}", "-version"], capture_output=True, text=True, check=False)
    assert bad.returncode != 0  # the check above can fail


def test_libraries_are_linked_where_localstack_looks_for_installed_packages(tmp_path: Path) -> None:
    install = LocalStackInstall(tmp_path / "home")
    for relative in (DYNAMODB_LOCAL_DIR, KINESIS_MOCK_DIR):
        (install.libs / relative).mkdir(parents=True)
    root = tmp_path / "root"
    for _ in range(2):  # idempotent: every start links again
        install.link_libraries(root)
    static = root / "usr" / "lib" / "localstack"
    assert (static / DYNAMODB_LOCAL_DIR).resolve() == (install.libs / DYNAMODB_LOCAL_DIR).resolve()
    assert (static / KINESIS_MOCK_DIR).resolve() == (install.libs / KINESIS_MOCK_DIR).resolve()
    assert (static / JAVA_DIR / "bin" / "java").exists()
    assert (static / JAVA_DIR).resolve() == java_home().resolve()


def test_localstack_runs_host_mode_on_loopback_from_its_own_environment(tmp_path: Path) -> None:
    settings = make(tmp_path, emulator="localstack", s3_port=14566, localstack_home=tmp_path / "ls")
    svc = s3_service(settings)
    assert isinstance(svc, LocalStackEmulator)
    assert svc.argv() == [str(tmp_path / "ls" / "bin" / "python"), "-m", "localstack.runtime.main"]
    env = svc.env()
    assert env["GATEWAY_LISTEN"] == "127.0.0.1:14566"
    assert env["OVERRIDE_IN_DOCKER"] == "0" and env["FILESYSTEM_ROOT"].startswith(str(settings.state_path))
    assert {"s3", "dynamodb", "kinesis"} <= set(env["SERVICES"].split(","))
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env


def test_install_is_current_only_with_the_same_recipe(tmp_path: Path) -> None:
    install = LocalStackInstall(tmp_path / "home")
    assert not install.is_current()
    (tmp_path / "home" / "bin").mkdir(parents=True)
    install.python.write_text("")
    (tmp_path / "home" / ".lakehouse-install").write_text("an older recipe\n")
    assert not install.is_current()
    from lakehouse.stack.localstack_emulator import install_digest

    (tmp_path / "home" / ".lakehouse-install").write_text(install_digest() + "\n")
    assert install.is_current()
    assert json.dumps(install_digest())  # a plain string
