"""The landing sensors against the real S3 emulator: new objects, same-second objects, re-uploads,
a restart from the stored cursor."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import dagster as dg
import pytest

from lakehouse import settings as settings_module
from lakehouse.settings import Settings
from lakehouse.stack.resources import s3_client
from orchestration.defs.landing import landing_sensors


@pytest.fixture
def landing(isolated_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = isolated_settings()
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    settings_module.get_settings.cache_clear()
    yield settings
    settings_module.get_settings.cache_clear()


def _evaluate(cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
    from orchestration.definitions import defs

    sensor = next(s for s in landing_sensors if s.name == "landing_clickstream_sensor")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs)
        result = sensor.evaluate_tick(context)
    return list(result.run_requests or []), result.cursor


def _keys(requests: list[dg.RunRequest]) -> list[str]:
    keys: list[str] = []
    for request in requests:
        for op in request.run_config["ops"].values():
            keys += op["config"]["keys"]
    return sorted(keys)


def _put(settings: Settings, key: str, body: bytes) -> None:
    s3_client(settings).put_object(Bucket=settings.landing_bucket, Key=key, Body=gzip.compress(body, mtime=0))


def test_sensor_reports_each_object_version_once(landing: Settings) -> None:
    day = "clickstream/dt=2026-11-20"
    for name in ("a", "b", "c"):  # written within the same second or two
        _put(landing, f"{day}/events-{name}.json.gz", b'{"n": "' + name.encode() + b'"}\n')
    requests, cursor = _evaluate(None)
    assert _keys(requests) == [f"{day}/events-a.json.gz", f"{day}/events-b.json.gz", f"{day}/events-c.json.gz"]
    assert all(r.run_key and r.run_key.startswith("clickstream:") for r in requests)

    _put(landing, f"{day}/events-d.json.gz", b"{}\n")  # same second as the high-water mark, likely
    requests, cursor = _evaluate(cursor)
    assert _keys(requests) == [f"{day}/events-d.json.gz"]

    requests, cursor = _evaluate(cursor)
    assert requests == []

    _put(landing, f"{day}/events-a.json.gz", b'{"n": "a"}\n')  # same content again: same ETag
    requests, cursor = _evaluate(cursor)
    assert requests == []
    _put(landing, f"{day}/events-a.json.gz", b'{"n": "changed"}\n')
    requests, cursor = _evaluate(cursor)
    assert _keys(requests) == [f"{day}/events-a.json.gz"]

    # a restart: a new evaluation from the stored cursor finds nothing new
    requests, _ = _evaluate(cursor)
    assert requests == []


def test_partner_feeds_are_not_picked_up_by_the_clickstream_sensor(landing: Settings) -> None:
    s3_client(landing).put_object(
        Bucket=landing.landing_bucket, Key="partner_feeds/partner_001/dt=2026-11-20/feed-1.csv", Body=b"x\n"
    )
    requests, _ = _evaluate(None)
    assert requests == []


def test_odd_keys_never_block_the_valid_objects_of_a_tick(landing: Settings) -> None:
    """A marker file or an unexpected path under the prefix: the valid objects still load, the
    odd one is quarantined with a clear record, an empty marker is skipped."""
    from ingestion.dlt_sources import load_landing
    from tests.integration.test_dlt_landing import bronze

    valid = "clickstream/dt=2026-11-20/events-ok.json.gz"
    _put(
        landing,
        valid,
        b'{"event_id": "e1", "event_type": "page_view", "event_ts": "2026-11-20T10:00:00Z", "session_id": "s"}\n',
    )
    odd = "clickstream/dt=2026-11-20/nested/extra.json"
    s3_client(landing).put_object(Bucket=landing.landing_bucket, Key=odd, Body=b'{"event_id": "e2"}\n')
    marker = "clickstream/dt=2026-11-20/_SUCCESS"
    s3_client(landing).put_object(Bucket=landing.landing_bucket, Key=marker, Body=b"")
    requests, _ = _evaluate(None)
    assert _keys(requests) == [valid, odd]  # the empty marker starts no run

    [request] = requests
    report = load_landing(landing, kind="clickstream", object_keys=_keys([request]))
    assert sorted((o.key, o.rows, o.quarantined) for o in report.objects) == [(valid, 1, 0), (odd, 0, 1)]
    assert [r["event_id"] for r in bronze(landing, "clickstream")] == ["e1"]
    [quarantined] = bronze(landing, "_quarantine")
    assert (quarantined["object_key"], quarantined["line_number"]) == (odd, 0)
    assert "does not follow the clickstream landing layout" in quarantined["reason"]
    # recorded like any object version: the catch-up (prefix mode) does not quarantine it again
    assert load_landing(landing, kind="clickstream").objects == []
    assert load_landing(landing, kind="clickstream", object_keys=[marker]).objects == []
