"""The Dagster UI in a real browser (Debian's Chromium driven by Playwright): the asset graph, and a
partition-range backfill launched from the UI that must finish as ONE successful run."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from lakehouse.dagster_instance import REPO_ROOT, dagster_env
from lakehouse.demo import DEFINITIONS_MODULE, recorded_window
from lakehouse.settings import Settings

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture(scope="module")
def dagster_ui(demo: Settings) -> Iterator[str]:
    """`dagster dev` (webserver + daemon) on the demo's instance, stopped (whole process group) after."""
    url = f"http://{demo.host}:{demo.dagster_port}"
    log = open(demo.state_path / "logs" / "dagster-dev-ui-test.log", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-m",
            DEFINITIONS_MODULE,
            "-h",
            demo.host,
            "-p",
            str(demo.dagster_port),
        ],
        env=dagster_env(demo),
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, "dagster dev exited during start-up"
            assert time.monotonic() < deadline, "Dagster UI did not answer within 180 s"
            time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is required (apt-get install -y chromium)"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1600, "height": 1000},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_asset_graph_shows_the_whole_lineage(dagster_ui: str, page: Page) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{dagster_ui}/asset-groups", timeout=120_000)
    for group in ("sources", "cdc_bronze", "silver", "bronze_landing", "staging", "marts", "maintenance"):
        page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "ui-asset-graph.png"))


def test_partition_range_backfill_launched_from_the_ui_succeeds_in_one_run(
    demo: Settings, dagster_ui: str, page: Page
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    window = recorded_window(demo)
    last = window.start + dt.timedelta(days=window.days - 1)
    first = last - dt.timedelta(days=2)
    page.goto(f"{dagster_ui}/assets/marts/fct_daily_revenue", timeout=120_000)
    page.locator("button", has_text="Materialize").first.click()
    dialog = page.locator("[role=dialog]")
    partitions = dialog.locator("input[type=text]").first
    partitions.click()
    partitions.fill(f"[{first.isoformat()}...{last.isoformat()}]")
    partitions.press("Enter")
    dialog.get_by_text("3 partitions").wait_for(timeout=30_000)
    dialog.get_by_text("Backfills all partitions in a single run.").wait_for()
    dialog.locator("button", has_text="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"Created backfill \w+"))
    toast.wait_for(timeout=60_000)
    backfill_id = re.search(r"Created backfill (\w+)", toast.inner_text()).group(1)  # type: ignore[union-attr]

    deadline = time.monotonic() + 600
    while True:
        backfill = _graphql(
            dagster_ui,
            f'{{ partitionBackfillOrError(backfillId: "{backfill_id}") {{ ... on PartitionBackfill '
            "{ status numPartitions runs(limit: 10) { runId status } } } }",
        )["partitionBackfillOrError"]
        if backfill["status"] not in ("REQUESTED",) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert backfill["numPartitions"] == 3
    assert [r["status"] for r in backfill["runs"]] == ["SUCCESS"], "a single-run backfill policy: one run"
    page.goto(f"{dagster_ui}/runs/b/{backfill_id}", timeout=120_000)
    page.get_by_text("Completed", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "ui-backfill.png"))
