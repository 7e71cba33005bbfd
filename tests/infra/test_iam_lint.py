"""Every IAM policy document of terraform/ rendered (iam_render.py) and linted with parliament.

parliament knows each action's resource types and condition keys: a policy naming an action that
does not exist, a resource ARN of the wrong type for an action (which IAM silently never matches),
or a malformed statement is reported here instead of as AccessDenied in production.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .iam_render import PolicyRenderer, Ref, compute_role_policies, kms_key_policy
from .support import REPO_ROOT

#: (module, profile): every module with policies, in the profile where its policies exist
SOURCES = (
    ("compute", "small"),
    ("compute", "scale"),
    ("network", "small"),
    ("lake_storage", "small"),
    ("streaming", "scale"),
)
#: sizes IAM enforces (characters without whitespace); a larger document fails at apply
MANAGED_POLICY_LIMIT = 6144


def _is_trust_policy(policy: dict[str, Any]) -> bool:
    statements = policy["Statement"]
    return all("Principal" in s and str(s.get("Action", "")).startswith("sts:") for s in statements)


@pytest.fixture(scope="module")
def policies(terraform_documents: dict[Path, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    rendered: dict[str, dict[str, Any]] = {}
    for module, profile in SOURCES:
        for name, document in PolicyRenderer(terraform_documents, module, profile).all_documents().items():
            rendered[f"{module}[{profile}]/{name}"] = document
    rendered["kms/key_policy"] = kms_key_policy(terraform_documents)
    return rendered


def _parliament(infra_python: Path, policies: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    result = subprocess.run(
        [str(infra_python), str(Path(__file__).with_name("_parliament.py"))],
        input=json.dumps(policies), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    findings: list[dict[str, str]] = json.loads(result.stdout)
    return findings


def test_every_policy_passes_parliament(infra_python: Path, policies: dict[str, dict[str, Any]]) -> None:
    assert len(policies) >= 25, sorted(policies)
    findings = _parliament(infra_python, policies)
    real = [
        f for f in findings
        # trust policies have principals and no resource, which parliament's identity-policy rules flag
        if not (_is_trust_policy(policies[f["policy"]]) and f["issue"] == "MALFORMED" and "Resource" in f["detail"])
        # in a key policy, "Resource": "*" means this key (the only resource a key policy can name)
        and not (f["policy"] == "kms/key_policy" and f["issue"] == "RESOURCE_STAR")
    ]  # fmt: skip
    assert not real, "\n".join(f"{f['policy']}: {f['issue']} {f['detail']}" for f in real)


def test_parliament_reports_broken_policies(infra_python: Path) -> None:
    """The lint itself: a made-up action and a resource of the wrong type are found."""
    broken = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObjectz", "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b/*"},
        ],
    }
    issues = {f["issue"] for f in _parliament(infra_python, {"broken": broken})}
    assert {"UNKNOWN_ACTION", "RESOURCE_MISMATCH"} <= issues, issues


def test_capability_policies_fit_managed_policy_size(policies: dict[str, dict[str, Any]]) -> None:
    for name, policy in policies.items():
        size = len("".join(json.dumps(policy).split()))
        assert size < MANAGED_POLICY_LIMIT, f"{name}: {size} characters (IAM limit {MANAGED_POLICY_LIMIT})"


def test_rendered_documents_hold_no_unresolved_values(policies: dict[str, dict[str, Any]]) -> None:
    text = json.dumps(policies)
    assert "<" not in text, [name for name, p in policies.items() if "<" in json.dumps(p)]
    assert Ref  # realistic stand-ins are used for values known after apply


#: code that calls AWS APIs outside S3 => (service, the task roles that run it, calls made only
#: where they are not needed in AWS). The emulator cannot scope these services by resource
#: (test_iam_least_privilege.py), so the calls are read from the code and checked here: a call the
#: roles do not allow fails in AWS only (e.g. the DynamoDB loader's DescribeTimeToLive once was).
AWS_CALLERS = {
    "ingestion/dlt_sources/dynamodb.py": ("dynamodb", ("run",), set()),
    "ingestion/cdc/kinesis_transport.py": ("kinesis", ("run", "service"), set()),
    # create_stream: only when the stream is missing (locally); in AWS Terraform creates it
    "ingestion/cdc/publisher.py": ("kinesis", ("service",), {"create_stream"}),
}
_CALL = re.compile(r"\bclient\.([a-z_]+)\b(?=\()|\bclient\.([a-z_]+)\b(?=,)")


def aws_calls(path: Path) -> set[str]:
    """The client methods a module calls (`client.x(` or `client.x` passed on, e.g. to a scan pool)."""
    found = {a or b for a, b in _CALL.findall(path.read_text())}
    return found - {"exceptions", "get_paginator"}


def _allows(documents: list[dict[str, Any]], action: str) -> bool:
    for document in documents:
        for statement in document["Statement"]:
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if statement["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action, a) for a in actions):
                return True
    return False


@pytest.mark.parametrize("caller", sorted(AWS_CALLERS))
def test_task_roles_allow_every_call_the_code_makes(
    terraform_documents: dict[Path, dict[str, Any]], caller: str
) -> None:
    service, roles, local_only = AWS_CALLERS[caller]
    calls = aws_calls(REPO_ROOT / caller) - local_only
    assert calls, f"no {service} calls found in {caller}: the pattern no longer matches the code"
    policies = compute_role_policies(terraform_documents, "small")  # small: CDC through Kinesis
    for role in roles:
        missing = sorted(
            action
            for action in (f"{service}:{''.join(p.title() for p in call.split('_'))}" for call in calls)
            if not _allows(policies[role], action)
        )
        assert not missing, f"role {role} lacks {missing}, which {caller} calls"


def test_the_call_check_sees_a_missing_action() -> None:
    documents = [{"Statement": [{"Effect": "Allow", "Action": ["dynamodb:Scan", "kinesis:Get*"]}]}]
    assert _allows(documents, "dynamodb:Scan") and _allows(documents, "kinesis:GetRecords")
    assert not _allows(documents, "dynamodb:DescribeTimeToLive")
    assert {"describe_time_to_live", "batch_get_item", "scan"} <= aws_calls(
        REPO_ROOT / "ingestion/dlt_sources/dynamodb.py"
    )
