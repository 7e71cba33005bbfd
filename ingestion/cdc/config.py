"""Configuration of the CDC sink, derived from the typed settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lakehouse.kafka import client_config
from lakehouse.settings import Settings

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEAD_LETTER_TABLE = "_dead_letters"


def _column_types(overrides: Mapping[str, str]) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    for qualified, type_name in overrides.items():
        table, _, column = qualified.partition(".")
        if not (IDENTIFIER.match(table) and IDENTIFIER.match(column)):
            raise ValueError(f"column type override {qualified!r} must be 'table.column'")
        result.setdefault(table, {})[column] = type_name
    return result


@dataclass(frozen=True)
class PartitionSpec:
    """Partition a silver table by a date/time column truncated to a day or a month."""

    column: str
    granularity: Literal["day", "month"] = "month"

    @property
    def width(self) -> int:
        """Characters of an ISO-8601 string that make up the partition value."""
        return 10 if self.granularity == "day" else 7


@dataclass(frozen=True)
class CdcTopic:
    topic: str
    schema: str
    table: str


@dataclass(frozen=True)
class SinkConfig:
    #: librdkafka client configuration (`lakehouse.kafka.client_config`)
    kafka: dict[str, Any]
    topic_prefix: str
    schema: str
    lake_bucket: str
    storage_options: dict[str, str]
    sink_id: str = "cdc"
    group_id: str = "lakehouse-cdc-sink"
    #: tables the sink accepts; a topic of any other table goes to the dead letters. None = all.
    tables: frozenset[str] | None = None
    partition_by: dict[str, PartitionSpec] = field(default_factory=dict)
    #: table -> column -> Arrow type name forced on the column (operator override)
    column_types: dict[str, dict[str, str]] = field(default_factory=dict)
    #: False: write only bronze (silver/history catch up later from bronze, e.g. in another process)
    downstream: bool = True
    max_batch_messages: int = 100_000
    #: how long a batch may collect messages: long in catch-up runs (fewer, larger commits), short
    #: when following the stream (latency)
    max_batch_seconds: float = 5.0
    follow_batch_seconds: float = 0.3
    #: compact silver/history once a table has this many files (MERGEs fragment them)
    compact_after_files: int = 48
    #: follow mode: how often history catches up with bronze (it competes with silver for I/O)
    follow_history_seconds: float = 5.0
    #: "kafka": a topic per table; "kinesis": one stream (`kinesis_stream`) for all tables
    transport: Literal["kafka", "kinesis"] = "kafka"
    kinesis_stream: str = ""
    #: boto3 client arguments (region, endpoint, credentials) for Kinesis
    aws: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> SinkConfig:
        values: dict[str, object] = {
            "kafka": client_config(settings),
            "topic_prefix": settings.cdc_topic_prefix,
            "schema": settings.oltp_schema,
            "lake_bucket": settings.lake_bucket,
            "storage_options": settings.delta_storage_options,
            "tables": frozenset(settings.cdc_tables),
            "column_types": _column_types(settings.cdc_column_types),
            "partition_by": {
                table: PartitionSpec(column, granularity)
                for table, (column, granularity) in settings.cdc_partition_by.items()
            },
            "transport": settings.cdc_transport,
            "kinesis_stream": settings.kinesis_stream,
            "aws": settings.boto3_kwargs(),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def uri(self, layer: Literal["bronze", "silver", "history"], table: str) -> str:
        if not (IDENTIFIER.match(table) or table == DEAD_LETTER_TABLE):
            raise ValueError(f"invalid table name {table!r}")
        if layer == "bronze":
            return f"s3://{self.lake_bucket}/bronze/cdc/{table}"
        if layer == "silver":
            return f"s3://{self.lake_bucket}/silver/{table}"
        return f"s3://{self.lake_bucket}/silver/{table}_history"

    @property
    def dead_letter_uri(self) -> str:
        return self.uri("bronze", DEAD_LETTER_TABLE)

    def parse_topic(self, topic: str) -> CdcTopic | None:
        """`<prefix>.<schema>.<table>` → parts; None for topics that are not ours at all."""
        if not topic.startswith(self.topic_prefix + "."):
            return None
        parts = topic[len(self.topic_prefix) + 1 :].split(".")
        if len(parts) != 2:
            return CdcTopic(topic, "", "")  # ours, but malformed: dead letters
        return CdcTopic(topic, parts[0], parts[1])

    def table_of(self, topic: str) -> str:
        """The table a topic carries, or the topic's own name when it names none (for messages)."""
        parsed = self.parse_topic(topic)
        return parsed.table if parsed is not None and parsed.table else topic

    def accepts(self, topic: CdcTopic) -> str | None:
        """None if the sink handles this topic's table; otherwise why it goes to the dead letters."""
        if topic.schema != self.schema or not IDENTIFIER.match(topic.table):
            return f"unknown table: topic {topic.topic!r} does not name a table of schema {self.schema!r}"
        if self.tables is not None and topic.table not in self.tables:
            known = ", ".join(sorted(self.tables))
            return f"unknown table {topic.schema}.{topic.table}: not in the sink's tables ({known})"
        return None

    def topic(self, table: str) -> str:
        return f"{self.topic_prefix}.{self.schema}.{table}"

    def source(self, table: str) -> str:
        """What a table's positions are counted in: its Kafka topic, or `<stream>/<table>` on the
        Kinesis stream shared by all tables (see `progress.py`)."""
        if self.transport == "kinesis":
            return f"{self.kinesis_stream}/{table}"
        return self.topic(table)

    def txn_app_id(self, source: str, partition: int) -> str:
        """Delta `txn` application id recording the last offset of one partition of a source (a Kafka
        topic, or `<stream>/<table>` on Kinesis: see `progress.py`)."""
        return f"{self.sink_id}:{source}:{partition}"
