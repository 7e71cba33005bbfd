"""The ECS task definitions of terraform/modules/compute as Terraform would render them, offline.

Each `aws_ecs_task_definition` resource (with or without `for_each`) is rendered with the HCL evaluator:
its `container_definitions` expression is read from the raw .tf text and evaluated (jsonencode and
all), its volume blocks (static or `dynamic`) expanded. Values Terraform only knows after apply
(ARNs, the RDS address, the ECR URL) become placeholders such as ``<aws_db_instance.dagster.address>``;
the module's inputs are the test values below. tests/containers/test_ecs_roles.py runs the image as
these definitions say; tests/infra/test_docker_configs.py checks them against the Dockerfile.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hcl_eval import HclEvalError, Module, Scope, _Parser, attr, clean, evaluate
from .support import INFRA_VENV, TERRAFORM_DIR

COMPUTE_DIR = TERRAFORM_DIR / "modules" / "compute"
NAME_PREFIX = "ecom-lakehouse-prod"

#: inputs of the compute module (values the prod environment passes from other modules)
COMPUTE_INPUTS: dict[str, Any] = {
    "name_prefix": NAME_PREFIX,
    "aws_region": "us-east-1",
    "image_tag": "test",
    "vpc_id": "vpc-test",
    "private_subnet_ids": ["subnet-a", "subnet-b"],
    "security_group_ids": {"dagster": "sg-dagster"},
    "kms_key_arn": "arn:aws:kms:us-east-1:000000000000:key/test",
    "buckets": {
        "landing": f"{NAME_PREFIX}-landing",
        "lake": f"{NAME_PREFIX}-lake",
        "athena_results": f"{NAME_PREFIX}-athena-results",
        "artifacts": f"{NAME_PREFIX}-artifacts",
    },
    "glue_databases": {layer: f"ecom_lakehouse_prod_{layer}" for layer in ("bronze", "silver", "marts")},
    "athena_workgroup": NAME_PREFIX,
    "dynamodb_table_names": {t: f"{NAME_PREFIX}-{t}" for t in ("carts", "sessions", "reviews")},
    "kafka": {
        "cluster_arn": "arn:aws:kafka:us-east-1:000000000000:cluster/test/x",
        "bootstrap_servers": "boot-test.kafka-serverless.us-east-1.amazonaws.com:9098",
        "topic_arn_prefix": "arn:aws:kafka:us-east-1:000000000000:topic/test/x",
        "group_arn_prefix": "arn:aws:kafka:us-east-1:000000000000:group/test/x",
        "cdc_topic_pattern": "ecom.shop.*",
    },
    "oltp": {"host": "oltp.example.internal", "port": 5432, "user": "lakehouse", "database": "shop"},
    "oltp_secret_arn": "arn:aws:secretsmanager:us-east-1:000000000000:secret:oltp",
    "marketing_api_url": "",
    "alerts_enabled": False,
    # as profile scale and the compose stack: Kafka, MSK Connect publishes (no publisher container)
    "cdc": {
        "transport": "kafka",
        "publisher": False,
        "kinesis_stream_name": "",
        "kinesis_stream_arn": "",
        "kinesis_shards": 1,
        "sink_pace_seconds": 120,
    },
}

_REFERENCE = re.compile(r"\b(data\.)?(aws_[a-z0-9_]+|random_[a-z0-9_]+)\.([a-z0-9_]+)(\[[^\]]+\])?\.([a-z0-9_]+)")


@dataclass(frozen=True)
class TaskDefinition:
    """One container of a rendered task definition, with the task's volumes."""

    key: str  # the for_each key or resource name of a one-container task (run), else the container's name
    container: dict[str, Any]
    volumes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def command(self) -> list[str]:
        return list(self.container["command"])

    @property
    def environment(self) -> dict[str, str]:
        return {e["name"]: e["value"] for e in self.container.get("environment", [])}

    @property
    def secrets(self) -> dict[str, str]:
        return {s["name"]: s["valueFrom"] for s in self.container.get("secrets", [])}

    @property
    def mount_points(self) -> list[dict[str, Any]]:
        return list(self.container.get("mountPoints", []))

    @property
    def read_only_root(self) -> bool:
        return bool(self.container.get("readonlyRootFilesystem", False))

    @property
    def user(self) -> str | None:
        return self.container.get("user")


