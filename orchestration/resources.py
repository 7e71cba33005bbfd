"""Dagster resources, built from the typed settings: the one place Dagster learns local vs prod.

Resources are thin: they hold what the UI should show (endpoints, buckets) and hand out clients;
the work itself lives in `lakehouse/` and `ingestion/`, which take a `Settings`.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import duckdb
import psycopg
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from dagster_aws.s3 import S3Resource

from lakehouse import duck
from lakehouse.kafka import client_config
from lakehouse.settings import Settings, get_settings


class LakehouseSettings(dg.ConfigurableResource):
    """The run's typed settings (from `LAKEHOUSE_*` variables), for library calls."""

    environment: str

    def get(self) -> Settings:
        return get_settings()


class DeltaLakeResource(dg.ConfigurableResource):
    """Where Delta tables live and how delta-rs reaches them."""

    lake_bucket: str
    endpoint_url: str | None = None

    def table_uri(self, *parts: str) -> str:
        return get_settings().lake_uri(*parts)

    def storage_options(self) -> dict[str, str]:
        return get_settings().delta_storage_options


class DuckDBResource(dg.ConfigurableResource):
    """DuckDB with the lake's extensions and S3 secret (the local warehouse file by default)."""

    database: str

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        return duck.connect(get_settings(), self.database, read_only=read_only)


class KafkaResource(dg.ConfigurableResource):
    """Kafka clients configured like every other client of the project (`lakehouse.kafka`)."""

    bootstrap_servers: str

    def admin(self) -> AdminClient:
        return AdminClient(client_config(get_settings()))

    def consumer(self, group_id: str, **config: Any) -> Consumer:
        return Consumer(client_config(get_settings(), **{"group.id": group_id, **config}))


class PostgresResource(dg.ConfigurableResource):
    """The OLTP source database."""

    host: str
    port: int
    dbname: str
    user: str

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(get_settings().postgres_dsn)


def build_resources(settings: Settings) -> dict[str, Any]:
    s3_kwargs = settings.boto3_kwargs()
    return {
        "lakehouse": LakehouseSettings(environment=settings.environment),
        "s3": S3Resource(
            region_name=s3_kwargs["region_name"],
            endpoint_url=s3_kwargs.get("endpoint_url"),
            aws_access_key_id=s3_kwargs.get("aws_access_key_id"),
            aws_secret_access_key=s3_kwargs.get("aws_secret_access_key"),
        ),
        "delta": DeltaLakeResource(lake_bucket=settings.lake_bucket, endpoint_url=settings.s3_endpoint),
        "duckdb": DuckDBResource(database=str(settings.duckdb_path)),
        "kafka": KafkaResource(bootstrap_servers=settings.kafka_bootstrap),
        "postgres": PostgresResource(
            host=settings.pg_host,
            port=settings.postgres_port,
            dbname=settings.postgres_db,
            user=settings.postgres_user,
        ),
    }
