"""Marketing REST API (campaigns, ad_spend) -> `bronze/marketing/<table>`, merged on the primary key.

Each resource pages with dlt's `RESTClient` along the API's keyset cursor (`next_cursor`, sent
back as `after`): unlike page numbers it never skips a row that is updated while the pages are
read. That row is read twice in one load (once in its old place, once at the end), so the rows
of a load are reduced to the newest per key before dlt sees them: dlt's upsert needs unique keys
within a load (a Delta MERGE inserts a new key twice otherwise).

The incremental cursor is an `UpdatedAtCursor` on `updated_at` (sent as `updated_since`) with the
same safety margin as the DynamoDB source: the API stamps `updated_at = now()`, the start of the
writing transaction, so a row committed after a load can carry a stamp older than rows that load
read. dlt's `rest_api` incremental cannot keep such a margin with a custom last-value function.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any, Final, cast

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

from lakehouse.settings import Settings

from .core import CURSOR_SAFETY, SCHEMA_CONTRACT, UpdatedAtCursor, canonical_iso

log = logging.getLogger(__name__)

Row = dict[str, Any]

#: resource -> primary key (the API orders by (updated_at, key), see the synthetic API contract)
PRIMARY_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "campaigns": ("campaign_id",),
    "ad_spend": ("campaign_id", "spend_date"),
}
MAX_PAGE_SIZE: Final = 1000
#: rows handed to dlt per item (a load is reduced per key first, then yielded in chunks)
_CHUNK: Final = 5000

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


def api_base_url(settings: Settings, base_url: str | None = None) -> str:
    """The validated base URL (ending in `/`); `base_url` overrides the settings (tests)."""
    configured = base_url or settings.marketing_api_base_url
    if configured is None:
        raise ValueError("the marketing API URL is not configured: set LAKEHOUSE_MARKETING_API_URL")
    url = configured.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"API base URL must be http(s): {url!r}")
    return url + "/"


def _check_page_size(page_size: int) -> int:
    if isinstance(page_size, bool) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    return page_size


def row_key(row: Row, key: tuple[str, ...]) -> str:
    """The primary key of an API row as one string (the cursor's `seen` is keyed by it)."""
    missing = [k for k in key if row.get(k) is None]
    if missing:
        raise ValueError(f"API row without primary key field(s) {', '.join(missing)}: {str(row)[:200]}")
    return str(row[key[0]]) if len(key) == 1 else json.dumps([str(row[k]) for k in key])


def newest_per_key(rows: Iterable[Row], key: tuple[str, ...]) -> dict[str, tuple[str, Row]]:
    """key -> (canonical updated_at, row) of the newest row per key; on equal stamps the last read wins.

    A keyset cursor re-reads a row updated during the read (at the end, with a newer stamp); an
    upsert needs each key once per load.
    """
    newest: dict[str, tuple[str, Row]] = {}
    for row in rows:
        if row.get("updated_at") is None:
            raise ValueError(f"API row without updated_at (contract): {str(row)[:200]}")
        name, stamp = row_key(row, key), canonical_iso(row["updated_at"])
        current = newest.get(name)
        if current is None or stamp >= current[0]:
            newest[name] = (stamp, row)
    return newest


def marketing_resource(
    settings: Settings, name: str, page_size: int = MAX_PAGE_SIZE, base_url: str | None = None
) -> DltResource:
    """One API endpoint as an incremental, merged dlt resource (no network until extraction)."""
    if name not in PRIMARY_KEYS:
        raise ValueError(f"unknown marketing resource {name!r}; known: {', '.join(PRIMARY_KEYS)}")
    key = PRIMARY_KEYS[name]
    url = api_base_url(settings, base_url)
    size = _check_page_size(page_size)

    def rows() -> Iterator[list[Row]]:
        state = dlt.current.resource_state()
        cursor = UpdatedAtCursor.from_state(state.get("cursor"))
        params: dict[str, Any] = {"page_size": size}
        if cursor.since is not None:
            params["updated_since"] = cursor.since
        read_started = dt.datetime.now(dt.UTC)
        client = RESTClient(
            base_url=url,
            paginator=JSONResponseCursorPaginator(cursor_path="next_cursor", cursor_param="after"),
            data_selector="data",
        )
        newest = newest_per_key(
            (row for page in client.paginate(f"api/marketing/{name}", params=params) for row in page), key
        )
        returned = {k: stamp for k, (stamp, _row) in newest.items() if cursor.since is None or stamp >= cursor.since}
        changed = [row for k, (stamp, row) in newest.items() if cursor.wants(k, stamp)]
        for start in range(0, len(changed), _CHUNK):
            yield changed[start : start + _CHUNK]
        state["cursor"] = cursor.advance(returned, read_started, CURSOR_SAFETY).to_state()
        log.info("marketing %s: %d row(s) read since %s, %d changed", name, len(newest), cursor.since, len(changed))

    return dlt.resource(
        rows,
        name=name,
        table_name=name,
        primary_key=list(key),
        write_disposition={"disposition": "merge", "strategy": "upsert"},
        columns={c: cast(TColumnSchema, dict(v)) for c, v in COLUMNS[name].items()},  # never share hint dicts
        table_format="delta",
    )


def marketing_source(settings: Settings, page_size: int = MAX_PAGE_SIZE, base_url: str | None = None) -> DltSource:
    """dlt source `marketing` with resources `campaigns` and `ad_spend` (merge on the primary key).

    Constructing it does not touch the network; `base_url` overrides
    `settings.marketing_api_base_url` (tests).
    """
    resources = [marketing_resource(settings, name, page_size, base_url) for name in PRIMARY_KEYS]

    @dlt.source(name="marketing", max_table_nesting=0, schema_contract=cast(Any, SCHEMA_CONTRACT))
    def marketing() -> list[DltResource]:
        return resources

    return marketing()
