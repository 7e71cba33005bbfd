import datetime as dt

import pytest

from lakehouse.demo import EMULATOR_SOURCES, default_window
from lakehouse.settings import Settings
from lakehouse.synthetic.common import SyntheticDataError
from lakehouse.synthetic.entities import STARTER_COUNTS, generate_starter


def test_demo_window_is_the_30_complete_days_before_today() -> None:
    window = default_window(dt.date(2026, 11, 23))
    assert window.partition_range == ("2026-10-24", "2026-11-22")


def test_emulator_sources_are_part_of_the_starter_set() -> None:
    assert set(EMULATOR_SOURCES) <= set(STARTER_COUNTS)
    assert not {"customers", "orders", "products", "campaigns"} & set(EMULATOR_SOURCES)


def test_starter_subset_rejects_unknown_entities_before_writing() -> None:
    settings = Settings(_env_file=None, postgres_port=1)  # type: ignore[call-arg]  # nothing listens there
    with pytest.raises(SyntheticDataError, match="not part of the starter set"):
        generate_starter(settings, seed=1, only=["unicorns"])
