"""S3 landing files → bronze: the load assets, the S3 sensors that feed them, the nightly catch-up.

The assets wrap `ingestion.dlt_sources.load_landing` (bronze keeps each object's newest version,
`bronze/landing/_objects` records every version; docs/ingestion-batch.md). The sensors' cursor
(`ingestion.landing_cursor`) does not miss an object that shares a LastModified second with the
previous tick or appears up to `LOOKBACK` below the newest one seen (an upload that started earlier
and finished later), and reports a re-uploaded key again only if its content (ETag) changed. An
object appearing even later than that is loaded by the daily catch-up job, which loads every object
bronze does not hold. Run keys are derived from (key, ETag), so even a lost cursor cannot launch the
same load twice, and the loader itself skips versions the manifest records as loaded.
"""

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster_aws.s3.sensor import get_objects
from pydantic import Field

from ingestion.dlt_sources import LandingLoad, load_landing
from ingestion.dlt_sources.checks import CheckOutcome, quarantine_outcome, unknown_fields_outcome
from ingestion.dlt_sources.core import bronze_table_uri
from ingestion.dlt_sources.landing_parse import check_kind, is_marker
from ingestion.landing_cursor import LandingCursor, LandingObject, new_objects
from lakehouse.aws import s3_client
from lakehouse.settings import get_settings
from orchestration.defs.dlt import OWNERS, RETRY

MAX_OBJECTS_PER_RUN = 200
LOOKBACK = timedelta(minutes=15)
PREFIXES = {"clickstream": "clickstream/", "partner_feeds": "partner_feeds/"}


class LandingObjects(dg.Config):
    """Object keys to load (from the S3 sensor); empty = every object not loaded yet."""

    keys: list[str] = Field(default_factory=list)
    verify: bool = Field(
        default=False,
        description="Also check the data table against the manifest and reload objects whose rows are "
        "missing or belong to another version: the repair run (docs/ingestion-batch.md).",
    )
    reload: bool = Field(
        default=False,
        description="Load the objects again even if loaded (e.g. `keys` whose lines went to quarantine "
        "before the contract was fixed); their rows are replaced.",
    )


def _check_result(key: dg.AssetKey, name: str, outcome: CheckOutcome, severity: dg.AssetCheckSeverity) -> Any:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata=outcome.metadata,
    )


def _metadata(report: LandingLoad) -> dict[str, Any]:
    settings = get_settings()
    return {
        "rows_loaded": report.rows,
        "objects_loaded": len(report.objects),
        "objects_replaced": sum(o.replaced for o in report.objects),
        "objects_already_loaded": report.already_loaded,
        "quarantined_lines": report.quarantined,
        "load_id": report.load_id,
        "table_uri": dg.MetadataValue.url(bronze_table_uri(settings, "landing", report.kind)),
        "delta_version": report.delta_versions.get(report.kind),
        "manifest_version": report.delta_versions.get("_objects"),
        "seconds": round(report.seconds, 2),
    }


def _landing_asset(kind: str) -> dg.AssetsDefinition:
    key = dg.AssetKey(["bronze", "landing", kind])

    @dg.multi_asset(
        name=f"bronze_landing_{kind}",
        specs=[
            dg.AssetSpec(
                key,
                deps=[dg.AssetKey(["s3_landing", kind])],
                group_name="bronze_landing",
                kinds={"delta", "s3"},
                owners=OWNERS,
                description=f"Rows of the `{PREFIXES[kind]}` landing objects, the newest version of each "
                "(see docs/ingestion-batch.md); malformed lines in bronze/landing/_quarantine, every "
                "object version in bronze/landing/_objects.",
            )
        ],
        check_specs=[
            dg.AssetCheckSpec(
                "quarantine_rate",
                asset=key,
                description="Fails when an object of the load has more than LAKEHOUSE_LANDING_MAX_QUARANTINE_RATE "
                "of its lines quarantined (e.g. a producer type change), naming the objects.",
            ),
            *(
                [
                    dg.AssetCheckSpec(
                        "unknown_fields",
                        asset=key,
                        description="Warns when objects carry fields outside the contract (kept in _extra_fields).",
                    )
                ]
                if kind == "clickstream"
                else []
            ),
        ],
        pool="dlt_landing",  # both landing assets write the shared quarantine and manifest tables
    )
    def load(context: dg.AssetExecutionContext, config: LandingObjects) -> Iterator[Any]:
        context.log.info("loading %s", f"{len(config.keys)} new objects" if config.keys else "all unloaded objects")
        settings = get_settings()
        report = load_landing(
            settings, kind=kind, object_keys=config.keys or None, verify=config.verify, reload=config.reload
        )
        yield dg.MaterializeResult(asset_key=key, metadata=_metadata(report))
        outcome = quarantine_outcome(report, settings.landing_max_quarantine_rate)
        yield _check_result(key, "quarantine_rate", outcome, dg.AssetCheckSeverity.ERROR)
        if kind == "clickstream":
            yield _check_result(key, "unknown_fields", unknown_fields_outcome(report), dg.AssetCheckSeverity.WARN)

    return load


