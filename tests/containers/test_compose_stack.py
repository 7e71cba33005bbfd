"""`docker compose up` for real: docker-compose.yml + docker/compose.offline.yml on this machine.

One stack for the module (started once): every health check passes, the data path runs through the
containers - synthetic data from the api container, Debezium in the cdc-publisher container, the
broker, and Dagster runs launched through the webserver (queued, dequeued by the daemon, executed in
the code-location container): CDC sink + dlt, then the dbt partitions as one backfill - and a mart
queried with `lakehouse query` in the production image reconciles with PostgreSQL. Then `down -v`
leaves no container, network or volume behind.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from orchestration.selection import OPERATIONAL_GROUPS

from .support import free_compose_ports, run_script

LONG_RUNNING = {"localstack", "kafka", "postgres", "cdc-publisher", "api", "code-location", "webserver", "daemon"}
DAYS = 3
START = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=DAYS + 1)
END = START + dt.timedelta(days=DAYS)
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
#: the marts this test reconciles with PostgreSQL
RECONCILED_MARTS = {"fct_daily_revenue", "fct_orders"}


@dataclass
class ComposeStack:
    project: str
    env: dict[str, str]

    def port(self, variable: str) -> int:
        return int(self.env[variable])

    def compose(self, *args: str, timeout: float = 900) -> Any:
        return run_script("compose", *args, env=self.env, timeout=timeout)

    def exec(self, service: str, *command: str, timeout: float = 900) -> Any:
        return self.compose("exec", "-T", service, *command, timeout=timeout)

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port('LAKEHOUSE_DAGSTER_PORT')}/graphql"
        response = httpx.post(url, json={"query": query, "variables": variables or {}}, timeout=120)
        # Dagster answers resolver errors with 500 and the errors in the body: show them, not only the status
        document = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        failure = (response.status_code, document or response.text)
        assert response.status_code == 200 and "errors" not in document, failure
        return document["data"]

    def pg(self, sql: str) -> list[tuple]:
        conninfo = (
            f"host=127.0.0.1 port={self.port('LAKEHOUSE_POSTGRES_PORT')} dbname=shop user=lakehouse password=lakehouse"
        )
        with psycopg.connect(conninfo) as conn:
            return conn.execute(sql).fetchall()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stack(images: None, session_id: str) -> Iterator[ComposeStack]:
    env = {"COMPOSE_PROJECT_NAME": f"lakehouse-test-{session_id}-{uuid.uuid4().hex[:4]}"}
    env.update(free_compose_ports())
    compose = ComposeStack(env["COMPOSE_PROJECT_NAME"], env)
    started = time.monotonic()
    result = run_script("up", env=env)
    try:
        assert result.returncode == 0, result.stderr[-6000:]
        print(f"compose stack healthy after {time.monotonic() - started:.0f} s")
        yield compose
    finally:
        run_script("down", env=env)


def test_every_service_is_healthy(stack: ComposeStack) -> None:
    result = stack.compose("ps", "-a", "--format", "json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    entries = lines[0] if len(lines) == 1 and isinstance(lines[0], list) else lines  # JSON array or lines
    states = {entry["Service"]: entry for entry in entries}
    assert set(states) == LONG_RUNNING | {"init"}, sorted(states)
    for name in LONG_RUNNING:
        assert (states[name]["State"], states[name]["Health"]) == ("running", "healthy"), states[name]
    assert (states["init"]["State"], states["init"]["ExitCode"]) == ("exited", 0)


def _assets(stack: ComposeStack) -> list[dict[str, Any]]:
    query = "{ assetNodes { assetKey { path } groupName isPartitioned isMaterializable jobNames } }"
    nodes = stack.graphql(query)["assetNodes"]
    return [n for n in nodes if n["isMaterializable"] and n["groupName"] not in OPERATIONAL_GROUPS]


def _launch_run(stack: ComposeStack, nodes: list[dict[str, Any]]) -> str:
    (job,) = set.intersection(*(set(n["jobNames"]) for n in nodes)) & {"__ASSET_JOB"}
    mutation = """
    mutation Launch($params: ExecutionParams!) {
      launchRun(executionParams: $params) {
        __typename
        ... on LaunchRunSuccess { run { runId } }
        ... on Error { message }
      }
    }
    """
    selector = {
        "repositoryLocationName": "lakehouse",
        "repositoryName": "__repository__",
        "jobName": job,
        "assetSelection": [n["assetKey"] for n in nodes],
    }
    launched = stack.graphql(mutation, {"params": {"selector": selector, "mode": "default"}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _wait_run(stack: ComposeStack, run_id: str, timeout: float = 1200) -> None:
    query = "query R($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        status = stack.graphql(query, {"id": run_id})["runOrError"]["status"]
        if status in TERMINAL_RUN:
            break
        time.sleep(3)
    if status != "SUCCESS":
        logs = stack.compose("logs", "--no-color", "--tail", "60", "code-location", "daemon").stdout
        pytest.fail(f"run {run_id} ended {status} (or timed out); code-location/daemon logs:\n{logs[-6000:]}")


#: every source, a tenth of the starter set: the cost of this test is process start-up, not rows
GENERATE = """
import json, sys
from lakehouse.settings import get_settings
from lakehouse.synthetic.entities import generate
counts = {}
for entity, count in json.loads(sys.argv[1]).items():
    result = generate(get_settings(), entity, count, seed=7, start_date=sys.argv[2], days=int(sys.argv[3]))
    counts.update(result.counts)
