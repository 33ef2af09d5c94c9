"""The migration plan's classes, over one :class:`udr.Repository`.

The plan names four places (a chunk store, a catalog, a branch manager and
a transaction manager). In UDR they are one repository: the chunk store's
path is the repository (created on first use), the catalog is the
repository's own (``.udr/catalog.sqlite``), and branches and transactions
are the repository's. A catalog path other than the store's is accepted
and not used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import Repository, Result, Transaction
from .errors import NotARepositoryError


class PyChunkStore:
    """Where the tables' data lives: the repository at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self._repository: Repository | None = None

    @property
    def repository(self) -> Repository:
        if self._repository is None:
            try:
                self._repository = Repository.open(self.path)
            except NotARepositoryError:
                Path(self.path).mkdir(parents=True, exist_ok=True)
                self._repository = Repository.init(self.path)
        return self._repository


class PyCatalog:
    """The plan's catalog: the repository's own catalog (see the module docs)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path


class PyBranchManager:
    """Branches: the repository's (see :class:`udr_query.QueryEngine`)."""

    def __init__(self, catalog: PyCatalog | None = None) -> None:
        self.catalog = catalog


class PyTransactionManager:
    """Transactions: the repository's (see :meth:`udr_query.QueryEngine.transaction`)."""

    def __init__(self, catalog: PyCatalog | None = None) -> None:
        self.catalog = catalog


class EngineTransaction:
    """The plan's transaction: ``tx.write_table(name, df)`` staged, committed once."""

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    def write_table(self, name: str, df: Any, key_columns: list[str] | None = None) -> dict[str, Any]:
        return self._transaction.write(name, df, key=key_columns)

    def query(self, sql: str) -> Result:
        return self._transaction.query(sql)


class QueryEngine:
    """The plan's engine: writes, versioned reads, changes, diffs, branches."""

    def __init__(
        self, store: PyChunkStore, catalog: PyCatalog | None = None, branch_manager: PyBranchManager | None = None,
        transaction_manager: PyTransactionManager | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.branch_manager = branch_manager
        self.transaction_manager = transaction_manager

    @property
    def repository(self) -> Repository:
        return self.store.repository

    def write_table(self, name: str, df: Any, key_columns: list[str] | None = None, message: str | None = None) -> dict[str, Any]:
        """Writes a table's new version as one commit; returns its ``version`` and ``tx_id``."""
        result = self.repository.write(name, df, key=key_columns, message=message)
        commit = result.get("commit") or {}
        return {"table_name": name, "version": result["version"], "tx_id": commit.get("txID"), "rows": result["rows"]}

    def query(self, sql: str, versions: Mapping[str, int] | None = None, branch: str | None = None) -> Result:
        """Runs SQL; ``versions`` reads tables at those version numbers."""
        return self.repository.query(sql, at=dict(versions or {}) or None, branch=branch)

    @contextmanager
    def transaction(self, message: str | None = None) -> Iterator[EngineTransaction]:
        with self.repository.transaction(message=message) as tx:
            yield EngineTransaction(tx)

    def latest_tx_id(self) -> int | None:
        return self.repository.latest_tx_id()

    def get_changes(self, since_tx_id: int | None = None, table_name: str | None = None) -> list[dict[str, Any]]:
        """Each commit after ``since_tx_id``: ``tx_id`` and its ``changes``
        (``table_name``, ``old_version``, ``new_version`` and row counts)."""
        out = []
        for entry in self.repository.changes(since=since_tx_id, table=table_name):
            out.append(
                {
                    "tx_id": entry["tx_id"],
                    "message": entry["message"],
                    "changes": [
                        {
                            "table_name": change["table"],
                            "old_version": change.get("oldVersion"),
                            "new_version": change.get("newVersion"),
                            "rows_inserted": change["inserted"],
                            "rows_deleted": change["deleted"],
                            "rows_updated": change["updated"],
                        }
                        for change in entry["tables"]
                    ],
                }
            )
        return out

    def diff_versions(self, table_name: str, v1: int, v2: int, key_columns: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The rows added, removed and modified from version ``v1`` to ``v2``, matched by ``key_columns``."""
        if not key_columns:
            raise ValueError("diff_versions matches rows by key: give key_columns")
        on = " AND ".join(f'a."{c}" = b."{c}"' for c in key_columns)
        pins = {"__udr_v1": f"{table_name}@{v1}", "__udr_v2": f"{table_name}@{v2}"}

        def rows(sql: str) -> list[dict[str, Any]]:
            return self.repository.query(sql, at=pins).to_arrow().to_pylist()

        added = rows(f"SELECT b.* FROM __udr_v2 b WHERE NOT EXISTS (SELECT 1 FROM __udr_v1 a WHERE {on}) ORDER BY ALL")
        removed = rows(f"SELECT a.* FROM __udr_v1 a WHERE NOT EXISTS (SELECT 1 FROM __udr_v2 b WHERE {on}) ORDER BY ALL")
        old_columns = set(self.repository.query("SELECT * FROM __udr_v1 LIMIT 0", at=pins).columns)
        new_columns = self.repository.query("SELECT * FROM __udr_v2 LIMIT 0", at=pins).columns
        compared = [c for c in new_columns if c in old_columns and c not in key_columns]
        differs = " OR ".join(f'a."{c}" IS DISTINCT FROM b."{c}"' for c in compared) or "false"
        modified = rows(f"SELECT b.* FROM __udr_v2 b JOIN __udr_v1 a ON {on} WHERE {differs} ORDER BY ALL")
        return {"rows_added": added, "rows_removed": removed, "rows_modified": modified}

    def create_branch(self, name: str, from_branch: str | None = None) -> str:
        return self.repository.create_branch(name, from_ref=from_branch)

    def checkout(self, name: str) -> None:
        self.repository.checkout(name)

    def merge_branch(self, name: str, into: str = "main", strategy: str = "fail") -> dict[str, Any]:
        return self.repository.merge(name, into=into, strategy=strategy)
