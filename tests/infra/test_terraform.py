"""Static checks of terraform/: it parses, it is documented, and it uses the settings' names.

"One set of names": bucket, Glue, Athena, DynamoDB, topic and Delta-location names are *computed
from the HCL* (see hcl_eval.py) and compared with lakehouse.settings, so renaming a resource in
Terraform (or a rule in settings.py) fails here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lakehouse.settings import DYNAMODB_TABLES, OLTP_TABLES, Settings

from .hcl_eval import Module, Scope, attr, dig, evaluate
from .support import REPO_ROOT, TERRAFORM_DIR, terraform_files

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (the containers' listen address, compared as text)
MODULES = ("catalog", "compute", "kms", "lake_storage", "network", "sources", "streaming")
ENVIRONMENTS = ("local", "prod")
# Buckets Terraform creates that the application never uses (not in Settings.buckets).
INFRA_ONLY_BUCKET_SUFFIXES = ("-s3-access-logs",)
# LAKEHOUSE_* variables passed to ECS before lakehouse.settings grows the matching fields.
PENDING_SETTINGS_ENV: set[str] = set()


# ---------------------------------------------------------------------------- parsing and layout
def test_every_tf_file_parses(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    tf_files = [p for p in terraform_files() if p.suffix == ".tf"]
    assert len(tf_files) >= 30
    broken = {str(p.relative_to(REPO_ROOT)): d.get("error") for p, d in parsed_terraform.items() if not d["ok"]}
    assert not broken, broken
    assert all(parsed_terraform[p]["data"] for p in tf_files), "a .tf file parsed to nothing"


@pytest.mark.parametrize("directory", [f"modules/{m}" for m in MODULES] + [f"environments/{e}" for e in ENVIRONMENTS])
def test_directory_layout(directory: str) -> None:
    path = TERRAFORM_DIR / directory
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        assert (path / name).is_file(), f"{directory}/{name} missing"
    if directory.startswith("modules/"):
        readme = path / "README.md"
        assert readme.is_file() and len(readme.read_text()) > 300, f"{directory}/README.md missing or empty"
    assert (TERRAFORM_DIR / "README.md").is_file()


def _module(documents: dict[Path, dict[str, Any]], relative: str) -> Module:
    return Module.from_documents((TERRAFORM_DIR / relative).resolve(), documents)


@pytest.mark.parametrize("directory", [f"modules/{m}" for m in MODULES] + [f"environments/{e}" for e in ENVIRONMENTS])
def test_variables_and_outputs_are_documented(terraform_documents: dict[Path, dict[str, Any]], directory: str) -> None:
    module = _module(terraform_documents, directory)
    assert module.variables, f"{directory} declares no variables"
    for name, body in module.variables.items():
        assert str(attr(body.get("description", ""))).strip(), f"{directory}: variable {name} has no description"
        assert "type" in body, f"{directory}: variable {name} has no type"
    for name, body in module.outputs.items():
        assert str(attr(body.get("description", ""))).strip(), f"{directory}: output {name} has no description"


def test_versions_are_pinned(terraform_documents: dict[Path, dict[str, Any]]) -> None:
    for path, doc in terraform_documents.items():
        for block in doc.get("terraform", []):
            assert attr(block["required_version"]) == ">= 1.10", path
            assert dig(block, "required_providers", "aws", "version") == ">= 5.80, < 7.0", path


def test_prod_state_backend_is_s3_with_locking(terraform_documents: dict[Path, dict[str, Any]]) -> None:
    versions = terraform_documents[(TERRAFORM_DIR / "environments/prod/versions.tf").resolve()]
    backend = dig(versions, "terraform", "backend")
    assert list(backend) == ["s3"]
    assert dig(backend, "s3", "use_lockfile") is True
    assert dig(backend, "s3", "encrypt") is True
    assert (TERRAFORM_DIR / "environments/prod/backend.hcl.example").is_file()


def test_local_provider_targets_the_emulator(terraform_documents: dict[Path, dict[str, Any]]) -> None:
    local = _module(terraform_documents, "environments/local")
    versions = terraform_documents[(TERRAFORM_DIR / "environments/local/versions.tf").resolve()]
    provider = versions["provider"][0]["aws"]
    assert attr(provider["skip_credentials_validation"]) is True
    assert attr(provider["skip_requesting_account_id"]) is True
    assert attr(provider["s3_use_path_style"]) is True
    for service in ("s3", "dynamodb", "glue", "sts", "kms"):
        assert dig(provider, "endpoints", service) == "${var.endpoint}", service
    settings = Settings(environment="local")
    assert evaluate("${var.endpoint}", local.scope()).replace("localhost", settings.host) == settings.s3_endpoint


def test_checkov_skips_have_reasons() -> None:
    pattern = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")
    found = 0
    for path in [*TERRAFORM_DIR.rglob("*.tf"), REPO_ROOT / "docker" / "Dockerfile"]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = pattern.search(line)
            if match:
                found += 1
                assert re.fullmatch(r"CKV2?_[A-Z]+_\d+", match.group(1)), f"{path}:{number}"
                assert match.group(2) and len(match.group(2).strip()) >= 20, f"{path}:{number}: skip without a reason"
    assert found, "expected the documented checkov skips"


# ---------------------------------------------------------------------------- one set of names
@dataclass
class Environment:
    """An environment root with its module calls, evaluated like Terraform would (for names)."""

    root: Module
    scope: Scope
    documents: dict[Path, dict[str, Any]]

    def call(self, name: str, **overrides: Any) -> tuple[Module, Scope]:
        module = Module.from_documents(self.root.module_source(name), self.documents)
        inputs: dict[str, Any] = dict(self.root.module_inputs(name, self.scope))
        inputs.update(overrides)
        return module, module.scope(inputs)

    def raw_input(self, name: str, argument: str) -> Any:
        return attr(self.root.modules[name][argument])


def _environment(documents: dict[Path, dict[str, Any]], name: str) -> Environment:
    root = _module(documents, f"environments/{name}")
    values: dict[str, Any] = {}
    tfvars = (TERRAFORM_DIR / f"environments/{name}/terraform.tfvars").resolve()
    if tfvars in documents:
        values = {k: attr(v) for k, v in documents[tfvars].items() if not k.startswith("__")}
    return Environment(root, root.scope(values), documents)


@pytest.fixture(scope="module")
def prod(terraform_documents: dict[Path, dict[str, Any]]) -> Environment:
    return _environment(terraform_documents, "prod")


@pytest.fixture(scope="module")
def local_env(terraform_documents: dict[Path, dict[str, Any]]) -> Environment:
    return _environment(terraform_documents, "local")


@pytest.fixture(scope="module")
def prod_settings(prod: Environment) -> Settings:
    return Settings(environment="prod", name_prefix=prod.scope.var("name_prefix"))


def test_prod_name_prefix(prod: Environment, prod_settings: Settings) -> None:
    assert prod.scope.var("name_prefix") == "ecom-lakehouse-prod"
    assert prod_settings.name_prefix == prod.scope.var("name_prefix")


def _check_buckets(env: Environment, settings: Settings) -> None:
    module, scope = env.call("lake_storage")
    assert scope.local("landing_bucket") == settings.landing_bucket
    assert scope.local("lake_bucket") == settings.lake_bucket
    assert scope.local("athena_results_bucket") == settings.athena_results_bucket
    assert scope.local("artifacts_bucket") == settings.artifacts_bucket
    # The bucket resource really uses those names ...
    bucket = module.resources["aws_s3_bucket"]["this"]
    assert attr(bucket["for_each"]) == "${local.buckets}"
    assert attr(bucket["bucket"]) == "${each.value}"
    assert sorted(scope.local("buckets").values()) == sorted(settings.buckets)
    # ... and so does every other bucket resource.
    access_logs = module.resources["aws_s3_bucket"]["access_logs"]
    assert attr(access_logs["bucket"]) == "${local.access_logs_bucket}"
    assert scope.local("access_logs_bucket").endswith(INFRA_ONLY_BUCKET_SUFFIXES)
    assert set(module.resources["aws_s3_bucket"]) == {"this", "access_logs"}
    # Outputs point at the right logical buckets.
    for output in ("landing", "lake", "athena_results", "artifacts"):
        assert attr(module.outputs[f"{output}_bucket"]["value"]) == f'${{aws_s3_bucket.this["{output}"].id}}'


def test_prod_buckets_match_settings(prod: Environment, prod_settings: Settings) -> None:
    _check_buckets(prod, prod_settings)


def test_local_buckets_match_settings(local_env: Environment) -> None:
    settings = Settings(environment="local", name_prefix=local_env.scope.var("name_prefix"))
    assert settings.name_prefix == Settings(environment="local").name_prefix  # settings default
    _check_buckets(local_env, settings)


def _check_catalog(env: Environment, settings: Settings) -> None:
    assert env.raw_input("catalog", "lake_bucket") == "${module.lake_storage.lake_bucket}"
    module, scope = env.call("catalog", lake_bucket=settings.lake_bucket)
    assert scope.local("glue_databases") == settings.glue_databases
    assert scope.local("athena_workgroup") == settings.athena_workgroup_name
    databases = module.resources["aws_glue_catalog_database"]["this"]
    assert attr(databases["for_each"]) == "${local.glue_databases}"
    assert attr(databases["name"]) == "${each.value}"
    assert attr(module.resources["aws_athena_workgroup"]["this"]["name"]) == "${local.athena_workgroup}"

    bronze = scope.var("bronze_tables")
    assert bronze["cdc"] == list(OLTP_TABLES)
    assert sorted(bronze["dynamodb"]) == sorted(DYNAMODB_TABLES)
    assert bronze["landing"] == ["clickstream", "partner_feeds"]
    assert bronze["marketing"] == ["campaigns", "ad_spend"]
    assert scope.var("silver_tables") == list(OLTP_TABLES)
    history = scope.var("silver_history_tables")
    assert set(history) <= set(OLTP_TABLES)

    expected = {
        **{f"bronze.{src}_{t}": settings.lake_uri("bronze", src, t) for src, tables in bronze.items() for t in tables},
        **{f"silver.{t}": settings.lake_uri("silver", t) for t in OLTP_TABLES},
        **{f"silver.{t}_history": settings.lake_uri("silver", f"{t}_history") for t in history},
    }
    tables = scope.local("delta_tables")
    assert {key: table["location"] for key, table in tables.items()} == expected
    assert scope.local("layer_locations")["marts"] == settings.lake_uri("marts") + "/"

    delta = module.resources["aws_glue_catalog_table"]["delta"]
    assert attr(delta["for_each"]) == "${local.delta_tables}"
    assert attr(delta["table_type"]) == "EXTERNAL_TABLE"
    params = dig(delta, "parameters")
    assert params["table_type"] == "DELTA"
    assert params["spark.sql.sources.provider"] == "delta"
    assert dig(delta, "storage_descriptor", "location") == "${each.value.location}"


def test_prod_catalog_matches_settings(prod: Environment, prod_settings: Settings) -> None:
    _check_catalog(prod, prod_settings)


def test_local_catalog_matches_settings(local_env: Environment) -> None:
    _check_catalog(local_env, Settings(environment="local", name_prefix=local_env.scope.var("name_prefix")))


def test_athena_workgroup_guards(prod: Environment) -> None:
    module, scope = prod.call("catalog", lake_bucket="x", athena_results_bucket="results", kms_key_arn="arn:key")
    config = dig(module.resources["aws_athena_workgroup"]["this"], "configuration")
    assert dig(config, "enforce_workgroup_configuration") is True
    assert dig(config, "bytes_scanned_cutoff_per_query") == "${var.bytes_scanned_cutoff_per_query}"
    assert scope.var("bytes_scanned_cutoff_per_query") >= 10 * 1024 * 1024
    assert evaluate(dig(config, "result_configuration", "output_location"), scope) == "s3://results/output/"
    assert dig(config, "result_configuration", "encryption_configuration", "encryption_option") == "SSE_KMS"


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_dynamodb_tables_match_settings(terraform_documents: dict[Path, dict[str, Any]], env_name: str) -> None:
    env = _environment(terraform_documents, env_name)
    settings = Settings(environment="prod" if env_name == "prod" else "local", name_prefix=env.scope.var("name_prefix"))
    module, scope = env.call("sources")
    assert scope.local("dynamodb_table_names") == {t: settings.dynamodb_table(t) for t in DYNAMODB_TABLES}
    assert scope.var("dynamodb_tables") == {
        "carts": "cart_id",
        "sessions": "session_id",
        "reviews": "review_id",
    }
    table = module.resources["aws_dynamodb_table"]["this"]
    assert attr(table["name"]) == "${local.dynamodb_table_names[each.key]}"
    assert dig(table, "attribute", "type") == "S"


def test_cdc_topics_match_settings(prod: Environment, prod_settings: Settings) -> None:
    _, scope = prod.call("streaming")
    assert scope.local("cdc_topics") == {t: prod_settings.cdc_topic(t) for t in OLTP_TABLES}
    assert scope.var("oltp_tables") == list(OLTP_TABLES)
    assert scope.local("table_include_list") == ",".join(f"{prod_settings.oltp_schema}.{t}" for t in OLTP_TABLES)
    raw = scope.locals_raw["connector_configuration"]
    naming = {
        "topic.prefix": prod_settings.cdc_topic_prefix,
        "slot.name": prod_settings.cdc_slot_name,
        "publication.name": prod_settings.cdc_publication_name,
        "table.include.list": scope.local("table_include_list"),
    }
    for key, expected in naming.items():
        assert evaluate(raw[key], scope) == expected, key
    # The source database and user default to the settings' values (optional() defaults of var.oltp).
    oltp_type = str(attr(prod.root.variables["oltp"]["type"]))
    assert f'optional(string,"{prod_settings.postgres_db}")' in oltp_type.replace(" ", "")
    assert f'optional(string,"{prod_settings.postgres_user}")' in oltp_type.replace(" ", "")


def test_ecs_environment_uses_settings_names(prod: Environment, prod_settings: Settings) -> None:
    assert prod.raw_input("compute", "athena_workgroup") == "${module.catalog.athena_workgroup}"
    _, scope = prod.call("compute")
    raw_env = scope.locals_raw["lakehouse_env"]
    settings_fields = {f"LAKEHOUSE_{name.upper()}" for name in Settings.model_fields}
    assert set(raw_env) - settings_fields == PENDING_SETTINGS_ENV
    assert evaluate(raw_env["LAKEHOUSE_ENVIRONMENT"], scope) == "prod"
    assert evaluate(raw_env["LAKEHOUSE_NAME_PREFIX"], scope) == prod_settings.name_prefix
    assert evaluate(raw_env["LAKEHOUSE_DBT_TARGET"], scope) == prod_settings.resolved_dbt_target
    assert raw_env["LAKEHOUSE_ATHENA_WORKGROUP"] == "${var.athena_workgroup}"
    assert "LAKEHOUSE_S3_ENDPOINT_URL" not in raw_env, "prod must use the real AWS endpoints"
    secrets = scope.locals_raw["app_secrets"]
    assert set(secrets) == {"LAKEHOUSE_POSTGRES_PASSWORD"}
    for name in ("LAKEHOUSE_POSTGRES_PASSWORD", "LAKEHOUSE_AWS_SECRET_ACCESS_KEY"):
        assert name not in raw_env, f"{name} must come from Secrets Manager / the task role"


def test_ecs_containers(prod: Environment) -> None:
    _, scope = prod.call("compute")
    containers = scope.local("containers")
    assert set(containers) == {"webserver", "daemon", "code_location", "run"}
    assert containers["run"]["name"] == "run"  # EcsRunLauncher's container_name (docker/ecs/dagster.yaml)
    assert containers["code_location"]["command"] == [
        "dagster",
        "code-server",
        "start",
        "-m",
        "orchestration.definitions",
        "-h",
        ALL_INTERFACES,
        "-p",
        "4000",
    ]
    assert containers["webserver"]["port"] == 3000 and containers["code_location"]["port"] == 4000
    # The CKV_AWS_336 skip documents exactly this split.
    assert {k: c["readonly_root"] for k, c in containers.items()} == {
        "webserver": False,
        "daemon": True,
        "code_location": False,
        "run": False,
    }
    assert scope.local("dagster_home") == "/opt/dagster/ecs"
    assert (REPO_ROOT / "docker" / "ecs" / "dagster.yaml").is_file()
    services = scope.local("services")
    assert set(services) == {"webserver", "daemon", "code_location"}
    assert services["daemon"]["max_percent"] == 100  # never two daemons
