"""`lakehouse cdc topics` and the lake section of `lakehouse status` on the session's stack: log
ends read past the embedded broker's wrong watermarks, lag against the lake's stored positions,
`--tail`, JSON for scripts and the exit code when something is red."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

from ingestion.cdc.lag import topic_lag
from lakehouse.health import lake_health
from lakehouse.settings import Settings
from tests.integration.cdc_support import cdc_environment


def _cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", *args],
        env={**os.environ, **settings.to_env(), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_topics_lag_tail_and_status(isolated_settings: Callable[[], Settings], settings: Settings) -> None:
    with cdc_environment(isolated_settings, customers=6, products=3, orders=4) as env:
        env.wait_consistent(("orders",))
        lags = {lag.table: lag for lag in topic_lag(env.config)}
        orders = lags["orders"]
        assert orders.lag == 0 and orders.stored == orders.log_end - 1 and not orders.out_of_range

        for status in ("paid", "shipped", "delivered"):  # three changes the sink has not applied
            env.execute("update shop.orders set status = %s where order_id = 1", (status,))
        deadline = time.monotonic() + 60
        while (lag := {x.table: x for x in topic_lag(env.config)}["orders"]).lag < 3:
            assert time.monotonic() < deadline, f"the updates never reached the topic: {lag}"
            time.sleep(1)
        assert lag.lag == 3 and lag.log_end == orders.log_end + 3  # exact, though tansu's watermark lies

        listed = _cli(env.settings, "cdc", "topics", "--json")
        assert listed.returncode == 0, listed.stderr
        row = next(r for r in json.loads(listed.stdout) if r["table"] == "orders")
        assert (row["lag"], row["stored"], row["log_end"]) == (3, orders.stored, orders.log_end + 3)
        tailed = _cli(env.settings, "cdc", "topics", "--tail", env.settings.cdc_topic("orders"), "-n", "2", "--json")
        records = [json.loads(line) for line in tailed.stdout.splitlines()]
        assert [r["offset"] for r in records] == [lag.log_end - 2, lag.log_end - 1]
        assert '"delivered"' in records[-1]["value"]
        assert _cli(env.settings, "cdc", "topics", "--tail", "other.topic").returncode == 2

        strict = env.settings.model_copy(update={"cdc_max_consumer_lag": 2})
        health = lake_health(strict)
        assert health.tables["orders"].lag == 3
        failing = {(o.asset, o.check) for o in health.outcomes(strict) if not o.passed}
        assert failing == {(("bronze", "cdc", "orders"), "consumer_lag")}
        # the status command: the session stack's services, this environment's lake
        on_stack = {"LAKEHOUSE_STATE_DIR": str(settings.state_path), "LAKEHOUSE_CDC_MAX_CONSUMER_LAG": "2"}
        red = _cli(env.settings, "status", "--format", "json", **on_stack)
        document = json.loads(red.stdout)
        assert red.returncode == 1 and document["red"] and document["lake"]["tables"]["orders"]["lag"] == 3
        assert all(s["health"] == "ok" for s in document["services"]), document["services"]
        assert document["lake"]["slot"]["active"] and document["lake"]["slot"]["retained_wal_bytes"] >= 0

        env.sink_once(["orders"])
        green = _cli(env.settings, "status", "--format", "json", **on_stack)
        assert green.returncode == 0, green.stdout[-3000:]
        document = json.loads(green.stdout)
        assert document["lake"]["tables"]["orders"]["lag"] == 0 and not document["red"]
        commits = {c["table"]: c for c in document["lake"]["commits"]}
        assert commits["silver/orders"]["version"] is not None and commits["silver/orders"]["age_seconds"] < 600
        table = _cli(env.settings, "status", **on_stack)
        assert table.returncode == 0 and "replication slot" in table.stdout and "orders" in table.stdout


def test_kinesis_lag_per_shard_and_status(isolated_settings: Callable[[], Settings]) -> None:
    """On Kinesis the lag is counted by reading past the lake's positions, per table and shard; it
    feeds `cdc topics`, the consumer_lag check and status like Kafka's (tail says it cannot)."""
    with cdc_environment(isolated_settings, customers=6, products=3, orders=4, transport="kinesis") as env:
        env.wait_consistent(("orders",))
        shards = [lag for lag in topic_lag(env.config) if lag.table == "orders"]
        assert shards and sum(lag.lag for lag in shards) == 0 and not any(lag.out_of_range for lag in shards)
        assert {lag.topic for lag in shards} == {env.config.source("orders")}

        for status in ("paid", "shipped", "delivered"):  # three changes the sink has not applied
            env.execute("update shop.orders set status = %s where order_id = 1", (status,))
        deadline = time.monotonic() + 60
        while (waiting := sum(x.lag for x in topic_lag(env.config) if x.table == "orders")) < 3:
            assert time.monotonic() < deadline, f"the updates never reached the stream: {waiting}"
            time.sleep(1)
        assert waiting == 3  # counted exactly: nothing twice, nothing the lake holds
        assert all(x.lag == 0 for x in topic_lag(env.config) if x.table == "customers")

        listed = _cli(env.settings, "cdc", "topics", "--json")
        assert listed.returncode == 0, listed.stderr
        assert sum(r["lag"] for r in json.loads(listed.stdout) if r["table"] == "orders") == 3
        tailed = _cli(env.settings, "cdc", "topics", "--tail", env.settings.cdc_topic("orders"))
        assert tailed.returncode == 2 and "not supported" in tailed.stdout + tailed.stderr

        strict = env.settings.model_copy(update={"cdc_max_consumer_lag": 2})
        health = lake_health(strict)
        assert health.tables["orders"].lag == 3 and "stream" not in health.errors, health.errors
        failing = {(o.asset, o.check) for o in health.outcomes(strict) if not o.passed}
        assert (("bronze", "cdc", "orders"), "consumer_lag") in failing

        env.sink_once(["orders"])
        assert sum(x.lag for x in topic_lag(env.config) if x.table == "orders") == 0
        passing = {(o.asset, o.check) for o in lake_health(strict).outcomes(strict) if o.passed}
        assert (("bronze", "cdc", "orders"), "consumer_lag") in passing
