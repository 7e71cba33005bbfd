"""`terraform apply` of environments/prod (profile small) to the session stack's emulator, the
resources as the emulator then holds them, and `terraform destroy`.

What is applied and what stays plan-only, with the reason, is in terraform_cli.py (NOT_APPLIED:
what moto cannot create, with its exact error; PLAN_ONLY_FOR_TIME: what moto creates but the
provider's waiters make slow). The checks read the resources back through the AWS API, not from
Terraform's state: public access blocks, default SSE-KMS, TLS-only bucket policies (moto enforces
their deny over plain HTTP), access logging, the key's rotation, the catalog's Delta locations, the
stream's and tables' encryption, and the IAM policies, which must be exactly the documents the
least-privilege test (test_iam_least_privilege.py) runs the data path with.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from lakehouse.settings import DYNAMODB_TABLES, Settings

from .iam_render import PolicyRenderer, canonical_policy, compute_role_policies, kms_key_policy
from .support import expected_delta_tables
from .terraform_cli import NOT_APPLIED, PLAN_ONLY_FOR_TIME, Plan, applied_resource
from .terraform_runs import AppliedEnvironment, empty_bucket

PREFIX = "ecom-lakehouse-prod"  # terraform.tfvars.example
SETTINGS = Settings(_env_file=None, environment="prod", name_prefix=PREFIX)  # type: ignore[call-arg]
LOG_BUCKET = f"{PREFIX}-s3-access-logs"


def _kms_key_arn(applied: AppliedEnvironment) -> str:
    arn: str = applied.state.one("aws_kms_key").values["arn"]
    return arn


def test_everything_but_the_plan_only_resources_is_applied(
    applied_small: AppliedEnvironment, prod_plans: dict[str, Plan]
) -> None:
    planned = {r.address for r in prod_plans["small"].resources()}
    applied = {r.address for r in applied_small.state.resources()}
    assert applied == {a for a in planned if applied_resource(a)}, sorted(applied ^ planned)
    for prefix in (*NOT_APPLIED, *PLAN_ONLY_FOR_TIME):  # no stale entry: each names planned resources
        assert any(a == prefix or a.startswith(prefix) for a in planned), prefix
    assert len(applied) > 120


def test_buckets_block_public_access_encrypt_and_log(applied_small: AppliedEnvironment) -> None:
    s3 = applied_small.client("s3")
    key = _kms_key_arn(applied_small)
    buckets = {r.values["bucket"] for r in applied_small.state.of_type("aws_s3_bucket")}
    assert buckets == {*SETTINGS.buckets, LOG_BUCKET}
    for bucket in buckets:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        ), bucket
        (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        if bucket == LOG_BUCKET:  # S3 server access logging cannot deliver to an SSE-KMS bucket
            assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
        else:
            assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
            assert rule["BucketKeyEnabled"] is True
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
        assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        logging = s3.get_bucket_logging(Bucket=bucket).get("LoggingEnabled")
        if bucket == LOG_BUCKET:
            assert logging is None
        else:
            assert logging == {"TargetBucket": LOG_BUCKET, "TargetPrefix": f"{bucket}/"}
    # Access logs arrive (the log bucket's policy lets the logging service write).
    logged = {o["Key"].split("/")[0] for o in s3.list_objects_v2(Bucket=LOG_BUCKET).get("Contents", [])}
    assert SETTINGS.lake_bucket in logged, logged


def test_bucket_policies_deny_plain_http_and_objects_get_the_lakehouse_key(
    applied_small: AppliedEnvironment, terraform_documents: dict[Path, dict[str, Any]]
) -> None:
    """The emulator speaks plain HTTP, so every object request is refused by the TLS-only policy;
    without the policy (removed for this one write, then put back) an object written without any
    encryption header is stored SSE-KMS under the lakehouse key with a Bucket Key."""
    s3 = applied_small.client("s3")
    rendered = PolicyRenderer(terraform_documents, "lake_storage").all_documents()
    for bucket in {r.values["bucket"] for r in applied_small.state.of_type("aws_s3_bucket")}:
        policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
        role = (
            "access_logs"
            if bucket == LOG_BUCKET
            else f"tls_only[{bucket.removeprefix(PREFIX + '-').replace('-', '_')}]"
        )
        assert canonical_policy(policy) == canonical_policy(rendered[role]), bucket
        with pytest.raises(botocore.exceptions.ClientError, match="403"):
            s3.put_object(Bucket=bucket, Key="tmp/over-http", Body=b"x")
    bucket = SETTINGS.artifacts_bucket
    policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    s3.delete_bucket_policy(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key="tmp/probe", Body=b"x")
        head = s3.head_object(Bucket=bucket, Key="tmp/probe")
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", _kms_key_arn(applied_small))
        assert head["BucketKeyEnabled"] is True
    finally:
        empty_bucket(s3, bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=policy)


def test_key_rotates_and_has_the_rendered_policy(
    applied_small: AppliedEnvironment, terraform_documents: dict[Path, dict[str, Any]]
) -> None:
    kms = applied_small.client("kms")
    key = applied_small.state.one("aws_kms_key").values["key_id"]
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is True
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases(KeyId=key)["Aliases"]}
    assert aliases == {f"alias/{PREFIX}": key}
    policy = kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
    assert canonical_policy(policy) == canonical_policy(kms_key_policy(terraform_documents))


def test_catalog_registers_the_delta_tables_where_the_sink_writes(applied_small: AppliedEnvironment) -> None:
    glue = applied_small.client("glue")
    databases = {d["Name"] for d in glue.get_databases()["DatabaseList"] if d["Name"].startswith("ecom_")}
    assert databases == set(SETTINGS.glue_databases.values())
    locations = {
        (database, table["Name"]): table["StorageDescriptor"]["Location"]
        for database in databases
        for table in glue.get_tables(DatabaseName=database)["TableList"]
    }
    assert locations == expected_delta_tables(SETTINGS)
    workgroup = applied_small.client("athena").get_work_group(WorkGroup=SETTINGS.athena_workgroup_name)
    results = workgroup["WorkGroup"]["Configuration"]["ResultConfiguration"]
    assert results["OutputLocation"] == f"s3://{SETTINGS.athena_results_bucket}/output/"
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_KMS", "KmsKey": _kms_key_arn(applied_small)}


def test_stream_and_tables_are_encrypted_with_the_lakehouse_key(applied_small: AppliedEnvironment) -> None:
    key = _kms_key_arn(applied_small)
    stream = applied_small.client("kinesis").describe_stream_summary(StreamName=SETTINGS.kinesis_stream)
    summary = stream["StreamDescriptionSummary"]
    assert (summary["StreamStatus"], summary["OpenShardCount"], summary["RetentionPeriodHours"]) == ("ACTIVE", 1, 24)
    assert (summary["EncryptionType"], summary["KeyId"]) == ("KMS", key)
    dynamodb = applied_small.client("dynamodb")
    for logical in DYNAMODB_TABLES:
        table = dynamodb.describe_table(TableName=SETTINGS.dynamodb_table(logical))["Table"]
        assert table["SSEDescription"]["KMSMasterKeyArn"] == key
        assert table["DeletionProtectionEnabled"] is True
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        backups = dynamodb.describe_continuous_backups(TableName=table["TableName"])["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_network_has_no_nat_and_accepts_nothing_from_outside(applied_small: AppliedEnvironment) -> None:
    """Profile small: no NAT gateway, S3 and DynamoDB through gateway endpoints on every route table,
    every security group egress-only except the database's (PostgreSQL from the tasks' group only),
    the default group emptied, flow logs of rejected traffic (small keeps CloudWatch ingestion near
    zero) to the flow-log group. Read back from the emulator's EC2 API."""
    ec2 = applied_small.client("ec2")
    vpc = applied_small.state.one("aws_vpc").values["id"]
    in_vpc = [{"Name": "vpc-id", "Values": [vpc]}]
    assert not [g for g in ec2.describe_nat_gateways(Filters=in_vpc)["NatGateways"] if g["State"] != "deleted"]
    route_tables = {r.values["id"] for r in applied_small.state.of_type("aws_route_table")}
    endpoints = {e["ServiceName"]: e for e in ec2.describe_vpc_endpoints(Filters=in_vpc)["VpcEndpoints"]}
    assert set(endpoints) == {"com.amazonaws.us-east-1.s3", "com.amazonaws.us-east-1.dynamodb"}
    for endpoint in endpoints.values():
        assert endpoint["VpcEndpointType"] == "Gateway"
        assert set(endpoint["RouteTableIds"]) == route_tables
    groups = {r.index: r.values["id"] for r in applied_small.state.of_type("aws_security_group")}
    assert set(groups) == {"dagster", "database", "spark"}  # no MSK groups in small
    described = {g["GroupId"]: g for g in ec2.describe_security_groups(Filters=in_vpc)["SecurityGroups"]}
    for name, group_id in groups.items():
        ingress = described[group_id]["IpPermissions"]
        if name == "database":
            (rule,) = ingress
            assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 5432, 5432)
            assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [groups["dagster"]]
            assert not rule["IpRanges"] and not rule.get("Ipv6Ranges")
        else:
            assert ingress == [], name
    default = applied_small.state.one("aws_default_security_group").values["id"]
    assert (described[default]["IpPermissions"], described[default]["IpPermissionsEgress"]) == ([], [])
    (flow_log,) = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc]}])["FlowLogs"]
    flow_logs_group = next(
        r.values["arn"] for r in applied_small.state.of_type("aws_cloudwatch_log_group") if r.name == "flow_logs"
    )
    assert (flow_log["LogDestinationType"], flow_log["TrafficType"]) == ("cloud-watch-logs", "REJECT")
    assert flow_log["LogDestination"].removesuffix(":*") == flow_logs_group.removesuffix(":*")


