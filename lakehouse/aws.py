"""AWS clients built from the settings (emulator endpoint locally, the task role's AWS in prod).

Core code (the lake helpers, the dlt sources, the Dagster sensors) and the local tooling
(`lakehouse.stack`) both take their clients from here, so production never imports the tooling.
Listings go through the paginated helpers below: a single `list_*` call reads one page only
(100 DynamoDB table names, 1,000 S3 keys), and which names land on the first page differs between
AWS/DynamoDB Local (sorted) and moto (creation order).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from lakehouse.settings import Settings

#: Partition key of each DynamoDB table (all strings).
DYNAMODB_KEYS: dict[str, str] = {"carts": "cart_id", "sessions": "session_id", "reviews": "review_id"}

#: Fail fast on a dead endpoint instead of botocore's long default retries.
FAST_FAIL = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2})


def s3_client(settings: Settings, config: Config | None = None) -> Any:
    return boto3.client("s3", config=config or FAST_FAIL, **settings.boto3_kwargs())


def dynamodb_client(settings: Settings, config: Config | None = None) -> Any:
    return boto3.client("dynamodb", config=config or FAST_FAIL, **settings.boto3_kwargs())


def list_table_names(dynamodb: Any) -> list[str]:
    """Every DynamoDB table name, all pages of `ListTables` (100 names a page)."""
    return [name for page in dynamodb.get_paginator("list_tables").paginate() for name in page.get("TableNames", [])]


def list_bucket_names(s3: Any) -> list[str]:
    """Every bucket name, following `ContinuationToken` when the endpoint pages `ListBuckets`.

    No page size is asked for: moto truncates at `MaxBuckets` without returning a token.
    """
    return [b["Name"] for page in s3.get_paginator("list_buckets").paginate() for b in page.get("Buckets", [])]
