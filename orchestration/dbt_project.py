"""The dbt project as Dagster sees it (no @dbt_assets here: `dagster-dbt project prepare-and-package
--file orchestration/dbt_project.py` imports this module to build the manifest).

The project and its profiles.yml live at the repository root; the target follows the settings
(`local` = DuckDB over the lake, `athena` in AWS). Under `dagster dev` the manifest is re-parsed on
every load (`prepare_if_dev`); elsewhere a packaged `target/<target>/manifest.json` is used, and
built once with `dbt parse` if it is missing (a fresh checkout, CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from lakehouse.locks import exclusive
from lakehouse.settings import Settings, child_env, get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The dbt of the interpreter's virtualenv (never whatever `dbt` happens to be first on PATH).
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"


def dbt_env(settings: Settings) -> dict[str, str]:
    """Environment for dbt: ours plus the settings as LAKEHOUSE_* (profiles.yml reads those)."""
    return child_env(settings, DBT_SEND_ANONYMOUS_USAGE_STATS="false")


def build_manifest(project: DbtProject, settings: Settings) -> Path:
    """`dbt parse` into the project's target path; returns the manifest path."""
    subprocess.run(
        [
            str(DBT_EXECUTABLE), "parse", "--quiet",
            "--project-dir", str(project.project_dir),
            "--profiles-dir", str(project.profiles_dir),
            "--target", project.target or settings.resolved_dbt_target,
            "--target-path", str(project.project_dir / project.target_path),
        ],
        check=True,
        env=dbt_env(settings),
        cwd=project.project_dir,
        timeout=600,
    )  # fmt: skip
    return project.manifest_path


def _dbt_on_path() -> None:
    """dagster-dbt's dev preparer runs plain `dbt`: make it the virtualenv's (code location process)."""
    bin_dir = str(DBT_EXECUTABLE.parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path


def manifest_directory(target: str) -> Path:
    """Where the manifest of a dbt target lives, relative to the project: one directory per target.

    A manifest is specific to its target (the adapter names the assets' kind, dispatched macros differ):
    a checkout (or image) used with both `local` and `athena` must never load the other one's manifest.
    """
    return Path("target") / target


_settings = get_settings()

dbt_project = DbtProject(
    project_dir=REPO_ROOT,
    profiles_dir=REPO_ROOT,
    target=_settings.resolved_dbt_target,
    target_path=manifest_directory(_settings.resolved_dbt_target),
)

if dbt_project.preparer.using_dagster_dev():
    _dbt_on_path()
# Processes importing this together on a fresh checkout parse once, not into each other's files.
# With a packaged manifest nothing is written (the image's root filesystem is read-only on ECS).
if dbt_project.preparer.using_dagster_dev() or not dbt_project.manifest_path.exists():
    with exclusive(dbt_project.project_dir / dbt_project.target_path / ".parse.lock"):
        dbt_project.prepare_if_dev()
        if not dbt_project.manifest_path.exists():
            build_manifest(dbt_project, _settings)
