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
Emulator = Literal["moto", "localstack"]

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

#: the shortest window Dagster accepts in a time-window freshness policy
MIN_FRESHNESS_HOURS = 1 / 60
#: Freshness policy per layer: (warn after hours, fail after hours) without a new materialization.
#: CDC layers follow the sink (minutes in steady state); DynamoDB loads every 30 minutes and the
#: marketing API hourly; landing objects arrive through the day; the marts are built daily.
DEFAULT_FRESHNESS_HOURS: dict[str, tuple[float, float]] = {
    "bronze_cdc": (1.0, 6.0),
    "silver": (1.0, 6.0),
    "history": (2.0, 12.0),
    "bronze_dynamodb": (1.0, 3.0),
    "bronze_landing": (6.0, 26.0),
    "bronze_marketing": (2.0, 6.0),
    "marts": (26.0, 50.0),
}

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
    #: which emulator `lakehouse up` runs on s3_port when no s3_endpoint_url is set (docs/emulators.md)
    emulator: Emulator = "moto"
    localstack_home: Path = Field(
        default=Path(".venv-localstack"), description="LocalStack's own environment (installed when missing)."
    )
    localstack_python: str | None = Field(
        default=None, description="Python >= 3.13 for LocalStack; found on PATH or under ~/.pyenv when unset."
    )
    name_prefix: str = Field(default="ecom-lakehouse", description="Prefix of bucket, topic-free AWS resource names.")

    # --- PostgreSQL (OLTP source) ---
    postgres_host: str | None = None
    postgres_user: str = "lakehouse"
    postgres_password: SecretStr = SecretStr("lakehouse")
    postgres_db: str = "shop"
    oltp_schema: str = "shop"
    marketing_schema: str = "marketing"

    # --- Kafka / CDC ---
    #: where Debezium's records travel: Kafka topics (one per table) or one Kinesis Data Streams
    #: stream for all tables (the smallest fixed cost on AWS); locally the S3 emulator serves Kinesis
    cdc_transport: Literal["kafka", "kinesis"] = "kafka"
    cdc_kinesis_stream: str | None = Field(default=None, description="Defaults to <name_prefix>-cdc.")
    cdc_kinesis_shards: int = Field(default=1, ge=1, le=64)
    kafka_bootstrap_servers: str | None = None
    #: PLAINTEXT locally; SASL_SSL uses MSK IAM authentication (AWS)
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    cdc_topic_prefix: str = "ecom"
    cdc_slot_name: str = "lakehouse_cdc"
    cdc_publication_name: str = "lakehouse_cdc"
    #: Debezium `publication.autocreate.mode`: `filtered` where the role owns the tables (local
    #: stack), `disabled` in prod, where the DBA creates the publication (docs/deploy.md)
    cdc_publication_autocreate_mode: Literal["filtered", "disabled", "all_tables", "no_tables"] = "filtered"
    #: where the embedded publisher keeps Debezium's offsets: a file in the state dir, or a
    #: PostgreSQL table through this JDBC URL (prod: the Dagster database, so a new task resumes)
    cdc_offsets_jdbc_url: str | None = None
    cdc_offsets_jdbc_user: str | None = None
    cdc_offsets_jdbc_password: SecretStr | None = None
    #: an always-on `cdc sink --follow` service applies CDC (prod): the sink sensor starts stopped
    cdc_sink_service: bool = False
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

    # --- batch ingestion data quality (asset checks of the bronze dlt/landing assets) ---
    #: an object whose share of quarantined lines is above this fails the landing quarantine check
    landing_max_quarantine_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    #: rows holding a value in a dlt variant column (a changed type) allowed before the check fails
    bronze_max_variant_rows: int = Field(default=0, ge=0)

    # --- operations: notifications, freshness, lag thresholds (docs/operations.md) ---
    #: Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat...): `{"text": ...}` posts
    alert_slack_webhook_url: SecretStr | None = None
    #: a generic JSON webhook: each notification POSTed as one JSON object (docs/operations.md)
    alert_webhook_url: SecretStr | None = None
    #: an SNS topic (Terraform creates `<name_prefix>-alerts` in prod; e-mail subscription optional)
    alert_sns_topic_arn: str | None = None
    #: seconds one channel may take before it counts as failing (logged, never fails a run)
    alert_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    #: the Dagster UI as people reach it (links in notifications); locally http://<host>:<dagster port>
    dagster_ui_url: str | None = None
    #: Dagster freshness policies per layer: layer -> (warn hours, fail hours); layers are
    #: bronze_cdc, bronze_dynamodb, bronze_landing, bronze_marketing, silver, history, marts.
    #: Set only the layers to change, e.g. LAKEHOUSE_FRESHNESS_HOURS='{"silver": [0.5, 2]}'
    freshness_hours: dict[str, tuple[float, float]] = Field(default_factory=dict)
    #: how often the lake-health sensor evaluates the lag checks (each pass reads Postgres, the
    #: stream and a few Delta logs)
    health_check_interval_seconds: int = Field(default=300, ge=10)
    #: how often the alert sensor reads Dagster's events (runs, checks, freshness, ticks)
    alert_sensor_interval_seconds: int = Field(default=30, ge=5)
    #: replication slot: WAL retained for the slot beyond which its check fails (pinned WAL fills
    #: the OLTP database's disk)
    slot_max_retained_wal_bytes: int = Field(default=1024**3, ge=0)
    #: CDC: records in a topic partition / Kinesis shard not yet in the lake
    cdc_max_consumer_lag: int = Field(default=10_000, ge=0)
    #: CDC: dead letters of a table within `alert_rate_window_minutes`
    cdc_max_dead_letters: int = Field(default=0, ge=0)
    #: CDC: minutes the newest change in silver may be old while newer changes wait in the stream
    cdc_max_change_age_minutes: float = Field(default=30.0, gt=0)
    #: landing: objects the sensor has not loaded yet, and how many minutes the oldest may wait
    landing_max_waiting_objects: int = Field(default=500, ge=0)
    landing_max_wait_minutes: float = Field(default=60.0, gt=0)
    #: window of the dead-letter rate
    alert_rate_window_minutes: int = Field(default=60, ge=1)

    # --- DuckDB / dbt ---
    dbt_target: str | None = Field(default=None, description="Defaults to local or athena by environment.")
    athena_workgroup: str | None = None

    # --- AWS compute (prod) ---
    emr_application_id: str | None = Field(default=None, description="EMR Serverless application for heavy jobs.")
    emr_job_role_arn: str | None = None
    #: prod: task role of delta_maintenance runs (ECS task-role override; may vacuum bronze/cdc)
    maintenance_task_role_arn: str | None = None

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

    @field_validator("cdc_kinesis_stream")
    @classmethod
    def _valid_stream_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-zA-Z0-9_.-]{1,128}", value):
            raise ValueError("must be 1-128 letters, digits, '_', '.' or '-' (a Kinesis stream name)")
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _valid_endpoint_url(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"https?://[^\s/?#]+/?", value):
            raise ValueError("must be an http(s) URL of a host and port, e.g. http://127.0.0.1:4566")
        return value or None  # an empty variable means "not set"

    @field_validator("cdc_topic_prefix")
    @classmethod
    def _valid_topic_prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", value):
            raise ValueError("must be lowercase letters, digits, '_' or '-'")
        return value

    @field_validator("cdc_offsets_jdbc_url")
    @classmethod
    def _valid_jdbc_url(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"jdbc:postgresql://[^\s/?#]+/[a-z_][a-z0-9_]*(\?[^\s#]*)?", value):
            raise ValueError("must be jdbc:postgresql://host[:port]/database[?params]")
        return value or None

    @field_validator("alert_slack_webhook_url", "alert_webhook_url")
    @classmethod
    def _valid_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s#]*)?", value.get_secret_value()):
            raise ValueError("must be an http(s) URL")
        return value if value is not None and value.get_secret_value() else None

    @field_validator("alert_sns_topic_arn")
    @classmethod
    def _valid_topic_arn(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}", value):
            raise ValueError("must be an SNS topic ARN")
        return value or None

    @field_validator("dagster_ui_url")
    @classmethod
    def _valid_ui_url(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"https?://[^\s?#]+", value):
            raise ValueError("must be an http(s) URL without query or fragment")
        return value.rstrip("/") if value else None

    @field_validator("freshness_hours")
    @classmethod
    def _valid_freshness(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        unknown = set(value) - set(DEFAULT_FRESHNESS_HOURS)
        if unknown:
            raise ValueError(f"unknown layers {sorted(unknown)}; known: {', '.join(DEFAULT_FRESHNESS_HOURS)}")
        for layer, (warn, fail) in value.items():
            # Dagster's own limits for a time-window policy (else the code location fails to load)
            if not MIN_FRESHNESS_HOURS <= warn < fail:
                raise ValueError(
                    f"{layer}: need 1 minute ({MIN_FRESHNESS_HOURS:.4f} h) <= warn hours < fail hours, "
                    f"got {warn}, {fail}"
                )
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
    def localstack_path(self) -> Path:
        return self.localstack_home.expanduser().resolve()

    @property
    def s3_endpoint_is_external(self) -> bool:
        """True when `s3_endpoint_url` names the S3/DynamoDB endpoint: the local stack starts no emulator."""
        return bool(self.s3_endpoint_url)

    @property
    def s3_endpoint(self) -> str | None:
        """Endpoint for S3/DynamoDB/Glue clients; None means real AWS."""
        if self.s3_endpoint_url:
            return self.s3_endpoint_url
        return f"http://{self.host}:{self.s3_port}" if self.is_local else None

    @property
    def kinesis_stream(self) -> str:
        """The Kinesis stream carrying the CDC records of every table (cdc_transport=kinesis)."""
        return self.cdc_kinesis_stream or f"{self.name_prefix}-cdc"

    @property
    def dagster_ui(self) -> str:
        """Base URL of the Dagster UI for links in notifications."""
        return self.dagster_ui_url or f"http://{self.host}:{self.dagster_port}"

    def freshness_window(self, layer: str) -> tuple[float, float]:
        """(warn hours, fail hours) of a layer: the setting, else the default."""
        return self.freshness_hours.get(layer, DEFAULT_FRESHNESS_HOURS[layer])

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
        env["LAKEHOUSE_LOCALSTACK_HOME"] = str(self.localstack_path)
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
