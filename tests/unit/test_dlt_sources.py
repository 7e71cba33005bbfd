"""dlt sources without the stack: cursors, DynamoDB conversion and parallel scan, construction offline."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import Binary

from ingestion.dlt_sources import (
    PIPELINES,
    dynamodb_source,
    load_landing,
    make_pipeline,
    marketing_source,
)
from ingestion.dlt_sources.core import UpdatedAtCursor, canonical_iso, iso_max, parse_iso
from ingestion.dlt_sources.dynamodb import deserialize, parallel_scan, plain
from ingestion.dlt_sources.marketing import api_base_url, marketing_resource, newest_per_key
from lakehouse.settings import Settings


@pytest.fixture
def offline_settings(tmp_path: Path) -> Settings:
    """Settings pointing at ports nothing listens on: any network access would fail loudly."""
    return Settings(
        _env_file=None,
        environment="local",
        state_dir=tmp_path,
        s3_port=1,
        api_port=1,
        name_prefix="offline-test",
    )


def test_iso_max_compares_times_not_strings() -> None:
    # as strings "…00Z" > "…00.5Z"; as times it is the other way round
    assert iso_max(["2026-11-20T10:00:00Z", "2026-11-20T10:00:00.5Z"]) == "2026-11-20T10:00:00.500000Z"
    assert iso_max(["2026-11-20T12:00:00+02:00", "2026-11-20T10:30:00Z"]) == "2026-11-20T10:30:00.000000Z"
    assert iso_max(["2026-11-20T10:00:00"]) == "2026-11-20T10:00:00.000000Z"  # naive = UTC
    assert canonical_iso("2026-11-20T10:00:00.000001Z") == "2026-11-20T10:00:00.000001Z"


def test_timestamps_in_any_iso_form_compare_as_instants() -> None:
    """DynamoDB writers are not uniform: a space separator or another offset is the same instant."""
    same = ["2026-11-20T10:00:00Z", "2026-11-20 10:00:00", "2026-11-20T05:00:00-05:00", "2026-11-20 11:00:00+01:00"]
    assert {canonical_iso(v) for v in same} == {"2026-11-20T10:00:00.000000Z"}
    assert parse_iso("2026-11-20T05:00:00-05:00") > parse_iso("2026-11-20T09:59:59Z")  # not as text
    with pytest.raises(ValueError):
        canonical_iso("yesterday")


def test_scan_cursor_never_passes_the_scan_start() -> None:
    """An item updated during a scan may carry an older `updated_at` than items read after it."""
    started = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
    safety = dt.timedelta(minutes=5)
    # items stamped ahead of the scan start (fast writer clocks, or written during the scan)
    cursor = UpdatedAtCursor().advance(
        {"a": "2026-11-20T11:00:00.000000Z", "b": "2026-11-20T13:00:00.000000Z"}, started, safety
    )
    assert cursor.since == "2026-11-20T11:55:00.000000Z"  # not 13:00: that would lose later writes below it
    assert cursor.seen == {"b": "2026-11-20T13:00:00.000000Z"}  # read again next time, skipped if unchanged


def test_scan_cursor_follows_the_newest_item_and_skips_unchanged_ones() -> None:
    started = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
    safety = dt.timedelta(minutes=5)
    first = UpdatedAtCursor().advance(
        {"a": "2026-11-19T08:00:00.000000Z", "b": "2026-11-19T09:00:00.000000Z"}, started, safety
    )
    assert first.since == "2026-11-19T09:00:00.000000Z" and first.seen == {"b": "2026-11-19T09:00:00.000000Z"}
    # nothing returned: unchanged (the state round-trips through dlt's JSON state)
    assert UpdatedAtCursor.from_state(first.to_state()) == first
    assert first.advance({}, started + dt.timedelta(hours=1), safety) == first
    # b changed, c is new: the cursor moves on and forgets keys below it
    later = first.advance({"b": "2026-11-20T10:00:00.000000Z", "c": "2026-11-20T10:00:00.000000Z"}, started, safety)
    assert later.since == "2026-11-20T10:00:00.000000Z"
    assert later.seen == {"b": "2026-11-20T10:00:00.000000Z", "c": "2026-11-20T10:00:00.000000Z"}


def test_dynamodb_values_become_plain_python() -> None:
    item = deserialize(
        {
            "cart_id": {"S": "c1"},
            "customer_id": {"N": "42"},
            "score": {"N": "1E+2"},
            "items": {"L": [{"M": {"product_id": {"N": "7"}, "quantity": {"N": "2"}, "unit_price": {"N": "19.99"}}}]},
            "tags": {"SS": ["b", "a"]},
            "blob": {"B": b"\x00\x01"},
            "flag": {"BOOL": True},
            "nothing": {"NULL": True},
        }
    )
    assert item == {
        "cart_id": "c1",
        "customer_id": 42,
        "score": 100,
        "items": [{"product_id": 7, "quantity": 2, "unit_price": 19.99}],
        "tags": ["a", "b"],
        "blob": "AAE=",
        "flag": True,
        "nothing": None,
    }
    assert type(item["customer_id"]) is int and type(item["items"][0]["unit_price"]) is float
    assert plain(Decimal("-3.50")) == -3.5 and plain(Binary(b"x")) == "eA=="


def test_parallel_scan_reads_every_segment_page_by_page_concurrently() -> None:
    pages = {0: [["a1", "a2"], ["a3"]], 1: [["b1"]], 2: [[], ["c1"]], 3: [["d1"], ["d2"], ["d3"]]}
    calls: list[tuple[int, int, Any]] = []
    running, peak = [0], [0]
    lock = threading.Lock()

    def scan(**kwargs: Any) -> dict[str, Any]:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        segment, total = kwargs["Segment"], kwargs["TotalSegments"]
        index = kwargs.get("ExclusiveStartKey", {}).get("i", 0)
        calls.append((segment, total, kwargs.get("FilterExpression")))
        with lock:
            running[0] -= 1
        response: dict[str, Any] = {"Items": pages[segment][index]}
        if index + 1 < len(pages[segment]):
            response["LastEvaluatedKey"] = {"i": index + 1}
        return response

    seen: list[Any] = [
        item for page in parallel_scan(scan, {"TableName": "t", "FilterExpression": "f"}, 4) for item in page
    ]
    assert sorted(seen) == ["a1", "a2", "a3", "b1", "c1", "d1", "d2", "d3"]
    assert sorted({c[0] for c in calls}) == [0, 1, 2, 3] and {c[1] for c in calls} == {4}
    assert len(calls) == 8 and {c[2] for c in calls} == {"f"}
    assert peak[0] > 1  # segments really ran in parallel


def test_parallel_scan_propagates_errors() -> None:
    def scan(**kwargs: Any) -> dict[str, Any]:
        if kwargs["Segment"] == 2:
            raise RuntimeError("throttled")
        return {"Items": [kwargs["Segment"]]}

    with pytest.raises(RuntimeError, match="throttled"):
        list(parallel_scan(scan, {"TableName": "t"}, 4))
    with pytest.raises(ValueError):
        list(parallel_scan(scan, {"TableName": "t"}, 0))


def test_sources_and_pipelines_build_without_network(offline_settings: Settings) -> None:
    """What Dagster does at import time: must not connect to anything (ports are closed)."""
    dynamo = dynamodb_source(offline_settings)
    assert dynamo.name == "dynamodb" and list(dynamo.resources) == ["carts", "sessions", "reviews"]
    assert dynamo.resources["carts"].write_disposition == {"disposition": "merge", "strategy": "upsert"}
    marketing = marketing_source(offline_settings)
    assert marketing.name == "marketing" and list(marketing.resources) == ["campaigns", "ad_spend"]
    for name in PIPELINES:
        pipeline = make_pipeline(offline_settings, name)
        assert pipeline.dataset_name == PIPELINES[name]
        assert Path(pipeline.pipelines_dir) == offline_settings.state_path / "dlt"
    assert len({make_pipeline(offline_settings, n).pipeline_name for n in PIPELINES}) == len(PIPELINES)


def test_inputs_are_validated(offline_settings: Settings) -> None:
    # the landing loader checks its arguments before anything touches S3 (the ports are closed)
    with pytest.raises(ValueError, match="landing object key"):
        load_landing(offline_settings, object_keys=["../secrets"], kind="clickstream")
    with pytest.raises(ValueError, match="landing object key"):
        load_landing(offline_settings, object_keys=["partner_feeds/p1/dt=2026-11-20/f.csv"], kind="clickstream")
    with pytest.raises(ValueError, match="landing object key"):
        load_landing(offline_settings, object_keys=["clickstream/dt=2026-11-20/a\nb"], kind="clickstream")
    with pytest.raises(TypeError):
        load_landing(offline_settings, object_keys="clickstream/dt=2026-11-20/a.json.gz")
    with pytest.raises(ValueError, match="unknown landing kind"):
        load_landing(offline_settings, kind="orders")
    with pytest.raises(ValueError):
        load_landing(offline_settings, prefix="partner_feeds/", kind="clickstream")
    with pytest.raises(ValueError, match="workers"):
        load_landing(offline_settings, workers=0)
    with pytest.raises(ValueError):
        dynamodb_source(offline_settings, tables=["orders"])
    with pytest.raises(ValueError):
        marketing_source(offline_settings, page_size=1001)
    with pytest.raises(ValueError):
        marketing_source(offline_settings, base_url="file:///etc")
    with pytest.raises(ValueError, match="unknown marketing resource"):
        marketing_resource(offline_settings, "orders")
    with pytest.raises(ValueError, match="invalid pipeline name"):
        make_pipeline(offline_settings, "../escape", dataset="landing")
    with pytest.raises(ValueError, match="unknown pipeline"):
        make_pipeline(offline_settings, "bronze_other")
    with pytest.raises(ValueError, match="unknown dataset"):
        make_pipeline(offline_settings, "bronze_other", dataset="silver")  # type: ignore[arg-type]


def test_marketing_resources_merge_on_their_primary_key(offline_settings: Settings) -> None:
    assert api_base_url(offline_settings) == offline_settings.api_url + "/"
    source = marketing_source(offline_settings, page_size=25)
    keys = {name: r.compute_table_schema()["columns"] for name, r in source.resources.items()}
    assert {n: [c for c, h in cols.items() if h.get("primary_key")] for n, cols in keys.items()} == {
        "campaigns": ["campaign_id"],
        "ad_spend": ["campaign_id", "spend_date"],
    }
    assert all(r.write_disposition == {"disposition": "merge", "strategy": "upsert"} for r in source.resources.values())


def test_a_load_keeps_the_newest_row_per_key() -> None:
    """A keyset cursor re-reads a row updated mid-read; an upsert must see each key once."""
    rows = [
        {"campaign_id": "a", "spend_date": "2026-11-01", "updated_at": "2026-11-20T10:00:00Z", "spend": 1},
        {"campaign_id": "a", "spend_date": "2026-11-02", "updated_at": "2026-11-20T10:00:00Z", "spend": 2},
        {"campaign_id": "a", "spend_date": "2026-11-01", "updated_at": "2026-11-20T10:00:00.5Z", "spend": 3},
        # an older copy read after a newer one (clock skew, replica lag) does not win
        {"campaign_id": "a", "spend_date": "2026-11-02", "updated_at": "2026-11-20T09:00:00+00:00", "spend": 4},
        # equal stamps: the last one read wins
        {"campaign_id": "b", "spend_date": "2026-11-01", "updated_at": "2026-11-20T11:00:00Z", "spend": 5},
        {"campaign_id": "b", "spend_date": "2026-11-01", "updated_at": "2026-11-20T12:00:00+01:00", "spend": 6},
    ]
    newest = newest_per_key(rows, ("campaign_id", "spend_date"))
    assert {k: row["spend"] for k, (_stamp, row) in newest.items()} == {
        '["a", "2026-11-01"]': 3,
        '["a", "2026-11-02"]': 2,
        '["b", "2026-11-01"]': 6,
    }
    assert newest['["a", "2026-11-01"]'][0] == "2026-11-20T10:00:00.500000Z"
    with pytest.raises(ValueError, match="primary key"):
        newest_per_key([{"campaign_id": "a", "updated_at": "2026-11-20T10:00:00Z"}], ("campaign_id", "spend_date"))
    with pytest.raises(ValueError, match="updated_at"):
        newest_per_key([{"campaign_id": "a"}], ("campaign_id",))


def test_cursor_skips_rows_inside_the_margin_that_did_not_change() -> None:
    started = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
    cursor = UpdatedAtCursor().advance({"a": "2026-11-20T11:58:00.000000Z"}, started)
    assert cursor.since == "2026-11-20T11:55:00.000000Z"  # the default margin (5 min) caps it
    assert not cursor.wants("a", "2026-11-20T11:58:00.000000Z")  # read again, unchanged: skipped
    assert cursor.wants("a", "2026-11-20T11:59:00.000000Z") and cursor.wants("b", "2026-11-20T11:56:00.000000Z")
    assert not cursor.wants("c", "2026-11-20T11:54:59.000000Z")  # below the cursor
    assert cursor.forget(["a"]).wants("a", "2026-11-20T11:58:00.000000Z")


def test_column_hints_are_not_shared_between_columns(offline_settings: Settings) -> None:
    """dlt writes each column's name into its hint dict: a shared dict would rename columns."""
    for source in (dynamodb_source(offline_settings), marketing_source(offline_settings)):
        for resource in source.resources.values():
            columns = resource.compute_table_schema()["columns"]
            assert columns and all(name == column["name"] for name, column in columns.items()), resource.name
    timestamps = dynamodb_source(offline_settings).resources["sessions"].compute_table_schema()["columns"]
    assert {n for n, c in timestamps.items() if c.get("data_type") == "timestamp"} == {
        "started_at",
        "ended_at",
        "updated_at",
    }


