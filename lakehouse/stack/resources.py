"""Buckets and DynamoDB tables the lakehouse expects; created idempotently on the emulator.

Also used by docker-compose's init service (`lakehouse stack init-resources`), so both ways of
running the stack get exactly the same resources.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from lakehouse.aws import DYNAMODB_KEYS, dynamodb_client, list_bucket_names, list_table_names, s3_client
from lakehouse.settings import DYNAMODB_TABLES, Settings

__all__ = ["DYNAMODB_KEYS", "dynamodb_client", "ensure_resources", "missing_resources", "s3_client"]


def ensure_resources(settings: Settings) -> list[str]:
    """Create missing buckets and DynamoDB tables; returns what was created."""
    created: list[str] = []
    s3 = s3_client(settings)
    existing = set(list_bucket_names(s3))
    for bucket in settings.buckets:
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
            created.append(f"s3://{bucket}")
    dynamodb = dynamodb_client(settings)
    tables = set(list_table_names(dynamodb))
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
    existing = set(list_bucket_names(s3))
    missing = [f"s3://{b}" for b in settings.buckets if b not in existing]
    tables = set(list_table_names(dynamodb_client(settings)))
    missing += [
        f"dynamodb:{settings.dynamodb_table(t)}" for t in DYNAMODB_TABLES if settings.dynamodb_table(t) not in tables
    ]
    return missing
