"""`terraform plan` and `apply` against the emulator, run side by side.

The plans of environments/prod (one per profile) and environments/local, and the apply of profile
small, each run in a copy of terraform/ with a generated `*_override.tf` (terraform_cli.py) and go
through a thread pool: they spend most of their time waiting (on the provider's polling of the
emulator), so running them together keeps the suite's added time near the longest of them.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .hcl_eval import Module
from .support import TERRAFORM_DIR
from .terraform_cli import (
    EMR_STAND_IN_OVERRIDE,
    Plan,
    Terraform,
    applied_resource,
    copy_terraform,
    emulator_override,
)

#: the variables of every prod plan and apply: the documented example values
PROD_VARIABLES = ("-var-file=terraform.tfvars.example",)
#: module calls of environments/prod whose resources the apply creates (where applied_resource says so)
APPLIED_MODULES = ("kms", "network", "lake_storage", "catalog", "sources", "kinesis", "alerts", "compute")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}


def apply_targets(documents: dict[Path, dict[str, Any]]) -> list[str]:
    """`-target`s of the apply: whole modules where every resource is applied, else the applied
    resources one by one (Terraform adds what they depend on; the apply test checks it adds nothing
    that should stay plan-only)."""
    targets: list[str] = []
    for call in APPLIED_MODULES:
        module = Module.from_documents((TERRAFORM_DIR / "modules" / call).resolve(), documents)
        addresses = [f"module.{call}.{rtype}.{name}" for rtype, named in module.resources.items() for name in named]
        applied = [a for a in addresses if applied_resource(a)]
        targets += [f"module.{call}"] if applied == addresses else applied
    return sorted(targets)


@dataclasses.dataclass
class AppliedEnvironment:
    """environments/prod, profile small, applied to the emulator (terraform_cli.applied_resource)."""

    terraform: Terraform
    workdir: Path
    endpoint: str
    targets: list[str]
    state: Plan
    destroyed: bool = False

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service, endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )  # fmt: skip

    def raw_state(self) -> str:
        return self.terraform.run(self.workdir, "state", "pull").stdout

    def destroy(self) -> None:
        """Decommission as an operator would: turn access logging off and empty the buckets (the
        log bucket holds the others' logs; no bucket is force_destroy in prod), lift the DynamoDB
        tables' deletion protection, then `terraform destroy`. The emulator speaks plain HTTP,
        which the TLS-only bucket policies refuse for object requests: they go first here."""
        if self.destroyed:
            return
        s3 = self.client("s3")
        for logging in self.state.of_type("aws_s3_bucket_logging"):
            s3.put_bucket_logging(Bucket=logging.values["bucket"], BucketLoggingStatus={})
        for bucket in self.state.of_type("aws_s3_bucket"):
            s3.delete_bucket_policy(Bucket=bucket.values["bucket"])
            empty_bucket(s3, bucket.values["bucket"])
        for table in self.state.of_type("aws_dynamodb_table"):
            self.client("dynamodb").update_table(TableName=table.values["name"], DeletionProtectionEnabled=False)
        # -refresh=false: the state is what this session applied; a refresh would only re-read ~130
        # resources (most of the destroy's time) to find the logging and policies lifted above
        self.terraform.run(
            self.workdir, "destroy", "-auto-approve", "-no-color", "-refresh=false", "-parallelism=20",
            *PROD_VARIABLES, "-var", "profile=small", timeout=900,
        )  # fmt: skip
        self.destroyed = True


def empty_bucket(s3: Any, bucket: str) -> None:
    """Delete every object version and delete marker (the buckets are versioned)."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])


class EmulatorRuns:
    """The plans and (when a selected test needs it) the apply, started at once in threads."""

    def __init__(
        self, terraform: Terraform, endpoint: str, root: Path, documents: dict[Path, dict[str, Any]], *, apply: bool
    ) -> None:
        self.terraform = dataclasses.replace(terraform, extra_env=CREDENTIALS)
        self.endpoint = endpoint
        self.copy = copy_terraform(root / "plans")
        (self.copy / "environments/prod/zz_emulator_override.tf").write_text(emulator_override(endpoint))
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="terraform")
        self.applied: AppliedEnvironment | None = None
        self.futures: dict[str, Future[Any]] = {}
        self.durations: dict[str, float] = {}  # seconds per job (wall clock, for the suite's report)
        submit = self.pool.submit
        if apply:  # the longest: first
            self.futures["apply"] = submit(self._timed, "apply", self._apply, root / "apply", apply_targets(documents))
        prod_init = submit(self.terraform.init, self.copy / "environments/prod", backend=True)
        for profile in ("small", "scale"):
            self.futures[profile] = submit(self._timed, f"plan {profile}", self._plan_prod, prod_init, profile)
        self.futures["local"] = submit(self._timed, "plan local", self._plan_local)

    def result(self, name: str) -> Any:
        return self.futures[name].result()

    def _timed(self, name: str, job: Any, *args: Any) -> Any:
        start = time.monotonic()
        try:
            return job(*args)
        finally:
            self.durations[name] = time.monotonic() - start

    def _plan_prod(self, prod_init: Future[None], profile: str) -> Plan:
        prod_init.result()
        prod = self.copy / "environments/prod"
        # scale as documented after step 1.6 of docs/deploy.md: with the MSK Connect connector
        extra = ["-var", "create_cdc_connector=true"] if profile == "scale" else []
        self.terraform.run(
            prod, "plan", "-no-color", "-lock=false", f"-out={profile}.tfplan",
            *PROD_VARIABLES, "-var", f"profile={profile}", *extra,
        )  # fmt: skip
        return Plan(self.terraform.json(prod, "show", "-json", f"{profile}.tfplan"))

    def _plan_local(self) -> Plan:
        local = self.copy / "environments/local"
        self.terraform.init(local)
        self.terraform.run(
            local, "plan", "-no-color", "-lock=false", "-out=local.tfplan", "-var", f"endpoint={self.endpoint}"
        )
        return Plan(self.terraform.json(local, "show", "-json", "local.tfplan"))

    def _apply(self, root: Path, targets: list[str]) -> AppliedEnvironment:
        copy = copy_terraform(root)
        prod = copy / "environments/prod"
        (prod / "zz_emulator_override.tf").write_text(emulator_override(self.endpoint))
        (copy / "modules/compute/zz_emulator_override.tf").write_text(EMR_STAND_IN_OVERRIDE)
        self.terraform.init(prod, backend=True)
        self.applied = AppliedEnvironment(self.terraform, prod, self.endpoint, targets, Plan({"values": {}}))
        try:
            self.terraform.run(
                prod, "apply", "-auto-approve", "-no-color", "-parallelism=20", *PROD_VARIABLES,
                "-var", "profile=small", *(f"-target={t}" for t in targets), timeout=900,
            )  # fmt: skip
        finally:  # also after a failed apply: what it created is destroyed by close()
            self.applied.state = Plan(self.terraform.json(prod, "show", "-json"))
        return self.applied

    def close(self) -> None:
        """Wait for what runs, destroy what was applied (if the apply test did not)."""
        for future in self.futures.values():
            future.exception()
        try:
            if self.applied is not None and self.applied.state.resources():
                self.applied.destroy()
        finally:
            self.pool.shutdown()
