"""The embedded stack over real connections: S3/DynamoDB emulator, broker, PostgreSQL, API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.aws import list_bucket_names, list_table_names
from lakehouse.settings import DYNAMODB_TABLES, Settings
from lakehouse.stack import LocalStack, StackError
from lakehouse.stack.process import free_port
from lakehouse.stack.resources import dynamodb_client, s3_client


def _kafka_roundtrip(settings: Settings, topic: str, produce: list[bytes]) -> list[bytes]:
    if produce:
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
        for value in produce:
            producer.produce(topic, value=value)
        assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"g-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    try:
        while True:
            msg = consumer.poll(15)
            assert msg is not None, "no message or EOF within 15 s"
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF
                break
            seen.append(msg.value())
    finally:
        consumer.close()
    return seen


def _create_topic(settings: Settings, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)


def test_every_service_answers(local_stack: LocalStack, settings: Settings) -> None:
    statuses = {s.name: s for s in local_stack.status()}
    assert set(statuses) == {"s3", "postgres", "kafka", "api", "cdc"}
    assert all(s.healthy for s in statuses.values()), statuses

    buckets = set(list_bucket_names(s3_client(settings)))
    assert set(settings.buckets) <= buckets
    tables = set(list_table_names(dynamodb_client(settings)))
    assert {settings.dynamodb_table(t) for t in DYNAMODB_TABLES} <= tables

    with psycopg.connect(settings.postgres_dsn) as conn:
        assert conn.execute("show wal_level").fetchone() == ("logical",)
        assert conn.execute("select current_database()").fetchone() == (settings.postgres_db,)
        # runs as a non-root user even though the tests may run as root
        assert conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone() == (True,)
    postmaster = psutil.Process(statuses["postgres"].pid)
    assert postmaster.uids().real != 0

    topic = f"stack-{uuid.uuid4().hex[:8]}"
    _create_topic(settings, topic)
    assert _kafka_roundtrip(settings, topic, [b"a", b"b"]) == [b"a", b"b"]

    assert httpx.get(f"{settings.api_url}/health").json() == {"status": "ok"}


def test_services_listen_on_loopback_only(local_stack: LocalStack) -> None:
    statuses = local_stack.status()
    pids = {s.pid for s in statuses if s.pid}
    descendants = {pid: {c.pid for c in psutil.Process(pid).children(recursive=True)} for pid in pids}
    family = pids.union(*descendants.values())
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in family]
    assert listening, "no listening sockets found for the stack"
    assert {c.laddr.ip for c in listening if c.pid in pids} == {"127.0.0.1"}
    exposed = {psutil.Process(c.pid).name() for c in listening if c.laddr.ip != "127.0.0.1"}
    s3 = next(s for s in statuses if s.name == "s3")
    # the one known exception: LocalStack's host-mode back ends (DynamoDB Local, kinesis-mock) have no
    # bind-address option; its gateway, the only port the project uses, is on loopback (docs/emulators.md)
    known = {"java", "node"} if s3.kind == "localstack" else set()
    outside_s3 = [c for c in listening if c.pid not in descendants.get(s3.pid or -1, set()) | {s3.pid}]
    assert exposed <= known and all(c.laddr.ip == "127.0.0.1" for c in outside_s3), exposed


def test_missing_resources_show_in_status_and_up_repairs_them(local_stack: LocalStack, settings: Settings) -> None:
    s3_client(settings).delete_bucket(Bucket=settings.artifacts_bucket)
    s3 = next(s for s in local_stack.status() if s.name == "s3")
    assert not s3.healthy and f"s3://{settings.artifacts_bucket}" in s3.health
    local_stack.up(log=lambda _m: None)
    assert next(s for s in local_stack.status() if s.name == "s3").healthy
    assert settings.artifacts_bucket in list_bucket_names(s3_client(settings))


def test_up_is_idempotent(local_stack: LocalStack) -> None:
    before = {s.name: s.pid for s in local_stack.status()}
    local_stack.up(log=lambda _m: None)
    assert {s.name: s.pid for s in local_stack.status()} == before


def test_dead_broker_is_reported_restarted_and_keeps_its_data(local_stack: LocalStack, settings: Settings) -> None:
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    _create_topic(settings, topic)
    _kafka_roundtrip(settings, topic, [b"before-crash-1", b"before-crash-2"])

    kafka = next(s for s in local_stack.status() if s.name == "kafka")
    os.kill(kafka.pid, signal.SIGKILL)
    psutil.Process(kafka.pid).wait(10) if psutil.pid_exists(kafka.pid) else None
    dead = next(s for s in local_stack.status() if s.name == "kafka")
    assert dead.state == "dead" and not dead.healthy
    assert "lakehouse up" in dead.health

    local_stack.up(log=lambda _m: None)
    restarted = next(s for s in local_stack.status() if s.name == "kafka")
    assert restarted.healthy and restarted.pid != kafka.pid
    assert _kafka_roundtrip(settings, topic, []) == [b"before-crash-1", b"before-crash-2"]


def test_port_in_use_names_service_port_and_setting(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        other = settings.model_copy(update={"state_dir": tmp_path / "state", "s3_port": port})
        stack = LocalStack(other, services=["s3"])
        with pytest.raises(StackError) as err:
            stack.up(log=lambda _m: None)
    message = str(err.value)
    assert "S3" in message and str(port) in message and "LAKEHOUSE_S3_PORT" in message
    assert stack.processes.get("s3") is None


def test_down_stops_exactly_what_up_started(settings: Settings, tmp_path: Path) -> None:
    other = settings.model_copy(
        update={"state_dir": tmp_path / "state", "s3_port": free_port(), "api_port": free_port()}
    )
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stack = LocalStack(other, services=["s3", "api"])
        stack.up(log=lambda _m: None)
        pids = [s.pid for s in stack.status()]
        assert all(pids)
        children = [c.pid for pid in pids for c in psutil.Process(pid).children(recursive=True)]
        stack.down(purge=True, log=lambda _m: None)
        survivors = [p for p in [*pids, *children] if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        assert survivors == []
        assert bystander.poll() is None, "down must not touch processes it did not start"
        assert not (tmp_path / "state").exists()
    finally:
        bystander.kill()


def test_unknown_service_is_rejected(settings: Settings) -> None:
    with pytest.raises(StackError, match=r"unknown service.*nope.*known: s3"):
        LocalStack(settings, services=["nope"])


def test_cli_status_reports_and_invalid_input_fails(local_stack: LocalStack, settings: Settings) -> None:
    env = {**os.environ, **settings.to_env()}
    # the services only: the lake section's verdict depends on what other tests left in the session's
    # lake and topics (e.g. a CDC backlog above the lag limit); test_lake_status.py tests it on its own data
    ok = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "status", "--no-lake"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for name in ("s3", "postgres", "kafka", "api"):
        assert name in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "up", "--service", "nope"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "unknown service" in bad.stderr