def _sorted(documents: Any) -> list[str]:
    return sorted(json.dumps(d, sort_keys=True) for d in documents)


def _attached_documents(iam: Any, role: str) -> dict[str, dict[str, Any]]:
    documents = {}
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]
        documents[attached["PolicyName"]] = canonical_policy(document["Document"])
    return documents


def test_task_roles_carry_exactly_the_least_privilege_tests_policies(
    applied_small: AppliedEnvironment, terraform_documents: dict[Path, dict[str, Any]]
) -> None:
    """The policies IAM holds for each task role are, document for document, the ones
    test_iam_least_privilege.py gives its run and maintenance users (compute_role_policies)."""
    iam = applied_small.client("iam")
    expected = compute_role_policies(terraform_documents, "small")
    for role, documents in expected.items():
        applied = _attached_documents(iam, f"{PREFIX}-{role}-task").values()
        assert _sorted(applied) == _sorted(map(canonical_policy, documents)), role
    renderer = PolicyRenderer(terraform_documents, "compute", "small")
    trust = canonical_policy(renderer.document("ecs_tasks_assume"))
    for role in [f"{PREFIX}-{r}-task" for r in expected] + [f"{PREFIX}-{r}-exec" for r in ("service", "run")]:
        assert canonical_policy(iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]) == trust, role
    for role in ("service", "run"):
        inline = iam.get_role_policy(RoleName=f"{PREFIX}-{role}-exec", PolicyName="ecs-execution")["PolicyDocument"]
        assert canonical_policy(inline) == canonical_policy(renderer.document("execution", role)), role
    emr = iam.get_role_policy(RoleName=f"{PREFIX}-emr-job", PolicyName="spark-lakehouse")["PolicyDocument"]
    assert canonical_policy(emr) == canonical_policy(renderer.document("emr_job"))


