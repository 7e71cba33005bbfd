"""dlt assets: DynamoDB and the marketing API → bronze Delta tables (landing files: `landing.py`).

Thin wrappers over `ingestion.dlt_sources`: one `@dlt_assets` per pipeline (each with its own dlt
working directory and a concurrency pool, so two runs never share dlt state), keys
`bronze/<source>/<table>`, schedules for DynamoDB and the API. The external source assets of
every source system (`dynamodb/*`, `s3_landing/*`, `marketing_api/*`) are declared here.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from ingestion.dlt_sources import (
    delta_version,
    dynamodb_source,
    make_pipeline,
    marketing_source,
)
from ingestion.dlt_sources.checks import variant_outcome
from ingestion.dlt_sources.core import bronze_table_uri
from ingestion.dlt_sources.marketing import PRIMARY_KEYS as MARKETING_KEYS
from lakehouse.aws import DYNAMODB_KEYS
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


def _variant_check(dataset: str, table: str, key_columns: tuple[str, ...]) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["bronze", dataset, table]),
        name="variant_columns",
        description="Fails when more than LAKEHOUSE_BRONZE_MAX_VARIANT_ROWS rows hold a value of another type "
        "in a dlt variant column (`<column>__v_<type>`, never read by staging), naming their keys.",
    )
    def check() -> dg.AssetCheckResult:
        settings = get_settings()
        outcome = variant_outcome(settings, dataset, table, key_columns, settings.bronze_max_variant_rows)
        return dg.AssetCheckResult(
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=outcome.description,
            metadata=outcome.metadata,
        )

    return check


variant_checks = [
    *(_variant_check("dynamodb", t, (DYNAMODB_KEYS[t],)) for t in ("carts", "sessions", "reviews")),
    *(_variant_check("marketing", t, MARKETING_KEYS[t]) for t in ("campaigns", "ad_spend")),
]

# transient failures (throttling, a restarting emulator) are retried per op by the scheduled jobs
dynamodb_job = dg.define_asset_job(
    "load_dynamodb", selection=dg.AssetSelection.assets(bronze_dynamodb), op_retry_policy=RETRY
)
marketing_job = dg.define_asset_job(
    "load_marketing_api", selection=dg.AssetSelection.assets(bronze_marketing), op_retry_policy=RETRY
)
defs = dg.Definitions(
    assets=[
        *_source_specs(),
        bronze_dynamodb,
        bronze_marketing,
    ],
    asset_checks=variant_checks,
    jobs=[dynamodb_job, marketing_job],
    schedules=[
        dg.ScheduleDefinition(
            job=dynamodb_job, cron_schedule="*/30 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING
        ),
        dg.ScheduleDefinition(
            job=marketing_job,
            cron_schedule="15 * * * *",
            default_status=marketing_schedule_status(_settings),
        ),
    ],
    resources={"dlt": DagsterDltResource()},
)
