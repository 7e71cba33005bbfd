"""Marketing REST API (campaigns, ad_spend) -> `bronze/marketing/<table>` with dlt's `rest_api` source.

Pages follow the API's keyset cursor (`next_cursor`, sent back as `after`): unlike page numbers it
never skips a row that is updated while the pages are read. The incremental cursor is
`updated_at`, sent back as `updated_since` on the next run. Rows are merged on the primary key,
so re-reading the boundary (or a whole range) never duplicates anything.
"""

from __future__ import annotations

from typing import Any, Final, cast

from dlt.common.schema.typing import TColumnSchema
from dlt.extract.source import DltSource
from dlt.sources.rest_api import RESTAPIConfig, rest_api_source

from lakehouse.settings import Settings

from .core import EPOCH_ISO, iso_max

#: resource -> primary key (the API orders by (updated_at, key), see the synthetic API contract)
PRIMARY_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "campaigns": ("campaign_id",),
    "ad_spend": ("campaign_id", "spend_date"),
}
MAX_PAGE_SIZE: Final = 1000

_TS: Final[TColumnSchema] = {"data_type": "timestamp", "timezone": True, "precision": 6}
_MONEY: Final[TColumnSchema] = {"data_type": "decimal", "precision": 12, "scale": 2}
#: Declared so that money stays decimal (the API sends JSON numbers) and dates stay dates.
COLUMNS: Final[dict[str, dict[str, TColumnSchema]]] = {
    "campaigns": {
        "campaign_id": {"data_type": "text", "nullable": False},
        "daily_budget": _MONEY,
        "start_date": {"data_type": "date"},
        "end_date": {"data_type": "date"},
        "created_at": _TS,
        "updated_at": _TS,
    },
    "ad_spend": {
        "campaign_id": {"data_type": "text", "nullable": False},
        "spend_date": {"data_type": "date", "nullable": False},
        "impressions": {"data_type": "bigint"},
        "clicks": {"data_type": "bigint"},
        "spend": _MONEY,
        "created_at": _TS,
        "updated_at": _TS,
    },
}


def marketing_config(settings: Settings, page_size: int = MAX_PAGE_SIZE, base_url: str | None = None) -> dict[str, Any]:
    """The `rest_api` configuration (exposed for tests and for reading what is requested)."""
    if isinstance(page_size, bool) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    configured = base_url or settings.marketing_api_base_url
    if configured is None:
        raise ValueError("the marketing API URL is not configured: set LAKEHOUSE_MARKETING_API_URL")
    url = configured.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"API base URL must be http(s): {url!r}")
    resources = [
        {
            "name": name,
            "primary_key": list(key),
            "write_disposition": {"disposition": "merge", "strategy": "upsert"},
            "table_format": "delta",
            "columns": {
                c: cast(TColumnSchema, dict(v)) for c, v in COLUMNS[name].items()
            },  # dlt writes into column dicts: never share them
            "endpoint": {
                "path": f"api/marketing/{name}",
                "params": {
                    "page_size": page_size,
                    "updated_since": {
                        "type": "incremental",
                        "cursor_path": "updated_at",
                        "initial_value": EPOCH_ISO,
                        # compares parsed times, not strings; the canonical form goes on the wire
                        "last_value_func": iso_max,
                    },
                },
            },
        }
        for name, key in PRIMARY_KEYS.items()
    ]
    return {
        "client": {
            "base_url": url + "/",
            "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "after"},
        },
        "resource_defaults": {"endpoint": {"data_selector": "data"}},
        "resources": resources,
    }


def marketing_source(settings: Settings, page_size: int = MAX_PAGE_SIZE, base_url: str | None = None) -> DltSource:
    """dlt source `marketing` with resources `campaigns` and `ad_spend` (merge on the primary key).

    Constructing it does not touch the network; `base_url` overrides
    `settings.marketing_api_base_url` (tests).
    """
    config = cast(RESTAPIConfig, marketing_config(settings, page_size, base_url))
    return rest_api_source(config, name="marketing", max_table_nesting=0)