print(json.dumps(counts))
"""
SOURCES = {
    "customers": 100, "products": 40, "campaigns": 5, "ad_spend": 5, "orders": 300,
    "carts": 50, "sessions": 100, "reviews": 50, "clickstream": 100, "partner_feeds": 2,
}  # fmt: skip


def _step(name: str, started: float) -> float:
    print(f"  {name}: {time.monotonic() - started:.0f} s")
    return time.monotonic()


#: Dagster's stop of a sensor or schedule the daemon has not stored yet inserts its state, and so does the
#: daemon's first tick: whichever comes second gets this error (a 500 from the webserver). Stopping again
#: then finds the stored state and updates it.
STATE_INSERT_RACE = "is already present in storage"


def _stop_instigator(stack: ComposeStack, mutation: str, instigator_id: str, field: str) -> str:
    for attempt in range(5):
        try:
            return str(stack.graphql(mutation, {"id": instigator_id})[field]["__typename"])
        except AssertionError as error:
            if STATE_INSERT_RACE not in str(error) or attempt == 4:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def _pause_automation(stack: ComposeStack) -> list[str]:
    """Stop the sensors and schedules `docker compose up` starts (CDC topics, landing objects, the
    DynamoDB and marketing schedules): the test launches its runs itself, deterministically, and a
    2-core machine runs them faster without the sensors' duplicates competing."""
    repository = {"repositoryLocationName": "lakehouse", "repositoryName": "__repository__"}
    query = """
    query A($repo: RepositorySelector!) {
      sensorsOrError(repositorySelector: $repo) { ... on Sensors { results { id name sensorState { status } } } }
      schedulesOrError(repositorySelector: $repo) { ... on Schedules { results { id name scheduleState { status } } } }
    }
    """
    found = stack.graphql(query, {"repo": repository})
    stopped = []
    for sensor in found["sensorsOrError"]["results"]:
        if sensor["sensorState"]["status"] == "RUNNING":
            mutation = "mutation S($id: String) { stopSensor(id: $id) { __typename } }"
            result = _stop_instigator(stack, mutation, sensor["id"], "stopSensor")
            assert result == "StopSensorMutationResult", result
            stopped.append(sensor["name"])
    for schedule in found["schedulesOrError"]["results"]:
        if schedule["scheduleState"]["status"] == "RUNNING":
            mutation = "mutation S($id: String) { stopRunningSchedule(id: $id) { __typename } }"
            result = _stop_instigator(stack, mutation, schedule["id"], "stopRunningSchedule")
            assert result == "ScheduleStateResult", result
            stopped.append(schedule["name"])
    return stopped


