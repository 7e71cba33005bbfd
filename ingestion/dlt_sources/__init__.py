"""Bronze ingestion with dlt: DynamoDB, S3 landing files and the marketing REST API -> Delta on S3.

Plain Python (no Dagster imports). Typical use, e.g. from a Dagster asset::

    pipeline = make_pipeline(settings, "bronze_dynamodb")
    info = pipeline.run(dynamodb_source(settings))
    summary = load_summary(settings, pipeline)   # rows + Delta version per bronze table

Sources and pipelines can be built at import time: nothing touches the network before `run`.
"""

from __future__ import annotations

from .benchmark import LoadBenchmark, benchmark_clickstream_load
from .core import (
    BRONZE_TABLES,
    PIPELINES,
    TableLoad,
    bronze_table_uri,
    delta_version,
    destination,
    load_summary,
    make_pipeline,
    raise_on_failed,
    rows_by_table,
)
from .dynamodb import dynamodb_source
from .landing import QUARANTINE_TABLE, landing_source, list_objects
from .landing_parse import KINDS, validate_key
from .marketing import marketing_source

__all__ = [
    "BRONZE_TABLES",
    "KINDS",
    "PIPELINES",
    "QUARANTINE_TABLE",
    "LoadBenchmark",
    "TableLoad",
    "benchmark_clickstream_load",
    "bronze_table_uri",
    "delta_version",
    "destination",
    "dynamodb_source",
    "landing_source",
    "list_objects",
    "load_summary",
    "make_pipeline",
    "marketing_source",
    "raise_on_failed",
    "rows_by_table",
    "validate_key",
]
