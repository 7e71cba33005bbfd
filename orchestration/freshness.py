"""Freshness policies of every layer, applied in one place (`orchestration/definitions.py`).

Each asset's layer comes from its key and group: the bronze groups (one per source: CDC, DynamoDB,
landing files, marketing API), silver current state, silver history (`silver/<table>_history`) and
the dbt marts. The windows are settings (`LAKEHOUSE_FRESHNESS_HOURS`, defaults in
`lakehouse.settings.DEFAULT_FRESHNESS_HOURS`). Dagster's freshness daemon evaluates them and
records each state change; the alert sensor notifies when one fails and when it passes again.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from lakehouse.settings import Settings

#: asset group -> layer of the freshness settings (silver splits into current state and history by key)
GROUP_LAYERS = {
    "cdc_bronze": "bronze_cdc",
    "bronze_dynamodb": "bronze_dynamodb",
    "bronze_landing": "bronze_landing",
    "bronze_marketing": "bronze_marketing",
    "silver": "silver",
    "marts": "marts",
}


def layer_of(spec: dg.AssetSpec) -> str | None:
    """The freshness layer of an asset, None for assets without a policy (sources, maintenance...)."""
    layer = GROUP_LAYERS.get(spec.group_name or "")
    if layer == "silver" and spec.key.path[-1].endswith("_history"):
        return "history"
    return layer


def policy(settings: Settings, layer: str) -> dg.FreshnessPolicy:
    warn, fail = settings.freshness_window(layer)
    return dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=fail), warn_window=timedelta(hours=warn))


def with_freshness(defs: dg.Definitions, settings: Settings) -> dg.Definitions:
    """`defs` with the freshness policy of its layer on every asset that has one."""

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        layer = layer_of(spec)
        if layer is None:
            return spec
        return spec.replace_attributes(freshness_policy=policy(settings, layer))

    return defs.map_asset_specs(func=apply)
