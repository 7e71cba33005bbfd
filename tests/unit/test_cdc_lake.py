"""Creating a sink table is fenced: a table created meanwhile by another writer is a
`CommitFailedError` (re-read and decide again), never an append on top of it. Local Delta tables;
tests/integration/test_cdc_races.py runs the same race against the S3 emulator's conditional PUT."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from ingestion.cdc.lake import CommitFailedError, DeltaStore
from tests.fixtures.races import race_two_creators


def test_creating_a_table_that_exists_fails_instead_of_appending(tmp_path: Path) -> None:
    uri = str(tmp_path / "bronze")
    store = DeltaStore({})
    store.append(uri, None, pa.table({"offset": [0, 1]}), {"cdc:t:0": 1})
    with pytest.raises(CommitFailedError):
        store.append(uri, None, pa.table({"offset": [0, 1]}), {"cdc:t:0": 1})
    table = DeltaTable(uri)
    assert table.version() == 0 and table.to_pyarrow_table().column("offset").to_pylist() == [0, 1]


def test_two_creators_at_once_one_wins_the_other_is_told(tmp_path: Path) -> None:
    for attempt in range(5):
        uri = str(tmp_path / f"race{attempt}")
        outcomes = race_two_creators(uri, {})
        assert sorted(outcomes.values()) == ["created", "fenced"], outcomes
        winner = next(w for w, outcome in outcomes.items() if outcome == "created")
        table = DeltaTable(uri)
        assert table.to_pyarrow_table().column("writer").to_pylist() == [winner]
        assert table.transaction_version("cdc:t:0") == winner
