"""The systems compared: UDR and what a user would pick instead.

Each system writes every night of the workload into its own directory and
answers SQL at a night. Peers are read by DuckDB: DuckLake natively, Delta
and Iceberg through the Parquet files their table versions list (the same
files `delta_scan` and `iceberg_scan` read), plain copies through a night's
folder. UDR runs in a driver process (`udr-bench driver`) so that it is
measured in-process like the peers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workload import TableNight


def _extension(name: str) -> str:
    """The path of a DuckDB extension installed from its PyPI wheel."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.submodule_search_locations is None:
        raise RuntimeError(f"the duckdb-extension-{name} wheel is not installed: run scripts/setup-peers.sh")
    base = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(base.glob(f"extensions/v{duckdb.__version__}/{name}.duckdb_extension"))
    if not found:
        raise RuntimeError(f"duckdb-extension-{name} has no build for DuckDB {duckdb.__version__}")
    return str(found[0])


def _timed(body) -> float:
    start = time.perf_counter()
    body()
    return time.perf_counter() - start


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[list[str | None]]:
    return [list(row) for row in con.execute(sql).fetchall()]


def _sql_list(values) -> str:
    return ", ".join(str(int(v)) for v in values)


class System:
    """A system under test, writing into `root`."""

    name = ""
    label = ""
    branches = False  # whether it can create a branch

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.refs: list[object] = []  # per night, what `source` needs to read it

    # Writing -------------------------------------------------------------------

    def write(self, night: int, tables: list[TableNight], files: dict[str, Path]) -> float:
        """Writes one night; returns the seconds it took."""
        raise NotImplementedError

    # Reading -------------------------------------------------------------------

    def connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect()

    def source(self, con: duckdb.DuckDBPyConnection, night: int, table: str) -> str:
        """What `FROM` reads in `con` for `table` as it was after `night`."""
        raise NotImplementedError

    def reader(self, night: int, tables: list[str], con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection (`con`, or a new one) where `tables` read as
        they were after `night`."""
        con = con or self.connect()
        for table in tables:
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {self.source(con, night, table)}")
        return con

    def query(self, night: int, sql: str, tables: list[str], repeat: int = 1) -> tuple[list, list[float]]:
        con = self.reader(night, tables)
        times, rows = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            rows = _rows(con, sql)
            times.append(time.perf_counter() - start)
        con.close()
        return rows, times

    def answers(self, night: int, queries: list) -> list:
        """The rows each query gives after `night` (one reader for all)."""
        con = self.reader(night, sorted({t for q in queries for t in q.tables}))
        rows = [_rows(con, q.sql) for q in queries]
        con.close()
        return rows

    def diff(self, a: int, b: int, table: str, key: str) -> tuple[dict, float]:
        """Rows inserted, deleted and updated between two nights, the way a
        user of this system does it: a full outer join of the two versions."""
        con = self.connect()
        old, new = self.source(con, a, table), self.source(con, b, table)
        start = time.perf_counter()
        names = [{d[0] for d in con.execute(f"SELECT * FROM {s} LIMIT 0").description} for s in (old, new)]
        changed = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in sorted(names[0] & names[1]) if c != key) or "false"
        counts = con.execute(
            f"""SELECT count(*) FILTER (o.{key} IS NULL), count(*) FILTER (n.{key} IS NULL),
                       count(*) FILTER (o.{key} IS NOT NULL AND n.{key} IS NOT NULL AND ({changed}))
                FROM {old} o FULL OUTER JOIN {new} n ON o.{key} = n.{key}"""
        ).fetchone()
        elapsed = time.perf_counter() - start
        con.close()
        return {"inserted": counts[0], "deleted": counts[1], "updated": counts[2]}, elapsed

    def history(self, nights: int, table: str, key: str, value: int) -> tuple[int, float]:
        """The versions where one row changed: each night queried in turn."""
        start = time.perf_counter()
        con = self.connect()
        states, last = 0, object()
        for night in range(1, nights + 1):
            row = con.execute(f"SELECT * FROM {self.source(con, night, table)} WHERE {key} = {value}").fetchall()
            if row != last:
                states += 1
                last = row
        con.close()
        return states, time.perf_counter() - start

    def branch(self, name: str) -> float | None:
        return None

    # Storage -------------------------------------------------------------------

    def stored_files(self) -> dict[str, tuple[int, int]]:
        """Every file of the system's storage: path → (size, modification time)."""
        out = {}
        for directory, subdirectories, files in os.walk(self.root):
            subdirectories[:] = [d for d in subdirectories if not self.is_cache(d)]
            for f in files:
                if f.endswith("-shm"):
                    continue  # SQLite's shared-memory index, never synced
                path = Path(directory) / f
                st = path.stat()
                out[str(path.relative_to(self.root))] = (st.st_size, st.st_mtime_ns)
        return out

    def is_cache(self, directory: str) -> bool:
        return False

    @staticmethod
    def is_mutable(path: str) -> bool:
        """Files rewritten in place: catalogs and Delta's checkpoint pointer.
        Every other file of every system is written once under a unique
        name (a UUID, or UDR's content hash) and never changes, so a sync
        uploads it once; UDR refreshes the time of objects it reuses (so
        that a concurrent GC spares them), which a time-comparing sync
        must not mistake for a change."""
        return path.endswith((".sqlite", ".db", "-wal", "_last_checkpoint"))

    def close(self) -> None:
        pass


class UDR(System):
    name = "udr"
    label = "UDR"
    branches = True

    def __init__(self, root: Path, driver: str, environment: dict | None = None):
        super().__init__(root)
        self.process = subprocess.Popen(
            [driver, "driver", str(self.repository)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            env={**os.environ, **(environment or {})},
        )

    def ask(self, request: dict) -> dict:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(request) + "\n")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the UDR driver stopped (exit {self.process.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"UDR: {answer['error']}")
        return answer

    def write(self, night, tables, files):
        request = {
            "op": "write", "message": f"night {night}", "tag": f"night-{night:02d}",
            "tables": [{"name": t.name, "file": str(files[t.name]), "key": [t.key]} for t in tables if t.refreshed],
        }
        return self.ask(request)["seconds"]

    def answers(self, night, queries):
        return [self.query(night, q.sql, q.tables)[0] for q in queries]

    def query(self, night, sql, tables, repeat=1):
        answer = self.ask({"op": "query", "sql": sql, "ref": f"night-{night:02d}", "repeat": repeat})
        return answer["rows"], answer["seconds"]

    def diff(self, a, b, table, key):
        answer = self.ask({"op": "diff", "from": f"night-{a:02d}", "to": f"night-{b:02d}", "table": table})
        return {k: answer[k] for k in ("inserted", "deleted", "updated")}, answer["seconds"]

    def history(self, nights, table, key, value):
        answer = self.ask({"op": "history", "table": table, "key": {key: str(value)}})
        return answer["changes"], answer["seconds"]

    def branch(self, name):
        return self.ask({"op": "branch", "name": name, "from": "main"})["seconds"]

    def push(self, url: str, endpoint: str) -> dict:
        """`udr push` to an S3 server: the request-body bytes it sent, and its time."""
        # SeaweedFS answers a few seconds after it starts: the first push retries.
        deadline = time.time() + 60
        while True:
            try:
                return self.ask({"op": "push", "url": url, "endpoint": endpoint})
            except RuntimeError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)

    def clone(self, url: str, endpoint: str, directory: str, depth: int | None = None) -> dict:
        return self.ask({"op": "clone", "url": url, "endpoint": endpoint, "dir": directory, "depth": depth})

    # The read cache and write scratch under .udr/: never synced.
    CACHE_DIRECTORIES = ("cache", "tmp")

    @property
    def repository(self) -> Path:
        return self.root / "repo"

    def is_cache(self, directory):
        return directory in self.CACHE_DIRECTORIES

    def close(self):
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)
        if self.process.stdout:
            self.process.stdout.close()