bronze_landing_clickstream = _landing_asset("clickstream")
bronze_landing_partner_feeds = _landing_asset("partner_feeds")
ASSETS = {"clickstream": bronze_landing_clickstream, "partner_feeds": bronze_landing_partner_feeds}

landing_catch_up_job = dg.define_asset_job(
    "load_landing_catch_up",
    selection=dg.AssetSelection.assets(bronze_landing_clickstream, bronze_landing_partner_feeds),
    description="Load every landing object bronze does not hold yet (safety net behind the S3 sensor).",
    op_retry_policy=RETRY,
)


def landing_run_requests(kind: str, objects: list[LandingObject]) -> list[dg.RunRequest]:
    """One run per chunk of new objects, keyed by the object versions it loads."""
    requests = []
    for start in range(0, len(objects), MAX_OBJECTS_PER_RUN):
        chunk = objects[start : start + MAX_OBJECTS_PER_RUN]
        versions = "\n".join(f"{o.key}@{o.etag}" for o in chunk)
        requests.append(
            dg.RunRequest(
                run_key=f"{kind}:{hashlib.sha256(versions.encode()).hexdigest()[:24]}",
                asset_selection=list(ASSETS[kind].keys),
                run_config=dg.RunConfig(ops={ASSETS[kind].op.name: {"config": {"keys": [o.key for o in chunk]}}}),
                tags={"landing/objects": str(len(chunk)), "landing/kind": kind},
            )
        )
    return requests


def _landing_sensor(name: str) -> dg.SensorDefinition:
    kind = check_kind(name)

    @dg.sensor(
        name=f"landing_{kind}_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=dg.AssetSelection.assets(ASSETS[kind]),
        description=f"Loads new objects under s3://<landing>/{PREFIXES[kind]} into bronze/landing/{kind}.",
    )
    def sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        settings = get_settings()
        cursor = LandingCursor.from_json(context.cursor)
        since = cursor.since(LOOKBACK)
        listing = get_objects(
            settings.landing_bucket,
            prefix=PREFIXES[kind],
            since_last_modified=since - timedelta(microseconds=1) if since else None,
            client=s3_client(settings),
        )
        fresh, advanced = new_objects((LandingObject.from_listing(o) for o in listing), cursor, LOOKBACK)
        # empty marker files (`_SUCCESS`, folder placeholders) start no run; every other key goes to
        # the loader, which quarantines the ones off the layout instead of failing the whole run
        markers = [o.key for o in fresh if is_marker(kind, o.key, o.size)]
        if markers:
            context.log.info("skipping %d empty marker object(s): %s", len(markers), ", ".join(markers[:10]))
        fresh = [o for o in fresh if not is_marker(kind, o.key, o.size)]
        if not fresh:
            return dg.SensorResult(skip_reason=f"no new {kind} objects", cursor=advanced.to_json())
        return dg.SensorResult(run_requests=landing_run_requests(kind, fresh), cursor=advanced.to_json())

    return sensor


landing_sensors = [_landing_sensor(kind) for kind in PREFIXES]

defs = dg.Definitions(
    assets=[bronze_landing_clickstream, bronze_landing_partner_feeds],
    jobs=[landing_catch_up_job],
    schedules=[
        dg.ScheduleDefinition(
            job=landing_catch_up_job,
            cron_schedule="30 2 * * *",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            # the nightly run also checks the data tables against the manifest (the repair run)
            run_config=dg.RunConfig(ops={a.op.name: {"config": {"verify": True}} for a in ASSETS.values()}),
        )
    ],
    sensors=landing_sensors,
)
