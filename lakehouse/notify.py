"""Notifications that reach people: a Slack-compatible webhook, an SNS topic, a generic JSON webhook.

Plain library code (no Dagster): the alert sensors in `orchestration/defs/alerts.py` decide *when*
something is an incident and build a `Notification`; this module only delivers it to every
channel configured in the settings. A failing channel is logged and reported back, never raised:
an unreachable Slack must not fail the pipeline it reports on.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import SecretStr

from lakehouse.settings import Settings

log = logging.getLogger(__name__)

Status = Literal["firing", "resolved"]
#: what kind of incident a notification is about (docs/operations.md has one section each)
Kind = Literal["run_failure", "check_failed", "freshness", "tick_error"]

#: SNS subjects are limited to 100 characters
_SUBJECT_MAX = 100
#: the first error line is cut here (whole tracebacks belong in the Dagster UI)
_ERROR_MAX = 500


def first_line(text: str | None) -> str | None:
    """The first non-empty line of an error message, shortened."""
    if not text:
        return None
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= _ERROR_MAX else line[: _ERROR_MAX - 1] + "…"
    return None


@dataclass(frozen=True)
class Notification:
    """One message about one incident: it started (`firing`) or it cleared (`resolved`)."""

    kind: Kind
    status: Status
    #: the incident's identity: the firing and the resolved message of one incident share it
    incident: str
    title: str
    asset: str | None = None
    partition: str | None = None
    run_id: str | None = None
    #: the first line of the error (see `first_line`)
    error: str | None = None
    #: where to look in the Dagster UI
    url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def headline(self) -> str:
        marker = "RESOLVED" if self.status == "resolved" else "ALERT"
        return f"[{marker}] {self.title}"

    def lines(self) -> list[str]:
        """The human-readable body: what, where, which run, the error, the link."""
        lines = [self.headline]
        if self.asset:
            lines.append(f"asset: {self.asset}" + (f" (partition {self.partition})" if self.partition else ""))
        elif self.partition:
            lines.append(f"partition: {self.partition}")
        if self.run_id:
            lines.append(f"run: {self.run_id}")
        if self.error:
            lines.append(f"error: {self.error}")
        for name, value in self.details.items():
            lines.append(f"{name}: {value}")
        if self.url:
            lines.append(self.url)
        return lines

    def text(self) -> str:
        return "\n".join(self.lines())

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "incident": self.incident,
            "title": self.title,
            "asset": self.asset,
            "partition": self.partition,
            "run_id": self.run_id,
            "error": self.error,
            "url": self.url,
            "details": self.details,
            "at": self.at.isoformat(),
        }


class Channel(Protocol):
    """Somewhere a notification goes; `send` raises on failure (the `Notifier` catches it)."""

    name: str

    def send(self, notification: Notification) -> None: ...


def _post_json(url: str, body: dict[str, Any], timeout: float) -> None:
    if not url.startswith(("http://", "https://")):
        raise ValueError("a webhook URL must be http(s)")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=json.dumps(body, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "lakehouse-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            response.read()
    except urllib.error.HTTPError as exc:
        # never echo the URL: a Slack webhook URL is a secret
        raise RuntimeError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RuntimeError(f"unreachable: {reason}") from None


class SlackWebhook:
    """A Slack-compatible incoming webhook (`{"text": ...}`; Mattermost and others accept it too)."""

    name = "slack"

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self.timeout = timeout

    def send(self, notification: Notification) -> None:
        lines = notification.lines()
        lines[0] = f"*{lines[0]}*"
        if notification.url:
            lines[-1] = f"<{notification.url}|Open in Dagster>"
        _post_json(self._url, {"text": "\n".join(lines)}, self.timeout)


class JsonWebhook:
    """A generic webhook: the notification as one JSON object (`Notification.as_json`)."""

    name = "webhook"

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self.timeout = timeout

    def send(self, notification: Notification) -> None:
        _post_json(self._url, notification.as_json(), self.timeout)


class SnsTopic:
    """An SNS topic: the text as message (e-mail subscribers read it), the fields as attributes."""

    name = "sns"

    def __init__(self, settings: Settings, topic_arn: str) -> None:
        import boto3
        from botocore.config import Config

        self.topic_arn = topic_arn
        timeout = settings.alert_timeout_seconds
        self._client = boto3.client(
            "sns",
            config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2}),
            **settings.boto3_kwargs(),
        )

    def send(self, notification: Notification) -> None:
        subject = notification.headline
        if len(subject) > _SUBJECT_MAX:
            subject = subject[: _SUBJECT_MAX - 1] + "…"
        attributes = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in (
                ("kind", notification.kind),
                ("status", notification.status),
                ("incident", notification.incident[:256]),
            )
        }
        self._client.publish(
            TopicArn=self.topic_arn, Subject=subject, Message=notification.text(), MessageAttributes=attributes
        )


@dataclass
class Delivery:
    """What became of one notification: channel name -> None (delivered) or the error."""

    results: dict[str, str | None] = field(default_factory=dict)

    @property
    def delivered(self) -> list[str]:
        return [name for name, error in self.results.items() if error is None]

    @property
    def failed(self) -> dict[str, str]:
        return {name: error for name, error in self.results.items() if error is not None}


class Notifier:
    """Sends each notification to every channel; a failing channel is logged, never raised."""

    def __init__(self, channels: Sequence[Channel]) -> None:
        self.channels = list(channels)

    def send(self, notification: Notification) -> Delivery:
        delivery = Delivery()
        for number, channel in enumerate(self.channels, start=1):
            name = channel.name if channel.name not in delivery.results else f"{channel.name}#{number}"
            try:
                channel.send(notification)
                delivery.results[name] = None
            except Exception as exc:  # any channel failure: logged, the pipeline goes on
                error = first_line(str(exc)) or type(exc).__name__
                delivery.results[name] = error
                log.warning("notification %r not delivered to %s: %s", notification.headline, name, error)
        if not self.channels:
            log.info("no notification channel configured: %s", notification.headline)
        return delivery


def _secret(value: SecretStr | str | None) -> str | None:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def channels_from_settings(settings: Settings) -> list[Channel]:
    """The channels the settings configure (none: notifications are only logged)."""
    channels: list[Channel] = []
    timeout = settings.alert_timeout_seconds
    slack, webhook = _secret(settings.alert_slack_webhook_url), _secret(settings.alert_webhook_url)
    if slack:
        channels.append(SlackWebhook(slack, timeout))
    if settings.alert_sns_topic_arn:
        channels.append(SnsTopic(settings, settings.alert_sns_topic_arn))
    if webhook:
        channels.append(JsonWebhook(webhook, timeout))
    return channels


def notifier_from_settings(settings: Settings) -> Notifier:
    return Notifier(channels_from_settings(settings))
