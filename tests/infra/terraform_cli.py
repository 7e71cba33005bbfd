"""Terraform itself, offline: the installed binary and the AWS provider from a local plugin directory.

No provider registry is reachable on the project's machines, so `terraform init` installs the AWS
provider from an unpacked plugin directory (`-plugin-dir`, the layout of `terraform providers
mirror`). Terraform links the provider from there into `.terraform/` and never writes to the
directory, so it is used in place (the provider alone is ~700 MB; a copy per session would only
cost time and disk).

Every command runs in a temporary copy of terraform/ (`.terraform/`, state and plans never land in
the repository) with a private CLI configuration: no checkpoint calls, no plugin cache, no
credentials or TF_* settings inherited from the caller's environment.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .support import REPO_ROOT, TERRAFORM_DIR

#: the provider version the lock files pin and every test runs (tests/infra/test_terraform_cli.py)
AWS_PROVIDER_VERSION = "5.100.0"
#: write-only arguments (password_wo, secret_string_wo) need Terraform 1.11
MIN_TERRAFORM_VERSION = (1, 11)
PLUGIN_DIR = Path("/opt/tf-plugins")
PROVIDER_BINARY = (
    f"registry.terraform.io/hashicorp/aws/{AWS_PROVIDER_VERSION}/linux_amd64/"
    f"terraform-provider-aws_v{AWS_PROVIDER_VERSION}_x5"
)
INSTALL_HINT = (
    "The infrastructure tests run the real Terraform CLI offline. Install:\n"
    "  * Terraform >= 1.11 on PATH (e.g. unzip terraform_1.11.4_linux_amd64.zip from\n"
    "    https://releases.hashicorp.com/terraform/1.11.4/ into /usr/local/bin), and\n"
    f"  * the AWS provider {AWS_PROVIDER_VERSION} unpacked under {PLUGIN_DIR}, i.e.\n"
    f"    {PLUGIN_DIR}/{PROVIDER_BINARY}\n"
    f"    (on a machine with registry access: `terraform providers mirror {PLUGIN_DIR}` in\n"
    "    terraform/environments/prod, or unzip terraform-provider-aws_"
    f"{AWS_PROVIDER_VERSION}_linux_amd64.zip from releases.hashicorp.com there)."
)
#: every service the prod environment calls, pointed at the emulator by emulator_override()
EMULATED_SERVICES = (
    "athena", "dynamodb", "ec2", "ecr", "ecs", "emrserverless", "glue", "iam", "kafka", "kafkaconnect",
    "kinesis", "kms", "logs", "rds", "s3", "secretsmanager", "sns", "sts",
)  # fmt: skip


class TerraformError(AssertionError):
    """A terraform command failed; the message carries its output."""


def missing_requirements() -> str | None:
    """Why the Terraform tests cannot run here (None when they can)."""
    binary = shutil.which("terraform")
    if binary is None:
        return "no `terraform` on PATH"
    output = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, check=False, timeout=60)
    try:
        version = json.loads(output.stdout)["terraform_version"]
    except (ValueError, KeyError):
        return f"`terraform version -json` failed: {output.stderr.strip() or output.stdout.strip()}"
    if tuple(int(p) for p in version.split(".")[:2]) < MIN_TERRAFORM_VERSION:
        return f"terraform {version} is too old (>= {'.'.join(map(str, MIN_TERRAFORM_VERSION))} needed)"
    if not (PLUGIN_DIR / PROVIDER_BINARY).is_file():
        return f"the AWS provider {AWS_PROVIDER_VERSION} is not at {PLUGIN_DIR / PROVIDER_BINARY}"
    return None


@dataclass
class Terraform:
    """The terraform binary with an isolated environment; `run` fails loudly with the output."""

    binary: Path
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, home: Path) -> Terraform:
        binary = shutil.which("terraform")
        assert binary is not None
        home.mkdir(parents=True, exist_ok=True)
        (home / "terraformrc").write_text("disable_checkpoint = true\n")
        return cls(Path(binary), home)

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "TF_CLI_CONFIG_FILE": str(self.home / "terraformrc"),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "AWS_EC2_METADATA_DISABLED": "true",
            **self.extra_env,
        }

    def run(self, cwd: Path, *args: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args], cwd=cwd, env=self.env, capture_output=True, text=True, check=False,
            timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise TerraformError(
                f"terraform {' '.join(args)} in {cwd} failed ({result.returncode}):\n"
                f"{_no_color(result.stderr)[-6000:]}\n{_no_color(result.stdout)[-3000:]}"
            )
        return result

    def init(self, cwd: Path, *, backend: bool = False) -> None:
        """Install the provider from the plugin directory, honouring the committed lock file."""
        args = ["init", "-no-color", f"-plugin-dir={PLUGIN_DIR}", "-lockfile=readonly"]
        if not backend:
            args.append("-backend=false")
        self.run(cwd, *args)

    def json(self, cwd: Path, *args: str, timeout: int = 600) -> Any:
        return json.loads(self.run(cwd, *args, timeout=timeout).stdout)


def _no_color(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def copy_terraform(destination: Path) -> Path:
    """terraform/ copied without local working state (.terraform/, state files, plans)."""
    ignore = shutil.ignore_patterns(".terraform", "*.tfstate", "*.tfstate.*", "*.tfplan", "*_override.tf")
    shutil.copytree(TERRAFORM_DIR, destination, ignore=ignore)
    return destination


def emulator_override(endpoint: str) -> str:
    """A provider/backend override pointing every service at the emulator (temp copies only).

    Local state instead of the S3 backend; static test credentials; the account id is still asked
    from the emulator's STS (moto answers 123456789012), so ARNs the provider builds are complete.
    """
    endpoints = "\n".join(f'    {service} = "{endpoint}"' for service in EMULATED_SERVICES)
    return f"""# Generated by tests/infra (never committed): the emulator instead of AWS.
