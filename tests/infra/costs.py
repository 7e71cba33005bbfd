"""The cost model of terraform/costs.toml: monthly totals per profile and the COSTS.md rendering.

python -m tests.infra.costs > terraform/COSTS.md      # after changing terraform/costs.toml
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COSTS_FILE = Path(__file__).resolve().parents[2] / "terraform" / "costs.toml"
COSTS_DOC = COSTS_FILE.with_name("COSTS.md")


@dataclass(frozen=True)
class Line:
    component: str
    resources: tuple[str, ...]
    sizing: str
    items: tuple[tuple[str, float], ...]

    def usd(self, prices: dict[str, dict[str, Any]]) -> float:
        return sum(prices[price]["usd"] * quantity for price, quantity in self.items)


def load(path: Path = COSTS_FILE) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def lines(model: dict[str, Any], profile: str) -> list[Line]:
    return [
        Line(raw["component"], tuple(raw["resources"]), raw["sizing"], tuple((p, float(q)) for p, q in raw["items"]))
        for raw in model["profiles"][profile]["lines"]
    ]


def total(model: dict[str, Any], profile: str) -> float:
    return sum(line.usd(model["prices"]) for line in lines(model, profile))


def render(model: dict[str, Any]) -> str:
    meta, prices = model["meta"], model["prices"]
    out = [
        "# Monthly cost of the AWS deployment",
        "",
        "<!-- Rendered from terraform/costs.toml by `python -m tests.infra.costs > terraform/COSTS.md`;",
        "     tests/infra/test_costs.py fails if this file and costs.toml disagree. Edit costs.toml. -->",
        "",
        f"Region {meta['region']}, {meta['hours_per_month']} hours a month, list prices without free tier, taxes",
        "or support. Choose the profile with `profile` in `terraform/environments/prod` (docs/deploy.md says",
        f"when to move from `small` to `scale`). Budget of `small`: ${meta['budget_small']:.0f} a month",
        "(checked by a test).",
        "",
    ]
    for profile in model["profiles"]:
        section = model["profiles"][profile]
        out += [f"## Profile {section['title']}", "", f"Usage: {' '.join(section['usage'].split())}", ""]
        out += ["| Component | Sizing | $/month |", "| --- | --- | ---: |"]
        for line in lines(model, profile):
            out.append(f"| {line.component} | {line.sizing} | {line.usd(prices):.2f} |")
        out += [f"| **Total** |  | **{total(model, profile):.2f}** |", ""]
    out += ["## Price table", "", "| Price | USD | Unit | Source | As of |", "| --- | ---: | --- | --- | --- |"]
    for name, price in sorted(prices.items()):
        out.append(f"| `{name}` | {price['usd']:g} | {price['unit']} | {price['source']} | {price['as_of']} |")
    out += ["", "## Not billed on their own", ""]
    out += [f"- `{name}`: {reason}" for name, reason in sorted(model["free"].items())]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(load()))