class DuckLake(System):
    """DuckLake with a SQLite catalog and a local data path; one transaction a night."""

    def __init__(self, root: Path, row_level: bool):
        super().__init__(root)
        self.row_level = row_level
        self.name = "ducklake-rows" if row_level else "ducklake-replace"
        self.label = "DuckLake (UPDATE/DELETE/INSERT)" if row_level else "DuckLake (CREATE OR REPLACE)"
        self.checker: duckdb.DuckDBPyConnection | None = None
        self.con = self.connect()
        self.con.execute(f"ATTACH '{self.catalog}' AS lake (DATA_PATH '{self.root / 'data'}/')")
        self.con.execute("USE lake")

    @property
    def catalog(self) -> str:
        return f"ducklake:sqlite:{self.root / 'catalog.sqlite'}"

    def connect(self):
        con = duckdb.connect()
        con.execute(f"LOAD '{_extension('sqlite_scanner')}'")
        con.execute(f"LOAD '{_extension('ducklake')}'")
        return con

    def source(self, con, night, table):
        version = self.refs[night - 1]
        alias = f"snapshot_{version}"
        if not con.execute("SELECT 1 FROM duckdb_databases() WHERE database_name = ?", [alias]).fetchall():
            con.execute(f"ATTACH '{self.catalog}' AS {alias} (SNAPSHOT_VERSION {version}, READ_ONLY)")
        return f"{alias}.{table}"

    def write(self, night, tables, files):
        con = self.con

        def run():
            con.execute("BEGIN")
            for t in tables:
                if night == 1 or (t.refreshed and not self.row_level):
                    con.register("snapshot", t.snapshot)
                    con.execute(f"CREATE OR REPLACE TABLE {t.name} AS SELECT * FROM snapshot")
                    con.unregister("snapshot")
                elif self.row_level and not t.change.empty:
                    c = t.change
                    for column, kind in c.added_columns:
                        con.execute(f"ALTER TABLE {t.name} ADD COLUMN {column} {kind}")
                    if len(c.deleted):
                        con.execute(f"DELETE FROM {t.name} WHERE {t.key} IN ({_sql_list(c.deleted.to_pylist())})")
                    if c.updated.num_rows:
                        con.register("updated", c.updated)
                        sets = ", ".join(f"{col} = u.{col}" for col in c.updated.column_names if col != t.key)
                        con.execute(f"UPDATE {t.name} SET {sets} FROM updated u WHERE {t.name}.{t.key} = u.{t.key}")
                        con.unregister("updated")
                    if c.inserted.num_rows:
                        con.register("inserted", c.inserted)
                        con.execute(f"INSERT INTO {t.name} BY NAME SELECT * FROM inserted")
                        con.unregister("inserted")
            con.execute("COMMIT")

        elapsed = _timed(run)
        self.refs.append(con.execute("SELECT id FROM current_snapshot()").fetchone()[0])
        return elapsed

    def answers(self, night, queries):
        # One reader connection for the checks of every night: connecting
        # and loading the two extensions took 0.12 s a night.
        self.checker = self.reader(night, sorted({t for q in queries for t in q.tables}), self.checker)
        rows = [_rows(self.checker, q.sql) for q in queries]
        self.checker.execute(f"DETACH snapshot_{self.refs[night - 1]}")  # the next night's views attach theirs
        return rows

    def close(self):
        if self.checker is not None:
            self.checker.close()
        self.con.close()


