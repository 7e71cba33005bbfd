"""Listings past their first page, on whichever emulator the session runs (moto or LocalStack).

A single `ListTables` call returns 100 names and a single `ListObjectsV2` call 1,000 keys. moto lists
tables in creation order and DynamoDB Local (LocalStack, like AWS) sorted by name, so the tests put the
names that matter past the first page in *both* orders: created after, and sorted after, the filler.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from ingestion.dlt_sources.landing import list_objects
from lakehouse.aws import dynamodb_client, list_table_names, s3_client
from lakehouse.lake import discover
from lakehouse.settings import DYNAMODB_TABLES, Settings
from lakehouse.stack import LocalStack
from lakehouse.stack.resources import ensure_resources, missing_resources

DYNAMODB_PAGE = 100
S3_PAGE = 1_000


@pytest.fixture
def filler_tables(local_stack: LocalStack, settings: Settings) -> Iterator[list[str]]:
    """More than one page of tables whose names sort before every test prefix ("t-", "test-")."""
    client = dynamodb_client(settings)
    names = [f"aaa-{uuid.uuid4().hex[:6]}-{i:03d}" for i in range(DYNAMODB_PAGE + 5)]

    def create(name: str) -> None:
        client.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, names))
    try:
        yield names
    finally:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda name: client.delete_table(TableName=name), names))


def test_tables_past_the_first_page_are_found(
    filler_tables: list[str], isolated_settings: Callable[[], Settings], local_stack: LocalStack
) -> None:
    settings = isolated_settings()  # its tables are created after the filler and sort after it
    expected = {settings.dynamodb_table(t) for t in DYNAMODB_TABLES}
    first_page = set(dynamodb_client(settings).list_tables()["TableNames"])
    assert not expected <= first_page, "the expected tables must lie past the first page"

    assert expected | set(filler_tables) <= set(list_table_names(dynamodb_client(settings)))
    assert missing_resources(settings) == []
    assert ensure_resources(settings) == []  # nothing to create: all present

    # what `lakehouse status` shows for the session stack, whose tables also lie past page one
    s3 = next(s for s in local_stack.status() if s.name == "s3")
    assert s3.healthy, s3.health


def _put_empty(settings: Settings, bucket: str, keys: list[str]) -> None:
    client = s3_client(settings)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b""), keys))


def test_s3_listings_past_the_first_page_with_encoded_keys(isolated_settings: Callable[[], Settings]) -> None:
    """Keys holding `=` (URL-encoded in listings) past 1,000: LocalStack 4.13 returned an empty page 2."""
    settings = isolated_settings()
    landing_keys = [f"clickstream/dt=2026-01-01/part={i:04d}.jsonl" for i in range(S3_PAGE + 5)]
    # the lake: one table with a page of data files, a second one whose log is only on page two
    lake_keys = [f"bronze/paged/dt=2026-01-01/part={i:04d}.parquet" for i in range(S3_PAGE)]
    lake_keys += ["bronze/paged/_delta_log/00000000000000000000.json", "silver/zz_last/_delta_log/0.json"]
    _put_empty(settings, settings.landing_bucket, landing_keys)
    _put_empty(settings, settings.lake_bucket, lake_keys)

    listed = list_objects(settings, "clickstream")
    assert sorted(listed) == sorted(landing_keys)
    assert set(discover(settings)) == {"bronze/paged", "silver/zz_last"}