def test_generated_passwords_live_in_secrets_manager_only(applied_small: AppliedEnvironment) -> None:
    """Ephemeral passwords written through write-only arguments: in the secrets, never in the state."""
    secrets = applied_small.client("secretsmanager")
    dagster = json.loads(secrets.get_secret_value(SecretId=f"{PREFIX}/dagster-db")["SecretString"])
    assert set(dagster) == {"username", "password"} and dagster["username"] == "dagster"
    assert re.fullmatch(r"[A-Za-z0-9\-_.~!#%^*()=+]{40}", dagster["password"]), "RDS-safe characters only"
    oltp = json.loads(secrets.get_secret_value(SecretId=f"{PREFIX}/oltp-source")["SecretString"])
    assert set(oltp) == {"engine", "host", "port", "dbname", "username", "password"}
    assert (oltp["dbname"], oltp["username"]) == (SETTINGS.postgres_db, SETTINGS.postgres_user)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", oltp["password"])
    for secret in (f"{PREFIX}/dagster-db", f"{PREFIX}/oltp-source"):
        assert secrets.describe_secret(SecretId=secret)["KmsKeyId"] == _kms_key_arn(applied_small)
    state = applied_small.raw_state()
    assert dagster["password"] not in state and oltp["password"] not in state
    for version in applied_small.state.of_type("aws_secretsmanager_secret_version"):
        assert version.values["secret_string"] == "" and version.values["has_secret_string_wo"] is True