class FileListed(System):
    """A table format read by DuckDB through the Parquet files a version lists."""

    def files(self, night: int, table: str) -> list[str]:
        raise NotImplementedError

    def source(self, con, night, table):
        listed = ", ".join(f"'{f}'" for f in self.files(night, table))
        return f"read_parquet([{listed}], union_by_name = true)"


class Delta(FileListed):
    """Delta Lake (delta-rs): a table per directory, a commit per operation."""

    def __init__(self, root: Path, merge: bool):
        super().__init__(root)
        self.merge = merge
        self.name = "delta-merge" if merge else "delta-overwrite"
        self.label = "Delta (merge)" if merge else "Delta (overwrite)"

    def write(self, night, tables, files):
        from deltalake import DeltaTable, write_deltalake
        from deltalake.schema import Field, PrimitiveType

        def run():
            for t in tables:
                path = str(self.root / t.name)
                if night == 1 or (t.refreshed and not self.merge):
                    write_deltalake(path, t.snapshot, mode="overwrite", schema_mode="overwrite")
                elif self.merge and not t.change.empty:
                    c = t.change
                    table = DeltaTable(path)
                    if c.added_columns:
                        table.alter.add_columns([Field(name, PrimitiveType("integer"), nullable=True) for name, _ in c.added_columns])
                    # One MERGE applies the night's changes, as a change-data
                    # feed is applied to Delta: the whole new rows of updated
                    # and inserted keys, and the deleted keys flagged. (A
                    # DELETE and then a MERGE commit twice and rewrite the
                    # files they touch twice.)
                    upserts = _upserts(t)
                    flag = "__deleted"
                    source = pa.concat_tables(
                        [
                            upserts.append_column(flag, pa.repeat(False, upserts.num_rows)),
                            pa.table(
                                {
                                    name: c.deleted if name == t.key else pa.nulls(len(c.deleted), upserts.schema.field(name).type)
                                    for name in upserts.column_names
                                }
                                | {flag: pa.repeat(True, len(c.deleted))}
                            ),
                        ]
                    )
                    if source.num_rows:
                        (
                            table.merge(source, predicate=f"t.{t.key} = s.{t.key}", source_alias="s", target_alias="t")
                            .when_matched_delete(predicate=f"s.{flag}")
                            .when_matched_update_all(predicate=f"NOT s.{flag}", except_cols=[flag])
                            .when_not_matched_insert_all(predicate=f"NOT s.{flag}", except_cols=[flag])
                            .execute()
                        )

        elapsed = _timed(run)
        # Each table's version after tonight: a table not written keeps last
        # night's (opening all 78 tables every night took 0.2 s a night).
        versions = dict(self.refs[-1]) if self.refs else {}
        for t in tables:
            if night == 1 or t.refreshed:
                versions[t.name] = DeltaTable(str(self.root / t.name)).version()
        self.refs.append(versions)
        return elapsed

    def files(self, night, table):
        from deltalake import DeltaTable

        uris = DeltaTable(str(self.root / table), version=self.refs[night - 1][table]).file_uris()
        return [u.removeprefix("file://") for u in uris]


