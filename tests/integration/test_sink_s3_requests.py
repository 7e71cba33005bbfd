"""What the CDC sink costs in S3 requests, measured through a counting proxy (terraform/costs.toml).

S3 bills PUT/COPY/POST/LIST requests per thousand; the always-on sink in production commits a batch
every `cdc_sink_pace_seconds`, so requests per batch and per idle pass, not data volume, decide
its share of the small profile's budget. This test measures both on the emulator and fails when the
sink needs more than the cost table assumes (`[sink_requests]` in terraform/costs.toml).
"""

from __future__ import annotations

import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.sink import CdcSink, SinkReport
from lakehouse.settings import Settings
from tests.integration.cdc_support import cdc_environment
from tests.integration.s3_counter import counting_proxy

COSTS = Path(__file__).resolve().parents[2] / "terraform" / "costs.toml"
TOUCHED = ("orders", "order_items", "payments", "inventory")


def _transaction(env: object, step: int) -> None:
    env.execute(  # type: ignore[attr-defined]
        "begin;"
        f"update shop.orders set status = 'paid', order_total = order_total + {step} "
        "where order_id = (select min(order_id) from shop.orders);"
        "update shop.order_items set discount = discount "
        "where order_item_id = (select min(order_item_id) from shop.order_items);"
        "update shop.payments set status = status where payment_id = (select min(payment_id) from shop.payments);"
        "update shop.inventory set quantity_on_hand = quantity_on_hand + 1 "
        "where product_id = (select min(product_id) from shop.inventory);"
        "commit;"
    )  # fmt: skip


def _until_quiet(proxy: object, window: float = 2.0, timeout: float = 180.0) -> None:
    """Wait until no S3 request arrives for `window` seconds (the history worker's first pass at
    start, which takes longer on a busy machine, must not be counted as the next batch's)."""
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(window)
        if not sum(proxy.take().values()):  # type: ignore[attr-defined]
            return
        assert time.monotonic() < deadline, "S3 traffic never went quiet"


def test_sink_requests_per_batch_and_per_idle_pass(isolated_settings: Callable[[], Settings]) -> None:
    assumed = tomllib.loads(COSTS.read_text())["sink_requests"]
    with cdc_environment(isolated_settings, customers=20, products=5, orders=20) as env:
        env.wait_consistent()
        with counting_proxy(env.settings.s3_endpoint or "") as proxy:
            proxied = env.settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{proxy.server_port}"})
            # History in its worker once at start, then not for an hour: batches are bronze + silver,
            # as in production between two history passes.
            config = SinkConfig.from_settings(proxied, follow_history_seconds=3600)

            # An idle pass over every table (what the history worker costs when nothing changed,
            # an upper bound: it also reads silver).
            with CdcSink(config) as sink:
                assert sink.run_once().messages == 0
            idle = proxy.take()

            # Follow mode, as the prod service runs it: the requests of each applied batch.
            batches: list[tuple[set[str], Counter[str]]] = []
            stop = threading.Event()

            def on_batch(report: SinkReport) -> None:
                batches.append(({t for t, r in report.tables.items() if r.changes}, proxy.take()))

            with CdcSink(config) as sink:
                worker = threading.Thread(target=sink.follow, args=(stop,), kwargs={"on_batch": on_batch}, daemon=True)
                worker.start()
                try:
                    for step in (1, 2):  # the first transaction warms the sink's cached Delta handles
                        if step == 2:
                            _until_quiet(proxy)
                        first = len(batches)
                        _transaction(env, step)
                        # One transaction may be applied in one batch or split over several (its
                        # tables' records arrive on separate topics): wait until every table is in.
                        deadline = time.monotonic() + 90
                        while not set(TOUCHED) <= set[str]().union(*(tables for tables, _ in batches[first:])):
                            assert time.monotonic() < deadline, f"the sink applied no batch: {batches}"
                            time.sleep(0.2)
                        done = len(batches)
                finally:
                    stop.set()
                    worker.join(60)
    applied = batches[first:done]  # the batches that applied the second transaction
    measured = sum((counts for _, counts in applied), Counter[str]())
    table_batches = sum(len(tables) for tables, _ in applied)  # a table in two batches pays twice
    per_table_batch = measured["put_list"] / table_batches
    per_table_idle = idle["put_list"] / 7
    print(
        f"\nS3 per table: batch {per_table_batch:.1f} PUT/LIST, {measured['get'] / table_batches:.1f} GET "
        f"({len(applied)} batch(es)); "
        f"idle pass {per_table_idle:.1f} PUT/LIST, {idle['get'] / 7:.1f} GET"
    )
    assert per_table_batch <= assumed["put_list_per_table_batch"], per_table_batch
    assert per_table_idle <= assumed["put_list_per_table_idle_pass"], per_table_idle
    assert measured["get"] / table_batches <= assumed["get_per_table_batch"], measured
    assert per_table_batch >= 2  # it really counted: a commit is at least a data file and a log entry