def test_destroy_removes_everything(applied_small: AppliedEnvironment) -> None:
    """Last: `terraform destroy` (after what an operator does first: AppliedEnvironment.destroy)."""
    start = time.monotonic()
    applied_small.destroy()
    print(f"terraform destroy: {time.monotonic() - start:.0f} s")  # figure for the report
    remaining = applied_small.terraform.run(applied_small.workdir, "state", "list", check=False).stdout.split()
    assert remaining == []
    s3 = applied_small.client("s3")
    assert not [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(PREFIX)]
    glue = applied_small.client("glue")
    assert not [d["Name"] for d in glue.get_databases()["DatabaseList"] if d["Name"].startswith("ecom_lakehouse_prod")]
    assert not [t for t in applied_small.client("dynamodb").list_tables()["TableNames"] if t.startswith(PREFIX)]
    with pytest.raises(botocore.exceptions.ClientError, match="ResourceNotFound"):
        applied_small.client("kinesis").describe_stream_summary(StreamName=SETTINGS.kinesis_stream)
    iam = applied_small.client("iam")
    assert not [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(PREFIX)]
    assert not [
        p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"] if p["PolicyName"].startswith(PREFIX)
    ]
    vpc = applied_small.state.one("aws_vpc").values["id"]
    assert not applied_small.client("ec2").describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Vpcs"]
    log_groups = {r.values["name"] for r in applied_small.state.of_type("aws_cloudwatch_log_group")}
    assert log_groups
    left = {g["logGroupName"] for g in applied_small.client("logs").describe_log_groups()["logGroups"]}
    assert not log_groups & left
    repositories = applied_small.client("ecr").describe_repositories()["repositories"]
    assert not [r["repositoryName"] for r in repositories if r["repositoryName"].startswith(PREFIX)]
    secrets = applied_small.client("secretsmanager")
    for secret in applied_small.state.of_type("aws_secretsmanager_secret"):
        # gone, or scheduled for deletion (the recovery window)
        with contextlib.suppress(secrets.exceptions.ResourceNotFoundException):
            assert "DeletedDate" in secrets.describe_secret(SecretId=secret.values["arn"]), secret.address
    key = applied_small.state.one("aws_kms_key").values["key_id"]
    assert applied_small.client("kms").describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingDeletion"
