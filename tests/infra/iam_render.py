"""Render the IAM policy documents of terraform/ to JSON, as the AWS provider would.

`aws_iam_policy_document` data sources are evaluated with the HCL evaluator (hcl_eval.py) for a
profile of the prod environment. Values known only after apply get realistic stand-ins (account
123456789012 — moto's default —, ARNs in each service's format, names from lakehouse.settings), so
the documents can be linted (parliament) and loaded into the IAM-enforcing emulator.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.settings import DYNAMODB_TABLES, Settings

from .hcl_eval import HclEvalError, Module, Scope, attr, evaluate
from .support import TERRAFORM_DIR

ACCOUNT = "123456789012"
REGION = "us-east-1"
REQUIRED_ROOT = {
    "oltp": {"host": "shop-db.example.com", "port": 5432, "database": "shop", "user": "lakehouse"},
    "image_tag": "git-0123abc",
}


def _arn(service: str, resource: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


#: ARN formats by resource type, from the resource's `name` (what AWS builds the ARN from)
_ARN_BY_NAME = {
    "aws_cloudwatch_log_group": lambda name: _arn("logs", f"log-group:{name}"),
    "aws_iam_role": lambda name: f"arn:aws:iam::{ACCOUNT}:role/{name}",
    "aws_iam_policy": lambda name: f"arn:aws:iam::{ACCOUNT}:policy/{name}",
    "aws_ecr_repository": lambda name: _arn("ecr", f"repository/{name}"),
    "aws_secretsmanager_secret": lambda name: _arn("secretsmanager", f"secret:{name}-{SECRET_SUFFIX}"),
    "aws_kinesis_stream": lambda name: _arn("kinesis", f"stream/{name}"),
}
#: the values AWS makes up at creation (compare rendered and applied documents with normalize_ids)
KMS_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
EMR_APPLICATION_ID = "00fexampleapp"
SECRET_SUFFIX = "AbCdEf"


def normalize_ids(text: str) -> str:
    """Replace the identifiers AWS generates (KMS key id, EMR application id, the random suffix of
    a secret's ARN) by the stand-ins this renderer uses, so documents compare by everything else."""
    text = re.sub(r"(:key/)[0-9a-f-]{36}", rf"\g<1>{KMS_KEY_ID}", text)
    text = re.sub(r"(/applications/)[0-9a-z]+", rf"\g<1>{EMR_APPLICATION_ID}", text)
    return re.sub(r"(:secret:[^\"]+?)-[A-Za-z0-9]{6}(?=[\":*]|$)", rf"\g<1>-{SECRET_SUFFIX}", text)


def canonical_policy(document: dict[str, Any] | str) -> dict[str, Any]:
    """A policy document as IAM compares it: generated ids normalized, lists as sorted lists (the
    provider writes action and resource sets in its own order), single values as lists."""
    parsed = json.loads(normalize_ids(document if isinstance(document, str) else json.dumps(document)))

    def values(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: values(v) for k, v in value.items()}
        return sorted(value) if isinstance(value, list) else [value]

    statements = [
        {key: (value if key in ("Sid", "Effect") else values(value)) for key, value in statement.items()}
        for statement in parsed["Statement"]
    ]
    return {"Version": parsed["Version"], "Statement": statements}


@dataclass(frozen=True)
class Ref:
    """A resource attribute known after apply, with a realistic value for the attributes policies
    use: ARNs built from the resource's own `name` argument (evaluated like Terraform would), in the
    format AWS gives them."""

    settings: Settings
    path: tuple[str, ...]
    name: str | None = None  # the resource's `name` argument, when it has one

    def hcl_attr(self, attribute: str) -> Any:
        rtype = self.path[0]
        label = "-".join(str(p) for p in self.path[1:]).replace("_", "-")
        prefix = self.settings.name_prefix
        name = self.name or f"{prefix}-{label}"
        if attribute == "arn":
            if rtype in _ARN_BY_NAME:
                return _ARN_BY_NAME[rtype](name)
            if rtype == "aws_s3_bucket":
                bucket = self.path[-1] if len(self.path) > 2 else "s3-access-logs"
                return f"arn:aws:s3:::{prefix}-{str(bucket).replace('_', '-')}"
            others = {
                "aws_emrserverless_application": _arn("emr-serverless", f"/applications/{EMR_APPLICATION_ID}"),
                "aws_msk_serverless_cluster": _arn("kafka", f"cluster/{prefix}/abcd-1234"),
                "aws_kms_key": _arn("kms", f"key/{KMS_KEY_ID}"),
                "aws_ecs_task_definition": _arn("ecs", f"task-definition/{name}:1"),
            }
            return others.get(rtype, _arn(rtype.removeprefix("aws_"), label))
        if attribute in ("name", "id", "address"):
            return name
        return Ref(self.settings, (*self.path, attribute))

    def hcl_index(self, key: Any) -> Ref:
        return Ref(self.settings, (*self.path, key))

    def __str__(self) -> str:
        return "<" + ".".join(map(str, self.path)) + ">"


def module_outputs(settings: Settings) -> dict[str, Any]:
    """What the other modules of the prod environment output, named as lakehouse.settings names them."""
    buckets = {"landing": settings.landing_bucket, "lake": settings.lake_bucket,
               "athena_results": settings.athena_results_bucket, "artifacts": settings.artifacts_bucket}  # fmt: skip
    kms = _arn("kms", f"key/{KMS_KEY_ID}")
    cluster = _arn("kafka", f"cluster/{settings.name_prefix}/abcd-1234")
    return {
        "kms": {"key_arn": kms},
        "network": {
            "vpc_id": "vpc-0example",
            "private_subnet_ids": ["subnet-a", "subnet-b"],
            "task_subnet_ids": ["subnet-c", "subnet-d"],
            "tasks_need_public_ip": True,
            "security_group_ids": {k: f"sg-{k}" for k in ("dagster", "database", "kafka", "connect", "spark")},
        },
        "lake_storage": {
            "bucket_names": buckets,
            "bucket_arns": {k: f"arn:aws:s3:::{v}" for k, v in buckets.items()},
            "lake_bucket": settings.lake_bucket,
            "athena_results_bucket": settings.athena_results_bucket,
        },
        "catalog": {"glue_databases": settings.glue_databases, "athena_workgroup": settings.athena_workgroup_name},
        "sources": {
            "dynamodb_table_names": {t: settings.dynamodb_table(t) for t in DYNAMODB_TABLES},
            "oltp_secret_arn": _arn("secretsmanager", f"secret:{settings.name_prefix}/oltp-source-{SECRET_SUFFIX}"),
            "oltp_secret_name": f"{settings.name_prefix}/oltp-source",
        },
        "alerts": {
            "topic_arn": _arn("sns", f"{settings.name_prefix}-alerts"),
            "topic_name": f"{settings.name_prefix}-alerts",
        },
        "kinesis": [
            {
                "stream_name": settings.kinesis_stream,
                "stream_arn": _arn("kinesis", f"stream/{settings.kinesis_stream}"),
            }
        ],
        "streaming": [
            {
                "cluster_arn": cluster,
                "bootstrap_brokers": "boot.example:9098",
                "topic_arn_prefix": cluster.replace(":cluster/", ":topic/"),
                "group_arn_prefix": cluster.replace(":cluster/", ":group/"),
            }
        ],
    }


class _Data:
    """`data.<type>.<name>...`: caller identity, partition, and rendered policy documents."""

    def __init__(self, renderer: PolicyRenderer) -> None:
        self.renderer = renderer

    def hcl_attr(self, dtype: str) -> Any:
        renderer = self.renderer

        class _Named:
            def hcl_attr(self, name: str) -> Any:
                if dtype == "aws_caller_identity":
                    return {"account_id": ACCOUNT}
                if dtype == "aws_partition":
                    return {"partition": "aws"}
                if dtype == "aws_iam_policy_document":
                    return _Document(renderer, name, None)
                return Ref(renderer.settings, (f"data.{dtype}", name))

        return _Named()


@dataclass
class _Document:
    renderer: PolicyRenderer
    name: str
    key: Any

    def hcl_index(self, key: Any) -> _Document:
        return _Document(self.renderer, self.name, key)

    def hcl_attr(self, attribute: str) -> Any:
        if attribute != "json":
            raise KeyError(attribute)
        return json.dumps(self.renderer.document(self.name, self.key))


class PolicyRenderer:
    """The policy documents of one module instance of the prod environment."""

    def __init__(self, documents: dict[Path, dict[str, Any]], module: str, profile: str = "small") -> None:
        self.settings = Settings(environment="prod", name_prefix="ecom-lakehouse-prod")
        root = Module.from_documents((TERRAFORM_DIR / "environments/prod").resolve(), documents)
        outputs = module_outputs(self.settings)
        root_scope = root.scope({**REQUIRED_ROOT, "profile": profile}, resolver=self._resolver(outputs))
        self.module = Module.from_documents(root.module_source(module), documents)
        self.scope = self.module.scope(root.module_inputs(module, root_scope), resolver=self._resolver({}))

    def _resolver(self, outputs: dict[str, Any]) -> Any:
        def resolve(name: str) -> Any:
            if name == "module":
                return outputs
            if name == "data":
                return _Data(self)
            module = getattr(self, "module", None)
            if module is not None and name in module.resources:
                return _Instances(self, name)
            return Ref(self.settings, (name,))

        return resolve

    def names(self) -> list[tuple[str, Any]]:
        """(data source name, for_each key or None) of every policy document of the module."""
        found: list[tuple[str, Any]] = []
        for name, body in self.module.data.get("aws_iam_policy_document", {}).items():
            if "for_each" in body:
                found += [(name, key) for key in _keys(evaluate(attr(body["for_each"]), self.scope))]
            else:
                found.append((name, None))
        return found

    def document(self, name: str, key: Any = None) -> dict[str, Any]:
        body = self.module.data["aws_iam_policy_document"][name]
        env = {} if key is None else {"each": {"key": key, "value": key}}
        statements: list[dict[str, Any]] = []
        for source in evaluate(attr(body.get("source_policy_documents", [[]])), self.scope, env) or []:
            statements += json.loads(source)["Statement"]
        for raw in body.get("statement", []):
            statements.append(_statement(raw, self.scope, env))
        for dynamic in body.get("dynamic", []):
            spec = dynamic.get("statement")
            if spec is None:
                continue
            for value in _values(evaluate(attr(spec["for_each"]), self.scope, env)):
                loop_env = {**env, "statement": {"key": value, "value": value}}
                for content in spec["content"]:
                    statements.append(_statement(content, self.scope, loop_env))
        return {"Version": "2012-10-17", "Statement": statements}

    def all_documents(self) -> dict[str, dict[str, Any]]:
        return {name if key is None else f"{name}[{key}]": self.document(name, key) for name, key in self.names()}


@dataclass
class _Instances:
    """`aws_<type>` of this module: each named resource, a map of instances when it has for_each."""

    renderer: PolicyRenderer
    rtype: str

    def hcl_attr(self, name: str) -> Any:
        body = self.renderer.module.resources[self.rtype][name]
        if "for_each" in body:
            collection = evaluate(attr(body["for_each"]), self.renderer.scope)
            return {key: self._ref(body, name, key, _value(collection, key)) for key in _keys(collection)}
        return self._ref(body, name)

    def _ref(self, body: dict[str, Any], name: str, *each: Any) -> Ref:
        path = (self.rtype, name, *each[:1])
        env = {"each": {"key": each[0], "value": each[1]}} if each else {}
        try:
            own_name = str(evaluate(attr(body["name"]), self.renderer.scope, env)) if "name" in body else None
        except HclEvalError:
            own_name = None
        return Ref(self.renderer.settings, path, own_name)


def _value(collection: Any, key: Any) -> Any:
    return collection[key] if isinstance(collection, dict) else key


def _keys(collection: Any) -> list[Any]:
    return sorted(collection) if isinstance(collection, (dict, list, set)) else []


def _values(collection: Any) -> list[Any]:
    return list(collection.values()) if isinstance(collection, dict) else list(collection)


def _collapse(values: list[str]) -> str | list[str]:
    """The provider writes a one-element list as a plain string (as AWS echoes it back)."""
    return values[0] if len(values) == 1 else values


def _statement(raw: dict[str, Any], scope: Scope, env: dict[str, Any]) -> dict[str, Any]:
    def value(key: str) -> Any:
        return evaluate(attr(raw[key]), scope, env) if key in raw else None

    statement: dict[str, Any] = {}
    if value("sid"):
        statement["Sid"] = value("sid")
    statement["Effect"] = value("effect") or "Allow"
    for key, name in (("actions", "Action"), ("not_actions", "NotAction"), ("resources", "Resource"),
                      ("not_resources", "NotResource")):  # fmt: skip
        if key in raw:
            statement[name] = _collapse([str(v) for v in value(key)])
    for block, name in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
        for principal in raw.get(block, []):
            kind = evaluate(attr(principal["type"]), scope, env)
            identifiers = [str(v) for v in evaluate(attr(principal["identifiers"]), scope, env)]
            statement.setdefault(name, {})[kind] = _collapse(identifiers) if kind != "*" else "*"
    if statement.get("Principal") == {"*": "*"}:
        statement["Principal"] = "*"
    for condition in raw.get("condition", []):
        test = evaluate(attr(condition["test"]), scope, env)
        variable = evaluate(attr(condition["variable"]), scope, env)
        values = [str(v) for v in evaluate(attr(condition["values"]), scope, env)]
        statement.setdefault("Condition", {}).setdefault(test, {})[variable] = _collapse(values)
    return statement


def compute_role_policies(
    documents: dict[Path, dict[str, Any]], profile: str = "small"
) -> dict[str, list[dict[str, Any]]]:
    """Task role => the policy documents Terraform attaches to it (compute module, iam.tf)."""
    renderer = PolicyRenderer(documents, "compute", profile)
    roles = renderer.scope.local("role_policies")
    data_names = {
        "dagster-instance": "dagster_instance", "operate-runs": "operate_runs", "ecs-exec": "ecs_exec",
        "sensors": "sensors", "cdc-read": "cdc_read", "cdc-sink": "cdc_sink", "cdc-publish": "cdc_publish",
        "run-data": "run_data", "run-emr": "run_emr", "maintain-bronze-cdc": "maintain_bronze_cdc",
        "publish-alerts": "publish_alerts",
    }  # fmt: skip
    return {role: [renderer.document(data_names[name]) for name in names] for role, names in roles.items()}


def kms_key_policy(documents: dict[Path, dict[str, Any]]) -> dict[str, Any]:
    """The key policy of modules/kms (a jsonencode() of an object literal), for the prod names."""
    kms = Module.from_documents((TERRAFORM_DIR / "modules/kms").resolve(), documents)
    renderer = PolicyRenderer(documents, "kms")
    scope = kms.scope({"name_prefix": "ecom-lakehouse-prod", "aws_region": REGION}, resolver=renderer.scope.resolver)
    policy: dict[str, Any] = json.loads(evaluate(attr(kms.resources["aws_kms_key"]["this"]["policy"]), scope))
    return policy
