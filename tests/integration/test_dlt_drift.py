"""Schema drift is seen: asset checks on the landing quarantine rate and unknown fields, and on the
dlt variant columns of DynamoDB (real stack, real Dagster run of the landing asset)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import dagster as dg
import pytest

from ingestion.dlt_sources import dynamodb_source, load_landing, make_pipeline, raise_on_failed
from ingestion.dlt_sources.checks import variant_outcome
from lakehouse import settings as settings_module
from lakehouse.settings import Settings
from tests.integration.test_dlt_dynamodb import START, put, review
from tests.integration.test_dlt_landing import bronze, event, put_lines


@pytest.fixture
def env_settings(isolated_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Isolated settings that `get_settings()` returns too (what the Dagster ops read)."""
    settings = isolated_settings()
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    settings_module.get_settings.cache_clear()
    yield settings
    settings_module.get_settings.cache_clear()


def test_landing_checks_name_the_object_a_type_change_sent_to_quarantine(env_settings: Settings) -> None:
    from orchestration.defs.landing import bronze_landing_clickstream

    settings = env_settings
    clean = "clickstream/dt=2026-11-20/events-clean.json.gz"
    changed = "clickstream/dt=2026-11-20/events-changed.json.gz"
    extra = "clickstream/dt=2026-11-20/events-extra.json.gz"
    put_lines(settings, clean, [json.dumps(event(i)) for i in range(20)] + ["{broken"])  # 1 of 21: under 5%
    # the producer started sending customer_id as a string: every line is quarantined
    put_lines(settings, changed, [json.dumps(event(i, customer_id=f"C-{i}")) for i in range(20)])
    put_lines(settings, extra, [json.dumps(event(i, coupon="SAVE10")) for i in range(5)])
    result = dg.materialize(
        [bronze_landing_clickstream],
        run_config={"ops": {"bronze_landing_clickstream": {"config": {"keys": [clean, changed, extra]}}}},
        raise_on_error=False,
    )
    assert result.success  # the load itself worked: the checks carry the bad news
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    quarantine = checks["quarantine_rate"]
    assert not quarantine.passed and quarantine.severity == dg.AssetCheckSeverity.ERROR
    assert changed in (quarantine.description or "")
    named = quarantine.metadata["offending_objects"].value
    assert len(named) == 1 and named[0].startswith(changed) and "100%" in named[0]
    assert "customer_id: expected an integer" in named[0]
    unknown = checks["unknown_fields"]
    assert not unknown.passed and unknown.severity == dg.AssetCheckSeverity.WARN
    assert unknown.metadata["unknown_fields"].value == ["coupon"]

    # nothing was lost: the unknown field is kept, the manifest records the counts
    rows = bronze(settings, "clickstream")
    assert {json.loads(r["_extra_fields"])["coupon"] for r in rows if r["_object_key"] == extra} == {"SAVE10"}
    manifest = {m["object_key"]: m for m in bronze(settings, "_objects") if m["status"] == "loaded"}
    assert (manifest[changed]["rows"], manifest[changed]["quarantined_lines"]) == (0, 20)
    assert manifest[extra]["unknown_fields"] == ["coupon"]

    # once the cause is fixed, `reload` loads objects again, replacing (not adding to) their rows
    again = load_landing(settings, object_keys=[clean], reload=True)
    assert [(o.key, o.rows) for o in again.objects] == [(clean, 20)]
    assert len([r for r in bronze(settings, "clickstream") if r["_object_key"] == clean]) == 20
    assert len([q for q in bronze(settings, "_quarantine") if q["object_key"] == clean]) == 1


def test_a_dynamodb_type_change_is_caught_by_the_variant_check(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    put(settings, "reviews", [review(i, START) for i in range(5)])
    pipeline = make_pipeline(settings, "bronze_dynamodb")
    raise_on_failed(pipeline.run(dynamodb_source(settings, tables=["reviews"])))
    assert variant_outcome(settings, "dynamodb", "reviews", ("review_id",), 0).passed

    # a writer starts storing the rating as text: the row loads, its value lands in a variant column
    put(settings, "reviews", [review(9, START) | {"rating": "five"}])
    raise_on_failed(pipeline.run(dynamodb_source(settings, tables=["reviews"])))
    rows = {r["review_id"]: r for r in bronze_dynamodb(settings, "reviews")}
    assert len(rows) == 6 and rows["rev-0009"]["rating"] is None and rows["rev-0009"]["rating__v_text"] == "five"
    outcome = variant_outcome(settings, "dynamodb", "reviews", ("review_id",), 0)
    assert not outcome.passed
    assert outcome.metadata["variant_columns"] == {"rating__v_text": 1}
    assert outcome.metadata["offending_keys"] == ["rev-0009: rating__v_text = 'five'"]
    assert "rev-0009" in outcome.description
    assert variant_outcome(settings, "dynamodb", "reviews", ("review_id",), 1).passed  # within the threshold


def bronze_dynamodb(settings: Settings, table: str) -> list[dict[str, object]]:
    from deltalake import DeltaTable

    uri = settings.lake_uri("bronze", "dynamodb", table)
    return DeltaTable(uri, storage_options=settings.delta_storage_options).to_pyarrow_table().to_pylist()
