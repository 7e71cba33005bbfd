"""Paginated AWS listings: every page is read (a single `list_*` call reads only the first)."""

from __future__ import annotations

import datetime as dt

import boto3
from botocore.stub import Stubber

from lakehouse.aws import list_bucket_names, list_table_names

CLIENT_KWARGS = {"region_name": "us-east-1", "aws_access_key_id": "k", "aws_secret_access_key": "s"}


def test_list_table_names_follows_last_evaluated_table_name() -> None:
    client = boto3.client("dynamodb", **CLIENT_KWARGS)
    first = [f"a-{i:03d}" for i in range(100)]
    with Stubber(client) as stub:
        stub.add_response("list_tables", {"TableNames": first, "LastEvaluatedTableName": first[-1]}, {})
        stub.add_response("list_tables", {"TableNames": ["b-000", "z-last"]}, {"ExclusiveStartTableName": first[-1]})
        assert list_table_names(client) == [*first, "b-000", "z-last"]
        stub.assert_no_pending_responses()


def test_list_bucket_names_follows_continuation_token() -> None:
    client = boto3.client("s3", **CLIENT_KWARGS)
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with Stubber(client) as stub:
        stub.add_response(
            "list_buckets", {"Buckets": [{"Name": "one", "CreationDate": created}], "ContinuationToken": "t1"}, {}
        )
        stub.add_response(
            "list_buckets", {"Buckets": [{"Name": "two", "CreationDate": created}]}, {"ContinuationToken": "t1"}
        )
        assert list_bucket_names(client) == ["one", "two"]
        stub.assert_no_pending_responses()


def test_list_bucket_names_asks_for_no_page_size() -> None:
    """moto cuts a listing at `MaxBuckets` without a continuation token: never ask for a page size."""
    client = boto3.client("s3", **CLIENT_KWARGS)
    with Stubber(client) as stub:
        stub.add_response("list_buckets", {"Buckets": []}, {})  # expected params: none at all
        assert list_bucket_names(client) == []
