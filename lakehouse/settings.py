"""Typed settings: the only place that reads the environment.

Every other module receives a `Settings` instance (or calls `get_settings()`), so switching between
the embedded stack, docker-compose and AWS is a matter of environment variables alone.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["local", "prod"]

#: Tables of the OLTP schema, in foreign-key order (parents first). Captured by CDC.
OLTP_TABLES: tuple[str, ...] = (
    "customers",
    "addresses",
    "products",
    "inventory",
    "orders",
    "order_items",
    "payments",
)
#: DynamoDB tables (logical names; the physical name carries `dynamodb_table_prefix`).
DYNAMODB_TABLES: tuple[str, ...] = ("carts", "sessions", "reviews")

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Settings(BaseSettings):
    """Configuration of the lakehouse, from `LAKEHOUSE_*` environment variables or `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="LAKEHOUSE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = "local"
    state_dir: Path = Field(default=Path(".lakehouse"), description="All local state (git-ignored).")

    # --- network: local services bind here; docker-compose publishes the same ports ---
    host: str = "127.0.0.1"
    s3_port: int = 4566
    kafka_port: int = 9092
    postgres_port: int = 5432
    api_port: int = 8000
    #: base URL of the marketing REST API dlt reads; locally the synthetic API serves it
    marketing_api_url: str | None = Field(default=None, description="Defaults to the local synthetic API.")
    dagster_port: int = 3000

    # --- AWS / S3 emulator ---
    aws_region: str = "us-east-1"
    s3_endpoint_url: str | None = Field(
        default=None, description="Defaults to the emulator locally and to real AWS in prod."
    )
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    name_prefix: str = Field(default="ecom-lakehouse", description="Prefix of bucket, topic-free AWS resource names.")

    # --- PostgreSQL (OLTP source) ---
    postgres_host: str | None = None
    postgres_user: str = "lakehouse"
    postgres_password: SecretStr = SecretStr("lakehouse")
    postgres_db: str = "shop"
    oltp_schema: str = "shop"
    marketing_schema: str = "marketing"

    # --- Kafka / CDC ---
    kafka_bootstrap_servers: str | None = None
    #: PLAINTEXT locally; SASL_SSL uses MSK IAM authentication (AWS)
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    cdc_topic_prefix: str = "ecom"
    cdc_slot_name: str = "lakehouse_cdc"
    cdc_publication_name: str = "lakehouse_cdc"
    cdc_tables: list[str] = Field(default_factory=lambda: list(OLTP_TABLES))
    cdc_topic_partitions: int = Field(default=1, ge=1, le=64)
    #: silver tables partitioned by a date column: table -> (column, "day" | "month")
    cdc_partition_by: dict[str, tuple[str, Literal["day", "month"]]] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "orders": ("ordered_at", "month"),
            "order_items": ("created_at", "month"),
            "payments": ("created_at", "month"),
        }
    )

    #: operator overrides of a CDC column's type, "table.column" -> string|int64|float64|bool
    #: (the way out of an incompatible type change: see docs/cdc.md)
    cdc_column_types: dict[str, Literal["string", "int64", "float64", "bool"]] = Field(default_factory=dict)

    # --- Delta maintenance ---
    delta_vacuum_retention_hours: int = Field(default=168, ge=0, description="Time travel kept by VACUUM.")
    delta_target_file_size: int = Field(default=128 * 1024 * 1024, ge=1024 * 1024)
    cdc_tombstone_retention_hours: int = Field(default=168, ge=1, description="Silver keeps deleted keys this long.")

    # --- DuckDB / dbt ---
    dbt_target: str | None = Field(default=None, description="Defaults to local or athena by environment.")
    athena_workgroup: str | None = None

    # --- AWS compute (prod) ---
    emr_application_id: str | None = Field(default=None, description="EMR Serverless application for heavy jobs.")
    emr_job_role_arn: str | None = None

    @field_validator("name_prefix")
    @classmethod
    def _valid_name_prefix(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 3-42 chars of lowercase letters, digits and '-' (an S3 bucket prefix)")
        return value

    @field_validator("oltp_schema", "marketing_schema", "postgres_db", "cdc_slot_name", "cdc_publication_name")
    @classmethod
    def _valid_identifier(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError("must be a lowercase SQL identifier")
        return value

    @field_validator("cdc_tables")
    @classmethod
    def _valid_tables(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not _IDENT.match(t)]
        if bad:
            raise ValueError(f"invalid table names: {bad}")
        return value

    @field_validator("marketing_api_url")
    @classmethod
    def _valid_marketing_api_url(cls, value: str | None) -> str | None:
        if value is not None and value and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be an http(s) URL without query or fragment")
        return value or None

    @field_validator("cdc_topic_prefix")
    @classmethod
    def _valid_topic_prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", value):
            raise ValueError("must be lowercase letters, digits, '_' or '-'")
        return value

    @model_validator(mode="after")
    def _local_defaults(self) -> Settings:
        # The emulators accept any credentials; LocalStack's conventional pair keeps tools happy.
        if self.environment == "local":
            if self.aws_access_key_id is None:
                self.aws_access_key_id = "test"
            if self.aws_secret_access_key is None:
                self.aws_secret_access_key = SecretStr("test")
        return self

    # ---------------------------------------------------------------- derived values
    @property
    def is_local(self) -> bool:
        return self.environment == "local"

    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser().resolve()

    @property
    def s3_endpoint(self) -> str | None:
        """Endpoint for S3/DynamoDB/Glue clients; None means real AWS."""
        if self.s3_endpoint_url:
            return self.s3_endpoint_url
        return f"http://{self.host}:{self.s3_port}" if self.is_local else None

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_servers or f"{self.host}:{self.kafka_port}"

    @property
    def pg_host(self) -> str:
        return self.postgres_host or self.host

    @property
    def postgres_dsn(self) -> str:
        return self.postgres_conninfo()

    def postgres_conninfo(self, dbname: str | None = None) -> str:
        """libpq keyword connection string (no URL escaping needed for passwords with symbols)."""
        password = self.postgres_password.get_secret_value().replace("\\", "\\\\").replace("'", "\\'")
        return (
            f"host={self.pg_host} port={self.postgres_port} dbname={dbname or self.postgres_db} "
            f"user={self.postgres_user} password='{password}'"
        )

    @property
    def api_url(self) -> str:
        """The local synthetic data API."""
        return f"http://{self.host}:{self.api_port}"

    @property
    def marketing_api_base_url(self) -> str | None:
        """Where the marketing API is: configured, or the local synthetic API; None in prod if unset."""
        if self.marketing_api_url:
            return self.marketing_api_url
        return self.api_url if self.is_local else None

    # bucket names: one naming rule shared with terraform/ (see tests/infra/test_terraform.py)
    @property
    def landing_bucket(self) -> str:
        return f"{self.name_prefix}-landing"

    @property
    def lake_bucket(self) -> str:
        return f"{self.name_prefix}-lake"

    @property
    def athena_results_bucket(self) -> str:
        return f"{self.name_prefix}-athena-results"

    @property
    def artifacts_bucket(self) -> str:
        return f"{self.name_prefix}-artifacts"

    @property
    def broker_bucket(self) -> str:
        """Local only: durable storage of the embedded Kafka broker."""
        return f"{self.name_prefix}-broker"

    @property
    def buckets(self) -> tuple[str, ...]:
        names = (self.landing_bucket, self.lake_bucket, self.athena_results_bucket, self.artifacts_bucket)
        return (*names, self.broker_bucket) if self.is_local else names

    @property
    def glue_prefix(self) -> str:
        return self.name_prefix.replace("-", "_")

    @property
    def glue_databases(self) -> dict[str, str]:
        return {layer: f"{self.glue_prefix}_{layer}" for layer in ("bronze", "silver", "marts")}

    @property
    def athena_workgroup_name(self) -> str:
        return self.athena_workgroup or self.name_prefix

    def dynamodb_table(self, logical: str) -> str:
        if logical not in DYNAMODB_TABLES:
            raise ValueError(f"unknown DynamoDB table {logical!r}; known: {', '.join(DYNAMODB_TABLES)}")
        return f"{self.name_prefix}-{logical}"

    def cdc_topic(self, table: str) -> str:
        """Debezium topic name `<prefix>.<schema>.<table>`."""
        return f"{self.cdc_topic_prefix}.{self.oltp_schema}.{table}"

    def lake_uri(self, *parts: str) -> str:
        """`s3://<lake bucket>/<parts...>` (parts validated: no traversal, no empty segments)."""
        for part in parts:
            if not re.fullmatch(r"[A-Za-z0-9_.=\-/]+", part) or ".." in part or part.startswith("/"):
                raise ValueError(f"invalid lake path segment {part!r}")
        return "s3://" + "/".join((self.lake_bucket, *parts))

    @property
    def delta_storage_options(self) -> dict[str, str]:
        """Options for delta-rs / object_store."""
        options = {"AWS_REGION": self.aws_region}
        if self.aws_access_key_id:
            options["AWS_ACCESS_KEY_ID"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            options["AWS_SECRET_ACCESS_KEY"] = self.aws_secret_access_key.get_secret_value()
        if self.s3_endpoint:
            options["AWS_ENDPOINT_URL"] = self.s3_endpoint
            options["AWS_ALLOW_HTTP"] = "true"
        return options

    @property
    def resolved_dbt_target(self) -> str:
        return self.dbt_target or ("local" if self.is_local else "athena")

    @property
    def duckdb_path(self) -> Path:
        return self.state_path / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.state_path / "dagster"

    def boto3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `boto3.client(...)`."""
        kwargs: dict[str, Any] = {"region_name": self.aws_region}
        if self.s3_endpoint:
            kwargs["endpoint_url"] = self.s3_endpoint
        if self.aws_access_key_id:
            kwargs["aws_access_key_id"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            kwargs["aws_secret_access_key"] = self.aws_secret_access_key.get_secret_value()
        return kwargs

    def to_env(self) -> dict[str, str]:
        """These settings as `LAKEHOUSE_*` variables, for child processes (dagster, dbt, services)."""
        env: dict[str, str] = {}
        secrets = {name for name, value in self if isinstance(value, SecretStr)}
        for name, value in self.model_dump(mode="json", exclude_none=True).items():
            if name in secrets:
                value = getattr(self, name).get_secret_value()
            env[f"LAKEHOUSE_{name.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
        env["LAKEHOUSE_STATE_DIR"] = str(self.state_path)
        return env


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings from the environment (cached; tests construct `Settings` directly)."""
    return Settings()


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a child process: ours (PATH, HOME...) with `settings` as LAKEHOUSE_* on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update(settings.to_env())
    env.update(extra)
    return env
