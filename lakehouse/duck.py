"""DuckDB connections that read the lake (Delta on S3) without touching the internet.

DuckDB normally downloads `httpfs`/`delta` on first use; here the extension binaries come from
the `duckdb-extension-*` wheels and are laid out as a local extension directory, and
auto-install is switched off so a missing file fails loudly instead of trying the network.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import duckdb

from lakehouse.settings import Settings

EXTENSIONS: tuple[str, ...] = ("httpfs", "aws", "delta")


def _wheel_extension(name: str) -> Path:
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"DuckDB extension wheel duckdb-extension-{name} is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise RuntimeError(f"{path} missing: duckdb-extension-{name} must match duckdb {duckdb.__version__}")
    return path


def extension_directory(settings: Settings) -> Path:
    """A DuckDB extension directory holding the wheel binaries (created on first use)."""
    platform = duckdb.sql("select platform from pragma_platform()").fetchone()
    assert platform is not None
    target = settings.state_path / "duckdb_extensions"
    folder = target / f"v{duckdb.__version__}" / str(platform[0])
    for name in EXTENSIONS:
        dest = folder / f"{name}.duckdb_extension"
        if not dest.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".tmp")
            shutil.copyfile(_wheel_extension(name), tmp)
            tmp.replace(dest)
    return target


def connection_config(settings: Settings) -> dict[str, str | bool | int | float | list[str]]:
    return {
        "extension_directory": str(extension_directory(settings)),
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": True,
    }


def s3_secret_sql(settings: Settings, name: str = "lake") -> str:
    """`CREATE SECRET` for the lake: static keys + emulator endpoint locally, credential chain in AWS."""
    if settings.s3_endpoint:
        endpoint = settings.s3_endpoint.split("://", 1)[-1].rstrip("/")
        use_ssl = str(settings.s3_endpoint.startswith("https")).lower()
        secret = settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else ""
        return (
            f"create or replace secret {name} (type s3, key_id '{_quote(settings.aws_access_key_id or '')}', "
            f"secret '{_quote(secret)}', region '{_quote(settings.aws_region)}', "
            f"endpoint '{_quote(endpoint)}', url_style 'path', use_ssl {use_ssl})"
        )
    region = _quote(settings.aws_region)
    return f"create or replace secret {name} (type s3, provider credential_chain, region '{region}')"


def _quote(value: str) -> str:
    return value.replace("'", "''")


def connect(
    settings: Settings, database: str | Path = ":memory:", read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with httpfs/aws/delta loaded and an S3 secret for the lake."""
    con = duckdb.connect(str(database), read_only=read_only, config=connection_config(settings))
    for name in EXTENSIONS:
        con.execute(f"load {name}")
    con.execute(s3_secret_sql(settings))
    return con
