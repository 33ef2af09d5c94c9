"""UDR, the Unified Data Runtime, from Python: versioned, transactional
tables queried with DuckDB, in-process over the Swift library.

    import udr
    repo = udr.Repository.init("warehouse")
    repo.write("parcels", df, key=["bbl"], message="night 1")
    repo.query("SELECT count(*) FROM parcels").to_pandas()
"""

from __future__ import annotations

import ctypes
import itertools
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from . import _arrow, _lib
from .errors import (
    AlreadyExistsError,
    ConflictError,
    CorruptObjectError,
    DuplicateKeyError,
    InvalidArgumentError,
    InvalidInputError,
    InvalidNameError,
    NotARepositoryError,
    NotFoundError,
    NullKeyError,
    QueryError,
    ReadOnlyError,
    RuntimeMissingError,
    TransactionError,
    UDRError,
)

__all__ = [
    "Repository", "Transaction", "Result", "UDRError", "InvalidArgumentError", "InvalidInputError", "InvalidNameError",
    "NotARepositoryError", "NotFoundError", "AlreadyExistsError",
    "ConflictError", "DuplicateKeyError", "NullKeyError", "QueryError", "ReadOnlyError", "TransactionError",
    "CorruptObjectError", "RuntimeMissingError",
]


class _Rows:
    """Rows to write: a reader, the schema UDR keeps with the table, and
    whether they ascend by `key` (when that was cheap to see)."""

    def __init__(self, reader: pa.RecordBatchReader, schema: str | None, in_key_order: bool = False) -> None:
        self.reader = reader
        self.schema = schema
        self.in_key_order = in_key_order


def _reader(data: Any, key: list[str] | None = None) -> _Rows:
    """Rows from anything Arrow-shaped (see ``_arrow_reader``); a value
    Arrow cannot hold is UDR's error, naming the column."""
    try:
        return _arrow_reader(data, key)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise InvalidInputError(f"cannot read the rows to write: {error}. Give each column one type") from error