terraform {{
  backend "local" {{}}
}}

provider "aws" {{
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true
  endpoints {{
{endpoints}
  }}
}}
"""


def relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


@dataclass(frozen=True)
class Resource:
    """A resource instance of a plan or a state: its address and the values known so far."""

    address: str
    type: str
    name: str
    index: Any
    values: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """`terraform show -json` of a saved plan (or of the state: the same `values` layout)."""

    raw: dict[str, Any]

    def _root(self) -> dict[str, Any]:
        root: dict[str, Any] = (self.raw.get("planned_values") or self.raw.get("values") or {}).get("root_module", {})
        return root

    def resources(self, mode: str = "managed") -> list[Resource]:
        found: list[Resource] = []
        modules = [self._root()]
        while modules:
            module = modules.pop()
            modules += module.get("child_modules", [])
            for r in module.get("resources", []):
                if r["mode"] == mode:
                    found.append(Resource(r["address"], r["type"], r["name"], r.get("index"), r.get("values", {})))
        return sorted(found, key=lambda r: r.address)

    def types(self) -> set[str]:
        return {r.type for r in self.resources()}

    def of_type(self, rtype: str) -> list[Resource]:
        return [r for r in self.resources() if r.type == rtype]

    def one(self, rtype: str) -> Resource:
        found = self.of_type(rtype)
        assert len(found) == 1, [r.address for r in found]
        return found[0]

    def output(self, name: str) -> Any:
        outputs = (self.raw.get("planned_values") or self.raw["values"])["outputs"]
        return outputs[name].get("value")

    def actions(self) -> set[str]:
        """What the plan does to managed resources (data sources read at apply are not actions)."""
        changes = self.raw.get("resource_changes", [])
        return {a for change in changes if change["mode"] == "managed" for a in change["change"]["actions"]}


#: resources of profile small the emulator (moto 5.2.5) cannot create: plan-only, with the exact error
NOT_APPLIED = {
    "module.compute.aws_emrserverless_application.spark": (
        'moto: "ValidationException: Unsupported engine spark" (moto accepts only SPARK/HIVE; the '
        "provider lower-cases `type`, so no configuration can pass)"
    ),
    "module.compute.aws_iam_role_policy_attachment.rds_monitoring": (
        'moto: "NoSuchEntity: Policy arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole '
        'does not exist or is not attachable" (moto loads AWS managed policies only with '
        "MOTO_IAM_LOAD_MANAGED_POLICIES=true, which the session stack's emulator does not set)"
    ),
}
#: resources (address prefixes) moto does create, left to the plan to keep the suite fast
PLAN_ONLY_FOR_TIME = {
    "module.lake_storage.aws_s3_bucket_lifecycle_configuration.": (
        "the provider polls S3 until the rules read back stable twice: ~55 s per apply"
    ),
    "module.compute.aws_db_": "the provider's RDS waiters: ~80 s to create, ~60 s to delete on moto",
    "module.compute.aws_iam_role.rds_monitoring": "belongs to the RDS instance (enhanced monitoring)",
    "module.compute.aws_ecs_": (
        "the task definitions carry the RDS address; the service and the cluster go with them (the "
        "cluster's capacity providers: ~10 s each way)"
    ),
}


def applied_resource(address: str) -> bool:
    """Whether the apply test creates this resource (instance or resource address)."""
    plan_only = (*NOT_APPLIED, *PLAN_ONLY_FOR_TIME)
    return not any(address == p or address.startswith(p) for p in plan_only)


#: stand-ins for what the EMR Serverless application would output, so the resources that name it
#: (the run role's policy, LAKEHOUSE_EMR_APPLICATION_ID of the tasks) apply without it
EMR_STAND_IN_ID = "00emulatorstandin"
EMR_STAND_IN_OVERRIDE = f"""# Generated by tests/infra (never committed): the emulator cannot create the EMR Serverless
# application (terraform_cli.NOT_APPLIED); what names it gets a stand-in with the real ARN format.
locals {{
  emr_application_id  = "{EMR_STAND_IN_ID}"
  emr_application_arn = join(":", [
    "arn", local.partition, "emr-serverless", var.aws_region, local.account_id, "/applications/{EMR_STAND_IN_ID}",
  ])
}}
"""


def resource_address(instance: str) -> str:
    """`module.a[0].aws_x.y["k"]` -> `module.a[0].aws_x.y` (the resource of an instance)."""
    return re.sub(r"\[[^\]]*\]$", "", instance)
