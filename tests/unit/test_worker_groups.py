"""How `make test` splits the suite over its pytest-xdist workers (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import _worker_group, _worker_order


@pytest.mark.parametrize(
    ("nodeid", "group"),
    [
        ("tests/e2e/test_demo.py::test_silver_equals_postgres", "e2e"),
        ("tests/e2e/test_ui.py::test_asset_graph_shows_the_whole_lineage", "e2e"),
        ("tests/infra/test_costs.py::test_every_billable_resource_has_a_price_line[small]", "infra"),
        ("tests/containers/test_images.py::test_image_configuration", "containers"),
        ("tests/integration/test_cdc.py::test_x[kafka-e2e/infra]", "tests/integration/test_cdc.py"),
        ("tests/unit/test_settings.py::test_env_round_trip", "tests/unit/test_settings.py"),
        ("tests/unit/e2e/test_y.py::test_z", "tests/unit/e2e/test_y.py"),
    ],
)
def test_costly_directories_are_one_group_other_tests_go_by_file(nodeid: str, group: str) -> None:
    assert _worker_group(nodeid) == group


def test_the_demo_group_is_handed_out_first_and_unit_files_last() -> None:
    ordered = sorted(
        [
            "tests/unit/test_a.py::t",
            "tests/integration/test_b.py::t",
            "tests/e2e/test_c.py::t",
            "tests/infra/test_d.py::t",
        ],
        key=_worker_order,
    )
    assert ordered == [
        "tests/e2e/test_c.py::t",
        "tests/integration/test_b.py::t",
        "tests/infra/test_d.py::t",
        "tests/unit/test_a.py::t",
    ]


def test_the_e2e_directory_runs_in_one_worker_and_a_file_in_one_worker(tmp_path: Path) -> None:
    """Through pytest-xdist itself, with the conftest's scheduler: pytest-xdist's own `loadscope`
    would hand the two e2e files to two workers (each building the demo); `loadgroup` marks are
    ignored on pytest 9.2 (pytest-xdist issue 1386)."""
    root = tmp_path / "tests"
    for directory in ("e2e", "unit"):
        (root / directory).mkdir(parents=True)
        (root / directory / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    conftest = Path(__file__).resolve().parents[1] / "conftest.py"
    (root / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            import importlib.util
            _spec = importlib.util.spec_from_file_location("lakehouse_tests_conftest", {str(conftest)!r})
            _module = importlib.util.module_from_spec(_spec)
            _spec.loader.exec_module(_module)
            pytest_xdist_make_scheduler = _module.pytest_xdist_make_scheduler
            """
        )
    )
    for path in ("e2e/test_a.py", "e2e/test_b.py", "unit/test_c.py", "unit/test_d.py"):
        cases = "\n".join(f"def test_{i}():\n    __import__('time').sleep(0.05)\n" for i in range(4))
        (root / path).write_text(cases)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadscope", "--no-loadscope-reorder", "-v",
         "-p", "no:cacheprovider", "-o", "addopts=", "tests"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    workers: dict[str, set[str]] = {}
    for line in result.stdout.splitlines():
        if line.startswith("[gw") and "PASSED" in line:
            worker, nodeid = line.split()[0], line.split()[-1]
            workers.setdefault(nodeid.split("::")[0], set()).add(worker)
    assert sorted(workers) == [
        f"tests/{p}" for p in ("e2e/test_a.py", "e2e/test_b.py", "unit/test_c.py", "unit/test_d.py")
    ]
    assert all(len(used) == 1 for used in workers.values()), workers
    assert workers["tests/e2e/test_a.py"] == workers["tests/e2e/test_b.py"], workers
