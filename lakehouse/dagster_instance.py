"""The local Dagster instance: DAGSTER_HOME under the state directory, using the repo's dagster.yaml."""

from __future__ import annotations

from pathlib import Path

from lakehouse.settings import Settings, child_env

REPO_ROOT = Path(__file__).resolve().parent.parent


def dagster_env(settings: Settings) -> dict[str, str]:
    """Environment for `dagster` processes: DAGSTER_HOME prepared, storage under the state dir."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    source = REPO_ROOT / "dagster.yaml"
    if not link.is_symlink() or link.resolve() != source:
        link.unlink(missing_ok=True)
        link.symlink_to(source)
    return child_env(
        settings,
        DAGSTER_HOME=str(home),
        DAGSTER_LOCAL_STORAGE=str(home / "storage"),
        DAGSTER_LOCAL_COMPUTE_LOGS=str(home / "compute_logs"),
    )
