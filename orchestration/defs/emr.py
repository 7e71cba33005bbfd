"""Silver rebuild assets: re-derive silver/<table> and its history from bronze through Dagster Pipes.

The work is `ingestion.jobs.rebuild_silver`, plain Python. Where it runs is chosen in ONE place,
`silver_rebuild_pipes_client(settings)`:

* prod with an EMR Serverless application → `PipesEMRServerlessClient`: a job run whose entry point
  is the same module (shipped as a venv archive in the artifacts bucket, docs/prod-wiring.md);
* anything else (local stack, docker-compose, prod without EMR) → `PipesSubprocessClient`:
  `python -m ingestion.jobs.rebuild_silver` next to the Dagster run.

Both get the same arguments (`job_arguments`) and report through Pipes. The assets share the CDC
sink's concurrency pool, so a rebuild never overlaps a sink run writing the same tables.
"""

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import boto3
import dagster as dg
from dagster_aws.pipes import PipesCloudWatchMessageReader, PipesEMRServerlessClient
from pydantic import Field

from ingestion.jobs.rebuild_silver import job_arguments
from lakehouse.settings import OLTP_TABLES, Settings, child_env, get_settings
from orchestration.defs.cdc import bronze_key, history_key, silver_key
from orchestration.resources import LakehouseSettings

JOB_MODULE = "ingestion.jobs.rebuild_silver"
GROUP = "silver_rebuild"
POOL = "cdc_sink"  # the CDC sink's pool: never rebuild while the sink writes
RESOURCE_KEY = "silver_rebuild_pipes"
#: `s3://<artifacts bucket>/<prefix>/<package version>/` holds rebuild_silver.py and environment.tar.gz
ARTIFACTS_PREFIX = "emr/silver-rebuild"
ARCHIVE_NAME = "environment.tar.gz"
OWNERS = ["team:data-platform"]


def rebuild_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", "rebuild", table])


def emr_log_group(settings: Settings) -> str:
    """CloudWatch log group of the job runs (terraform/modules/compute creates it with this rule)."""
    return f"/aws/emr-serverless/{settings.name_prefix}"


def _package_version() -> str:
    try:
        return version("ecommerce-lakehouse")
    except PackageNotFoundError:  # a source tree that is not installed
        return "dev"


def default_artifacts_uri(settings: Settings) -> str:
    return f"s3://{settings.artifacts_bucket}/{ARTIFACTS_PREFIX}/{_package_version()}"


# ---------------------------------------------------------------------------- the switch
def uses_emr(settings: Settings) -> bool:
    """EMR Serverless in prod when an application is configured; the local fallback otherwise."""
    return settings.environment == "prod" and bool(settings.emr_application_id)


def silver_rebuild_pipes_client(settings: Settings) -> PipesEMRServerlessClient | dg.PipesSubprocessClient:
    """THE place where local vs prod is decided for the rebuild job (keyed by settings.environment)."""
    if uses_emr(settings):
        if not settings.emr_job_role_arn:
            raise ValueError("LAKEHOUSE_EMR_APPLICATION_ID is set but LAKEHOUSE_EMR_JOB_ROLE_ARN is not")
        return PipesEMRServerlessClient(
            client=boto3.client("emr-serverless", region_name=settings.aws_region),
            message_reader=PipesCloudWatchMessageReader(client=boto3.client("logs", region_name=settings.aws_region)),
            poll_interval=10.0,
        )
    # the child gets these settings as LAKEHOUSE_* variables (credentials in its env, never in argv)
    return dg.PipesSubprocessClient(env=child_env(settings))


def emr_job_run_request(
    settings: Settings,
    table: str,
    artifacts_uri: str | None = None,
    driver_cores: int = 4,
    driver_memory: str = "16g",
    timeout_minutes: int = 240,
) -> dict[str, Any]:
    """`StartJobRun` parameters (PipesEMRServerlessClient adds the Pipes env and Dagster tags).

    The job needs no Spark: spark-submit only starts Python from the archive on the driver (no
    SparkContext, so no executor is ever started); the driver is sized for an in-memory rebuild.
    """
    if not (settings.emr_application_id and settings.emr_job_role_arn):
        raise ValueError("EMR Serverless needs LAKEHOUSE_EMR_APPLICATION_ID and LAKEHOUSE_EMR_JOB_ROLE_ARN")
    base = (artifacts_uri or default_artifacts_uri(settings)).rstrip("/")
    python = "./environment/bin/python3"
    conf = {
        "spark.archives": f"{base}/{ARCHIVE_NAME}#environment",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": python,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": python,
        "spark.executorEnv.PYSPARK_PYTHON": python,
        "spark.driver.cores": str(driver_cores),
        "spark.driver.memory": driver_memory,
        "spark.dynamicAllocation.enabled": "false",
        "spark.executor.instances": "1",
    }
    return {
        "applicationId": settings.emr_application_id,
        "executionRoleArn": settings.emr_job_role_arn,
        "name": f"silver-rebuild-{table}",
        "executionTimeoutMinutes": timeout_minutes,
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": f"{base}/rebuild_silver.py",
                "entryPointArguments": job_arguments(settings, table),
                "sparkSubmitParameters": " ".join(f"--conf {key}={value}" for key, value in conf.items()),
            }
        },
        "configurationOverrides": {
            "monitoringConfiguration": {
                # Pipes messages travel on the driver's stdout and are read back from CloudWatch Logs
                "cloudWatchLoggingConfiguration": {
                    "enabled": True,
                    "logGroupName": emr_log_group(settings),
                    "logTypes": {"SPARK_DRIVER": ["STDOUT", "STDERR"]},
                }
            }
        },
        "tags": {"lakehouse/job": "silver-rebuild", "lakehouse/table": table},
    }