def _upserts(t: TableNight) -> pa.Table:
    """The whole new rows of the keys a night updated or inserted."""
    c = t.change
    keys = pa.concat_arrays([c.updated.column(t.key).combine_chunks(), c.inserted.column(t.key).combine_chunks()])
    return t.snapshot.filter(pc.is_in(t.snapshot.column(t.key), value_set=keys))


class Iceberg(FileListed):
    """Apache Iceberg (pyiceberg) with its SQL catalog on SQLite."""

    def __init__(self, root: Path, upsert: bool):
        super().__init__(root)
        from pyiceberg.catalog.sql import SqlCatalog

        self.upsert = upsert
        self.name = "iceberg-upsert" if upsert else "iceberg-overwrite"
        self.label = "Iceberg (upsert by key)" if upsert else "Iceberg (overwrite)"
        (root / "warehouse").mkdir(exist_ok=True)
        self.catalog = SqlCatalog("bench", uri=f"sqlite:///{root / 'catalog.db'}", warehouse=f"file://{root / 'warehouse'}")
        self.catalog.create_namespace_if_not_exists("bench")
        self.branches = True

    def write(self, night, tables, files):
        from pyiceberg.expressions import In

        # Each table's snapshot after tonight: a table not written keeps
        # last night's; a written one reports its new snapshot itself.
        snapshots = dict(self.refs[-1]) if self.refs else {}

        def run():
            for t in tables:
                ident = f"bench.{t.name}"
                if night == 1:
                    table = self.catalog.create_table(ident, schema=t.snapshot.schema)
                    table.append(t.snapshot)
                    snapshots[t.name] = table.current_snapshot().snapshot_id
                    continue
                if not t.refreshed:  # neither rewritten nor changed tonight
                    continue
                table = self.catalog.load_table(ident)
                evolved = t.snapshot.schema.names != table.schema().column_names
                if evolved:
                    with table.update_schema() as update:
                        update.union_by_name(t.snapshot.schema)
                    table = self.catalog.load_table(ident)
                # A night that adds a column fills it for every row; pyiceberg's
                # upsert cannot compare rows across the schema change (it reads
                # the table at the snapshot's older schema), so that night is
                # an overwrite in both modes.
                # An upsert of (nearly) every row, as the master's nightly score
                # recompute is, is written as the overwrite a pyiceberg user
                # would write: binding a key filter of every row took pyiceberg
                # 11 s a night for the master at scale 0.1.
                everything = t.change.updated.num_rows >= t.snapshot.num_rows // 2
                if not self.upsert or evolved or everything:
                    table.overwrite(t.snapshot)
                    snapshots[t.name] = table.current_snapshot().snapshot_id
                    continue
                # Row-level: the changed and new rows replace the rows of
                # their keys and of the deleted keys, in one overwrite. This
                # is what pyiceberg's upsert() does after it compares every
                # column of every matched row to drop unchanged ones; that
                # comparison made it 5× slower here (13 s against 2.5 s for
                # the master at scale 0.1), and every row it is given did
                # change. A delete and then an overwrite took 45% longer over
                # 11 nights (each commit copies the table's metadata, which
                # grows with every snapshot).
                c = t.change
                upserts = _upserts(t)
                replaced = In(t.key, c.deleted.to_pylist() + upserts.column(t.key).to_pylist())
                if upserts.num_rows:
                    table.overwrite(upserts, overwrite_filter=replaced)
                elif len(c.deleted):
                    table.delete(replaced)
                snapshots[t.name] = table.current_snapshot().snapshot_id

        elapsed = _timed(run)
        self.refs.append(snapshots)
        return elapsed

    def files(self, night, table):
        scan = self.catalog.load_table(f"bench.{table}").scan(snapshot_id=self.refs[night - 1][table])
        tasks = list(scan.plan_files())
        if any(task.delete_files for task in tasks):
            raise RuntimeError("Iceberg wrote delete files; reading through the file list would be wrong")
        return [task.file.file_path.removeprefix("file://") for task in tasks]

    def branch(self, name):
        def run():
            for ident in self.catalog.list_tables("bench"):
                table = self.catalog.load_table(ident)
                table.manage_snapshots().create_branch(table.current_snapshot().snapshot_id, name).commit()

        return _timed(run)