def test_odd_landing_keys_are_told_apart_and_traversal_keys_never_reach_s3(offline_settings: Settings) -> None:
    from ingestion.dlt_sources.landing import head_objects
    from ingestion.dlt_sources.landing_parse import follows_layout, is_marker

    assert follows_layout("clickstream", "clickstream/dt=2026-11-20/events-1.json.gz")
    assert not follows_layout("clickstream", "clickstream/dt=2026-11-20/nested/x.json")
    assert is_marker("clickstream", "clickstream/dt=2026-11-20/_SUCCESS", 0)
    assert not is_marker("clickstream", "clickstream/dt=2026-11-20/_SUCCESS", 12)  # has content: quarantined
    assert not is_marker("clickstream", "clickstream/dt=2026-11-20/empty.json.gz", 0)  # on the layout: loaded

    class NoTraversal:
        def head_object(self, **kwargs: Any) -> dict[str, Any]:
            assert ".." not in kwargs["Key"]
            return {"ETag": '"abc"', "ContentLength": 3}

    found = head_objects(
        offline_settings, "clickstream", ["clickstream/dt=2026-11-20/../../x", "clickstream/a"], NoTraversal()
    )
    assert {k: (v.etag, v.size) for k, v in found.items()} == {
        "clickstream/dt=2026-11-20/../../x": ("", 1),
        "clickstream/a": ("abc", 3),
    }


