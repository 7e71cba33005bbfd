"""The code location: every module of `orchestration.defs`, assembled by Dagster's autoloader, with
the freshness policy of each layer applied in one place (`orchestration.freshness`)."""

from pathlib import Path

import dagster as dg

from lakehouse.settings import get_settings
from orchestration.freshness import with_freshness

defs = with_freshness(
    dg.components.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent), get_settings()
)