def parse_compute_module() -> dict[Path, dict[str, Any]]:
    """The compute module's .tf files through the HCL parser of .venv-infra (see tests/infra/conftest.py)."""
    python = INFRA_VENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"{python} is missing: create .venv-infra (make .venv-infra/.synced)")
    files = sorted(COMPUTE_DIR.glob("*.tf"))
    result = subprocess.run(
        [str(python), str(Path(__file__).with_name("_hcl2json.py")), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"HCL parser failed:\n{result.stderr}")
    parsed = json.loads(result.stdout)
    broken = {p: d["error"] for p, d in parsed.items() if not d["ok"]}
    if broken:
        raise RuntimeError(f"unparseable Terraform files: {broken}")
    return {Path(p): d["data"] for p, d in parsed.items()}


def _after_apply_values(text: str) -> dict[str, Any]:
    """Placeholders for every resource/data attribute the module's text references."""
    resources: dict[str, Any] = {}
    for data, rtype, name, index, attribute in _REFERENCE.findall(text):
        root = resources.setdefault("data", {}) if data else resources
        named = root.setdefault(rtype, {})
        placeholder = f"<{data}{rtype}.{name}.{attribute}>"
        if index:
            named.setdefault(name, _AnyKey()).attributes[attribute] = placeholder
        else:
            named.setdefault(name, {})[attribute] = placeholder
    return resources


class _AnyKey(dict):  # type: ignore[type-arg]
    """`aws_iam_role.task[each.key].arn`: the same attributes for every key."""

    def __init__(self) -> None:
        super().__init__()
        self.attributes: dict[str, str] = {}

    def __missing__(self, key: str) -> dict[str, str]:
        return self.attributes


def _raw_attribute(text: str, resource_type: str, name: str, attribute: str) -> str | None:
    """The raw HCL expression of `attribute` inside `resource "type" "name" { ... }` (balanced brackets)."""
    start = re.search(rf'resource\s+"{resource_type}"\s+"{name}"\s*\{{', text)
    if not start:
        return None
    found = re.compile(rf"^\s*{attribute}\s*=\s*", re.M).search(text, start.end())
    if not found:
        return None
    i, depth, quote = found.end(), 0, False
    begin = i
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == '"':
                quote = False
        elif char == '"':
            quote = True
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "\n" and depth == 0:
            break
        i += 1
    return text[begin:i].strip()


def _evaluate_raw(text: str, scope: Scope, env: dict[str, Any]) -> Any:
    parser = _Parser(text)
    node = parser.expression()
    parser.skip_ws()
    if parser.pos != len(text):
        raise HclEvalError(f"trailing text in {text[parser.pos : parser.pos + 80]!r}")
    return node(scope, env)


def _volumes(body: dict[str, Any], scope: Scope, env: dict[str, Any]) -> list[dict[str, Any]]:
    volumes = [{k: evaluate(attr(v), scope, env) for k, v in clean(block).items()} for block in body.get("volume", [])]
    for dynamic in body.get("dynamic", []):
        for label, spec in dynamic.items():
            if label != "volume":
                continue
            collection = evaluate(attr(spec["for_each"]), scope, env)
            items = collection.items() if isinstance(collection, dict) else enumerate(collection)
            iterator = attr(spec.get("iterator", label))
            for key, value in items:
                loop_env = {**env, iterator: {"key": key, "value": value}}
                for content in spec["content"]:
                    volumes.append({k: evaluate(attr(v), scope, loop_env) for k, v in clean(content).items()})
    return volumes


def render_task_definitions(
    documents: dict[Path, dict[str, Any]], inputs: dict[str, Any] | None = None
) -> dict[str, TaskDefinition]:
    """Every task definition of the compute module, keyed by for_each key (or resource name)."""
    module = Module.from_documents(COMPUTE_DIR.resolve(), documents)
    text = "\n".join(p.read_text() for p in sorted(COMPUTE_DIR.glob("*.tf")))
    values = {**COMPUTE_INPUTS, **(inputs or {})}
    for name in module.variables:
        values.setdefault(name, f"<var.{name}>")
    after_apply = _after_apply_values(text)

    def resolve(name: str) -> Any:
        if name not in after_apply:
            raise HclEvalError(f"cannot evaluate reference {name!r}: not a resource or data source of the module")
        return after_apply[name]

    scope = module.scope(values, resolver=resolve)
    rendered: dict[str, TaskDefinition] = {}
    for name, body in module.resources.get("aws_ecs_task_definition", {}).items():
        raw = _raw_attribute(text, "aws_ecs_task_definition", name, "container_definitions")
        if raw is None:
            raise HclEvalError(f"aws_ecs_task_definition.{name} has no container_definitions")
        if "for_each" in body:
            instances = evaluate(attr(body["for_each"]), scope)
            if not isinstance(instances, dict):
                instances = {item: item for item in instances}
        else:
            instances = {name: None}
        for key, value in instances.items():
            env = {"each": {"key": key, "value": value}}
            containers = json.loads(_evaluate_raw(raw, scope, env))
            volumes = _volumes(body, scope, env)
            if len(containers) == 1:
                rendered[str(key)] = TaskDefinition(str(key), containers[0], volumes)
                continue
            # a task of several containers (the always-on service): one entry per container
            for container in containers:
                container_key = str(container["name"]).replace("-", "_")
                if container_key in rendered:
                    raise HclEvalError(f"{name}[{key}]: container {container['name']} is rendered twice")
                rendered[container_key] = TaskDefinition(container_key, container, volumes)
    return rendered
