"""Least privilege that works: the data path with exactly the run role's policies, on an emulator
that enforces IAM (moto server with INITIAL_NO_AUTH_ACTION_COUNT, see PLATFORM_NOTES).

The policies are the documents Terraform attaches to the run and maintenance task roles
(modules/compute/iam.tf, rendered by iam_render.py), put on two IAM users of the emulator. With
those users' keys: a landing load, the CDC sink (bronze, silver, history), maintenance and a query
all work; deleting a bronze CDC data file, vacuuming bronze/cdc and writing the landing bucket are
denied to the run role, and the vacuum works with the maintenance role. The AWS calls of the
DynamoDB loader and the Kinesis transport are checked against the roles' documents in
test_iam_lint.py (the emulator cannot scope them, see below).

Emulator limit: moto checks S3 requests against their object ARNs, but DynamoDB, Kinesis and other
JSON-protocol services only against "*" (moto/core/responses.py `_determine_resource`), so resource
scoping is exercised here for S3, where the lake's boundaries are.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from confluent_kafka import Producer
from deltalake import DeltaTable
from pydantic import SecretStr

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.sink import CdcSink
from ingestion.dlt_sources import load_landing
from lakehouse import lake
from lakehouse.settings import Settings
from lakehouse.stack.process import free_port

from .iam_render import ACCOUNT, compute_role_policies

PREFIX = "ecom-lakehouse-prod"  # the policies are rendered for the prod names


@pytest.fixture(scope="module")
def enforcing_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "60"}
    moto = Path(os.sys.executable).with_name("moto_server")
    with log.open("w") as out:
        process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=out, stderr=out)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                             aws_access_key_id="test", aws_secret_access_key="test").list_buckets()  # fmt: skip
                break
            except Exception:
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.3)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


def _client(service: str, endpoint: str, key: dict[str, str]) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key["id"], aws_secret_access_key=key["secret"])  # fmt: skip


@pytest.fixture(scope="module")
def users(enforcing_emulator: str, terraform_documents: dict[Path, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """IAM users run / maintenance with exactly the task roles' policies, and an admin; then the
    emulator's unauthenticated calls are used up so every later request is checked."""
    root = {"id": "test", "secret": "test"}
    s3 = _client("s3", enforcing_emulator, root)
    for bucket in ("landing", "lake", "athena-results", "artifacts"):
        s3.create_bucket(Bucket=f"{PREFIX}-{bucket}")
    iam = _client("iam", enforcing_emulator, root)
    roles = compute_role_policies(terraform_documents, "small")
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    keys: dict[str, dict[str, str]] = {}
    for user, policies in (("run", roles["run"]), ("maintenance", roles["maintenance"]), ("admin", [admin])):
        iam.create_user(UserName=user)
        for number, policy in enumerate(policies):
            iam.put_user_policy(UserName=user, PolicyName=f"p{number}", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    assert iam.get_user(UserName="run")["User"]["Arn"].startswith(f"arn:aws:iam::{ACCOUNT}:")
    stranger = _client("s3", enforcing_emulator, {"id": "nobody", "secret": "nobody"})
    for _ in range(100):
        try:
            stranger.list_buckets()
        except botocore.exceptions.ClientError:
            return keys  # enforcement is on
    pytest.fail("the emulator never started to enforce IAM")


def _settings(base: Settings, endpoint: str, key: dict[str, str], tmp: Path) -> Settings:
    return base.model_copy(
        update={
            "name_prefix": PREFIX,
            "s3_endpoint_url": endpoint,
            "aws_access_key_id": key["id"],
            "aws_secret_access_key": SecretStr(key["secret"]),
            "cdc_topic_prefix": f"iam{uuid.uuid4().hex[:6]}",
            "cdc_tables": ["customers"],
            "state_dir": tmp,
        }
    )


def _denied(action: Any) -> str:
    with pytest.raises(Exception) as caught:
        action()
    text = str(caught.value)
    assert any(word in text for word in ("AccessDenied", "lacked the necessary privileges", "403")), text
    return text


def test_the_run_role_can_run_the_data_path_and_nothing_more(
    local_stack: object, settings: Settings, enforcing_emulator: str, users: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    run = _settings(settings, enforcing_emulator, users["run"], tmp_path / "run")
    maintenance = _settings(settings, enforcing_emulator, users["maintenance"], tmp_path / "maintenance")
    maintenance = maintenance.model_copy(update={"cdc_topic_prefix": run.cdc_topic_prefix})
    admin_s3 = _client("s3", enforcing_emulator, users["admin"])

    # --- a landing file arrives (written by the shop, not by the lakehouse) and the landing loader loads it
    key = "clickstream/dt=2026-11-20/events.json.gz"
    events = [{"event_id": f"e{i}", "event_type": "page_view", "event_ts": f"2026-11-20T00:00:{i:02d}Z",
               "session_id": "s1", "device": "desktop"} for i in range(20)]  # fmt: skip
    admin_s3.put_object(
        Bucket=run.landing_bucket, Key=key, Body=gzip.compress("\n".join(map(json.dumps, events)).encode())
    )
    report = load_landing(run, "clickstream", object_keys=[key])
    assert (report.rows, report.quarantined) == (20, 0)
    assert (
        DeltaTable(run.lake_uri("bronze", "landing", "clickstream"), storage_options=run.delta_storage_options)
        .to_pyarrow_table()
        .num_rows
        == 20
    )

    # --- CDC: Debezium changes in Kafka -> bronze, silver, history with the run role
    topic = f"{run.cdc_topic_prefix}.shop.customers"
    producer = Producer({"bootstrap.servers": run.kafka_bootstrap})
    source = {"schema": "shop", "table": "customers", "txId": 1, "ts_ms": 1_795_456_446_000}
    for offset, (op, customer, email) in enumerate([("c", 1, "a@x"), ("c", 2, "b@x"), ("u", 1, "a2@x")]):
        value = {"before": None, "after": {"customer_id": customer, "email": email},
                 "source": {**source, "lsn": 1000 + offset}, "op": op}  # fmt: skip
        producer.produce(topic, key=json.dumps({"customer_id": customer}).encode(), value=json.dumps(value).encode())
    assert producer.flush(10) == 0
    config = SinkConfig.from_settings(run)
    with CdcSink(config) as sink:
        report = sink.run_once(tables=["customers"])
    assert report.tables["customers"].error is None and report.tables["customers"].changes == 3
    silver_uri, bronze_uri = config.uri("silver", "customers"), config.uri("bronze", "customers")

    # --- maintenance: compaction rewrites (PutObject) with the run role; VACUUM deletes what it
    # replaced. delta-rs deletes with DeleteObjects, which AWS authorizes per key as s3:DeleteObject
    # but moto against the bucket ARN only: the deletions are checked key by key here instead.
    def replaced_files(settings: Settings, uri: str) -> list[str]:
        return [str(path) for path in DeltaTable(uri, storage_options=settings.delta_storage_options).vacuum(
            retention_hours=0, dry_run=True, enforce_retention_duration=False)]  # fmt: skip

    def delete_keys(key_: dict[str, str], uri: str, files: list[str]) -> None:
        client, prefix = _client("s3", enforcing_emulator, key_), uri.removeprefix(f"s3://{run.lake_bucket}/")
        for file in files:
            client.delete_object(Bucket=run.lake_bucket, Key=f"{prefix}/{file}")

    with CdcSink(config) as sink:  # a second bronze file, so compaction has something to replace
        producer.produce(topic, key=b'{"customer_id": 3}', value=json.dumps(
            {"before": None, "after": {"customer_id": 3, "email": "c@x"}, "source": {**source, "lsn": 2000}, "op": "c"}
        ).encode())  # fmt: skip
        assert producer.flush(10) == 0
        assert sink.run_once(tables=["customers"]).tables["customers"].changes == 1
    for uri in (silver_uri, bronze_uri):
        assert lake.compact(run, uri)["files_removed"] >= 1, uri  # rewriting is allowed: PutObject
    silver_files, bronze_files = replaced_files(run, silver_uri), replaced_files(run, bronze_uri)
    assert silver_files and len(bronze_files) >= 2
    delete_keys(users["run"], silver_uri, silver_files)  # silver: the run role vacuums
    _denied(lambda: delete_keys(users["run"], bronze_uri, bronze_files[:1]))  # bronze/cdc: it may not
    delete_keys(users["maintenance"], bronze_uri, bronze_files)  # the maintenance role may

    # --- query with the run role's credentials
    from lakehouse import duck

    con = duck.connect(run)
    try:
        rows = con.sql(
            f"select customer_id, email from delta_scan('{silver_uri}') where not _cdc_deleted order by 1"
        ).fetchall()
    finally:
        con.close()
    assert rows == [(1, "a2@x"), (2, "b@x"), (3, "c@x")]

    # --- what the run role must not do
    run_s3 = _client("s3", enforcing_emulator, users["run"])
    data_file = next(
        o["Key"] for o in admin_s3.list_objects_v2(Bucket=run.lake_bucket, Prefix="bronze/cdc/customers/")["Contents"]
        if o["Key"].endswith(".parquet")
    )  # fmt: skip
    _denied(lambda: run_s3.delete_object(Bucket=run.lake_bucket, Key=data_file))
    _denied(lambda: run_s3.put_object(Bucket=run.landing_bucket, Key="clickstream/forged.json.gz", Body=b"x"))
    _denied(lambda: run_s3.delete_object(Bucket=run.landing_bucket, Key=key))
    assert admin_s3.head_object(Bucket=run.lake_bucket, Key=data_file)["ContentLength"] > 0
