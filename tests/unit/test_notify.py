"""Notification channels against a real local HTTP receiver: Slack-compatible and JSON webhooks,
first error lines, and a failing or slow channel that is logged and never raised."""

from __future__ import annotations

import logging

import pytest

from lakehouse.notify import JsonWebhook, Notification, Notifier, SlackWebhook, first_line, notifier_from_settings
from lakehouse.settings import DEFAULT_FRESHNESS_HOURS, Settings
from orchestration.freshness import policy
from tests.fixtures.receiver import http_receiver


def _notification(**changes: object) -> Notification:
    values: dict[str, object] = {
        "kind": "run_failure",
        "status": "firing",
        "incident": "run:cdc_sink:bronze/cdc/customers",
        "title": "Run of cdc_sink failed",
        "asset": "bronze/cdc/customers",
        "partition": "2026-01-02",
        "run_id": "abc123",
        "error": "CDC tables stopped: customers: incompatible type change",
        "url": "http://127.0.0.1:3000/runs/abc123",
    }
    values.update(changes)
    return Notification(**values)  # type: ignore[arg-type]


def test_first_line_skips_blank_lines_and_cuts_long_ones() -> None:
    assert first_line("\n\n  boom: it broke  \nTraceback ...") == "boom: it broke"
    assert first_line(None) is None and first_line("   \n") is None
    long = first_line("x" * 2000)
    assert long is not None and len(long) == 500 and long.endswith("…")


def test_every_channel_gets_asset_partition_run_error_and_link() -> None:
    with http_receiver() as receiver:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            alert_slack_webhook_url=receiver.url("/slack"),
            alert_webhook_url=receiver.url("/json"),
        )
        delivery = notifier_from_settings(settings).send(_notification())
        assert delivery.delivered == ["slack", "webhook"] and not delivery.failed
        (slack,) = receiver.at("/slack")
        text = slack["text"]
        for expected in (
            "*[ALERT] Run of cdc_sink failed*",
            "asset: bronze/cdc/customers (partition 2026-01-02)",
            "run: abc123",
            "error: CDC tables stopped: customers: incompatible type change",
            "<http://127.0.0.1:3000/runs/abc123|Open in Dagster>",
        ):
            assert expected in text
        (body,) = receiver.at("/json")
        assert body["status"] == "firing" and body["kind"] == "run_failure"
        assert body["incident"] == "run:cdc_sink:bronze/cdc/customers"
        assert (body["asset"], body["partition"], body["run_id"]) == ("bronze/cdc/customers", "2026-01-02", "abc123")
        assert body["url"] == "http://127.0.0.1:3000/runs/abc123"


def test_a_failing_channel_is_logged_and_the_others_still_deliver(caplog: pytest.LogCaptureFixture) -> None:
    with http_receiver() as down, http_receiver() as up:
        down.fail_with = 503
        notifier = Notifier([SlackWebhook(down.url("/slack"), 2.0), JsonWebhook(up.url("/json"), 2.0)])
        with caplog.at_level(logging.WARNING, logger="lakehouse.notify"):
            delivery = notifier.send(_notification(status="resolved"))
        assert delivery.failed == {"slack": "HTTP 503 Service Unavailable"}
        assert delivery.delivered == ["webhook"]
        assert [b["status"] for b in up.at("/json")] == ["resolved"]
        assert "not delivered to slack" in caplog.text
        assert down.url("/slack") not in caplog.text  # a webhook URL is a secret


def test_unreachable_and_slow_channels_fail_within_the_timeout() -> None:
    with http_receiver() as slow:
        slow.delay = 3.0
        closed = http_receiver()
        with closed as gone:
            dead_url = gone.url("/x")
        notifier = Notifier([JsonWebhook(dead_url, 1.0), JsonWebhook(slow.url("/json"), 0.5)])
        delivery = notifier.send(_notification())
        assert delivery.delivered == []
        assert len(delivery.results) == 2 and all(e and "unreachable" in e for e in delivery.failed.values())


def test_no_channel_configured_sends_nothing_and_does_not_fail() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert notifier_from_settings(settings).send(_notification()).results == {}


@pytest.mark.parametrize(
    "field,value",
    [
        ("alert_webhook_url", "ftp://example/x"),
        ("alert_sns_topic_arn", "arn:aws:sqs:us-east-1:123456789012:x"),
        ("dagster_ui_url", "http://ui/?q=1"),
        ("freshness_hours", {"gold": (1, 2)}),
        ("freshness_hours", {"silver": (3, 2)}),
        ("freshness_hours", {"silver": (2, 2)}),  # Dagster needs warn < fail
        ("freshness_hours", {"silver": (30 / 3600, 1)}),  # and windows of at least a minute
    ],
)
def test_alert_settings_are_validated(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        Settings(_env_file=None, **{field: value})  # type: ignore[call-arg]


@pytest.mark.parametrize("window", [(1 / 60, 1.5 / 60), (0.5, 2), *DEFAULT_FRESHNESS_HOURS.values()])
def test_every_accepted_freshness_window_is_a_valid_dagster_policy(window: tuple[float, float]) -> None:
    """What the settings accept must load: a policy Dagster refuses breaks the whole code location."""
    settings = Settings(_env_file=None, freshness_hours={"silver": window})  # type: ignore[call-arg]
    built = policy(settings, "silver")
    assert built.fail_window.to_timedelta().total_seconds() == pytest.approx(window[1] * 3600)


def test_freshness_defaults_and_overrides() -> None:
    settings = Settings(_env_file=None, freshness_hours={"silver": (0.5, 2)})  # type: ignore[call-arg]
    assert settings.freshness_window("silver") == (0.5, 2)
    assert settings.freshness_window("marts") == (26.0, 50.0)
    assert settings.dagster_ui == f"http://127.0.0.1:{settings.dagster_port}"