def test_quarantine_check_names_objects_above_the_threshold_only() -> None:
    from ingestion.dlt_sources import LandingLoad, ObjectLoad
    from ingestion.dlt_sources.checks import quarantine_outcome, unknown_fields_outcome

    report = LandingLoad("clickstream", "1.0")
    assert quarantine_outcome(report, 0.05).passed  # nothing loaded: nothing to blame
    report.objects = [
        ObjectLoad("k/at-limit", "e1", 95, 5, (), False),  # exactly 5%: allowed
        ObjectLoad("k/all-bad", "e2", 0, 40, (), False, top_reason="customer_id: expected an integer"),
        ObjectLoad("k/some-bad", "e3", 90, 10, (), False, ("coupon",), "invalid JSON"),
    ]
    outcome = quarantine_outcome(report, 0.05)
    assert not outcome.passed and outcome.description.startswith("2 object(s) above 5.0%")
    assert [line.split(" ")[0] for line in outcome.metadata["offending_objects"]] == ["k/all-bad", "k/some-bad"]
    assert "customer_id: expected an integer" in outcome.metadata["offending_objects"][0]
    assert quarantine_outcome(report, 1.0).passed
    unknown = unknown_fields_outcome(report)
    assert not unknown.passed and unknown.metadata["unknown_fields"] == ["coupon"]