def _arrow_reader(data: Any, key: list[str] | None) -> _Rows:
    """Rows from anything Arrow-shaped: an object with ``__arrow_c_stream__``
    (pyarrow, polars, DuckDB relations …), a pandas DataFrame, a pyarrow
    Table or RecordBatch, or a list of dicts."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    elif type(data).__module__.startswith("pandas"):
        data = _arrow.from_pandas(data)
    elif isinstance(data, list):
        data = pa.Table.from_pylist(data)
    if isinstance(data, pa.Table):
        if any(pa.types.is_dictionary(field.type) for field in data.schema):
            data = data.unify_dictionaries()
        batches = data.to_batches()
        schema = _arrow.encode_schema(data.schema, batches[0] if batches else None)
        try:
            return _Rows(_arrow.for_duckdb(data).to_reader(), schema, _arrow.in_key_order(data, key))
        except ValueError as error:
            raise InvalidInputError(str(error)) from error
    if isinstance(data, pa.RecordBatchReader) or hasattr(data, "__arrow_c_stream__"):
        reader = data if isinstance(data, pa.RecordBatchReader) else pa.RecordBatchReader.from_stream(data)
        if not any(pa.types.is_dictionary(field.type) for field in reader.schema):
            return _Rows(reader, _arrow.encode_schema(reader.schema, None))
        # The first batch gives the dictionaries; the rest follow it.
        try:
            first = reader.read_next_batch()
        except StopIteration:
            return _Rows(reader, _arrow.encode_schema(reader.schema, None))
        rest = pa.RecordBatchReader.from_batches(reader.schema, itertools.chain([first], reader))
        return _Rows(rest, _arrow.encode_schema(reader.schema, first))
    raise InvalidArgumentError(f"cannot read rows from a {type(data).__name__}: give a pandas, polars or pyarrow table")


class Result:
    """A query's rows, as Arrow, pandas, polars or Python tuples, in the
    types the tables' writers gave them (see ``udr._arrow``)."""

    def __init__(
        self, reader: pa.RecordBatchReader | pa.Table, restorer: _arrow.Restorer | None = None, cancel: _lib.Cancel | None = None
    ) -> None:
        self._reader = reader if isinstance(reader, pa.RecordBatchReader) else None
        self._table = reader if isinstance(reader, pa.Table) else None
        self._restorer = restorer
        # A streamed result's rows are made as they are read: reads are
        # interruptible, by this handle.
        self._cancel = cancel

    def _restored(self, table: pa.Table) -> pa.Table:
        return self._restorer.restore(table) if self._restorer else table

    def _read(self, reader: pa.RecordBatchReader, step: Any) -> Any:
        if self._cancel is None:
            return step(reader)
        return _lib.interruptible(lambda _: step(reader), self._cancel)

    def _done(self) -> None:
        """The stream is read: its handle (and the connection it holds) goes."""
        if self._cancel is not None:
            self._cancel.close()
            self._cancel = None

    def to_arrow(self) -> pa.Table:
        """The rows as a pyarrow Table."""
        if self._table is None:
            reader, self._reader = self._reader, None
            if reader is None:
                raise InvalidArgumentError("to_batches() handed out this result's rows already: run the query again to read them another way")
            try:
                self._table = self._restored(self._read(reader, lambda r: r.read_all()))
            finally:
                self._done()
        return self._table

    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame, with the dtypes they were written with."""
        return _arrow.to_pandas(self.to_arrow())

    def to_polars(self) -> Any:
        import polars

        return polars.from_arrow(self.to_arrow())

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        """The rows batch by batch, each handed over as it is read."""
        if self._table is not None:
            yield from self._table.to_batches()
            return
        reader, self._reader = self._reader, None
        if reader is None:
            raise InvalidArgumentError("to_batches() handed out this result's rows already: run the query again to read them another way")
        try:
            while True:
                try:
                    batch = self._read(reader, lambda r: r.read_next_batch())
                except StopIteration:
                    return
                yield from self._restored(pa.Table.from_batches([batch])).to_batches()
        finally:
            reader.close()
            self._done()

    def fetchall(self) -> list[tuple[Any, ...]]:
        table = self.to_arrow()
        columns = [column.to_pylist() for column in table.columns]
        return list(zip(*columns))

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.to_arrow().__arrow_c_stream__(requested_schema)

    @property
    def schema(self) -> pa.Schema:
        return self.to_arrow().schema

    @property
    def columns(self) -> list[str]:
        return self.to_arrow().column_names

    def __len__(self) -> int:
        return self.to_arrow().num_rows

    def __repr__(self) -> str:
        table = self.to_arrow()
        return f"<udr.Result {table.num_rows} rows: {', '.join(table.column_names)}>"


class Repository:
    """A UDR repository on the local disk (objects and SQLite catalog in ``path/.udr``)."""

    def __init__(self, handle: int, path: str) -> None:
        self._handle = ctypes.c_void_p(handle)
        self.path = path

    @classmethod
    def open(cls, path: str) -> Repository:
        """The repository at ``path`` (or one containing it)."""
        return cls._open(path, create=False)

    @classmethod
    def init(cls, path: str, *, store: str | None = None, endpoint: str | None = None, region: str | None = None) -> Repository:
        """Creates a repository at ``path``; with ``store``, its objects live
        in that object store (``s3://BUCKET/PREFIX`` with ``endpoint`` and
        ``region`` for S3-compatible servers, or a directory), an empty
        location of its own. S3 credentials come from ``AWS_*`` or
        ``~/.aws/credentials``, never from the repository."""
        if store is None and (endpoint or region):
            raise ValueError("endpoint and region describe store; pass store='s3://BUCKET/PREFIX' too")
        options = {"url": store, "endpoint": endpoint, "region": region} if store else None
        return cls._open(path, create=True, options=options)

    @classmethod
    def clone(
        cls, url: str, path: str, *, branch: str | None = None, depth: int | None = None,
        endpoint: str | None = None, region: str | None = None,
    ) -> Repository:
        """Clones the remote at ``url`` (``s3://…`` or a directory) into a
        new repository at ``path``, as ``udr clone`` does; ``depth`` fetches
        only the newest commits' segments (older ones come on demand)."""
        handle = ctypes.c_void_p()
        report = ctypes.c_void_p()
        error = ctypes.c_void_p()
        options = _lib.encode({"url": url, "endpoint": endpoint, "region": region, "branch": branch, "depth": depth})
        _lib.check(_lib.lib().udr_clone(str(path).encode(), options, ctypes.byref(handle), ctypes.byref(report), ctypes.byref(error)), error)
        repo = cls(handle.value or 0, str(path))
        repo.clone_report = json.loads(_lib.take_string(report))
        return repo

    @classmethod
    def _open(cls, path: str, create: bool, options: dict | None = None) -> Repository:
        handle = ctypes.c_void_p()
        error = ctypes.c_void_p()
        encoded = _lib.encode(options) if options else None
        _lib.check(_lib.lib().udr_open(str(path).encode(), 1 if create else 0, encoded, ctypes.byref(handle), ctypes.byref(error)), error)
        return cls(handle.value or 0, str(path))

    def close(self) -> None:
        if self._handle.value:
            _lib.lib().udr_close(self._handle)
            self._handle = ctypes.c_void_p()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # Reads

    def query(
        self, sql: str, *, at: Mapping[str, str | int] | None = None, commit: str | None = None, as_of: str | None = None,
        branch: str | None = None, tx: str | None = None, stream: bool = False,
    ) -> Result:
        """Runs DuckDB SQL over the tables (read-only). ``at`` pins tables:
        ``{"parcels": 3}``, ``{"old": "parcels@main~1"}``; ``commit`` a ref,
        ``as_of`` a time, ``branch`` a branch. With ``stream``, DuckDB makes
        the rows batch by batch as :meth:`Result.to_batches` reads them (one
        statement; a result larger than memory); otherwise the query runs to
        its end here."""
        pins = {alias: str(target) for alias, target in (at or {}).items()}
        request = _lib.encode(
            {"at": pins or None, "commit": commit, "as_of": as_of, "branch": branch, "tx": tx, "stream": stream or None}
        )
        arrow = _lib.ArrowArrayStream()
        info = ctypes.c_void_p()
        error = ctypes.c_void_p()
        # A streamed result keeps its handle to interrupt the reads of its batches.
        cancel = _lib.Cancel() if stream else None
        try:
            status = _lib.interruptible(
                lambda handle: _lib.lib().udr_query(
                    self._handle, sql.encode(), request, handle, ctypes.byref(arrow), ctypes.byref(info), ctypes.byref(error)
                ),
                cancel,
            )
        except KeyboardInterrupt:
            _lib.discard(arrow, info, error)
            raise
        _lib.check(status, error)
        schemas = json.loads(_lib.take_string(info))["arrow_schemas"]
        reader = pa.RecordBatchReader._import_from_c(ctypes.addressof(arrow))
        return Result(reader, _arrow.Restorer(schemas) if schemas else None, cancel)

    # Writes

    def _write(self, table: str, data: Any, options: dict[str, Any]) -> dict[str, Any]:
        rows = _reader(data, options.get("key"))
        if options.get("mode") == "write":
            options = {**options, "arrow_schema": rows.schema, "in_key_order": rows.in_key_order or None}
        stream = _lib.ArrowArrayStream()
        rows.reader._export_to_c(ctypes.addressof(stream))
        out = ctypes.c_void_p()
        error = ctypes.c_void_p()
        status = _lib.lib().udr_write(
            self._handle, table.encode(), ctypes.byref(stream), _lib.encode(options), ctypes.byref(out), ctypes.byref(error)
        )
        _lib.check(status, error)
        return json.loads(_lib.take_string(out))

    def write(
        self, table: str, data: Any, *, key: list[str] | None = None, message: str | None = None, author: str | None = None,
        branch: str | None = None,
    ) -> dict[str, Any]:
        """Replaces a table's content with ``data`` as one commit (only the
        changed column chunks are stored). ``key=None`` keeps the table's key;
        ``key=[]`` makes it keyless."""
        return self._write(table, data, {"key": key, "message": message, "author": author, "branch": branch, "mode": "write"})

    def append(self, table: str, data: Any, **commit: Any) -> dict[str, Any]:
        """Adds rows; on a keyed table an existing key is an error."""
        return self._write(table, data, {**commit, "mode": "append"})

    def upsert(self, table: str, data: Any, **commit: Any) -> dict[str, Any]:
        """Inserts rows with new keys and replaces rows with existing ones."""
        return self._write(table, data, {**commit, "mode": "upsert"})

    def delete(self, table: str, keys: Any = None, *, where: str | None = None, **commit: Any) -> dict[str, Any]:
        """Deletes the rows whose key is in ``keys`` (rows with the key columns), or that satisfy ``where``."""
        if (keys is None) == (where is None):
            raise InvalidArgumentError("give keys (rows with the key columns) or where (a SQL condition), not both or neither")
        if keys is not None:
            return self._write(table, keys, {**commit, "mode": "delete"})
        return self.sql(f"DELETE FROM {_quote(table)} WHERE {where}", **commit)[0]

    def update(self, table: str, set: str, where: str | None = None, **commit: Any) -> dict[str, Any]:
        """Sets columns to SQL expressions (``"status = 'sold'"``) in the rows ``where`` selects (all rows without it)."""
        return self.sql(f"UPDATE {_quote(table)} SET {set}" + (f" WHERE {where}" if where else ""), **commit)[0]

    def sql(
        self, sql: str, *, branch: str | None = None, atomic: bool = False, message: str | None = None, author: str | None = None,
        tx: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs SQL that writes (INSERT, UPDATE, DELETE, MERGE, CREATE/ALTER/DROP
        TABLE …), each statement a commit unless BEGIN … COMMIT or ``atomic``
        groups them; returns what each statement did (``rows`` for queries and RETURNING)."""
        out = ctypes.c_void_p()
        error = ctypes.c_void_p()
        request = _lib.encode({"branch": branch, "atomic": atomic or None, "message": message, "author": author, "tx": tx})
        _lib.check(_lib.lib().udr_sql(self._handle, sql.encode(), request, ctypes.byref(out), ctypes.byref(error)), error)
        return json.loads(_lib.take_string(out))

    @contextmanager
    def transaction(self, *, branch: str | None = None, message: str | None = None, author: str | None = None) -> Iterator[Transaction]:
        """A transaction: what it stages commits as one commit when the block
        ends, or is discarded when it raises."""
        began = self._call("begin", branch=branch)
        tx = Transaction(self, began["tx"])
        try:
            yield tx
        except BaseException:
            self._call("abort", tx=tx.id)
            raise
        tx.commit_record = self._call("commit", tx=tx.id, message=message, author=author)["commit"]

    # Control

    def _call(self, method: str, **arguments: Any) -> Any:
        out = ctypes.c_void_p()
        error = ctypes.c_void_p()
        status = _lib.lib().udr_call(self._handle, method.encode(), _lib.encode(arguments), ctypes.byref(out), ctypes.byref(error))
        _lib.check(status, error)
        return json.loads(_lib.take_string(out))

    def log(self, table: str | None = None, *, branch: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return self._call("log", table=table, branch=branch, limit=limit)

    def tables(self, *, branch: str | None = None, commit: str | None = None) -> list[dict[str, Any]]:
        return self._call("tables", branch=branch, ref=commit)

    def changes(self, since: int | None = None, *, table: str | None = None, branch: str | None = None) -> list[dict[str, Any]]:
        """Per commit after transaction ``since``: the tables it changed and their rows inserted, deleted and updated."""
        return self._call("changes", since=since, table=table, branch=branch)

    def latest_tx_id(self, *, branch: str | None = None) -> int | None:
        return self._call("latest_tx_id", branch=branch)["tx_id"]

    def diff(self, old: str, new: str, *, tables: list[str] | None = None, key: list[str] | None = None) -> dict[str, Any]:
        """Tables that differ between two refs, with rows inserted, deleted and updated."""
        return self._call("diff", **{"from": old, "to": new, "tables": tables, "key": key})

    def diff_rows(self, old: str, new: str, *, tables: list[str] | None = None, key: list[str] | None = None) -> Result:
        """Every changed cell between two refs: table, change, key, column, old, new."""
        return _rows(self._call("diff_rows", **{"from": old, "to": new, "tables": tables, "key": key}))

    def history(self, table: str, key: Mapping[str, Any], *, branch: str | None = None) -> Result:
        """Each commit where the row with ``key`` appeared, changed or vanished."""
        return _rows(self._call("history", table=table, values={k: str(v) for k, v in key.items()}, branch=branch))

    def branches(self) -> list[dict[str, Any]]:
        return [ref for ref in self._call("refs") if ref["kind"] == "branch"]

    def tags(self) -> list[dict[str, Any]]:
        return [ref for ref in self._call("refs") if ref["kind"] == "tag"]

    def create_branch(self, name: str, *, from_ref: str | None = None) -> str:
        return self._call("create_branch", name=name, **{"from": from_ref})["commit"]

    def delete_branch(self, name: str) -> str:
        return self._call("delete_branch", name=name)["commit"]

    def checkout(self, name: str) -> None:
        """Makes ``name`` the current branch (what calls without ``branch`` use)."""
        self._call("switch", name=name)

    def current_branch(self) -> str:
        return self._call("current_branch")["branch"]

    def tag(self, name: str, ref: str | None = None) -> str:
        return self._call("create_tag", name=name, ref=ref)["commit"]

    def merge(self, source: str, *, into: str | None = None, strategy: str = "fail", message: str | None = None) -> dict[str, Any]:
        return self._call("merge", **{"from": source, "to": into, "strategy": strategy, "message": message})

    # Remotes (as `udr remote`, `fetch`, `pull`, `push`): a directory or
    # s3://BUCKET/PREFIX; only what the other side lacks moves.

    def add_remote(self, name: str, url: str, *, endpoint: str | None = None, region: str | None = None) -> None:
        self._call("remote_add", name=name, url=url, endpoint=endpoint, region=region)

    def remove_remote(self, name: str) -> None:
        self._call("remote_remove", name=name)

    def remotes(self) -> list[dict[str, Any]]:
        """Each remote's name and location (url, endpoint, region)."""
        return self._call("remotes")

    def fetch(self, remote: str | None = None, *, depth: int | None = None) -> dict[str, Any]:
        """Fetches the remote's branches (as ``REMOTE/BRANCH``) and tags;
        returns what moved (objects, bytes, refs)."""
        return self._call("fetch", name=remote, depth=depth)

    def pull(self, remote: str | None = None, *, branch: str | None = None, strategy: str = "fail") -> dict[str, Any]:
        """Fetches, then merges the remote's branch into the current one
        (a fast-forward, or a three-way merge; conflicts raise as ``merge`` does)."""
        return self._call("pull", name=remote, branch=branch, strategy=strategy)

    def push(self, remote: str | None = None, *, branch: str | None = None, force: bool = False, tags: bool = False) -> dict[str, Any]:
        """Sends the branch's objects the remote lacks, then moves its ref by
        compare-and-swap; a push that is not a fast-forward raises unless ``force``."""
        return self._call("push", name=remote, branch=branch, force=force, tags=tags)

    def drop(self, table: str, *, if_exists: bool = False, message: str | None = None, branch: str | None = None) -> Any:
        return self._call("drop", table=table, if_exists=if_exists, message=message, branch=branch)["commit"]

    def rename(self, table: str, to: str, *, message: str | None = None, branch: str | None = None) -> Any:
        return self._call("rename", table=table, to=to, message=message, branch=branch)["commit"]

    def verify(self, *, repair: bool = False) -> dict[str, Any]:
        return self._call("verify", repair=repair)

    def expire(self, *, keep_last: int | None = None, older_than: float | None = None) -> dict[str, Any]:
        return self._call("expire", keep_last=keep_last, older_than=older_than)

    def gc(self, *, grace: float | None = None) -> dict[str, Any]:
        return self._call("gc", grace=grace)


class Transaction:
    """Writes staged together; see :meth:`Repository.transaction`."""

    def __init__(self, repository: Repository, id: str) -> None:
        self.repository = repository
        self.id = id
        self.commit_record: dict[str, Any] | None = None

    def write(self, table: str, data: Any, *, key: list[str] | None = None) -> dict[str, Any]:
        return self.repository._write(table, data, {"key": key, "tx": self.id, "mode": "write"})

    def append(self, table: str, data: Any) -> dict[str, Any]:
        return self.repository._write(table, data, {"tx": self.id, "mode": "append"})

    def upsert(self, table: str, data: Any) -> dict[str, Any]:
        return self.repository._write(table, data, {"tx": self.id, "mode": "upsert"})

    def sql(self, sql: str) -> list[dict[str, Any]]:
        return self.repository.sql(sql, tx=self.id)

    def query(self, sql: str) -> Result:
        """Reads the transaction's snapshot and its own writes."""
        return self.repository.query(sql, tx=self.id)


def _rows(payload: dict[str, Any]) -> Result:
    columns = payload["columns"]
    rows = payload["rows"]
    return Result(pa.table({name: [row[i] for row in rows] for i, name in enumerate(columns)}))


def _quote(table: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))


from .compat import PyBranchManager, PyCatalog, PyChunkStore, PyTransactionManager  # noqa: E402

__all__ += ["PyChunkStore", "PyCatalog", "PyBranchManager", "PyTransactionManager"]
