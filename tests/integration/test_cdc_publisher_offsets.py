"""Production's publisher keeps Debezium's offsets in PostgreSQL (the Dagster database on AWS): a
replacement task, whose disk is new and empty, resumes where the last one stopped — no second
snapshot, no gap (issue 11). The same test with the local offsets file would re-snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg

from ingestion.cdc.publisher import OFFSETS_TABLE
from lakehouse.settings import Settings
from tests.integration.cdc_support import cdc_environment


def _with_jdbc_offsets(isolated_settings: Callable[[], Settings]) -> Callable[[], Settings]:
    def make() -> Settings:
        settings = isolated_settings()
        url = f"jdbc:postgresql://{settings.pg_host}:{settings.postgres_port}/{settings.postgres_db}"
        return settings.model_copy(
            update={
                "cdc_offsets_jdbc_url": url,
                "cdc_offsets_jdbc_user": settings.postgres_user,
                "cdc_offsets_jdbc_password": settings.postgres_password,
            }
        )

    return make


def _ops(messages: list[tuple[int, bytes | None]]) -> list[str]:
    return [json.loads(value)["op"] for _, value in messages if value is not None]


def test_replacement_publisher_resumes_from_offsets_in_postgres(isolated_settings: Callable[[], Settings]) -> None:
    with cdc_environment(_with_jdbc_offsets(isolated_settings), customers=12, products=3, orders=4) as env:
        topic = env.config.topic("customers")
        env.wait_consistent(("customers",))
        first = _ops(env.topic_messages(topic))
        assert first.count("r") == 12  # the initial snapshot
        env.stop_publisher()
        with psycopg.connect(env.settings.postgres_dsn) as conn:
            (stored,) = conn.execute(f"select count(*) from {OFFSETS_TABLE}").fetchone()  # type: ignore[misc]
        assert stored >= 1, "Debezium flushed no offset to PostgreSQL"

        # Changes while no publisher runs, then a new "task": a fresh, empty state directory.
        env.execute(
            "update shop.customers set email = 'moved-' || email "
            "where customer_id in (select customer_id from shop.customers order by customer_id limit 2)"
        )
        env.settings = env.settings.model_copy(update={"state_dir": env.settings.state_path / "replacement-task"})
        assert not (env.settings.state_path / "cdc").exists()
        env.start_publisher()
        env.wait_consistent(("customers",))

        after = _ops(env.topic_messages(topic))
        assert after[: len(first)] == first
        new = after[len(first) :]
        assert new.count("r") == 0, f"the replacement publisher snapshotted again: {new}"
        assert new.count("u") >= 2, f"the updates made while it was down are missing: {new}"