def _build_pipeline_after(barrier: Any, state_dir: str, name: str) -> str:
    """Child process: wait for the others, then build the pipeline as a Dagster process does on import."""
    settings = Settings(_env_file=None, environment="local", state_dir=Path(state_dir), s3_port=1, api_port=1)
    barrier.wait(timeout=60)
    try:
        pipeline = make_pipeline(settings, name)
    except Exception as exc:  # reported to the parent, which names it
        return f"{type(exc).__name__}: {exc}"
    return "ok" if (Path(pipeline.working_dir) / "state.json").is_file() else "no state.json"


def test_processes_building_one_pipeline_together_on_a_fresh_state_dir(tmp_path: Path) -> None:
    """Webserver, daemon, code server and runs import the definitions, so build the pipelines, at the
    same moment on a fresh state dir (a clean clone's test workers did: FileExistsError in one of them).
    Each builds it or attaches to the one another process built; none fails, none wipes another's."""
    context = multiprocessing.get_context("fork")
    processes = 6
    for round_number in range(8):
        state_dir = tmp_path / f"round-{round_number}"
        with context.Manager() as manager, ProcessPoolExecutor(processes, mp_context=context) as pool:
            barrier = manager.Barrier(processes)
            names = [*PIPELINES] * (processes // 2)
            futures = [pool.submit(_build_pipeline_after, barrier, str(state_dir), name) for name in names]
            # a child that dies breaks the pool (BrokenProcessPool) instead of hanging the test
            outcomes = [future.result(timeout=120) for future in futures]
        assert outcomes == ["ok"] * processes, f"round {round_number}: {outcomes}"
        for name in PIPELINES:
            assert (state_dir / "dlt" / name / "state.json").is_file()
