"""The dbt project on the `athena` target, offline.

* `dbt parse --target athena` with dummy credentials and no endpoint at all.
* `dbt compile --target athena` against moto (which implements the Glue and Athena APIs dbt-athena
  calls while compiling: GetTables on the schemas, GetDataCatalog...), with the Glue databases and
  the workgroup Terraform would create. Every compiled statement (models, data tests, analyses)
  is then parsed with sqlglot's Athena (Trino) dialect and checked for DuckDB-isms: functions
  sqlglot does not know as Trino functions, `::` casts, QUALIFY.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlglot
from moto.server import ThreadedMotoServer
from sqlglot import exp

from lakehouse.settings import Settings, child_env
from lakehouse.stack.process import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
#: the virtualenv's dbt (as orchestration.dbt_project.DBT_EXECUTABLE; not imported: it parses on import)
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"

PREFIX = "t-athena"
GLUE_PREFIX = "t_athena"
WINDOW = {"min_date": "2026-03-03", "max_date": "2026-03-04", "lookback_days": 2}
#: Trino functions sqlglot's Athena dialect does not model (parsed as "anonymous"): checked by hand
#: against the Trino documentation; anything else anonymous is treated as a DuckDB-ism.
KNOWN_TRINO_FUNCTIONS: frozenset[str] = frozenset({"json_array_length"})

#: one model per .sql file under models/
MODEL_COUNT = len(list((REPO_ROOT / "models").rglob("*.sql")))


def athena_problems(sql: str) -> list[str]:
    """Why `sql` is not Athena (Trino) SQL; empty when sqlglot's Athena dialect accepts it cleanly."""
    problems: list[str] = []
    try:
        statements = sqlglot.parse(sql, read="athena", error_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.ParseError as error:
        return [f"does not parse as Athena SQL: {error}"]
    if re.search(r"(?<!:)::(?!:)", sql):
        problems.append("`::` cast (DuckDB/PostgreSQL only)")
    for statement in statements:
        if statement is None:
            continue
        for function in statement.find_all(exp.Anonymous):
            if function.name.lower() not in KNOWN_TRINO_FUNCTIONS:
                problems.append(f"function {function.name}() is not a known Trino function")
        if statement.find(exp.Qualify):
            problems.append("QUALIFY is not supported by Athena")
    return problems


def _dbt(env: dict[str, str], target_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(DBT_EXECUTABLE), *args,
        "--project-dir", str(REPO_ROOT), "--profiles-dir", str(REPO_ROOT), "--target", "athena",
        "--target-path", str(target_path), "--log-path", str(target_path / "logs"),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
    return result


def _athena_env(state: Path, endpoint: str | None) -> dict[str, str]:
    settings = Settings(_env_file=None, environment="prod", name_prefix=PREFIX, state_dir=state, aws_region="us-east-1")
    env = child_env(
        settings,
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        AWS_ACCESS_KEY_ID="dummy",
        AWS_SECRET_ACCESS_KEY="dummy",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(state / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(state / "no-aws-credentials"),
    )
    for name in ("AWS_ENDPOINT_URL", "DBT_ATHENA_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint  # every AWS client dbt-athena makes (Glue, S3, STS)
        env["DBT_ATHENA_ENDPOINT_URL"] = endpoint  # the profile's endpoint_url (Athena client)
    return env


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """An in-process moto server with what terraform/modules/catalog creates for the lake."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    aws: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "dummy",
        "aws_secret_access_key": "dummy",
    }
    try:
        glue = boto3.client("glue", **aws)
        for layer in ("bronze", "silver", "marts"):
            glue.create_database(DatabaseInput={"Name": f"{GLUE_PREFIX}_{layer}"})
        boto3.client("s3", **aws).create_bucket(Bucket=f"{PREFIX}-athena-results")
        boto3.client("athena", **aws).create_work_group(
            Name=PREFIX,
            Configuration={"ResultConfiguration": {"OutputLocation": f"s3://{PREFIX}-athena-results/output/"}},
        )
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(scope="module")
def compiled(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`dbt compile --target athena` of everything, for a partition window: the manifest."""
    state = tmp_path_factory.mktemp("dbt-athena")
    target = state / "target"
    _dbt(_athena_env(state, moto_endpoint), target, "compile", "--vars", json.dumps(WINDOW))
    return json.loads((target / "manifest.json").read_text())


def test_parse_offline_with_dummy_credentials(tmp_path: Path) -> None:
    _dbt(_athena_env(tmp_path, None), tmp_path / "target", "parse")
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == "athena"
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    for name, node in models.items():
        assert node["database"] == "awsdatacatalog"
        assert node["schema"] == f"{GLUE_PREFIX}_marts", name  # the Glue marts database
        if node["fqn"][1] == "marts":
            assert node["config"]["table_type"] == "iceberg", name
        if node["config"]["materialized"] == "incremental":
            # Iceberg on Athena accepts append/merge only; the window delete is a pre-hook
            assert node["config"]["incremental_strategy"] == "append", name
            assert node["config"]["partitioned_by"], name
    sources = {(s["source_name"], s["name"]): s for s in manifest["sources"].values()}
    assert (sources["shop", "orders"]["schema"], sources["shop", "orders"]["identifier"]) == (
        f"{GLUE_PREFIX}_silver",
        "orders",
    )
    assert (sources["landing", "clickstream"]["schema"], sources["landing", "clickstream"]["identifier"]) == (
        f"{GLUE_PREFIX}_bronze",
        "landing_clickstream",
    )


def test_every_model_renders_valid_athena_sql(compiled: dict[str, Any]) -> None:
    models = [n for n in compiled["nodes"].values() if n["resource_type"] == "model"]
    assert len(models) == MODEL_COUNT
    bad = {}
    for node in models:
        sql = node.get("compiled_code")
        assert sql, f"{node['name']} was not compiled"
        if problems := athena_problems(sql):
            bad[node["name"]] = problems
    assert not bad, f"models whose Athena SQL is not valid: {bad}"


def test_data_tests_and_analyses_render_valid_athena_sql(compiled: dict[str, Any]) -> None:
    nodes = [n for n in compiled["nodes"].values() if n["resource_type"] in ("test", "analysis")]
    assert len(nodes) > 100
    bad = {n["name"]: problems for n in nodes if (problems := athena_problems(n["compiled_code"]))}
    assert not bad, f"tests/analyses whose Athena SQL is not valid: {bad}"


def test_athena_sql_reads_glue_tables_and_applies_the_window(compiled: dict[str, Any]) -> None:
    nodes = {n["name"]: n for n in compiled["nodes"].values()}
    orders = nodes["stg_shop__orders"]["compiled_code"]
    assert f'"awsdatacatalog"."{GLUE_PREFIX}_silver"."orders"' in orders
    assert "delta_scan" not in orders
    assert "from_iso8601_timestamp_nanos" in orders
    clicks = nodes["stg_landing__clickstream"]["compiled_code"]
    assert f'"awsdatacatalog"."{GLUE_PREFIX}_bronze"."landing_clickstream"' in clicks
    # min_date 2026-03-03 minus the 2-day lookback, max_date exclusive
    revenue = nodes["fct_daily_revenue"]["compiled_code"]
    assert "order_date >= date '2026-03-01' and order_date < date '2026-03-04'" in revenue
    sessions = nodes["fct_web_sessions"]["compiled_code"]
    # every event from a day before the window on (sessions over midnight, sessions seen whole)
    assert "event_date >= date '2026-02-28'" in sessions
    delete = nodes["replace_window_preview"]["compiled_code"]
    statement = sqlglot.parse_one(delete, read="athena")
    assert isinstance(statement, exp.Delete)
    assert f'"{GLUE_PREFIX}_marts"."fct_daily_revenue"' in delete


@pytest.mark.parametrize(
    "duckdb_sql",
    [
        "select timezone('UTC', cast(x as timestamptz)) from t",
        "select json_extract_string(a, '$.b') from t",
        "select x::int from t",
        "select * from t qualify row_number() over (partition by a order by b) = 1",
    ],
)
def test_the_checker_rejects_duckdb_sql(duckdb_sql: str) -> None:
    assert athena_problems(duckdb_sql)
