"""Load the whole code location under production settings and print its shape as JSON.

Run in a fresh interpreter by tests/infra/test_code_location.py (module-level settings are read at
import). Every network connection is refused before the import: loading the location must not call
AWS (or anything else); Dagster does that at every code-server start and every run.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(f"network access while loading the code location: {args[:2]}")


socket.socket.connect = _refuse  # type: ignore[method-assign]
socket.socket.connect_ex = _refuse  # type: ignore[method-assign]
socket.create_connection = _refuse  # type: ignore[assignment]
socket.getaddrinfo = _refuse  # type: ignore[assignment]


def main() -> int:
    import dagster as dg

    from orchestration.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assets = {}
    for spec in defs.resolve_all_asset_specs():
        assets[spec.key.to_user_string()] = {
            "group": spec.group_name,
            "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
            # the dbt assets' kind is the adapter of the prod target's own manifest: athena
            "kinds": sorted(spec.kinds),
            "partitioned": spec.partitions_def is not None,
            "freshness": spec.freshness_policy is not None,
            "automation": None if spec.automation_condition is None else spec.automation_condition.name,
        }
    repository = defs.get_repository_def()
    schedules = {
        s.name: {"status": s.default_status.value, "cron": s.cron_schedule, "job": s.job_name}
        for s in repository.schedule_defs
    }
    sensors = {s.name: {"status": s.default_status.value} for s in repository.sensor_defs}
    jobs = {
        job.name: {"tags": {k: v for k, v in (job.tags or {}).items() if k.startswith("ecs/")}}
        for job in defs.resolve_all_job_defs()
        if not job.name.startswith("__")
    }
    json.dump(
        {"assets": assets, "schedules": schedules, "sensors": sensors, "jobs": jobs},
        sys.stdout,
        indent=1,
        sort_keys=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
