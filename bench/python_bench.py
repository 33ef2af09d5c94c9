"""`make bench` (part python): the Python package against what a pandas user
would run instead, side by side in one process on the same DataFrame.

- write: `repo.write` (and the migration plan's `engine.write_table`)
  against DuckDB's `COPY (FROM df) TO 'x.parquet'` and DuckLake's
  `CREATE TABLE … AS FROM df`;
- read: `query(…).to_pandas()` of the whole table and of a key lookup
  against `duckdb.sql(…).df()` over one Parquet file;
- per call: `query("SELECT 1")` against `duckdb.sql("SELECT 1").fetchall()`.

Targets (issue 26): write ≥ 0.5× COPY's throughput, to_pandas ≤ 1.2×
DuckDB's time, per-call overhead ≤ 1 ms.

    python bench/python_bench.py --extensions DIR [--rows N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

import udr
import udr_query


def dataframe(rows: int) -> pd.DataFrame:
    """A parcel-like frame: key, integers, floats, strings of a few and of many values, a date."""
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "bbl": np.arange(rows, dtype=np.int64) + 1_000_000_000,
        "borough": rng.integers(1, 6, rows),
        "block": rng.integers(1, 20_000, rows),
        "lot": rng.integers(1, 9_000, rows),
        "zipcode": rng.integers(10_000, 11_500, rows).astype(str),
        "owner": np.char.add("owner ", (np.arange(rows) % 50_000).astype(str)),
        "land_value": np.round(rng.random(rows) * 1e6, 2),
        "total_value": np.round(rng.random(rows) * 1e7, 2),
        "year_built": rng.integers(1800, 2025, rows),
        "assessed": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D"),
    })


def best(runs: int, body) -> float:
    """The median of `runs` timings of `body()` (each given a fresh scratch directory)."""
    times = []
    for _ in range(runs):
        scratch = Path(tempfile.mkdtemp(prefix="udr-pybench-"))
        try:
            start = time.perf_counter()
            body(scratch)
            times.append(time.perf_counter() - start)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return statistics.median(times)


def timed(runs: int, body) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--extensions", required=True, help="the directory holding ducklake.duckdb_extension")
    args = parser.parse_args()
    df = dataframe(args.rows)
    ducklake = str(Path(args.extensions) / "ducklake.duckdb_extension")
    duckdb.register("df", df)  # the frame, by name, in DuckDB's default connection
    print(f"python: {args.rows:,} rows x {len(df.columns)} columns, median of {args.runs} runs, one process")

    def udr_write(scratch: Path) -> None:
        repo = udr.Repository.init(str(scratch / "repo"))
        repo.write("parcels", df, key=["bbl"])
        repo.close()

    def plan_write(scratch: Path) -> None:
        engine = udr_query.QueryEngine(udr.PyChunkStore(str(scratch / "repo")), udr.PyCatalog(str(scratch / "repo")))
        engine.write_table("parcels", df)

    def copy(scratch: Path) -> None:
        duckdb.sql(f"COPY (FROM df) TO '{scratch / 'x.parquet'}'")

    def lake(scratch: Path) -> None:
        con = duckdb.connect()
        con.register("df", df)
        con.execute(f"LOAD '{ducklake}'")
        con.execute(f"ATTACH 'ducklake:{scratch / 'meta.ducklake'}' AS lake (DATA_PATH '{scratch / 'data'}/')")
        con.execute("CREATE TABLE lake.parcels AS FROM df")
        con.close()

    write = {name: best(args.runs, body) for name, body in
             [("udr", udr_write), ("plan", plan_write), ("copy", copy), ("ducklake", lake)]}
    mb = df.memory_usage(deep=True).sum() / 1e6
    print(f"  write_table        UDR {write['udr']:.3f} s ({mb / write['udr']:.0f} MB/s)  plan's write_table {write['plan']:.3f} s")
    print(f"                     DuckDB COPY {write['copy']:.3f} s   DuckLake CTAS {write['ducklake']:.3f} s")
    print(f"                     throughput vs COPY {write['copy'] / write['udr']:.2f}x (target >= 0.5x: "
          f"{'met' if write['copy'] / write['udr'] >= 0.5 else 'NOT met'}), vs DuckLake {write['ducklake'] / write['udr']:.2f}x")

    scratch = Path(tempfile.mkdtemp(prefix="udr-pybench-"))
    try:
        repo = udr.Repository.init(str(scratch / "repo"))
        repo.write("parcels", df, key=["bbl"])
        parquet = scratch / "x.parquet"
        duckdb.sql(f"COPY (FROM df) TO '{parquet}'")
        key = int(df["bbl"].iloc[args.rows // 2])
        repo.query("SELECT * FROM parcels").to_pandas()  # warm both
        duckdb.sql(f"SELECT * FROM '{parquet}'").df()
        full_udr = timed(args.runs, lambda: repo.query("SELECT * FROM parcels").to_pandas())
        full_duck = timed(args.runs, lambda: duckdb.sql(f"SELECT * FROM '{parquet}'").df())
        assert repo.query("SELECT * FROM parcels").to_pandas().equals(df)
        look_udr = timed(50, lambda: repo.query(f"SELECT * FROM parcels WHERE bbl = {key}").to_pandas())
        look_duck = timed(50, lambda: duckdb.sql(f"SELECT * FROM '{parquet}' WHERE bbl = {key}").df())
        for _ in range(50):
            repo.query("SELECT 1")
        one_udr = timed(500, lambda: repo.query("SELECT 1").fetchall())
        one_duck = timed(500, lambda: duckdb.sql("SELECT 1").fetchall())
        repo.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"  to_pandas (all)    UDR {full_udr:.3f} s   DuckDB .df() {full_duck:.3f} s   "
          f"{full_udr / full_duck:.2f}x (target <= 1.2x: {'met' if full_udr / full_duck <= 1.2 else 'NOT met'})")
    print(f"  to_pandas (lookup) UDR {look_udr * 1e3:.2f} ms   DuckDB .df() {look_duck * 1e3:.2f} ms   {look_udr / look_duck:.2f}x")
    print(f"  query('SELECT 1')  UDR {one_udr * 1e3:.3f} ms   DuckDB {one_duck * 1e3:.3f} ms   "
          f"(target <= 1 ms: {'met' if one_udr <= 1e-3 else 'NOT met'})")


if __name__ == "__main__":
    main()
