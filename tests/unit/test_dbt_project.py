"""The dbt project's structure, from a parsed manifest (no warehouse, no lake needed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.settings import DYNAMODB_TABLES, OLTP_TABLES, Settings, child_env

REPO_ROOT = Path(__file__).resolve().parents[2]
#: the virtualenv's dbt (as orchestration.dbt_project.DBT_EXECUTABLE; not imported: it parses on import)
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"

LAYERS = ("staging", "intermediate", "marts")
DAILY_MARTS = {
    "fct_orders": "order_date",
    "fct_order_items": "order_date",
    "fct_daily_revenue": "order_date",
    "fct_web_sessions": "session_date",
    "fct_conversion_funnel_daily": "session_date",
    "fct_campaign_performance_daily": "performance_date",
}
#: which earlier days changed inside their window each daily mart rebuilds too (restated_for in
#: models/intermediate/int_restated_dates.sql)
RESTATED_FOR = {
    "fct_orders": ["orders"],
    "fct_order_items": ["orders"],
    "fct_daily_revenue": ["orders"],
    "fct_web_sessions": ["clickstream"],
    "fct_conversion_funnel_daily": ["clickstream"],
    "fct_campaign_performance_daily": ["orders", "ad_spend"],
}
REQUIRED_MARTS = {*DAILY_MARTS, "dim_customers", "dim_products", "fct_inventory_levels"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    state = tmp_path_factory.mktemp("dbt-parse")
    settings = Settings(_env_file=None, state_dir=state)
    target = state / "target"
    subprocess.run(
        [
            str(DBT_EXECUTABLE), "parse", "--project-dir", str(REPO_ROOT), "--profiles-dir", str(REPO_ROOT),
            "--target", "local", "--target-path", str(target), "--log-path", str(state / "logs"),
        ],
        env=child_env(settings, DBT_SEND_ANONYMOUS_USAGE_STATS="false"),
        cwd=REPO_ROOT, check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return json.loads((target / "manifest.json").read_text())


def _models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}


def test_project_layout_and_paths() -> None:
    project = (REPO_ROOT / "dbt_project.yml").read_text()
    assert 'test-paths: ["data_tests"]' in project
    assert not (REPO_ROOT / "packages.yml").exists(), "no dbt packages: dbt hub is not reachable"
    for layer in LAYERS:
        assert (REPO_ROOT / "models" / layer).is_dir()


def test_every_model_and_column_is_described(manifest: dict[str, Any]) -> None:
    assert manifest["metadata"]["adapter_type"] == "duckdb"
    models = _models(manifest)
    assert set(models) >= REQUIRED_MARTS
    missing = [name for name, node in models.items() if not node["description"].strip()]
    assert not missing, f"models without description: {missing}"
    for name, node in models.items():
        assert node["columns"], f"{name} documents no columns"
        blank = [c for c, v in node["columns"].items() if not v["description"].strip()]
        assert not blank, f"{name}: columns without description: {blank}"


def test_models_follow_the_layer_conventions(manifest: dict[str, Any]) -> None:
    for name, node in _models(manifest).items():
        layer = node["fqn"][1]
        assert layer in LAYERS, name
        assert node["schema"] == layer, f"{name} lands in schema {node['schema']}"
        prefix = {"staging": ("stg_",), "intermediate": ("int_",), "marts": ("fct_", "dim_")}[layer]
        assert name.startswith(prefix), f"{name} in {layer}"
        if layer == "staging":  # stg_<source>__<table>, reading that one source table
            source, _, table = name.removeprefix("stg_").partition("__")
            (upstream,) = node["depends_on"]["nodes"]
            assert upstream.startswith(f"source.ecommerce_lakehouse.{source}."), name
            if name != "stg_dynamodb__cart_items":  # the lines of dynamodb.carts
                assert upstream == f"source.ecommerce_lakehouse.{source}.{table}", name


def test_every_model_is_tested(manifest: dict[str, Any]) -> None:
    tested = {
        dep
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        for dep in node["depends_on"]["nodes"]
    }
    untested = [n["name"] for n in _models(manifest).values() if n["unique_id"] not in tested]
    assert not untested, f"models without any data test: {untested}"
    singular = {
        n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test" and not n.get("test_metadata")
    }
    assert {
        "assert_order_total_equals_line_items",
        "assert_daily_revenue_non_negative",
        "assert_conversion_funnel_monotonic",
    } <= singular


def test_daily_marts_are_windowed_incrementals(manifest: dict[str, Any]) -> None:
    models = _models(manifest)
    daily = {name for name, node in models.items() if "daily" in node["tags"]}
    assert daily == set(DAILY_MARTS)
    for name, column in DAILY_MARTS.items():
        config = models[name]["config"]
        assert config["materialized"] == "incremental"
        assert config["incremental_strategy"] == "append"  # valid for DuckDB and Iceberg on Athena
        assert config["on_schema_change"] == "fail"  # never appended to without a new column
        kinds = RESTATED_FOR[name]
        hook = f"{{{{ replace_window('{column}', restated={kinds!r}) }}}}"
        assert [h["sql"] for h in config["pre-hook"]] == [hook]
        # the rows selected must be exactly the days the pre-hook deleted
        select = re.compile(r"in_window_or_restated\('[\w.]+', " + re.escape(repr(kinds)) + r"[,)]")
        assert select.search(models[name]["raw_code"]), f"{name} does not filter its rows like its pre-hook"
        assert "int_restated_dates" in {n.split(".")[-1] for n in models[name]["depends_on"]["nodes"]}
    for name, node in models.items():
        if name not in DAILY_MARTS:
            assert node["config"]["materialized"] in ("view", "table"), name


def test_sources_follow_the_lake_contract(manifest: dict[str, Any]) -> None:
    sources = {(s["source_name"], s["name"]): s for s in manifest["sources"].values()}
    expected = {("shop", t): ["silver", t] for t in OLTP_TABLES}
    expected |= {("dynamodb", t): ["bronze", "dynamodb", t] for t in DYNAMODB_TABLES}
    expected |= {("landing", t): ["bronze", "landing", t] for t in ("clickstream", "partner_feeds")}
    expected[("landing", "objects")] = ["bronze", "landing", "_objects"]  # the loaders' manifest
    expected |= {("marketing", t): ["bronze", "marketing", t] for t in ("campaigns", "ad_spend")}
    assert set(sources) == set(expected)
    for key, asset_key in expected.items():
        source = sources[key]
        meta = source["config"].get("meta") or source["meta"]
        assert meta["dagster"]["asset_key"] == asset_key, key
        location = source["config"]["external_location"]
        table = "{name}" if asset_key[-1] == key[1] else asset_key[-1]
        path = "/".join(asset_key[:-1]) + "/" + table
        assert location == f"delta_scan('s3://ecom-lakehouse-lake/{path}')", key
        # Athena: the Glue tables of terraform/modules/catalog (bronze: <source>_<table>)
        layer = asset_key[0]
        assert source["schema"] == f"ecom_lakehouse_{layer}"
        glue_name = key[1] if layer == "silver" else f"{key[0]}_{asset_key[-1]}"
        assert source["identifier"] == glue_name


def test_staging_filters_cdc_tombstones() -> None:
    for path in sorted((REPO_ROOT / "models" / "staging").glob("stg_shop__*.sql")):
        assert "where not _cdc_deleted" in path.read_text(), path.name


def test_no_parquet_globbing_of_delta_tables() -> None:
    for path in [*REPO_ROOT.joinpath("models").rglob("*"), *REPO_ROOT.joinpath("macros").rglob("*")]:
        if path.is_file():
            text = path.read_text()
            assert "read_parquet" not in text and "parquet_scan" not in text, path


def test_profiles_has_both_targets() -> None:
    profiles = (REPO_ROOT / "profiles.yml").read_text()
    for needle in ("type: duckdb", "type: athena", "extension_directory", "autoinstall_known_extensions: false",
                   "credential_chain", "url_style", "awsdatacatalog", "s3_staging_dir", "work_group"):  # fmt: skip
        assert needle in profiles, needle


_RENDER_PROFILE = """
import json, os, sys
from argparse import Namespace
from dbt.config.profile import Profile, read_profile
from dbt.config.renderer import ProfileRenderer
from dbt.flags import set_from_args
from dbt_common.context import set_invocation_context


