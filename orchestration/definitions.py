"""The code location: every module of `orchestration.defs`, assembled by Dagster's autoloader."""

from pathlib import Path

import dagster as dg

defs = dg.components.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)
