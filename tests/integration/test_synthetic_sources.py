"""DynamoDB items, landing objects and the starter set (via the CLI) against the real stack."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from psycopg import sql
from typer.testing import CliRunner

import lakehouse.synthetic.commands as commands
from lakehouse.cli import app as cli_app
from lakehouse.settings import DYNAMODB_TABLES, Settings
from lakehouse.stack.resources import DYNAMODB_KEYS, dynamodb_client, s3_client
from lakehouse.synthetic.checks import fingerprints, integrity_violations
from lakehouse.synthetic.db import connect
from lakehouse.synthetic.entities import generate
from tests.fixtures.aws import count_items, list_keys

START = "2024-07-01"


def scan(settings: Settings, logical: str) -> list[dict[str, Any]]:
    client, out = dynamodb_client(settings), []
    deserializer = TypeDeserializer()
    kwargs: dict[str, Any] = {"TableName": settings.dynamodb_table(logical)}
    while True:
        page = client.scan(**kwargs)
        out += [{k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return sorted(out, key=lambda i: i[DYNAMODB_KEYS[logical]])
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def landing(settings: Settings, prefix: str) -> dict[str, bytes]:
    s3 = s3_client(settings)
    return {
        key: s3.get_object(Bucket=settings.landing_bucket, Key=key)["Body"].read()
        for key in list_keys(s3, settings.landing_bucket, prefix)
    }


def ids(settings: Settings, name: str, column: str) -> set[int]:
    with connect(settings) as conn:
        query = sql.SQL("select {} from {}.{}").format(
            sql.Identifier(column), sql.Identifier(settings.oltp_schema), sql.Identifier(name)
        )
        return {r[0] for r in conn.execute(query).fetchall()}


@pytest.fixture
def seeded(isolated_settings: Callable[[], Settings]) -> Settings:
    settings = isolated_settings()
    for entity, count in (("customers", 150), ("products", 40), ("campaigns", 6), ("orders", 800)):
        generate(settings, entity, count, seed=2, start_date=START, days=7)
    return settings


def test_dynamodb_items_are_typed_and_reference_postgres(seeded: Settings) -> None:
    for entity, count in (("carts", 80), ("sessions", 200), ("reviews", 90)):
        assert generate(seeded, entity, count, seed=4, start_date=START, days=7).counts[entity] == count
    customers, products = ids(seeded, "customers", "customer_id"), ids(seeded, "products", "product_id")
    carts, sessions, reviews = (scan(seeded, t) for t in DYNAMODB_TABLES)
    assert (len(carts), len(sessions), len(reviews)) == (80, 200, 90)
    for cart in carts:
        assert cart["customer_id"] in customers and cart["status"] in ("active", "converted", "abandoned")
        for item in cart["items"]:
            assert item["product_id"] in products and isinstance(item["unit_price"], Decimal)
        assert START <= cart["created_at"] <= cart["updated_at"] < "2024-07-08"
    assert any("customer_id" not in s for s in sessions) and any("campaign_id" in s for s in sessions)
    assert all(s.get("customer_id", next(iter(customers))) in customers for s in sessions)
    assert all(r["product_id"] in products and 1 <= r["rating"] <= 5 for r in reviews)
    # repeating a call rewrites the same keys (idempotent), another seed adds new ones
    generate(seeded, "reviews", 90, seed=4, start_date=START, days=7)
    assert len(scan(seeded, "reviews")) == 90
    generate(seeded, "reviews", 10, seed=5, start_date=START, days=7)
    assert len(scan(seeded, "reviews")) == 100


def test_clickstream_objects_parse_and_report_malformed_lines(seeded: Settings) -> None:
    result = generate(seeded, "clickstream", 400, seed=1, start_date=START, days=7, malformed_rate=0.05)
    objects = landing(seeded, "clickstream/")
    assert sorted(objects) == sorted(o["key"] for o in result.objects)
    assert len(objects) == 7
    orders = ids(seeded, "orders", "order_id")
    good = bad = 0
    for spec in result.objects:
        key = spec["key"]
        assert key.startswith("clickstream/dt=2024-07-0") and key.endswith(".json.gz")
        day = key.split("dt=")[1][:10]
        n_good = n_bad = 0
        for line in gzip.decompress(objects[key]).decode().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                n_bad += 1
                continue
            n_good += 1
            assert event["event_ts"].startswith(day) and event["event_ts"].endswith("Z")
            assert event["event_type"] in (
                "page_view",
                "product_view",
                "add_to_cart",
                "checkout_start",
                "purchase",
            )
            assert (event["order_id"] is not None) == (event["event_type"] == "purchase")
            if event["order_id"] is not None:
                assert event["order_id"] in orders and event["customer_id"] is not None
        assert (n_good, n_bad) == (spec["good"], spec["bad"])
        good, bad = good + n_good, bad + n_bad
    assert result.counts["clickstream_events"] == good and result.counts["clickstream_malformed_events"] == bad
    assert 0 < bad < 0.1 * (good + bad)


def test_partner_feeds_are_csv_with_known_skus(seeded: Settings) -> None:
    result = generate(seeded, "partner_feeds", 2, seed=1, start_date=START, days=3, malformed_rate=0.1)
    objects = landing(seeded, "partner_feeds/")
    assert len(objects) == 6 == result.counts["partner_feed_objects"]
    with connect(seeded) as conn:
        query = sql.SQL("select sku from {}.products").format(sql.Identifier(seeded.oltp_schema))
        skus = {r[0] for r in conn.execute(query).fetchall()}
    for spec in result.objects:
        rows = list(csv.reader(io.StringIO(objects[spec["key"]].decode())))
        assert rows[0] == ["partner_id", "sku", "partner_price", "currency", "stock_level", "feed_date"]
        n_bad = 0
        for row in rows[1:]:
            try:
                assert len(row) == 6
                Decimal(row[2]) + int(row[4])
            except (AssertionError, ArithmeticError, ValueError):
                n_bad += 1
                continue
            assert row[1] in skus and spec["key"].startswith(f"partner_feeds/{row[0]}/dt={row[5]}/")
        assert (len(rows) - 1 - n_bad, n_bad) == (spec["good"], spec["bad"])
    assert result.counts["partner_feed_malformed_rows"] > 0


def _everything(settings: Settings) -> dict[str, Any]:
    """Full contents of every table and landing object; DynamoDB: all carts, counts of the rest
    (scans of the emulator are slow; the item builders' determinism is unit-tested)."""
    client = dynamodb_client(settings)
    return {
        "tables": fingerprints(settings),
        "carts": scan(settings, "carts"),
        "counts": {t: count_items(client, settings.dynamodb_table(t)) for t in DYNAMODB_TABLES},
        "landing": landing(settings, ""),
    }


def test_cli_starter_fills_every_source_deterministically(
    isolated_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = isolated_settings(), isolated_settings()
    runner = CliRunner()
    outputs = []
    for target in (first, second):
        monkeypatch.setattr(commands, "get_settings", lambda target=target: target)
        result = runner.invoke(cli_app, ["generate", "starter", "--seed", "9", "--start-date", START, "--json"])
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.output))
    counts = outputs[0]["counts"]
    assert counts["customers"] == 1_000 and counts["orders"] == 5_000 and counts["campaigns"] == 20
    assert counts["ad_spend"] > 0 and counts["carts"] == 500 and counts["partner_feed_objects"] == 9
    assert counts["clickstream_objects"] == 30
    assert outputs[0]["counts"] == outputs[1]["counts"]
    assert set(integrity_violations(first).values()) == {0}
    a, b = _everything(first), _everything(second)
    assert a["tables"] == b["tables"]
    assert a["carts"] == b["carts"] and len(a["carts"]) == 500
    assert a["counts"] == b["counts"] == {"carts": 500, "sessions": 2_000, "reviews": 1_000}
    assert a["landing"] == b["landing"]

    # domain errors through the CLI: exit 2 and nothing changed
    monkeypatch.setattr(commands, "get_settings", lambda: first)
    result = runner.invoke(cli_app, ["generate", "orders", "--count", "0"])
    assert result.exit_code == 2
    assert fingerprints(first) == a["tables"]