class ParquetCopies(System):
    """What the pipeline does today: a folder of Parquet files per night."""

    name = "parquet-copies"
    label = "Parquet copies"
    branches = True

    def write(self, night, tables, files):
        folder = self.root / f"night_{night:02d}"

        def run():
            folder.mkdir()
            for t in tables:
                shutil.copyfile(files[t.name], folder / f"{t.name}.parquet")

        elapsed = _timed(run)
        self.refs.append(folder)
        return elapsed

    def source(self, con, night, table):
        return f"read_parquet('{self.refs[night - 1] / table}.parquet')"

    def branch(self, name):
        return _timed(lambda: shutil.copytree(self.refs[-1], self.root / f"branch-{name}"))


def make_systems(root: Path, driver: str, only: list[str] | None = None, udr_environment: dict | None = None) -> list[System]:
    factories = {
        "udr": lambda: UDR(root / "udr", driver, udr_environment),
        "ducklake-replace": lambda: DuckLake(root / "ducklake-replace", row_level=False),
        "ducklake-rows": lambda: DuckLake(root / "ducklake-rows", row_level=True),
        "delta-overwrite": lambda: Delta(root / "delta-overwrite", merge=False),
        "delta-merge": lambda: Delta(root / "delta-merge", merge=True),
        "iceberg-overwrite": lambda: Iceberg(root / "iceberg-overwrite", upsert=False),
        "iceberg-upsert": lambda: Iceberg(root / "iceberg-upsert", upsert=True),
        "parquet-copies": lambda: ParquetCopies(root / "parquet-copies"),
    }
    unknown = set(only or []) - set(factories)
    if unknown:
        raise SystemExit(f"unknown system(s) {', '.join(sorted(unknown))}: choose from {', '.join(factories)}")
    return [make() for name, make in factories.items() if not only or name in only]
