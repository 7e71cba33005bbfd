from pathlib import Path

import pytest
from pydantic import ValidationError

from lakehouse.settings import Settings


def make(**kwargs: object) -> Settings:
    return Settings(_env_file=None, **kwargs)  # type: ignore[call-arg, arg-type]


def test_local_defaults_point_at_the_embedded_stack() -> None:
    s = make()
    assert s.s3_endpoint == "http://127.0.0.1:4566"
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.delta_storage_options["AWS_ALLOW_HTTP"] == "true"
    assert s.broker_bucket in s.buckets


def test_prod_uses_real_aws_and_no_static_keys() -> None:
    s = make(environment="prod", name_prefix="shop-prod")
    assert s.s3_endpoint is None
    assert "AWS_ENDPOINT_URL" not in s.delta_storage_options
    assert s.aws_access_key_id is None
    assert s.lake_bucket == "shop-prod-lake"
    assert s.glue_databases == {
        "bronze": "shop_prod_bronze",
        "silver": "shop_prod_silver",
        "marts": "shop_prod_marts",
    }
    assert s.resolved_dbt_target == "athena"
    assert s.broker_bucket not in s.buckets


@pytest.mark.parametrize("prefix", ["Bad_Prefix", "x", "has space", "-lead"])
def test_invalid_name_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(ValidationError, match="name_prefix"):
        make(name_prefix=prefix)


@pytest.mark.parametrize("schema", ["shop; drop table x", "Shop", "1abc"])
def test_sql_identifiers_are_validated(schema: str) -> None:
    with pytest.raises(ValidationError):
        make(oltp_schema=schema)


@pytest.mark.parametrize("segment", ["../etc", "/abs", "a b", "x/../y"])
def test_lake_uri_rejects_path_traversal(segment: str) -> None:
    with pytest.raises(ValueError, match="invalid lake path"):
        make().lake_uri("bronze", segment)


def test_lake_uri_and_topics() -> None:
    s = make(name_prefix="acme")
    assert s.lake_uri("silver", "orders") == "s3://acme-lake/silver/orders"
    assert s.cdc_topic("orders") == "ecom.shop.orders"
    with pytest.raises(ValueError, match="unknown DynamoDB table"):
        s.dynamodb_table("nope")


def test_env_round_trip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = make(state_dir=tmp_path, s3_port=1234, postgres_password="p'w\\d", name_prefix="round-trip")
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    restored = Settings(_env_file=None)  # type: ignore[call-arg]
    resolved = {"state_dir": tmp_path.resolve(), "localstack_home": original.localstack_path}
    assert restored.model_dump() == original.model_dump() | resolved
    assert restored.postgres_password.get_secret_value() == "p'w\\d"


def test_conninfo_quotes_password() -> None:
    s = make(postgres_password="a'b c")
    assert "password='a\\'b c'" in s.postgres_conninfo()
    assert "dbname=postgres" in s.postgres_conninfo("postgres")


def test_marketing_api_url_is_local_by_default_and_must_be_set_in_prod() -> None:
    from ingestion.dlt_sources.marketing import api_base_url

    local = Settings(_env_file=None)
    assert local.marketing_api_base_url == local.api_url == "http://127.0.0.1:8000"
    prod = Settings(_env_file=None, environment="prod")
    assert prod.marketing_api_base_url is None
    with pytest.raises(ValueError, match="LAKEHOUSE_MARKETING_API_URL"):
        api_base_url(prod)
    configured = Settings(_env_file=None, environment="prod", marketing_api_url="https://ads.example.com/v1")
    assert api_base_url(configured) == "https://ads.example.com/v1/"


@pytest.mark.parametrize("url", ["ftp://ads.example.com", "https://ads.example.com/?token=x", "not a url"])
def test_marketing_api_url_is_validated(url: str) -> None:
    with pytest.raises(ValidationError, match="marketing_api_url"):
        Settings(_env_file=None, marketing_api_url=url)
