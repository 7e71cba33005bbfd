"""S3 sensor on the landing bucket: each new object version is loaded exactly once.

The cursor (`ingestion.landing_cursor`) does not miss an object that shares a LastModified second
with the previous tick or appears up to `LOOKBACK` below the newest one seen (an upload that
started earlier and finished later), and reports a re-uploaded key again only if its content (ETag)
changed. An object appearing even later than that is loaded by the daily catch-up job, which loads
every object bronze does not hold. Run keys are derived from (key, ETag), so even a lost cursor
cannot launch the same load twice, and the dlt source itself skips versions bronze already holds.
"""

import hashlib
from datetime import timedelta

import dagster as dg
from dagster_aws.s3.sensor import get_objects

from ingestion.dlt_sources.landing_parse import KINDS
from ingestion.landing_cursor import LandingCursor, LandingObject, new_objects
from lakehouse.settings import get_settings
from lakehouse.stack.resources import s3_client
from orchestration.defs.dlt import bronze_landing_clickstream, bronze_landing_partner_feeds

MAX_OBJECTS_PER_RUN = 200
LOOKBACK = timedelta(minutes=15)
PREFIXES = {"clickstream": "clickstream/", "partner_feeds": "partner_feeds/"}
ASSETS = {"clickstream": bronze_landing_clickstream, "partner_feeds": bronze_landing_partner_feeds}


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


def _landing_sensor(kind: str) -> dg.SensorDefinition:
    assert kind in KINDS

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
        if not fresh:
            return dg.SkipReason(f"no new {kind} objects")
        return dg.SensorResult(run_requests=landing_run_requests(kind, fresh), cursor=advanced.to_json())

    return sensor


landing_sensors = [_landing_sensor(kind) for kind in PREFIXES]

defs = dg.Definitions(sensors=landing_sensors)
