"""Deprecations: terraform/ against the schema of the pinned AWS provider (`terraform providers
schema -json`, the authoritative schema of the installed binary).

`terraform validate` already rejects unknown or missing arguments and wrong types. What it lets
through is what still works today but is on its way out: resource types, data sources, arguments and
nested blocks the provider marks deprecated. Those are what the next major removes (6.0 removed
`aws_eip.vpc`, `aws_flow_log.log_group_name`, ... deprecated in 5.x), so none may be used: the
constraint `< 7.0` then admits a 6.x upgrade from a clean base.

The walk runs over the parsed HCL (every block the configuration writes, including `dynamic`
content), not over a plan, so arguments set by expressions and blocks of resources a profile does
not create are covered too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .support import REPO_ROOT

_MARKERS = {"__start_line__", "__end_line__"}
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
#: parsed top-level block kind -> the provider schema's section
KINDS = {"resource": "resource_schemas", "data": "data_source_schemas", "ephemeral": "ephemeral_resource_schemas"}


def aws_schema(providers_schema: dict[str, Any]) -> dict[str, Any]:
    """The AWS provider's part of `terraform providers schema -json`."""
    schema: dict[str, Any] = providers_schema["provider_schemas"]["registry.terraform.io/hashicorp/aws"]
    return schema


def deprecated_in_body(body: dict[str, Any], block: dict[str, Any], where: str, *, top: bool = False) -> list[str]:
    """Deprecated arguments and nested blocks written in `body` (a parsed block) at any depth."""
    found: list[str] = []
    attributes, block_types = block.get("attributes", {}), block.get("block_types", {})
    for key, raw in body.items():
        if key in _MARKERS or (top and key in META_ARGUMENTS):
            continue
        if key == "dynamic":
            for dynamic in raw:
                for name, spec in dynamic.items():
                    if name in _MARKERS or name not in block_types:
                        continue
                    nested = block_types[name]["block"]
                    if nested.get("deprecated"):
                        found.append(f"{where}: block {name!r} is deprecated")
                    for content in spec.get("content", []):
                        found += deprecated_in_body(content, nested, f"{where}.{name}")
            continue
        if key in attributes and attributes[key].get("deprecated"):
            found.append(f"{where}: argument {key!r} is deprecated")
        elif key in block_types:
            nested = block_types[key]["block"]
            if nested.get("deprecated"):
                found.append(f"{where}: block {key!r} is deprecated")
            for item in raw if isinstance(raw, list) else [raw]:
                if isinstance(item, dict):
                    found += deprecated_in_body(item, nested, f"{where}.{key}")
    return found


def deprecated_uses(documents: dict[Path, dict[str, Any]], schema: dict[str, Any]) -> tuple[list[str], int]:
    """Deprecated things the parsed files use; and how many AWS blocks were checked."""
    found: list[str] = []
    checked = 0
    for path, doc in sorted(documents.items()):
        relative = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        for kind, section in KINDS.items():
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    if rtype in _MARKERS or not rtype.startswith("aws_"):
                        continue
                    for name, body in named.items():
                        if name in _MARKERS:
                            continue
                        where = f"{relative}: {'' if kind == 'resource' else kind + '.'}{rtype}.{name}"
                        spec = schema[section].get(rtype)
                        assert spec is not None, f"{where}: no such {kind} in the provider (validate would fail)"
                        checked += 1
                        if spec["block"].get("deprecated"):
                            found.append(f"{where}: the {kind} type is deprecated")
                        found += deprecated_in_body(body, spec["block"], where, top=True)
        for block in doc.get("provider", []):
            body = block.get("aws")
            for item in body if isinstance(body, list) else [body] if body else []:
                checked += 1
                found += deprecated_in_body(item, schema["provider"]["block"], f"{relative}: provider.aws", top=True)
    return found, checked
