"""The silver rebuild job's pure parts: arguments, settings hand-over, rows, Delta progress.

The central claim is "same rules as the incremental sink": crafted Debezium envelopes are decoded
into bronze rows (the sink's own `decode`), applied batch by batch with the sink's `Applier` to
local Delta tables, and compared with one pass of `rebuild_rows` over all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from ingestion.cdc.apply import Applier, TableShape
from ingestion.cdc.config import PartitionSpec, SinkConfig
from ingestion.cdc.decode import UNAVAILABLE, DecodedBatch, Message, decode
from ingestion.cdc.lake import DeltaStore
from ingestion.jobs import rebuild_silver as job
from lakehouse.settings import OLTP_TABLES, Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPIC = "ecom.shop.orders"
SPEC = PartitionSpec("ordered_at", "month")


# ---------------------------------------------------------------------------- arguments and settings
def test_table_must_be_a_captured_oltp_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert job.parse_args(["--table", "orders"]).table == "orders"
    for bad in ("gift_cards", "orders; drop table x", "ORDERS", ""):
        with pytest.raises(SystemExit) as exit_info:
            job.parse_args(["--table", bad])
        assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        job.parse_args([])
    with pytest.raises(ValueError, match="unknown table"):
        job.job_arguments(Settings(_env_file=None), "gift_cards")


def test_arguments_carry_the_lake_layout_but_never_credentials() -> None:
    settings = Settings(
        _env_file=None,
        environment="prod",
        name_prefix="acme-lake",
        aws_region="eu-west-1",
        cdc_topic_prefix="acme",
        cdc_partition_by={"orders": ("ordered_at", "day")},
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key="do-not-leak",
        postgres_password="do-not-leak-either",
    )
    argv = job.job_arguments(settings, "orders")
    assert argv[:2] == ["--table", "orders"]
    assert "do-not-leak" not in " ".join(argv) and "AKIAEXAMPLE" not in " ".join(argv)
    parsed = job.parse_args(argv)
    received = job.job_settings(parsed.settings_json)
    for name in job.JOB_SETTINGS_FIELDS:
        assert getattr(received, name) == getattr(settings, name), name
    config = SinkConfig.from_settings(received)
    assert config.uri("silver", "orders") == "s3://acme-lake-lake/silver/orders"
    assert config.partition_by["orders"] == PartitionSpec("ordered_at", "day")
    assert config.txn_app_id(config.topic("orders"), 0) == "cdc:acme.shop.orders:0"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"aws_secret_access_key": "x"}', "may not set"),
        ('{"postgres_password": "x"}', "may not set"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_settings_json_is_validated(payload: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        job.job_settings(payload)


def test_invalid_settings_exit_with_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert job.main(["--table", "orders", "--settings-json", '{"postgres_password": "x"}']) == 2
    assert "may not set" in capsys.readouterr().err


def test_entry_point_imports_stay_light() -> None:
    """The EMR archive ships only the job's dependencies: no Dagster, Kafka client or boto3 at import."""
    heavy = ("dagster", "dagster_aws", "confluent_kafka", "boto3", "psycopg")
    code = f"import sys, ingestion.jobs.rebuild_silver; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_emr_requirements_match_the_locked_versions() -> None:
    """ingestion/jobs/requirements-emr.txt pins what the venv archive gets: the versions of uv.lock."""
    from importlib.metadata import version

    lines = (REPO_ROOT / "ingestion/jobs/requirements-emr.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line.strip() and not line.startswith("#"))
    assert {"deltalake", "pyarrow", "duckdb", "orjson", "pydantic", "pydantic-settings", "dagster-pipes"} <= set(pins)
    for name, pinned in pins.items():
        assert version(name) == pinned, f"{name}: requirements-emr.txt {pinned}, locked {version(name)}"


# ---------------------------------------------------------------------------- rows
def _envelope(op: str, before: dict | None, after: dict | None, lsn: int) -> bytes:
    source = {"schema": "shop", "table": "orders", "lsn": lsn, "txId": lsn, "ts_ms": 1_795_456_446_000 + lsn}
    return json.dumps({"before": before, "after": after, "source": source, "op": op}).encode()


def _order(order_id: int, status: str, month: str = "2026-01", note: str = "n") -> dict:
    return {"order_id": order_id, "status": status, "ordered_at": f"{month}-15T10:00:00.000000Z", "note": note}


class Changelog:
    """Crafted deliveries → bronze rows, batch by batch, exactly as the sink decodes them."""

    def __init__(self) -> None:
        self.offset = 0
        self.row_type: pa.StructType | None = None
        self.batches: list[pa.Table] = []

    def batch(self, *changes: tuple[str, dict | None, dict | None, int]) -> DecodedBatch:
        messages = []
        for op, before, after, lsn in changes:
            key = {"order_id": (after or before or {})["order_id"]}
            messages.append(Message(TOPIC, 0, self.offset, json.dumps(key).encode(), _envelope(op, before, after, lsn)))
            self.offset += 1
        decoded = decode(messages, "shop", "orders", self.row_type)
        assert not decoded.dead_letters, decoded.dead_letters
        self.row_type = decoded.row_type
        self.batches.append(decoded.rows)
        return decoded

    def all(self) -> pa.Table:
        assert self.row_type is not None
        return pa.concat_tables([b.cast(b.schema) for b in self.batches], promote_options="default")


def _rows(table: pa.Table, drop: tuple[str, ...] = ("_cdc_updated_at",)) -> list[dict]:
    keep = [c for c in table.column_names if c not in drop]
    return sorted(table.select(keep).to_pylist(), key=lambda r: (r["order_id"], r["_cdc_lsn"]))


def _incremental(
    tmp_path: Path, shape_of: Callable[[pa.StructType], TableShape], log: Changelog
) -> tuple[pa.Table, pa.Table]:
    store = DeltaStore({})
    applier = Applier(store)
    silver, history = str(tmp_path / "silver"), str(tmp_path / "history")
    for offset, batch in enumerate(log.batches):
        shape = shape_of(log.row_type)
        applier.apply_silver(silver, shape, batch, {"t": offset})
        applier.apply_history(history, shape, batch, {"t": offset})
    return DeltaTable(silver).to_pyarrow_table(), DeltaTable(history).to_pyarrow_table()


def test_one_pass_equals_the_incremental_sink(tmp_path: Path) -> None:
    log = Changelog()
    log.batch(*[("r", None, _order(i, "new"), 100) for i in range(1, 6)])
    log.batch(
        ("u", _order(1, "new"), _order(1, "paid"), 200),
        ("u", _order(1, "paid"), _order(1, "shipped"), 201),  # two updates of one key in one batch
        ("u", None, _order(2, "paid", note=UNAVAILABLE), 202),  # unchanged TOAST value, no before-image
        ("d", _order(3, "new"), None, 203),
    )
    log.batch(
        ("u", _order(1, "paid"), _order(1, "shipped"), 201),  # duplicate delivery
        ("u", _order(4, "new"), _order(4, "stale"), 50),  # older than the snapshot: must not win
        ("c", None, _order(7, "ghost"), 1000),
    )
    log.batch(
        ("d", _order(7, "ghost"), None, 1002),
        ("u", _order(7, "ghost"), _order(7, "late"), 1001),  # late update after the delete
        ("u", _order(5, "new"), _order(5, "moved", month="2026-02"), 300),  # changes partition
    )
    log.batch(("u", None, _order(2, "shipped", note=UNAVAILABLE), 400))

    def shape_of(row_type: pa.StructType) -> TableShape:
        return TableShape("orders", row_type, ["order_id"], SPEC)

    expected_silver, expected_history = _incremental(tmp_path, shape_of, log)
    assert log.row_type is not None
    silver, history = job.rebuild_rows(shape_of(log.row_type), log.all())

    assert _rows(silver) == _rows(expected_silver)
    assert _rows(history) == _rows(expected_history)
    by_id = {r["order_id"]: r for r in silver.to_pylist()}
    assert by_id[1]["status"] == "shipped" and by_id[4]["status"] == "new"
    assert by_id[2]["note"] == "n" and by_id[2]["status"] == "shipped", "placeholder resolved from history"
    assert by_id[3]["_cdc_deleted"] and by_id[7]["_cdc_deleted"] and by_id[7]["status"] == "ghost"
    assert by_id[5]["_cdc_partition"] == "2026-02"
    assert silver.schema == shape_of(log.row_type).silver_schema()


def test_values_the_merge_keeps_come_from_the_version_chain() -> None:
    """A placeholder (no before-image) and a key-only delete take the last known value / partition."""
    log = Changelog()
    log.batch(
        ("c", None, _order(1, "new", note="long text"), 10),
        ("u", None, _order(1, "paid", note=UNAVAILABLE), 11),
        ("c", None, _order(2, "new", month="2026-03"), 12),
        ("d", {"order_id": 2, "status": None, "ordered_at": None, "note": None}, None, 13),
    )
    assert log.row_type is not None
    shape = TableShape("orders", log.row_type, ["order_id"], SPEC)
    silver, _history = job.rebuild_rows(shape, log.all())
    by_id = {r["order_id"]: r for r in silver.to_pylist()}
    assert (by_id[1]["status"], by_id[1]["note"]) == ("paid", "long text")
    assert by_id[2]["_cdc_deleted"] and by_id[2]["_cdc_partition"] == "2026-03"


def test_key_columns_come_from_the_debezium_key() -> None:
    log = Changelog()
    log.batch(("c", None, _order(1, "new"), 1))
    assert job.key_columns(log.all()) == ["order_id"]
    assert job.key_columns(log.all().slice(0, 0)) == []


# ---------------------------------------------------------------------------- progress
def test_bronze_progress_reads_every_partition_txn(tmp_path: Path) -> None:
    config = SinkConfig.from_settings(Settings(_env_file=None))
    log = Changelog()
    decoded = log.batch(("c", None, _order(1, "new"), 1), ("c", None, _order(2, "new"), 2))
    uri = str(tmp_path / "bronze")
    topic = config.topic("orders")
    txns = {config.txn_app_id(topic, 0): 41, config.txn_app_id(topic, 2): 7, "other-app": 3}
    DeltaStore({}).append(uri, None, decoded.rows, txns)
    bronze = DeltaTable(uri)
    # partition 2 holds no rows (only tombstones, say) but has progress: found through the topic's partitions
    assert job.bronze_progress(bronze, config, "orders", decoded.rows, topic_partitions=3) == {
        config.txn_app_id(topic, 0): 41,
        config.txn_app_id(topic, 2): 7,
    }
    assert job.bronze_progress(bronze, config, "orders", decoded.rows) == {config.txn_app_id(topic, 0): 41}


def test_result_metadata_is_plain_json() -> None:
    result = job.RebuildResult("orders", 3, 10, 8, 7, 1, 12, 2, 4, 5, {"cdc:t:0": 9}, 1, 1.234, "s3://a", "s3://b")
    metadata = result.metadata()
    json.dumps(metadata)
    assert metadata["silver_uri"] == {"raw_value": "s3://a", "type": "url"}
    assert metadata["duration_seconds"] == 1.23 and metadata["bronze_offsets"] == {
        "raw_value": {"cdc:t:0": 9},
        "type": "json",
    }
    assert set(OLTP_TABLES) >= {"orders"}
