"""Static checks of terraform/: it parses, it is documented, and it uses the settings' names.

The ECS task environment and containers of both profiles are *computed from the HCL* (see
hcl_eval.py) and compared with lakehouse.settings and the ECS API model: the plan cannot show them
(they hold values known only after apply), and profile scale is never applied here. The names of
buckets, Glue, DynamoDB, Kinesis and topics are checked on `terraform plan` (test_terraform_plan.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lakehouse.settings import Settings

from .hcl_eval import Module, Scope, attr, dig, evaluate, unknown_resolver
from .support import PROFILES, REPO_ROOT, TERRAFORM_DIR, terraform_files
from .terraform_cli import Plan

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (the containers' listen address, compared as text)
MODULES = ("alerts", "catalog", "compute", "kinesis", "kms", "lake_storage", "network", "sources", "streaming")
#: the AWS provider major version the code is written (and schema-checked, test_provider_schema.py) for
AWS_PROVIDER_CONSTRAINT = ">= 5.100, < 7.0"
ENVIRONMENTS = ("local", "prod")
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
            assert attr(block["required_version"]) == ">= 1.11", path
            assert dig(block, "required_providers", "aws", "version") == AWS_PROVIDER_CONSTRAINT, path


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
        return module, module.scope(inputs, resolver=unknown_resolver())

    def raw_input(self, name: str, argument: str) -> Any:
        return attr(self.root.modules[name][argument])


def _environment(documents: dict[Path, dict[str, Any]], name: str) -> Environment:
    root = _module(documents, f"environments/{name}")
    values: dict[str, Any] = {}
    tfvars = (TERRAFORM_DIR / f"environments/{name}/terraform.tfvars").resolve()
    if tfvars in documents:
        values = {k: attr(v) for k, v in documents[tfvars].items() if not k.startswith("__")}
    return Environment(root, root.scope(values, resolver=unknown_resolver()), documents)


@pytest.fixture(scope="module")
def prod(terraform_documents: dict[Path, dict[str, Any]]) -> Environment:
    return _environment(terraform_documents, "prod")


@pytest.fixture(scope="module")
def prod_settings(prod: Environment) -> Settings:
    return Settings(environment="prod", name_prefix=prod.scope.var("name_prefix"))


def _compute_scope(prod: Environment, profile: str) -> Scope:
    required = {
        "oltp": {"host": "shop-db.example.com", "port": 5432, "database": "shop", "user": "lakehouse"},
        "image_tag": "git-0123abc",
    }
    root = prod.root.scope({**required, **prod.scope.variables, "profile": profile}, resolver=unknown_resolver())
    env = Environment(prod.root, root, prod.documents)
    return env.call("compute")[1]


@pytest.mark.parametrize("profile", ["small", "scale"])
def test_ecs_environment_uses_settings_names(prod: Environment, prod_settings: Settings, profile: str) -> None:
    assert prod.raw_input("compute", "athena_workgroup") == "${module.catalog.athena_workgroup}"
    scope = _compute_scope(prod, profile)
    env = scope.local("lakehouse_env")
    settings_fields = {f"LAKEHOUSE_{name.upper()}" for name in Settings.model_fields}
    publisher_env = scope.local("publisher_env")
    assert (
        set(env) | {k for k in publisher_env if k.startswith("LAKEHOUSE_")}
    ) - settings_fields == PENDING_SETTINGS_ENV
    assert env["LAKEHOUSE_ENVIRONMENT"] == "prod"
    assert env["LAKEHOUSE_NAME_PREFIX"] == prod_settings.name_prefix
    assert env["LAKEHOUSE_DBT_TARGET"] == prod_settings.resolved_dbt_target
    assert env["LAKEHOUSE_CDC_PUBLICATION_AUTOCREATE_MODE"] == "disabled"
    assert env["LAKEHOUSE_CDC_SINK_SERVICE"] == "true"
    assert "LAKEHOUSE_S3_ENDPOINT_URL" not in env, "prod must use the real AWS endpoints"
    if profile == "small":
        assert env["LAKEHOUSE_CDC_TRANSPORT"] == "kinesis"
        assert "LAKEHOUSE_CDC_KINESIS_STREAM" in env and "LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS" not in env
    else:
        assert env["LAKEHOUSE_CDC_TRANSPORT"] == "kafka"
        assert env["LAKEHOUSE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    # Every value is one Settings accepts (a typo in an enum value fails here, not on Fargate).
    values = {k.removeprefix("LAKEHOUSE_").lower(): v for k, v in env.items() if not str(v).startswith("<")}
    Settings(**{k: v for k, v in values.items() if v != ""})
    assert set(
        scope.locals_raw["app_secrets"]
        if isinstance(scope.locals_raw["app_secrets"], dict)
        else scope.local("app_secrets")
    ) == {"LAKEHOUSE_POSTGRES_PASSWORD"}
    secrets = scope.local("publisher_secrets")
    assert set(secrets) == {"LAKEHOUSE_POSTGRES_PASSWORD", "LAKEHOUSE_CDC_OFFSETS_JDBC_PASSWORD"}
    for name in (
        "LAKEHOUSE_POSTGRES_PASSWORD",
        "LAKEHOUSE_AWS_SECRET_ACCESS_KEY",
        "LAKEHOUSE_CDC_OFFSETS_JDBC_PASSWORD",
    ):
        assert name not in env and name not in publisher_env, f"{name} must come from Secrets Manager / the task role"


@pytest.mark.parametrize("profile", ["small", "scale"])
def test_ecs_containers(prod: Environment, profile: str) -> None:
    scope = _compute_scope(prod, profile)
    containers = {c["name"]: c for c in scope.local("service_containers")}
    expected = {"code-location", "webserver", "daemon", "cdc-sink"} | (
        {"cdc-publisher"} if profile == "small" else set()
    )
    assert set(containers) == expected
    # The webserver and the daemon reach the code server inside the task, on loopback.
    assert containers["code-location"]["command"] == [
        "dagster", "code-server", "start", "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", "4000",
    ]  # fmt: skip
    assert scope.local("code_host") == "localhost"
    assert containers["webserver"]["port"] == 3000
    for name in ("webserver", "daemon"):
        assert containers[name]["depends_on"] == [{"containerName": "code-location", "condition": "HEALTHY"}]
    assert containers["cdc-sink"]["command"][:3] == ["python", "-m", "orchestration.cdc_events"]
    if profile == "small":
        assert containers["cdc-publisher"]["command"] == ["lakehouse", "cdc", "publish"]
    # The CKV_AWS_336 skip documents exactly this split.
    readonly = {name: c["readonly_root"] for name, c in containers.items()}
    assert readonly["daemon"] is True and readonly["cdc-sink"] is True
    assert readonly["webserver"] is False and readonly["code-location"] is False
    definitions = scope.local("service_container_definitions")
    for definition in definitions:
        assert definition["restartPolicy"] == {"enabled": True, "restartAttemptPeriod": 60}
        assert definition["privileged"] is False
        mounted = {m["containerPath"] for m in definition["mountPoints"]}
        assert mounted == {"/tmp", "/var/lib/lakehouse", "/home/lakehouse"}, definition["name"]
    run = scope.local("run_container_definitions")[0]
    assert run["name"] == "run"  # EcsRunLauncher's container_name (docker/ecs/dagster.yaml)
    # What ECS will receive is valid for its API (botocore's model of RegisterTaskDefinition): key
    # names, types, nesting of restartPolicy, dependsOn, healthCheck, mountPoints ...
    for family, rendered in (("service", definitions), ("run", [run])):
        _validate_register_task_definition(family, rendered)
    assert scope.local("dagster_home") == "/opt/dagster/ecs"
    assert (REPO_ROOT / "docker" / "ecs" / "dagster.yaml").is_file()


def test_one_always_on_service(prod_plans: dict[str, Plan], prod: Environment) -> None:
    for profile in PROFILES:
        service = prod_plans[profile].one("aws_ecs_service").values
        # never two daemons, two replication-slot readers or two follow-mode sinks
        assert (service["desired_count"], service["deployment_minimum_healthy_percent"]) == (1, 0), profile
        assert service["deployment_maximum_percent"] == 100, profile
    # the run task definition is pinned by ARN with revision (the launcher resolves it once per process)
    module, _ = prod.call("compute")
    assert "aws_ecs_task_definition.run.arn" in str(module.scope().locals_raw["dagster_env"])


def _plain(value: Any) -> Any:
    """Rendered HCL with values known only after apply (Unknown) as strings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if type(value).__name__ == "Unknown" else value


def _validate_register_task_definition(family: str, containers: list[dict[str, Any]]) -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    params = {"family": family, "containerDefinitions": _plain(containers)}
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()
