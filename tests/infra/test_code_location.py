"""The whole code location, loaded as production loads it (DOP-style): prod settings, no network.

A break that only shows under prod settings (an import that reaches for AWS, a resource that cannot
be built, a prod-only default) fails here instead of in the first ECS task. The asset graph,
schedules, sensors and job tags are compared with a committed snapshot; after an intended change:
    LAKEHOUSE_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/infra/test_code_location.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .support import REPO_ROOT

SNAPSHOT = Path(__file__).with_name("snapshots") / "prod_code_location.json"
#: what Terraform sets on the ECS tasks (terraform/modules/compute/tasks.tf), minus unknown-at-plan ARNs
PROD_ENV = {
    "LAKEHOUSE_ENVIRONMENT": "prod",
    "LAKEHOUSE_NAME_PREFIX": "ecom-lakehouse-prod",
    "LAKEHOUSE_AWS_REGION": "us-east-1",
    "LAKEHOUSE_ATHENA_WORKGROUP": "ecom-lakehouse-prod",
    "LAKEHOUSE_DBT_TARGET": "athena",
    "LAKEHOUSE_POSTGRES_HOST": "shop-db.example.com",
    "LAKEHOUSE_STATE_DIR": "/tmp/lakehouse-prod-state",
    "LAKEHOUSE_MARKETING_API_URL": "",
    "LAKEHOUSE_CDC_TRANSPORT": "kinesis",
    "LAKEHOUSE_CDC_KINESIS_STREAM": "ecom-lakehouse-prod-cdc",
    "LAKEHOUSE_CDC_SINK_SERVICE": "true",
    "LAKEHOUSE_CDC_PUBLICATION_AUTOCREATE_MODE": "disabled",
    "LAKEHOUSE_EMR_APPLICATION_ID": "00fabcdexample",
    "LAKEHOUSE_EMR_JOB_ROLE_ARN": "arn:aws:iam::123456789012:role/ecom-lakehouse-prod-emr-job",
    "LAKEHOUSE_MAINTENANCE_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/ecom-lakehouse-prod-maintenance-task",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def location(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_", "DAGSTER_"))}
    env.update(PROD_ENV)
    env["DAGSTER_HOME"] = str(tmp_path_factory.mktemp("dagster-home"))
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("_location_snapshot.py"))],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-6000:]
    return json.loads(result.stdout)


def test_prod_code_location_matches_snapshot(location: dict[str, Any]) -> None:
    if os.environ.get("LAKEHOUSE_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(location, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    for section in ("assets", "schedules", "sensors", "jobs"):
        missing = sorted(set(expected[section]) - set(location[section]))
        added = sorted(set(location[section]) - set(expected[section]))
        changed = sorted(
            k for k in set(expected[section]) & set(location[section]) if expected[section][k] != location[section][k]
        )
        assert not (missing or added or changed), f"{section}: missing {missing}, new {added}, changed {changed}"


def test_prod_automation_defaults(location: dict[str, Any]) -> None:
    """What prod runs without anyone touching the UI."""
    schedules, sensors = location["schedules"], location["sensors"]
    assert schedules["dbt_daily_schedule"]["status"] == "RUNNING"  # marts build by default
    assert sensors["cdc_topics_sensor"]["status"] == "STOPPED"  # the always-on sink service applies CDC
    assert schedules["load_marketing_api_schedule"]["status"] == "STOPPED"  # no marketing API configured
    tags = location["jobs"]["delta_maintenance"]["tags"]
    assert json.loads(tags["ecs/task_overrides"]) == {"taskRoleArn": PROD_ENV["LAKEHOUSE_MAINTENANCE_TASK_ROLE_ARN"]}
    assert len(location["assets"]) > 60


def test_image_ships_the_dbt_manifest() -> None:
    """Tasks must not run `dbt parse` at every start: the image builds target/<target>/manifest.json
    for the target ECS runs (`athena`) as well as the compose stack's (`local`)."""
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    assert "dagster-dbt project prepare-and-package --file orchestration/dbt_project.py" in dockerfile
    assert "for target in local athena; do" in dockerfile
    assert "test -s target/$target/manifest.json" in dockerfile
    assert PROD_ENV["LAKEHOUSE_DBT_TARGET"] == "athena"
