"""Buckets and DynamoDB tables the lakehouse expects; created idempotently on the emulator.

Also used by docker-compose's init service (`lakehouse stack init-resources`), so both ways of
running the stack get exactly the same resources.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from lakehouse.settings import DYNAMODB_TABLES, Settings

#: Partition key of each DynamoDB table (all strings).
DYNAMODB_KEYS: dict[str, str] = {"carts": "cart_id", "sessions": "session_id", "reviews": "review_id"}

_FAST_FAIL = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2})


def s3_client(settings: Settings, config: Config | None = None) -> Any:
    return boto3.client("s3", config=config or _FAST_FAIL, **settings.boto3_kwargs())


def dynamodb_client(settings: Settings, config: Config | None = None) -> Any:
    return boto3.client("dynamodb", config=config or _FAST_FAIL, **settings.boto3_kwargs())


def ensure_resources(settings: Settings) -> list[str]:
    """Create missing buckets and DynamoDB tables; returns what was created."""
    created: list[str] = []
    s3 = s3_client(settings)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in settings.buckets:
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
            created.append(f"s3://{bucket}")
    dynamodb = dynamodb_client(settings)
    tables = set(dynamodb.list_tables().get("TableNames", []))
    for logical in DYNAMODB_TABLES:
        name = settings.dynamodb_table(logical)
        if name in tables:
            continue
        key = DYNAMODB_KEYS[logical]
        try:
            dynamodb.create_table(
                TableName=name,
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
            created.append(f"dynamodb:{name}")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
    return created


def missing_resources(settings: Settings) -> list[str]:
    """Names of expected buckets/tables that are missing (empty list = all present)."""
    s3 = s3_client(settings)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    missing = [f"s3://{b}" for b in settings.buckets if b not in existing]
    tables = set(dynamodb_client(settings).list_tables().get("TableNames", []))
    missing += [
        f"dynamodb:{settings.dynamodb_table(t)}" for t in DYNAMODB_TABLES if settings.dynamodb_table(t) not in tables
    ]
    return missing
