"""Delta Lake operations of the sink: fenced commits, transaction versions, schema rewrites.

Every sink commit uses `max_commit_retries=0`: delta-rs would otherwise retry an append on top
of a commit made by someone else in the meantime (two sinks on the same partition → duplicates).
With no retries the commit only lands on exactly the version we read our progress from; a
`CommitFailedError` means "someone else moved the table: re-read and decide again". Creating a
table is fenced the same way (`mode="error"`): a table created meanwhile by another sink is a
`CommitFailedError` too, never an append on top of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from ingestion.cdc.schema import conform_table

__all__ = ["MAX_COMMIT_ATTEMPTS", "CommitFailedError", "CommitRetriesExhausted", "DeltaStore", "commit_fenced"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: how often a fenced commit that lost a race is decided again before giving up
MAX_COMMIT_ATTEMPTS = 20


class CommitRetriesExhausted(RuntimeError):
    """Other writers kept committing to the table: every attempt lost the race."""


def commit_fenced(what: str, attempt: Callable[[int], T], attempts: int = MAX_COMMIT_ATTEMPTS) -> T:
    """Run `attempt(n)` until its commit lands; the one retry loop of every Delta writer here.

    `attempt` must (re-)read what its commit depends on (the table version, the progress stored
    in it) and then make fenced commits (`max_commit_retries=0`, see the module doc). A
    `CommitFailedError` means another writer committed in between: nothing of this attempt was
    written on top of it, so the next attempt reads again and decides again (often: nothing left
    to do). Raises `CommitRetriesExhausted` after `attempts`.
    """
    for number in range(1, attempts + 1):
        try:
            return attempt(number)
        except CommitFailedError:
            log.info("%s raced with another writer (attempt %s of %s); reading again", what, number, attempts)
    raise CommitRetriesExhausted(f"could not commit {what} in {attempts} attempts: other writers kept committing")


#: Tables the sink creates checkpoint their log every 10 commits: the sink commits every few
#: seconds, and without checkpoints every fresh open would replay all JSON commits.
TABLE_CONFIGURATION = {"delta.checkpointInterval": "10"}


class DeltaStore:
    """Opens and writes the sink's Delta tables with one set of storage options.

    Opened tables are kept and brought up to date with `update_incremental()` (only new log
    entries are read), instead of loading the log again on every batch.
    """

    def __init__(self, storage_options: Mapping[str, str]) -> None:
        self.storage_options = dict(storage_options)
        self._tables: dict[str, DeltaTable] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _lock_for(self, uri: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(uri, threading.Lock())

    def open(self, uri: str) -> DeltaTable | None:
        """The table at its latest version, or None if it does not exist (yet)."""
        with self._lock_for(uri):
            table = self._tables.get(uri)
            if table is not None:
                table.update_incremental()
                return table
            try:
                table = DeltaTable(uri, storage_options=self.storage_options)
            except TableNotFoundError:
                return None
            self._tables[uri] = table
            return table

    @staticmethod
    def commit_properties(txns: Mapping[str, int], **metadata: str) -> CommitProperties:
        return CommitProperties(
            max_commit_retries=0,
            app_transactions=[Transaction(app_id=app_id, version=v) for app_id, v in txns.items()],
            custom_metadata={f"lakehouse.{k}": v for k, v in metadata.items()} or None,
        )

    @staticmethod
    def txn_version(table: DeltaTable | None, app_id: str) -> int | None:
        if table is None:
            return None
        return table.transaction_version(app_id)

    def append(
        self,
        uri: str,
        table: DeltaTable | None,
        rows: pa.Table,
        txns: Mapping[str, int],
        partition_by: list[str] | None = None,
        **metadata: str,
    ) -> None:
        """Append `rows` to `table`, adding new columns to the schema; `table` None creates it.

        Creation only succeeds if no table exists: one created meanwhile by another writer (found
        by delta-rs's existence check, or a lost race for version 0 on the conditional PUT) raises
        `CommitFailedError`, so the caller re-reads it and decides again instead of appending.
        """
        if table is not None:
            write_deltalake(
                table,
                rows,
                mode="append",
                schema_mode="merge",
                commit_properties=self.commit_properties(txns, **metadata),
            )
            return
        try:
            write_deltalake(
                uri,
                rows,
                mode="error",
                partition_by=partition_by,
                configuration=TABLE_CONFIGURATION,
                storage_options=self.storage_options,
                commit_properties=self.commit_properties(txns, **metadata),
            )
        except CommitFailedError:
            raise
        except DeltaError as exc:  # delta-rs 1.6: "Generic error: A table already exists at: <uri>"
            if "already exists" not in str(exc):
                raise
            raise CommitFailedError(f"table {uri} was created by another writer") from exc

    @staticmethod
    def compact_if_fragmented(table: DeltaTable, max_files: int) -> int:
        """OPTIMIZE a table whose MERGEs left more than `max_files` files; returns files removed.

        Every MERGE rewrites the files it touches and adds one, and the next MERGE must read the
        candidates again: in follow mode (a commit every few seconds) a table would otherwise get
        slower with every batch until the daily maintenance ran.
        """
        if len(table.file_uris()) <= max_files:
            return 0
        metrics = table.optimize.compact()
        return int(metrics.get("numFilesRemoved", 0))

    def delete_table(self, uri: str) -> bool:
        """Delete every object of a Delta table (log and data); True if there was one."""
        import boto3

        with self._lock_for(uri):
            self._tables.pop(uri, None)

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        options = self.storage_options
        client = boto3.client(
            "s3",
            endpoint_url=options.get("AWS_ENDPOINT_URL"),
            region_name=options.get("AWS_REGION"),
            aws_access_key_id=options.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=options.get("AWS_SECRET_ACCESS_KEY"),
        )
        deleted = False
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
            keys: list[Any] = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
                deleted = True
        return deleted

    def rewrite(self, table: DeltaTable, schema: pa.Schema, txns: Mapping[str, int]) -> None:
        """Rewrite a whole table with a widened schema (e.g. int64 → float64).

        delta-rs would silently cast new float values into an int64 column, so a widening is a
        rewrite: read everything, cast, overwrite in one commit (the `txn` state is kept).
        """
        data = conform_table(table.to_pyarrow_table(), schema)
        write_deltalake(
            table,
            data,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=table.metadata().partition_columns or None,
            commit_properties=self.commit_properties(txns, operation="widen-schema"),
        )