@pytest.mark.timeout(2700)  # minutes on a quiet machine; a 2-core machine shared with other test runs is slower
def test_data_path_through_the_containers(stack: ComposeStack) -> None:
    clock = time.monotonic()
    stopped = _pause_automation(stack)
    assert "cdc_topics_sensor" in stopped, stopped  # the automation the stack came up with
    generated = stack.exec("api", "python", "-c", GENERATE, json.dumps(SOURCES), START.isoformat(), str(DAYS))
    assert generated.returncode == 0, generated.stderr[-3000:]
    counts = json.loads(generated.stdout.strip().splitlines()[-1])
    assert counts["orders"] == SOURCES["orders"] and counts["clickstream_events"] > 0, counts
    clock = _step("generate every source (api container)", clock)

    assets = _assets(stack)
    ingestion = [n for n in assets if not n["isPartitioned"]]
    models = [n for n in assets if n["isPartitioned"]]  # the dbt project: staging, intermediate, marts
    groups = {n["groupName"] for n in ingestion}
    assert {"cdc_bronze", "silver", "bronze_dynamodb", "bronze_landing", "bronze_marketing"} <= groups, groups

    # CDC (Debezium -> broker -> sink) and the dlt loaders, as one run the daemon launches; Debezium is
    # asynchronous, so the CDC assets run again until silver equals PostgreSQL (at most twice more)
    _wait_run(stack, _launch_run(stack, ingestion))
    clock = _step("ingestion run: CDC sink + dlt (webserver -> daemon -> code-location)", clock)
    cdc = [n for n in ingestion if n["groupName"] in ("cdc_bronze", "silver")]
    for attempt in range(3):
        verify = stack.exec("code-location", "lakehouse", "cdc", "verify")
        if verify.returncode == 0:
            break
        assert attempt < 2, f"silver never matched PostgreSQL:\n{verify.stdout}{verify.stderr}"
        _wait_run(stack, _launch_run(stack, cdc))
    clock = _step(f"silver equals PostgreSQL (cdc verify, {attempt} extra sink runs)", clock)

    # the dbt models over the window: a partition backfill, which runs as ONE run (single-run policy).
    # All of them: a subset would run dbt tests whose other parent was never built (fct_orders ->
    # dim_customers) and fail on a fresh warehouse.
    mutation = """
    mutation Backfill($params: LaunchBackfillParams!) {
      launchPartitionBackfill(backfillParams: $params) {
        __typename
        ... on LaunchBackfillSuccess { backfillId }
        ... on Error { message }
      }
    }
    """
    days = [(START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    params = {"assetSelection": [n["assetKey"] for n in models], "partitionNames": days, "fromFailure": False}
    launched = stack.graphql(mutation, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    status_query = """
    query B($id: String!) {
      partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status runs(limit: 10) { runId status } } }
    }
    """
    deadline = time.monotonic() + 1500
    while True:
        backfill = stack.graphql(status_query, {"id": launched["backfillId"]})["partitionBackfillOrError"]
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING") or time.monotonic() > deadline:
            break
        time.sleep(5)
    why = [_failure(stack, _run(stack, r["runId"])) for r in backfill["runs"] if r["status"] != "SUCCESS"]
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (backfill, why)
    assert len(backfill["runs"]) == 1 and backfill["runs"][0]["status"] == "SUCCESS", (backfill["runs"], why)
    clock = _step(f"dbt backfill of {len(models)} models x {DAYS} partitions as one run", clock)

    # the mart, through the production image's CLI, against PostgreSQL computed independently
    answer = stack.exec(
        "code-location", "lakehouse", "query",
        "select order_date, orders, items_sold, gross_revenue from fct_daily_revenue "
        f"where order_date >= '{START}' and order_date < '{END}' order by 1",
        "--format", "json",
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr[-3000:]
    mart = {row["order_date"]: row for row in json.loads(answer.stdout)}
    source = stack.pg(
        f"""
        select (o.ordered_at at time zone 'UTC')::date, count(*),
               sum((select sum(quantity) from shop.order_items i where i.order_id = o.order_id)), sum(o.order_total)
        from shop.orders o
        where o.status <> 'cancelled' and o.ordered_at >= '{START}'::date and o.ordered_at < '{END}'::date
        group by 1
        """
    )
    assert len(source) == DAYS, "the starter data has orders every day of the window"
    assert set(mart) == {day.isoformat() for day, *_ in source}
    for day, orders, items, revenue in source:
        row = mart[day.isoformat()]
        assert (row["orders"], row["items_sold"]) == (orders, items), day
        assert Decimal(str(row["gross_revenue"])).quantize(Decimal("0.01")) == Decimal(revenue), day
    answer = stack.exec("code-location", "lakehouse", "query", "select count(*) as n from fct_orders", "-f", "json")
    window = f"ordered_at >= '{START}' and ordered_at < '{END}'"
    orders_in_window = stack.pg(f"select count(*) from shop.orders where {window}")
    assert json.loads(answer.stdout) == [{"n": orders_in_window[0][0]}]
    _step("marts reconciled through `lakehouse query` (production image)", clock)


def test_webserver_shows_the_runs_and_the_materialized_marts(stack: ComposeStack) -> None:
    page = httpx.get(f"http://127.0.0.1:{stack.port('LAKEHOUSE_DAGSTER_PORT')}/", timeout=30)
    assert page.status_code == 200 and "Dagster" in page.text
    query = "{ runsOrError(limit: 50) { ... on Runs { results { runId status jobName tags { key value } } } } }"
    runs = stack.graphql(query)["runsOrError"]["results"]
    assert len(runs) >= 2, runs  # at least the ingestion run and the backfill's run
    # a run may fail and be retried by the daemon (run_retries in docker/dagster.yaml): then its retry
    # must have succeeded; any other failure fails the test, with its error
    retried_ok = {
        tag["value"]
        for r in runs
        if r["status"] == "SUCCESS"
        for tag in r["tags"]
        if tag["key"] == "dagster/parent_run_id"
    }
    failed = {r["runId"]: _failure(stack, r) for r in runs if r["status"] != "SUCCESS" and r["runId"] not in retried_ok}
    assert not failed, f"runs that did not succeed (sensor- and schedule-launched ones included): {failed}"
    query = """
    { assetNodes(group: {groupName: "marts", repositoryName: "__repository__", repositoryLocationName: "lakehouse"}) {
        assetKey { path } assetMaterializations(limit: 5) { partition } } }
    """
    marts = {m["assetKey"]["path"][-1]: m for m in stack.graphql(query)["assetNodes"]}
    for name in RECONCILED_MARTS:
        partitions = {m["partition"] for m in marts[name]["assetMaterializations"]}
        assert partitions == {(START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)}, (name, partitions)


def _run(stack: ComposeStack, run_id: str) -> dict[str, Any]:
    query = "query R($id: ID!) { runOrError(runId: $id) { ... on Run { runId status jobName tags { key value } } } }"
    return stack.graphql(query, {"id": run_id})["runOrError"]


def _failure(stack: ComposeStack, run: dict[str, Any]) -> str:
    """Why a run failed: its job, who launched it, the first error events."""
    query = """
    query L($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
        __typename ... on MessageEvent { message } ... on ExecutionStepFailureEvent { error { message } }
        ... on RunFailureEvent { error { message } } } } } }
    """
    events = stack.graphql(query, {"id": run["runId"]})["logsForRun"].get("events", [])
    errors = [
        (e.get("error") or {}).get("message") or e.get("message")
        for e in events
        if "Failure" in e["__typename"] or "error" in (e.get("message") or "").lower()
    ]
    tags = {t["key"]: t["value"] for t in run["tags"] if t["key"].startswith("dagster/")}
    return f"{run['status']} {run['jobName']} {tags} {errors[:3]}"


def test_down_leaves_nothing_behind(stack: ComposeStack, docker_engine: Any) -> None:
    selector = {"label": f"com.docker.compose.project={stack.project}"}
    containers = docker_engine.containers.list(all=True, filters=selector)
    # named volumes and the anonymous ones of the image's VOLUMEs (/tmp, $HOME, the state directory)
    volumes = {m["Name"] for c in containers for m in c.attrs["Mounts"] if m["Type"] == "volume"}
    assert containers and volumes
    result = run_script("down", env=stack.env)
    assert result.returncode == 0, result.stderr
    assert docker_engine.containers.list(all=True, filters=selector) == []
    assert docker_engine.networks.list(filters=selector) == []  # host networking: none was created
    left = volumes & {v.name for v in docker_engine.volumes.list()}
    assert left == set(), f"docker compose down -v left volumes behind: {left}"
