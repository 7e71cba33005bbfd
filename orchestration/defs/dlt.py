"""dlt assets: DynamoDB, S3 landing files and the marketing API → bronze Delta tables.

Thin wrappers over `ingestion.dlt_sources`: one `@dlt_assets` per pipeline (each with its own dlt
working directory and a concurrency pool, so two runs never share dlt state), keys
`bronze/<source>/<table>`, schedules for DynamoDB and the API, and the landing loads driven by the
S3 sensor in `landing.py` (which passes the new object keys in run config).
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from pydantic import Field

from ingestion.dlt_sources import (
    delta_version,
    dynamodb_source,
    landing_source,
    make_pipeline,
    marketing_source,
)
from ingestion.dlt_sources.core import bronze_table_uri
from lakehouse.settings import Settings, get_settings

OWNERS = ["team:data-platform"]
RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)

#: upstream (external) source asset per dlt dataset and resource
SOURCE_SYSTEMS = {
    "dynamodb": ("dynamodb", "DynamoDB table"),
    "landing": ("s3_landing", "files in the S3 landing bucket under"),
    "marketing": ("marketing_api", "marketing REST API endpoint"),
}


class BronzeTranslator(DagsterDltTranslator):
    """`bronze/<dataset>/<table>` keys, an external upstream asset per source table, kinds and owners."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        default = super().get_asset_spec(data)
        table = data.resource.table_name if isinstance(data.resource.table_name, str) else data.resource.name
        system, _ = SOURCE_SYSTEMS[self.dataset]
        return default.replace_attributes(
            key=dg.AssetKey(["bronze", self.dataset, table]),
            deps=[dg.AssetKey([system, table])],
            group_name=f"bronze_{self.dataset}",
            kinds={"dlt", "delta", "s3"},
            owners=OWNERS,
            description=f"Bronze copy of {system} `{table}` loaded by dlt (see docs/ingestion-batch.md).",
        )


def _source_specs() -> list[dg.AssetSpec]:
    tables = {
        "dynamodb": ("carts", "sessions", "reviews"),
        "landing": ("clickstream", "partner_feeds"),
        "marketing": ("campaigns", "ad_spend"),
    }
    specs = []
    for dataset, names in tables.items():
        system, what = SOURCE_SYSTEMS[dataset]
        for name in names:
            specs.append(
                dg.AssetSpec(
                    dg.AssetKey([system, name]),
                    description=f"{what} `{name}` (outside the lake; loaded by dlt).",
                    group_name="sources",
                    kinds={"dynamodb"} if dataset == "dynamodb" else ({"s3"} if dataset == "landing" else {"api"}),
                    owners=OWNERS,
                )
            )
    return specs


def _with_lake_metadata(results: Iterator[Any], dataset: str) -> Iterator[Any]:
    """dagster-dlt's results plus the Delta table's URI and version."""
    settings = get_settings()
    for result in results:
        key = getattr(result, "asset_key", None)
        if key is None:
            yield result
            continue
        uri = bronze_table_uri(settings, dataset, key.path[-1])
        extra = {"table_uri": dg.MetadataValue.url(uri), "delta_version": delta_version(settings, uri)}
        if isinstance(result, dg.MaterializeResult):
            metadata = {"rows_loaded": 0, **(result.metadata or {}), **extra}  # dagster-dlt omits 0 rows
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        else:
            yield result


_settings = get_settings()


