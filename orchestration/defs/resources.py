"""Resources shared by every asset of the code location."""

import dagster as dg

from lakehouse.settings import get_settings
from orchestration.resources import build_resources


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(get_settings()))