class SilverRebuildConfig(dg.Config):
    """Launchpad knobs of a rebuild (EMR only; the local subprocess ignores them)."""

    emr_artifacts_uri: str | None = Field(
        default=None,
        description=f"s3:// folder holding rebuild_silver.py and {ARCHIVE_NAME}; "
        f"default s3://<artifacts bucket>/{ARTIFACTS_PREFIX}/<package version>",
    )
    emr_driver_cores: int = Field(default=4, ge=1, le=16, description="spark.driver.cores of the job run")
    emr_driver_memory: str = Field(default="16g", pattern=r"^\d+g$", description="spark.driver.memory, e.g. 16g")


def run_silver_rebuild(
    context: dg.AssetExecutionContext,
    client: dg.PipesClient,
    settings: Settings,
    table: str,
    config: SilverRebuildConfig | None = None,
) -> dg.PipesClientCompletedInvocation:
    """Launch the job with whichever client the switch chose: same module, same arguments."""
    config = config or SilverRebuildConfig()
    if isinstance(client, PipesEMRServerlessClient):
        request = emr_job_run_request(
            settings, table, config.emr_artifacts_uri, config.emr_driver_cores, config.emr_driver_memory
        )
        return client.run(context=context, start_job_run_params=request)
    if isinstance(client, dg.PipesSubprocessClient):
        return client.run(context=context, command=[sys.executable, "-m", JOB_MODULE, *job_arguments(settings, table)])
    raise TypeError(f"unsupported Pipes client for the silver rebuild: {type(client).__name__}")


# ---------------------------------------------------------------------------- assets
def _rebuild_asset(table: str, on_emr: bool) -> dg.AssetsDefinition:
    where = "on EMR Serverless" if on_emr else "as a subprocess of the run (local fallback)"

    @dg.asset(
        key=rebuild_key(table),
        deps=[bronze_key(table)],
        group_name=GROUP,
        pool=POOL,
        kinds={"delta", "emr" if on_emr else "python"},
        owners=OWNERS,
        description=(
            f"Full rebuild of silver/{table} and silver/{table}_history from bronze/cdc/{table} in one pass "
            "(same rules as the CDC sink; the sink continues from the bronze offsets the rebuild recorded). "
            f"Runs {where}, through Dagster Pipes. Materialize by hand when silver is damaged or a rule "
            "changed; not scheduled."
        ),
    )
    def rebuild(
        context: dg.AssetExecutionContext,
        config: SilverRebuildConfig,
        lakehouse: LakehouseSettings,
        silver_rebuild_pipes: dg.ResourceParam[dg.PipesClient],
    ) -> dg.MaterializeResult:
        settings = lakehouse.get()
        invocation = run_silver_rebuild(context, silver_rebuild_pipes, settings, table, config)
        result = invocation.get_materialize_result()
        metadata = dict(result.metadata or {})
        # silver and history were rewritten: say so on their own assets too
        layers = ((silver_key(table), "silver_delta_version"), (history_key(table), "history_delta_version"))
        run_id = context.run.run_id
        for key, version_key in layers:
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=key,
                    description=f"Rebuilt from bronze by {rebuild_key(table).to_user_string()} (run {run_id}).",
                    metadata={
                        "rebuilt_by_run": run_id,
                        **{k: metadata[k] for k in ("bronze_version", version_key) if k in metadata},
                    },
                )
            )
        return result

    return rebuild


def rebuild_definitions(settings: Settings) -> dg.Definitions:
    """One rebuild asset per captured table, plus the Pipes client the switch chose."""
    return dg.Definitions(
        assets=[_rebuild_asset(table, uses_emr(settings)) for table in OLTP_TABLES],
        resources={RESOURCE_KEY: silver_rebuild_pipes_client(settings)},
    )


@dg.definitions
def silver_rebuild_definitions() -> dg.Definitions:
    return rebuild_definitions(get_settings())