@dlt_assets(
    dlt_source=dynamodb_source(_settings),
    dlt_pipeline=make_pipeline(_settings, "bronze_dynamodb"),
    name="bronze_dynamodb",
    dagster_dlt_translator=BronzeTranslator("dynamodb"),
    pool="dlt_dynamodb",
)
def bronze_dynamodb(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
    """Carts, sessions and reviews: incremental on updated_at, merged on key, parallel scan."""
    yield from _with_lake_metadata(dlt.run(context=context), "dynamodb")


#: the marketing source of the asset definition (its resources give the asset specs); runs build
#: theirs from the settings, so a code location without a configured API still loads
_MARKETING_SPEC_URL = _settings.marketing_api_base_url or "https://marketing-api.example.invalid"


@dlt_assets(
    dlt_source=marketing_source(_settings, base_url=_MARKETING_SPEC_URL),
    dlt_pipeline=make_pipeline(_settings, "bronze_marketing"),
    name="bronze_marketing",
    dagster_dlt_translator=BronzeTranslator("marketing"),
    pool="dlt_marketing",
)
def bronze_marketing(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
    """Campaigns and daily ad spend from the REST API: paginated, incremental, merged on id."""
    settings = get_settings()
    if settings.marketing_api_base_url is None:
        raise dg.Failure("the marketing API URL is not configured: set LAKEHOUSE_MARKETING_API_URL")
    source = marketing_source(settings)
    yield from _with_lake_metadata(dlt.run(context=context, dlt_source=source), "marketing")


def marketing_schedule_status(settings: Settings) -> dg.DefaultScheduleStatus:
    """Off until there is an API to read (prod without LAKEHOUSE_MARKETING_API_URL): it would only fail."""
    return dg.DefaultScheduleStatus.RUNNING if settings.marketing_api_base_url else dg.DefaultScheduleStatus.STOPPED


class LandingObjects(dg.Config):
    """Object keys to load (from the S3 sensor); empty = every object not loaded yet."""

    keys: list[str] = Field(default_factory=list)
    verify: bool = Field(
        default=False,
        description="Ask bronze (not the dlt state) which objects it holds: the repair run after a load "
        "that failed for good (docs/ingestion-batch.md).",
    )


def _landing_assets(kind: str) -> dg.AssetsDefinition:
    @dlt_assets(
        dlt_source=landing_source(_settings, kind=kind),
        dlt_pipeline=make_pipeline(_settings, f"bronze_landing_{kind}"),
        name=f"bronze_landing_{kind}",
        dagster_dlt_translator=BronzeTranslator("landing"),
        pool="dlt_landing",  # both landing pipelines write the shared quarantine table
    )
    def load(context: dg.AssetExecutionContext, dlt: DagsterDltResource, config: LandingObjects) -> Iterator[Any]:
        source = landing_source(get_settings(), object_keys=config.keys or None, kind=kind, verify=config.verify)
        context.log.info("loading %s", f"{len(config.keys)} new objects" if config.keys else "all unloaded objects")
        yield from _with_lake_metadata(dlt.run(context=context, dlt_source=source), "landing")

    return load


bronze_landing_clickstream = _landing_assets("clickstream")
bronze_landing_partner_feeds = _landing_assets("partner_feeds")

# transient failures (throttling, a restarting emulator) are retried per op by the scheduled jobs
dynamodb_job = dg.define_asset_job(
    "load_dynamodb", selection=dg.AssetSelection.assets(bronze_dynamodb), op_retry_policy=RETRY
)
marketing_job = dg.define_asset_job(
    "load_marketing_api", selection=dg.AssetSelection.assets(bronze_marketing), op_retry_policy=RETRY
)
landing_catch_up_job = dg.define_asset_job(
    "load_landing_catch_up",
    selection=dg.AssetSelection.assets(bronze_landing_clickstream, bronze_landing_partner_feeds),
    description="Load every landing object bronze does not hold yet (safety net behind the S3 sensor).",
    op_retry_policy=RETRY,
)

defs = dg.Definitions(
    assets=[
        *_source_specs(),
        bronze_dynamodb,
        bronze_marketing,
        bronze_landing_clickstream,
        bronze_landing_partner_feeds,
    ],
    jobs=[dynamodb_job, marketing_job, landing_catch_up_job],
    schedules=[
        dg.ScheduleDefinition(
            job=dynamodb_job, cron_schedule="*/30 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING
        ),
        dg.ScheduleDefinition(
            job=marketing_job,
            cron_schedule="15 * * * *",
            default_status=marketing_schedule_status(_settings),
        ),
        dg.ScheduleDefinition(
            job=landing_catch_up_job, cron_schedule="30 2 * * *", default_status=dg.DefaultScheduleStatus.RUNNING
        ),
    ],
    resources={"dlt": DagsterDltResource()},
)
