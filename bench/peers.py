"""`make bench-peers`: UDR against DuckLake, Delta Lake, Iceberg and plain
Parquet copies on the nightly-refresh workload, side by side in one run.

Every night of the workload is written by every system; after each night
every system answers the fixed queries, and the answers must agree (a
system that holds different data would make its numbers meaningless). At
the end the queries are timed on the latest night and on night 1, and
diff, row history and branch creation are measured where a system can.
Results go to bench/results/ (markdown, JSON and PNG plots).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from s3server import Rclone, SeaweedFS
from systems import UDR, System, make_systems
from workload import VARIANTS, Workload


@dataclasses.dataclass
class Query:
    name: str
    sql: str
    tables: list[str]


def fixed_queries(workload: Workload) -> list[Query]:
    """Every output cell is text, so answers compare exactly across systems."""
    return [
        Query(
            "aggregate",
            """SELECT borough::VARCHAR, count(*)::VARCHAR, sum(assessed_total)::VARCHAR,
                      sum(score_a::DECIMAL(14,4))::VARCHAR, count(*) FILTER (status = 'REVIEW')::VARCHAR
               FROM master GROUP BY borough ORDER BY borough""",
            ["master"],
        ),
        Query(
            "lookup",
            f"""SELECT bbl::VARCHAR, address, status, status_date::VARCHAR, score_a::VARCHAR, assessed_total::VARCHAR
                FROM master WHERE bbl = {workload.probe}""",
            ["master"],
        ),
        Query(
            "join",
            f"""SELECT m.borough::VARCHAR, e.kind, count(*)::VARCHAR, sum(e.amount)::VARCHAR
                FROM master m JOIN {workload.join_table} e ON e.bbl = m.bbl
                GROUP BY ALL ORDER BY ALL""",
            ["master", workload.join_table],
        ),
    ]


def run_variant(args, variant: str, work: Path) -> dict:
    started = time.perf_counter()
    nights_run = args.nights if variant == "mixed" else min(args.nights, args.variant_nights)
    workload = Workload(scale=args.scale, seed=args.seed, nights=nights_run, variant=variant, column_every=args.column_every)
    queries = fixed_queries(workload)
    root = work / variant
    server = SeaweedFS(args.weed) if args.weed else None
    systems = make_systems(root / "systems", args.udr_driver, args.systems, server.environment() if server else None)
    remote = f"s3://udr-bench/{variant}"
    udr = next((s for s in systems if isinstance(s, UDR)), None)
    rclone: Rclone | None = None
    inputs = root / "input"
    inputs.mkdir(parents=True)
    nights = []
    answers: dict[str, list] = {s.name: [] for s in systems}
    uploaded: dict[str, dict] = {s.name: {} for s in systems}
    # Where the run's time goes (seconds): the nights' inputs, each
    # system's writes, the checks after each write, the final measures.
    spent = {"inputs": 0.0, "writes": {s.name: 0.0 for s in systems}, "checks": 0.0, "queries": 0.0, "operations": 0.0, "rclone": 0.0}
    try:
        if server:
            # The sync tool UDR's push and clone are compared with, to the same server;
            # the bucket made ready before anyone's first night is timed.
            rclone = Rclone(server)
            rclone.mkdir("udr-bench")
        for n in range(1, nights_run + 1):
            clock = time.perf_counter()
            tables = workload.night(n)
            files = {}
            for t in tables:
                files[t.name] = inputs / f"{t.name}.parquet"
                if t.refreshed:  # otherwise last night's file holds its rows
                    pq.write_table(t.snapshot, files[t.name])
            full_copy = sum(f.stat().st_size for f in files.values())
            spent["inputs"] += time.perf_counter() - clock
            record = {"night": n, "full_copy_bytes": full_copy, "systems": {}}
            for system in systems:
                clock = time.perf_counter()
                seconds = system.write(n, tables, files)
                spent["writes"][system.name] += time.perf_counter() - clock
                clock = time.perf_counter()
                stored = system.stored_files()
                before = uploaded[system.name]
                synced = sum(
                    size
                    for path, (size, mtime) in stored.items()
                    if path not in before or (system.is_mutable(path) and before[path] != (size, mtime))
                )
                uploaded[system.name] = stored
                answers[system.name].append(system.answers(n, queries))
                spent["checks"] += time.perf_counter() - clock
                record["systems"][system.name] = {
                    "write_seconds": seconds,
                    "bytes": sum(size for size, _ in stored.values()),
                    "files": len(stored),
                    "sync_bytes": synced,
                }
                if server and isinstance(system, UDR):
                    # What `udr push` really sent to an S3 server (request bodies).
                    push = system.push(remote, server.endpoint)
                    record["systems"][system.name]["pushed_bytes"] = push["bytes_sent"]
                    record["systems"][system.name]["push_seconds"] = push["seconds"]
            if rclone:
                clock = time.perf_counter()
                record["rclone"] = rclone_night(rclone, variant, n, inputs, files, udr)
                spent["rclone"] += time.perf_counter() - clock
            nights.append(record)
            line = ", ".join(f"{name} {v['write_seconds']:.2f} s" for name, v in record["systems"].items())
            if "pushed_bytes" in record["systems"].get("udr", {}):
                line += f"; udr push {record['systems']['udr']['pushed_bytes'] / 1e6:.2f} MB in {record['systems']['udr']['push_seconds']:.2f} s"
            for what, m in record.get("rclone", {}).items():
                line += f"; rclone {what} {m['bytes'] / 1e6:.2f} MB in {m['seconds']:.2f} s"
            print(f"[{variant}] night {n:2d}: {line}", file=sys.stderr, flush=True)
        result = {
            "variant": variant,
            "nights": nights,
            "systems": {s.name: s.label for s in systems},
            "disagreements": disagreements(answers, queries),
            "answers": {q.name: [night[i] for night in answers[systems[0].name]] for i, q in enumerate(queries)},
        }
        if variant == "mixed":  # reads, diff, history and branches are measured on the mixed workload
            clock = time.perf_counter()
            result["queries"] = time_queries(systems, queries, args)
            spent["queries"] = time.perf_counter() - clock
            clock = time.perf_counter()
            result["operations"] = operations(systems, workload, args)
            spent["operations"] = time.perf_counter() - clock
        if server and udr:
            # Clones of what was pushed: everything, and the newest night's segments only;
            # and rclone's peer of the full clone, the copied repository directory brought down.
            result["clones"] = {
                "full": udr.clone(remote, server.endpoint, str(root / "clone-full")),
                "depth-1": udr.clone(remote, server.endpoint, str(root / "clone-depth-1"), depth=1),
            }
            clock = time.perf_counter()
            result["clones"]["rclone-dir"] = rclone.copy(f"weed:udr-bench/{variant}-udr-dir/", str(root / "clone-rclone"))
            spent["rclone"] += time.perf_counter() - clock
        result["seconds"] = time.perf_counter() - started
        result["spent"] = spent
        return result
    finally:
        for system in systems:
            system.close()
        if rclone:
            rclone.close()
        if server:
            server.close()


def rclone_night(rclone: Rclone, variant: str, night: int, inputs: Path, files: dict[str, Path], udr: UDR | None) -> dict:
    """`rclone copy` of a night to the S3 server: the night's Parquet
    inputs as a full copy in a folder of their own (what the pipeline
    uploads today), and UDR's repository directory to one prefix, where
    rclone sends only the files that are new or changed since last night
    (the read cache and write scratch left out, as UDR.is_cache and the
    harness's byte counts leave them out)."""
    listed = rclone.dir / "night-files.txt"
    listed.write_text("".join(f"{f.relative_to(inputs)}\n" for f in files.values()))
    out = {"parquet_copies": rclone.copy(str(inputs), f"weed:udr-bench/{variant}-parquet-copies/night-{night:02d}/", "--files-from-raw", str(listed))}
    if udr:
        excluded = [flag for name in UDR.CACHE_DIRECTORIES for flag in ("--exclude", f"{name}/**")]
        excluded += ["--exclude", "*-shm"]  # SQLite's shared-memory index, never synced (System.stored_files)
        out["udr_files"] = rclone.copy(str(udr.repository), f"weed:udr-bench/{variant}-udr-dir/", *excluded)
    return out


def disagreements(answers: dict[str, list], queries: list[Query]) -> list[str]:
    """Where systems disagree: one line per night and query (empty when all agree)."""
    names = list(answers)
    reference = answers[names[0]]
    problems = []
    for name in names[1:]:
        for night, (expected, got) in enumerate(zip(reference, answers[name]), start=1):
            for query, e, g in zip(queries, expected, got):
                if e != g:
                    problems.append(f"night {night}, {query.name}: {names[0]} gave {e[:3]}, {name} gave {g[:3]}")
    return problems


def time_queries(systems: list[System], queries: list[Query], args) -> dict:
    out: dict = {}
    for system in systems:
        out[system.name] = {}
        for label, night in (("latest", args.nights), ("night1", 1)):
            for q in queries:
                _, times = system.query(night, q.sql, q.tables, repeat=args.repeat + 1)
                out[system.name][f"{q.name}@{label}"] = {"cold": times[0], "warm": statistics.median(times[1:])}
    return out


def operations(systems: list[System], workload: Workload, args) -> dict:
    out: dict = {}
    for system in systems:
        ops: dict = {}
        counts, seconds = system.diff(args.nights - 1, args.nights, "master", "bbl")
        ops["diff"] = {"seconds": seconds, **counts}
        changes, seconds = system.history(args.nights, "master", "bbl", workload.probe)
        ops["history"] = {"seconds": seconds, "changes": changes}
        seconds = system.branch("experiment")
        if seconds is not None:
            ops["branch"] = {"seconds": seconds}
        out[system.name] = ops
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.1, help="1 = 856,000 parcels and 77 source tables of 250 KB to 50 MB")
    p.add_argument("--nights", type=int, default=30)
    p.add_argument("--variant-nights", type=int, default=5, help="nights of the single-pattern variants")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--column-every", type=int, default=8, help="a column is added every this many nights")
    p.add_argument("--variant", action="append", choices=VARIANTS, help="repeatable (default: all three)")
    p.add_argument("--systems", type=lambda s: s.split(","), help="comma-separated (default: all)")
    p.add_argument("--repeat", type=int, default=15, help="timed runs of each query after the first (their median is reported)")
    p.add_argument("--udr-driver", required=True, help="the udr-bench executable")
    p.add_argument("--weed", help="SeaweedFS's weed (scripts/setup-s3.sh): UDR pushes each night to it and its real sync bytes are reported")
    p.add_argument("--work", help="scratch directory (default: a temporary one, removed after)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help="where results go")
    p.add_argument("--no-report", action="store_true", help="print the JSON only, no markdown or plots")
    return p


def run(args: argparse.Namespace) -> dict:
    """Runs every variant asked for; returns all measurements."""
    if args.nights < 2:
        raise SystemExit("--nights must be at least 2: the comparison is about what refreshes cost")
    if not Path(args.udr_driver).is_file():
        raise SystemExit(
            f"no UDR driver at {args.udr_driver}: build it with `swift build --product udr-bench` "
            "(add -c release for timings; `make bench-peers` does)"
        )
    variants = args.variant or list(VARIANTS)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="udr-peers-"))
    started = time.perf_counter()
    results = []
    try:
        for variant in variants:
            results.append(run_variant(args, variant, work))
            if not args.work:  # a variant's storage is measured: free the disk for the next
                shutil.rmtree(work / variant, ignore_errors=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return {"scale": args.scale, "nights": args.nights, "seed": args.seed, "seconds": time.perf_counter() - started, "variants": results}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    measured = run(args)
    if args.no_report:
        print(json.dumps(measured, indent=1))
    else:
        import report

        print(f"results: {report.write(measured, Path(args.out))}")
    problems = [line for r in measured["variants"] for line in r["disagreements"]]
    if problems:
        print("systems disagree:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
