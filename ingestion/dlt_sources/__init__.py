"""Bronze ingestion: DynamoDB and the marketing REST API with dlt, S3 landing files -> Delta on S3.

Plain Python (no Dagster imports). Typical use, e.g. from a Dagster asset::

    pipeline = make_pipeline(settings, "bronze_dynamodb")
    info = pipeline.run(dynamodb_source(settings))
    summary = load_summary(settings, pipeline)   # rows + Delta version per bronze table

    report = load_landing(settings, kind="clickstream", object_keys=[...])  # landing files

Sources and pipelines can be built at import time: nothing touches the network before `run`.
Landing files are not loaded through dlt (see `landing.py` for why).
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
from .landing import (
    MANIFEST_TABLE,
    QUARANTINE_TABLE,
    LandingLoad,
    ObjectLoad,
    list_objects,
    load_landing,
    read_manifest,
)
from .landing_parse import KINDS, validate_key
from .marketing import marketing_source

__all__ = [
    "BRONZE_TABLES",
    "KINDS",
    "MANIFEST_TABLE",
    "PIPELINES",
    "QUARANTINE_TABLE",
    "LandingLoad",
    "LoadBenchmark",
    "ObjectLoad",
    "TableLoad",
    "benchmark_clickstream_load",
    "bronze_table_uri",
    "delta_version",
    "destination",
    "dynamodb_source",
    "list_objects",
    "load_landing",
    "load_summary",
    "make_pipeline",
    "marketing_source",
    "raise_on_failed",
    "read_manifest",
    "rows_by_table",
    "validate_key",
]
