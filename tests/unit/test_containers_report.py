"""scripts/containers.sh `up` names every service that is not healthy when the compose stack fails, even
when looking at one of them fails or finds nothing (CI, 2026-12-04: the code location's health check had
not run yet, the empty lookup ended the report there, and the broken broker was never named).

A stand-in `docker` on PATH plays the engine and compose; the real ones run in
tests/containers/test_errors.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.containers.support import free_compose_ports

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "containers.sh"
PROJECT = "lakehouse-report-test"

# `compose ps -a` rows: service|state|health|exit code|container id (sorted by the script)
PS_ROWS = "\n".join(
    [
        "api|running|||c-api",
        "cdc-publisher|created||0|c-publisher",
        "code-location|running|starting|0|c-code",  # its check has printed nothing yet
        "dagster-daemon|running|starting|0|c-gone",  # removed between `ps` and `inspect`
        "kafka|running|starting|0|c-kafka",
        "postgres|running|healthy|0|c-postgres",
    ]
)

FAKE_DOCKER = r"""#!/usr/bin/env bash
# stand-in for the docker CLI: only what `containers.sh up` asks when compose fails
args=" $* "
case "$args" in
  " info "*|" image inspect "*|" compose version "*) exit 0 ;;
  *" up -d "*)
    echo " Container PROJECT-api-1  Started"
    echo " Container PROJECT-kafka-1  Error"
    echo "timeout waiting for dependencies"
    exit 1 ;;
  *" ps -a "*) printf '%s\n' "$PS_ROWS"; exit 0 ;;
  *" logs "*) echo "log line of ${@: -1}"; exit 0 ;;
  *RestartPolicy*) echo always; exit 0 ;;
  *" c-code "*) exit 0 ;;
  *" c-gone "*) echo "Error: No such object: c-gone" >&2; exit 1 ;;
  *" c-kafka "*) printf 'KafkaException: failed to connect to 127.0.0.1:0\n\n'; exit 0 ;;
esac
echo "fake docker: unexpected call: $*" >&2
exit 99
"""


@pytest.fixture
def fake_docker(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.replace("PROJECT", PROJECT))
    docker.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PS_ROWS": PS_ROWS,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "LAKEHOUSE_DOCKER_STATE": str(tmp_path / "state"),
    }
    env.update(free_compose_ports())
    return env


def test_every_unhealthy_service_is_named_even_when_a_lookup_fails(fake_docker: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "up"], env=fake_docker, capture_output=True, text=True, timeout=60, check=False
    )
    report = result.stderr
    assert result.returncode == 1, report
    assert "unexpected call" not in report, report
    assert "service cdc-publisher: never started" in report
    # a check that has not finished once: said so, and the report goes on
    code_location = report.split("its health check (code-location) last printed:\n", 1)[1]
    assert code_location.startswith("    (nothing yet"), code_location
    # a container gone meanwhile: its lookup error is shown, the report goes on
    assert "service dagster-daemon is running (starting)" in report and "No such object: c-gone" in report
    # the broken service, last in the list, is named with what its check printed
    assert "service kafka is running (starting), exit code 0; its last log lines:\n    log line of kafka" in report
    assert "failed to connect to 127.0.0.1:0" in report.split("its health check (kafka) last printed:", 1)[1]
    # healthy services and the one compose did not blame stay out; the script still ends with its verdict
    assert "service api" not in report and "service postgres" not in report
    assert report.rstrip().endswith(f"full output: {fake_docker['LAKEHOUSE_DOCKER_STATE']}/compose-up.log)")
