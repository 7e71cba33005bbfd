"""Each condition caused for real on the session's stack, seen by the alert sensor's evaluation on
a real Dagster instance and delivered to a real local HTTP receiver (and the emulator's SNS):
exactly one notification per incident, and one more when it clears."""

import gzip
import json
import time
from collections.abc import Callable, Iterator

import boto3
import dagster as dg
import pytest
from dagster_dbt import DbtCliResource
from pydantic import SecretStr

from lakehouse import settings as settings_module
from lakehouse.notify import Notification, Notifier, SnsTopic, notifier_from_settings
from lakehouse.settings import Settings
from orchestration.defs.alerts import evaluate_alerts, send_all
from tests.fixtures.receiver import Receiver, http_receiver
from tests.integration.cdc_support import CdcEnv, cdc_environment


def _use(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `get_settings()` (what Dagster resources and sensors read) return `settings`."""
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    settings_module.get_settings.cache_clear()


class Sensor:
    """The alert sensor's tick, step by step on a real instance, delivering through the settings'
    channels (here the local receiver)."""

    def __init__(self, instance: dg.DagsterInstance, settings: Settings, check_keys: list[dg.AssetCheckKey]) -> None:
        self.instance, self.settings, self.check_keys = instance, settings, check_keys
        self.cursor: str | None = None

    def tick(self) -> list[Notification]:
        found, self.cursor = evaluate_alerts(self.instance, self.cursor, self.settings, self.check_keys)
        send_all(notifier_from_settings(self.settings), found)
        return found


def _statuses(receiver: Receiver, incident_prefix: str) -> list[str]:
    return [b["status"] for b in receiver.at("/json") if b["incident"].startswith(incident_prefix)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as r:
        yield r


# ---------------------------------------------------------------------------- SNS on the emulator
def test_sns_channel_publishes_to_the_emulator_topic(local_stack: object, settings: Settings) -> None:
    kwargs = settings.boto3_kwargs()
    sns, sqs = boto3.client("sns", **kwargs), boto3.client("sqs", **kwargs)
    topic = sns.create_topic(Name=f"{settings.name_prefix}-alerts-{time.time_ns()}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"alerts-{time.time_ns()}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    configured = settings.model_copy(update={"alert_sns_topic_arn": topic})
    notification = Notification(
        kind="check_failed",
        status="firing",
        incident="check:bronze/cdc/orders:consumer_lag",
        title="Check consumer_lag failed on bronze/cdc/orders",
        asset="bronze/cdc/orders",
        error="12000 records not in the lake",
        url="http://127.0.0.1:3000/assets/bronze/cdc/orders?view=checks",
    )
    assert notifier_from_settings(configured).send(notification).delivered == ["sns"]
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5, MaxNumberOfMessages=10).get("Messages", [])
    (message,) = messages
    envelope = json.loads(message["Body"])
    assert envelope["Subject"] == "[ALERT] Check consumer_lag failed on bronze/cdc/orders"
    assert "error: 12000 records not in the lake" in envelope["Message"]
    assert envelope["MessageAttributes"]["status"]["Value"] == "firing"
    # a topic that does not exist: logged and reported, never raised
    missing = Notifier([SnsTopic(configured, topic + "-gone")]).send(notification)
    assert list(missing.failed) == ["sns"]


# ---------------------------------------------------------------------------- CDC: incompatible schema change
@pytest.fixture
def cdc(isolated_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch) -> Iterator[CdcEnv]:
    with cdc_environment(isolated_settings, customers=8, products=4, orders=6) as env:
        _use(env.settings, monkeypatch)
        yield env
    settings_module.get_settings.cache_clear()


def _sink_run(instance: dg.DagsterInstance, table: str) -> dg.ExecuteInProcessResult:
    from orchestration.defs.cdc import bronze_key, cdc_sink, history_key, silver_key
    from orchestration.resources import LakehouseSettings

    return dg.materialize(
        [cdc_sink],
        selection=[bronze_key(table), silver_key(table), history_key(table)],
        resources={"lakehouse": LakehouseSettings(environment="local")},
        instance=instance,
        raise_on_error=False,
    )


def test_incompatible_schema_change_notifies_once_and_clears(
    cdc: CdcEnv, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration.defs.cdc import FLOWING_CHECK, bronze_key

    settings = cdc.settings.model_copy(update={"alert_webhook_url": SecretStr(receiver.url("/json"))})
    check = dg.AssetCheckKey(bronze_key("inventory"), FLOWING_CHECK)
    with dg.instance_for_test() as instance:
        sensor = Sensor(instance, settings, [check])
        cdc.wait_consistent(("inventory",))
        assert _sink_run(instance, "inventory").success
        assert sensor.tick() == []
        cdc.execute("alter table shop.inventory alter column reorder_level type text using 'level-' || reorder_level")
        cdc.execute("update shop.inventory set quantity_on_hand = quantity_on_hand + 1")
        deadline = time.monotonic() + 60
        while True:
            failed = _sink_run(instance, "inventory")
            if not failed.success or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not failed.success, "the incompatible change never reached the sink"
        again = _sink_run(instance, "inventory")  # the sensor's next run: still stopped, no second message
        assert not again.success
        fired = sensor.tick()
        assert sensor.tick() == []
        assert [(n.kind, n.status, n.asset) for n in fired] == [("check_failed", "firing", "bronze/cdc/inventory")]
        assert "its run failed" in fired[0].title
        assert fired[0].error is not None and "incompatible schema change in inventory.reorder_level" in fired[0].error
        assert fired[0].run_id == again.run_id  # the latest failing evaluation names its run

        # the way out (docs/cdc.md): decide the column's type, rebuild the table from its topic
        fixed = settings.model_copy(update={"cdc_column_types": {"inventory.reorder_level": "string"}})
        _use(fixed, monkeypatch)
        from ingestion.cdc.config import SinkConfig
        from ingestion.cdc.sink import CdcSink

        with CdcSink(SinkConfig.from_settings(fixed)) as sink:
            sink.rebuild("inventory")
        assert _sink_run(instance, "inventory").success
        cleared = sensor.tick()
        assert [(n.status, n.incident) for n in cleared] == [("resolved", fired[0].incident)]
        assert sensor.tick() == []
    assert _statuses(receiver, "check:bronze/cdc/inventory:flowing") == ["firing", "resolved"]


# ---------------------------------------------------------------------------- landing: malformed file
@pytest.fixture
def landing(isolated_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    settings = isolated_settings()
    _use(settings, monkeypatch)
    yield settings
    settings_module.get_settings.cache_clear()


def _put(settings: Settings, key: str, lines: list[str]) -> None:
    client = boto3.client("s3", **settings.boto3_kwargs())
    client.put_object(Bucket=settings.landing_bucket, Key=key, Body=gzip.compress(("\n".join(lines) + "\n").encode()))


def test_malformed_landing_file_notifies_once_and_clears(landing: Settings, receiver: Receiver) -> None:
    from orchestration.defs.landing import bronze_landing_clickstream
    from tests.integration.test_dlt_landing import event

    settings = landing.model_copy(update={"alert_webhook_url": SecretStr(receiver.url("/json"))})
    key = dg.AssetKey(["bronze", "landing", "clickstream"])
    check = dg.AssetCheckKey(key, "quarantine_rate")

    def load(object_key: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [bronze_landing_clickstream],
            run_config={"ops": {"bronze_landing_clickstream": {"config": {"keys": [object_key]}}}},
            instance=instance,
            raise_on_error=False,
        )

    with dg.instance_for_test() as instance:
        sensor = Sensor(instance, settings, [check])
        sensor.tick()
        broken = "clickstream/dt=2026-11-21/events-broken.json.gz"
        _put(settings, broken, ["{not json", '{"event_id": ', "garbage"])
        assert load(broken).success  # the load works; the check carries the bad news
        (fired,) = sensor.tick()
        assert (fired.kind, fired.asset, fired.status) == ("check_failed", "bronze/landing/clickstream", "firing")
        assert fired.error is not None and broken in fired.error
        clean = "clickstream/dt=2026-11-21/events-clean.json.gz"
        _put(settings, clean, [json.dumps(event(i, day="2026-11-21")) for i in range(10)])
        assert load(clean).success
        (cleared,) = sensor.tick()
        assert (cleared.status, cleared.incident) == ("resolved", fired.incident)
        assert sensor.tick() == []
    assert _statuses(receiver, "check:bronze/landing/clickstream:quarantine_rate") == ["firing", "resolved"]


# ---------------------------------------------------------------------------- dbt: a failing test
DBT_PROJECT = """
name: ops_alerts
version: "1.0"
profile: ops_alerts
model-paths: ["models"]
"""
DBT_PROFILE = """
ops_alerts:
  target: local
  outputs:
    local:
      type: duckdb
      path: "{path}"
"""
DBT_MODEL = (
    "select 1 as order_id union all "
    "select case when '{{ env_var('OPS_ALERTS_BROKEN', '0') }}' = '1' then null else 2 end"
)
DBT_TESTS = """
version: 2
models:
  - name: orders_check
    columns:
      - name: order_id
        data_tests: [not_null]
"""


def test_failing_dbt_test_notifies_once_and_clears(
    tmp_path: object, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real dbt project (DuckDB) through dagster-dbt: the failing test is an error-severity check
    in a failed run, told once; the passing test after the fix clears it."""
    from pathlib import Path

    from dagster_dbt import dbt_assets

    from orchestration.dbt_project import DBT_EXECUTABLE

    root = Path(str(tmp_path)) / "dbt"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(DBT_PROJECT)
    (root / "profiles.yml").write_text(DBT_PROFILE.format(path=root / "ops.duckdb"))
    (root / "models" / "orders_check.sql").write_text(DBT_MODEL)
    (root / "models" / "schema.yml").write_text(DBT_TESTS)
    monkeypatch.setenv("OPS_ALERTS_BROKEN", "1")
    dbt = DbtCliResource(project_dir=str(root), profiles_dir=str(root), dbt_executable=str(DBT_EXECUTABLE))
    manifest = dbt.cli(["parse"], target_path=root / "target").wait().target_path / "manifest.json"

    @dbt_assets(manifest=manifest)
    def ops_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[object]:
        yield from dbt.cli(["build"], context=context).stream()

    settings = Settings(_env_file=None, alert_webhook_url=receiver.url("/json"))  # type: ignore[call-arg]
    check_keys = list(
        dg.Definitions(assets=[ops_models], resources={"dbt": dbt}).resolve_asset_graph().asset_check_keys
    )
    assert len(check_keys) == 1

    with dg.instance_for_test() as instance:
        sensor = Sensor(instance, settings, check_keys)
        sensor.tick()
        failed = dg.materialize([ops_models], resources={"dbt": dbt}, instance=instance, raise_on_error=False)
        assert not failed.success
        (fired,) = sensor.tick()
        assert (fired.kind, fired.asset, fired.run_id) == ("check_failed", "orders_check", failed.run_id)
        assert "not_null" in fired.title and "its run failed" in fired.title
        monkeypatch.setenv("OPS_ALERTS_BROKEN", "0")
        assert dg.materialize([ops_models], resources={"dbt": dbt}, instance=instance).success
        (cleared,) = sensor.tick()
        assert (cleared.status, cleared.incident) == ("resolved", fired.incident)
        assert sensor.tick() == []
    assert [b["status"] for b in receiver.at("/json")] == ["firing", "resolved"]
