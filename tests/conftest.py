"""Shared fixtures: ONE embedded stack per test process (services start once, on free ports; `make test`
runs two processes with pytest-xdist, each with its own stack).

Integration and end-to-end tests talk to it over real connections. Tests that need a clean slate
use `isolated_settings()`, which gives them their own PostgreSQL database, buckets and DynamoDB
tables on the same running services.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lakehouse.settings import Settings
from lakehouse.stack import LocalStack
from lakehouse.stack.process import free_port
from lakehouse.stack.resources import ensure_resources

REPO_ROOT = Path(__file__).resolve().parents[1]


_session_status: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _session_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process with pytest's status once pytest is done, skipping interpreter teardown.

    The embedded JVM (Debezium, started by the CDC tests in this process), DuckDB connections and
    Arrow's thread pools live here. CPython's teardown, and JPype's exit handler that shuts the JVM
    down while its threads run, can then crash a green run at exit (SIGSEGV/SIGABRT, issue 20).
    The `lakehouse` commands end the same way (`lakehouse.process_exit`). Registered last, the
    handler runs first (atexit is LIFO): after every pytest cleanup, before JPype's.
    """
    if _session_status:
        atexit.register(_exit_with, _session_status[-1])


def _exit_with(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker (make test): the longest groups first
        items.sort(key=lambda item: _worker_order(item.nodeid))
    for item in items:
        directory = _test_directory(item.nodeid)
        if directory in ("integration", "e2e", "containers"):
            item.add_marker(getattr(pytest.mark, directory))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`pytest -n N --dist loadscope` (make test-containers): hand tests to workers in the groups of
    `_worker_group`, not pytest-xdist's module scopes.

    Not `--dist loadgroup` with `xdist_group` marks: pytest-xdist 3.8 tags a grouped test by
    rewriting its node id, which pytest 9.2 no longer reads, so the marks are silently ignored
    and every test goes its own way (pytest-xdist issue 1386): both workers built the demo.
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _worker_group(nodeid)

    return GroupScheduling(config, log)


def _test_directory(nodeid: str) -> str:
    """`unit`, `integration`, `e2e`, `infra` or `containers`: the directory under tests/."""
    parts = nodeid.split("::", 1)[0].split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else ""


def _worker_order(nodeid: str) -> int:
    """Groups are handed to workers in collection order (`--no-loadscope-reorder`): the end-to-end
    group (the demo, ~15 min) first, the many short unit files last, so the workers end together."""
    directory = _test_directory(nodeid)
    return 0 if directory == "e2e" else 2 if directory == "unit" else 1


def _worker_group(nodeid: str) -> str:
    """Tests that go to the same worker under `--dist loadscope`: a file's tests together, and each
    directory whose session fixtures are costly (the demo; the Terraform plans and apply against
    the emulator; the images) as one group, so no worker builds them twice."""
    directory = _test_directory(nodeid)
    if directory in ("e2e", "infra", "containers"):
        return directory
    return nodeid.split("::", 1)[0]


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the session's stack: own state dir, free ports, test bucket prefix."""
    state = tmp_path_factory.mktemp("lakehouse-state")
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="local",
        state_dir=state,
        s3_port=free_port(),
        kafka_port=free_port(),
        postgres_port=free_port(),
        api_port=free_port(),
        dagster_port=free_port(),
        name_prefix="test-lakehouse",
    )


@pytest.fixture(scope="session")
def local_stack(settings: Settings) -> Iterator[LocalStack]:
    """The embedded stack, started once for the whole session and purged afterwards; with
    LAKEHOUSE_TEST_STACK=containers the same services from containers (tests/fixtures/containers.py)."""
    kind = os.environ.get("LAKEHOUSE_TEST_STACK", "embedded")
    if kind not in ("embedded", "containers"):
        raise pytest.UsageError(f"LAKEHOUSE_TEST_STACK must be 'embedded' or 'containers', not {kind!r}")
    if kind == "containers":
        from tests.fixtures.containers import container_stack

        with container_stack(settings) as containers:
            yield containers  # type: ignore[misc]  # LocalStack's interface: up, down, status
        return
    stack = LocalStack(settings)
    try:
        stack.up(log=lambda _msg: None)
        yield stack
    finally:
        stack.down(purge=True, log=lambda _msg: None)


@pytest.fixture
def isolated_settings(local_stack: LocalStack, settings: Settings) -> Callable[[], Settings]:
    """Factory of settings with a fresh database, buckets and DynamoDB tables on the shared stack."""

    def make() -> Settings:
        suffix = uuid.uuid4().hex[:8]
        isolated = settings.model_copy(
            update={
                "name_prefix": f"t-{suffix}",
                "postgres_db": f"t_{suffix}",
                "cdc_topic_prefix": f"t{suffix}",
            }
        )
        with psycopg.connect(settings.postgres_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(isolated.postgres_db)))
        ensure_resources(isolated)
        return isolated

    return make
