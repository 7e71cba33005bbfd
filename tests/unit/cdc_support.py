"""The sink's layout under a local directory: a `SinkConfig` whose URIs are local paths, shared by
the unit tests of the sink and its transports (no S3 needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ingestion.cdc.config import SinkConfig


@dataclass(frozen=True)
class LocalConfig(SinkConfig):
    """The sink's layout under a local directory instead of an S3 bucket."""

    root: str = ""

    def uri(self, layer: Literal["bronze", "silver", "history"], table: str) -> str:
        return f"{self.root}/{layer}/{table}"


def local_config(tmp_path: Path, **overrides: Any) -> LocalConfig:
    """A Kafka-shaped config rooted at `tmp_path`; `overrides` replace any field."""
    values: dict[str, Any] = {
        "kafka": {},
        "topic_prefix": "ecom",
        "schema": "shop",
        "lake_bucket": "unused",
        "storage_options": {},
        "root": str(tmp_path),
    }
    values.update(overrides)
    return LocalConfig(**values)
