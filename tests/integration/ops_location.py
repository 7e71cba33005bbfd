"""A small code location for the daemon test: the CDC assets with the freshness of their layers,
the lag checks, the lake-health and alert sensors (no sink sensor: the test stops and starts the
sink itself). Settings come from the environment, like the real location's."""

import dagster as dg

from lakehouse.settings import get_settings
from orchestration.defs import alerts, cdc, health
from orchestration.freshness import with_freshness
from orchestration.resources import build_resources

defs = with_freshness(
    dg.Definitions(
        assets=[*cdc.postgres_tables, cdc.cdc_sink, health.replication_slot],
        asset_checks=[health.lake_health_checks],
        sensors=[alerts.alerts_sensor, health.lake_health_sensor],
        resources=build_resources(get_settings()),
    ),
    get_settings(),
)
