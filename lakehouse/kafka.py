"""Kafka client configuration: the one place that knows how to reach the broker.

Locally (embedded broker, docker-compose) that is plaintext on the bootstrap address; on AWS, MSK
Serverless only accepts IAM authentication (SASL/OAUTHBEARER with a token signed by the task role).
"""

from __future__ import annotations

from typing import Any

from lakehouse.settings import Settings


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration for producers, consumers and admin clients."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol == "SASL_SSL":
        config["sasl.mechanisms"] = "OAUTHBEARER"
        config["oauth_cb"] = _msk_iam_token(settings.aws_region)
    config.update(extra)
    return config


def _msk_iam_token(region: str) -> Any:
    def token(_config: str) -> tuple[str, float]:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        value, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return value, expiry_ms / 1000

    return token
