"""terraform/ against the schema of the pinned AWS provider, from the provider binary itself
(`terraform providers schema -json`; provider_schema.py): nothing deprecated is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .provider_schema import aws_schema, deprecated_in_body, deprecated_uses
from .terraform_cli import Terraform


@pytest.fixture(scope="module")
def schema(terraform: Terraform, pristine_terraform: Path) -> dict[str, Any]:
    # the local environment: same provider, and no backend to configure (prod is init -backend=false)
    return aws_schema(terraform.json(pristine_terraform / "environments" / "local", "providers", "schema", "-json"))


def test_schema_is_the_pinned_providers(schema: dict[str, Any]) -> None:
    # the 5.100 schema: write-only arguments and the ephemeral password generator the modules use
    assert schema["resource_schemas"]["aws_db_instance"]["block"]["attributes"]["password_wo"]["write_only"]
    assert "aws_secretsmanager_random_password" in schema["ephemeral_resource_schemas"]
    assert len(schema["resource_schemas"]) > 1400 and len(schema["data_source_schemas"]) > 500


def test_nothing_deprecated_is_used(terraform_documents: dict[Path, dict[str, Any]], schema: dict[str, Any]) -> None:
    found, checked = deprecated_uses(terraform_documents, schema)
    assert checked > 80, checked
    assert not found, "\n".join(found)


def test_the_check_finds_deprecations(schema: dict[str, Any]) -> None:
    """The checker itself, on what 6.0 removed: `vpc` of an EIP, `log_group_name` of a flow log,
    the inline `lifecycle_rule` block of a bucket (also inside `dynamic`), a deprecated data source."""
    resources = schema["resource_schemas"]
    eip = {"vpc": [True], "domain": ["vpc"], "count": [1]}
    assert deprecated_in_body(eip, resources["aws_eip"]["block"], "e", top=True) == ["e: argument 'vpc' is deprecated"]
    flow = deprecated_in_body({"log_group_name": ["x"]}, resources["aws_flow_log"]["block"], "f")
    assert flow == ["f: argument 'log_group_name' is deprecated"]
    bucket = resources["aws_s3_bucket"]["block"]
    inline = {"bucket": ["b"], "lifecycle_rule": [{"enabled": [True]}]}
    assert deprecated_in_body(inline, bucket, "b") == ["b: block 'lifecycle_rule' is deprecated"]
    dynamic = {"dynamic": [{"lifecycle_rule": {"content": [{"enabled": [True]}]}}]}
    assert deprecated_in_body(dynamic, bucket, "b") == ["b: block 'lifecycle_rule' is deprecated"]
    document = {Path("/x/main.tf"): {"data": [{"aws_s3_bucket_object": {"o": {"bucket": ["b"], "key": ["k"]}}}]}}
    found, checked = deprecated_uses(document, schema)
    assert checked == 1 and found[0] == "/x/main.tf: data.aws_s3_bucket_object.o: the data type is deprecated", found
