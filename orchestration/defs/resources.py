"""Resources shared by every asset, and the default executor of the code location."""

import dagster as dg

from lakehouse.settings import get_settings
from orchestration.resources import build_resources


@dg.definitions
def resources() -> dg.Definitions:
    # In-process: a run's steps share one process. Each multiprocess step would re-import the
    # code location (dbt manifest, dlt sources) and the work is I/O- or single-core bound anyway.
    return dg.Definitions(resources=build_resources(get_settings()), executor=dg.in_process_executor)