set_from_args(Namespace(profiles_dir=sys.argv[1]), None)
out = {}
for case, env in json.loads(sys.argv[2]).items():
    set_invocation_context(env)
    raw = read_profile(sys.argv[1])
    profile = Profile.from_raw_profiles(raw, "ecommerce_lakehouse", ProfileRenderer({}))
    creds = profile.credentials
    out[case] = {"target": profile.target_name}
    if creds.type == "duckdb":
        out[case] |= {"path": creds.path, "secrets": creds.secrets_sql(), "config": creds.config_options}
    else:
        out[case] |= {k: getattr(creds, k) for k in ("schema", "work_group", "s3_staging_dir", "endpoint_url")}
print(json.dumps(out))
"""


def test_profiles_render_per_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    cases = {
        "local": {"LAKEHOUSE_STATE_DIR": "/state", "LAKEHOUSE_S3_PORT": "45123", "LAKEHOUSE_NAME_PREFIX": "t-x"},
        "prod_duckdb": {"LAKEHOUSE_ENVIRONMENT": "prod", "LAKEHOUSE_DBT_TARGET": "local", "LAKEHOUSE_STATE_DIR": "/s"},
        "prod": {"LAKEHOUSE_ENVIRONMENT": "prod", "LAKEHOUSE_NAME_PREFIX": "shop-prod"},
    }
    result = subprocess.run(
        [str(DBT_EXECUTABLE.parent / "python"), "-c", _RENDER_PROFILE, str(REPO_ROOT), json.dumps(cases)],
        capture_output=True, text=True, check=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path_factory.mktemp("home"))},
    )  # fmt: skip
    rendered = json.loads(result.stdout.strip().splitlines()[-1])
    local = rendered["local"]
    assert local["target"] == "local"
    assert local["path"] == "/state/warehouse.duckdb"
    assert local["config"]["extension_directory"] == "/state/duckdb_extensions"
    assert local["config"]["autoinstall_known_extensions"] is False
    (secret,) = local["secrets"]
    for part in ("provider config", "endpoint '127.0.0.1:45123'", "url_style 'path'", "use_ssl 'false'"):
        assert part in secret
    (secret,) = rendered["prod_duckdb"]["secrets"]
    assert "provider credential_chain" in secret
    assert "key_id" not in secret and "endpoint" not in secret
    prod = rendered["prod"]
    assert prod["target"] == "athena"
    assert prod["schema"] == "shop_prod_marts"
    assert prod["work_group"] == "shop-prod"
    assert prod["s3_staging_dir"] == "s3://shop-prod-athena-results/output/"
    assert prod["endpoint_url"] is None


def test_lint_suite_runs_locally() -> None:
    """`make lint` and the pre-commit hooks: ruff, mypy, sqlfluff (dbt templater on models/, the
    in-memory `lint` target) and yamllint, every hook local and run from the project's venv."""
    hooks = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in hooks["repos"]] == ["local"]
    by_id = {hook["id"]: hook for hook in hooks["repos"][0]["hooks"]}
    assert {"ruff", "ruff-format", "mypy", "sqlfluff", "yamllint"} <= set(by_id)
    for hook in by_id.values():
        assert hook["language"] == "system", hook["id"]
        assert hook["entry"].startswith(".venv/bin/"), hook["id"]
    lint = (REPO_ROOT / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "sqlfluff lint models" in lint and "yamllint" in lint and "mypy" in lint
    sqlfluff = (REPO_ROOT / ".sqlfluff").read_text()
    assert "templater = dbt" in sqlfluff and "target = lint" in sqlfluff
    profiles = yaml.safe_load((REPO_ROOT / "profiles.yml").read_text())
    assert profiles["ecommerce_lakehouse"]["outputs"]["lint"] == {
        "type": "duckdb", "path": ":memory:", "schema": "main", "threads": 1,
    }  # fmt: skip


#: what orchestration.dbt_project loads, printed by a fresh interpreter (it parses on import)
LOADED_MANIFEST = """
import json
from orchestration.dbt_project import dbt_project
manifest = json.loads(dbt_project.manifest_path.read_text())
print(json.dumps([str(dbt_project.manifest_path), manifest["metadata"]["adapter_type"]]))
"""


def test_each_target_loads_its_own_manifest(tmp_path: Path) -> None:
    """One checkout used with `athena` (the prod code location, the image's second manifest), then with
    `local`: each loads a manifest of its own adapter. With one shared target/manifest.json, whichever
    target parsed first named the other's assets (kind `athena` on the local dbt assets)."""
    loaded = {}
    for target, adapter in (("athena", "athena"), ("local", "duckdb")):
        settings = Settings(_env_file=None, state_dir=tmp_path / target, dbt_target=target)
        env = child_env(settings, DBT_SEND_ANONYMOUS_USAGE_STATS="false")  # parsing needs no credentials
        result = subprocess.run(
            [sys.executable, "-c", LOADED_MANIFEST],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        path, loaded_adapter = json.loads(result.stdout.strip().splitlines()[-1])
        assert loaded_adapter == adapter, (target, path)
        loaded[target] = Path(path)
    assert loaded["athena"] != loaded["local"]
    assert loaded["local"].parent == REPO_ROOT / "target" / "local"
