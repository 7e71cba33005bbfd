"""Unit tests of the tiny HCL evaluator used to compare Terraform names with lakehouse.settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .hcl_eval import HclEvalError, Module, Scope, attr, evaluate


@pytest.fixture
def scope() -> Scope:
    return Scope(
        variables={"name_prefix": "ecom-lakehouse-prod", "tables": ["orders", "payments"], "schema": "shop"},
        locals_raw={
            "glue_prefix": '${replace(var.name_prefix,"-","_")}',
            "databases": {"bronze": "${local.glue_prefix}_bronze"},
            "lake_uri": "s3://${var.name_prefix}-lake",
            "template": "${local.lake_uri}/bronze/%s/%s",
            "loop": "${local.loop}",
        },
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("${var.name_prefix}-lake", "ecom-lakehouse-prod-lake"),
        ("plain", "plain"),
        ("${local.glue_prefix}", "ecom_lakehouse_prod"),
        ("${local.databases}", {"bronze": "ecom_lakehouse_prod_bronze"}),
        ("${local.databases.bronze}", "ecom_lakehouse_prod_bronze"),
        ('${local.databases["bronze"]}', "ecom_lakehouse_prod_bronze"),
        (
            '${{for t in var.tables : t => "ecom.${var.schema}.${t}"}}',
            {"orders": "ecom.shop.orders", "payments": "ecom.shop.payments"},
        ),
        ('${join(",", [for t in var.tables : "${var.schema}.${t}"])}', "shop.orders,shop.payments"),
        ('${format(local.template, "cdc", "orders")}', "s3://ecom-lakehouse-prod-lake/bronze/cdc/orders"),
        ("$${secretsmanager:${var.schema}:password}", "${secretsmanager:shop:password}"),
        (
            "${merge({'a': 1},{for t in var.tables : t => \"${t}!\"})}",
            {"a": 1, "orders": "orders!", "payments": "payments!"},
        ),
        ("${flatten([[1, 2], [3]])}", [1, 2, 3]),
        ("${keys({b = 1, a = 2})}", ["a", "b"]),
        ("${[for k, v in {a = 1} : k]}", ["a"]),
        ("${tostring(5)}", "5"),
        ('${var.schema == "shop" ? "yes" : "no"}', "yes"),
        ("${length(var.tables) > 1 && !false}", True),
        ('${[for t in var.tables : t if t != "orders"]}', ["payments"]),
        ('${{for t in var.tables : t => upper(t) if t == "orders"}}', {"orders": "ORDERS"}),
        ("${1 + 2 * 3}", 7),
        ('${contains(var.tables, "orders") ? length(var.tables) : 0}', 2),
        ("${var.tables[*]}", ["orders", "payments"]),
        (5, 5),
        (["${var.schema}"], ["shop"]),
        ({"k": "${var.schema}-x"}, {"k": "shop-x"}),
    ],
)
def test_evaluates_supported_expressions(scope: Scope, expression: object, expected: object) -> None:
    assert evaluate(expression, scope) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "${module.storage.lake_bucket}",  # other modules (without a resolver)
        "${var.schema ? 1 : 0}",  # a condition must be a bool
        "${var.schema > 1}",  # comparisons need numbers
        "${aws_s3_bucket.this.id}",  # resources
        "${each.value}",
        "${timestamp()}",  # unsupported function
        "${var.missing}",
        "${local.missing}",
        "${local.loop}",  # self reference
        '${format("%d", 1)}',
    ],
)
def test_rejects_what_it_cannot_evaluate(scope: Scope, expression: str) -> None:
    with pytest.raises(HclEvalError):
        evaluate(expression, scope)


def test_loop_variables_come_from_env(scope: Scope) -> None:
    assert evaluate("${source}/${table}", scope, env={"source": "cdc", "table": "orders"}) == "cdc/orders"


def test_module_merges_files_and_applies_inputs(tmp_path: Path) -> None:
    documents: dict[Path, dict[str, Any]] = {
        tmp_path / "variables.tf": {"variable": [{"name_prefix": {"default": ["ecom"], "__start_line__": 1}}]},
        tmp_path / "main.tf": {
            "locals": [{"lake": ["${var.name_prefix}-lake"], "__start_line__": 1, "__end_line__": 2}]
        },
        tmp_path / "other" / "main.tf": {"locals": [{"ignored": ["x"]}]},
    }
    module = Module.from_documents(tmp_path, documents)
    assert set(module.locals_raw) == {"lake"}
    assert module.scope().local("lake") == "ecom-lake"
    assert module.scope({"name_prefix": lambda: "prod"}).local("lake") == "prod-lake"


def test_attr_unwraps_parser_lists() -> None:
    assert attr(["x"]) == "x"
    assert attr([["a", "b"]]) == ["a", "b"]
    assert attr("x") == "x"
