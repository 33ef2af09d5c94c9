import DuckDB
import Foundation
import UDRCore
import UDRSQLite
import UDRTesting

// `make bench`: UDR side by side with raw DuckDB on Parquet, on the same
// data, in one run. Prints each figure and its ratio to the alternative.

let arguments = CommandLine.arguments
let rows = arguments.firstIndex(of: "--rows").flatMap { Int(arguments[$0 + 1]) } ?? 5_000_000
let updateRows = arguments.firstIndex(of: "--update-rows").flatMap { Int(arguments[$0 + 1]) } ?? 10_000_000
let only = arguments.firstIndex(of: "--only").map { arguments[$0 + 1] }
let diffRows = arguments.firstIndex(of: "--diff-rows").flatMap { Int(arguments[$0 + 1]) } ?? 10_000_000
let repetitions = 15
let writeRounds = 3

if arguments.contains("--help") || arguments.contains("-h") {
    print(
        """
        usage: udr-bench [--only core|tx|sql|branch|history] [--rows N] [--update-rows N] [--diff-rows N]
               udr-bench driver REPOSITORY   (for bench/peers.py: JSON-line requests on stdin)
        `make bench` runs every part in a release build.
        """)
    exit(0)
}

if arguments.count > 1, arguments[1] == "driver" {
    guard arguments.count == 3 else {
        FileHandle.standardError.write(Data("usage: udr-bench driver REPOSITORY (bench/peers.py starts it; requests are JSON lines on stdin)\n".utf8))
        exit(2)
    }
    try await runPeerDriver(repositoryPath: arguments[2])
    exit(0)
}

@MainActor func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try await body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

@MainActor func median(_ body: () async throws -> Void) async rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<repetitions { times.append(try await seconds(body)) }
    return times.sorted()[repetitions / 2]
}

func fmt(_ s: Double) -> String { s < 0.01 ? String(format: "%.2f ms", s * 1000) : String(format: "%.3f s", s) }
func pct(_ a: Int64, _ b: Int64) -> String { String(format: "%.2f%%", Double(a) / Double(b) * 100) }

struct Line {
    let name: String
    let udr: String
    let peer: String
    let ratio: String
    let target: String
}
var lines: [Line] = []
@MainActor func report(_ name: String, udr: Double, peer: Double, peerName: String = "DuckDB", target: String) {
    lines.append(Line(name: name, udr: fmt(udr), peer: fmt(peer), ratio: String(format: "%.2fx", udr / peer), target: target))
    print("  \(name): UDR \(fmt(udr)), \(peerName) \(fmt(peer)), ratio \(String(format: "%.2f", udr / peer))")
}

let work = FileManager.default.temporaryDirectory.appendingPathComponent("udr-bench-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: work) }

print(
    "UDR benchmark: \(rows) rows × 10 columns, DuckDB \(try DuckDBLibrary.load().version), \(ProcessInfo.processInfo.activeProcessorCount) cores\n"
)

if only == nil || only == "core" {
    let duck = try Database().connect()
    let source = work.appendingPathComponent("source.parquet").path
    try duck.execute(
        """
        COPY (\(syntheticTableSQL(rows: rows))) TO '\(source)' (FORMAT parquet)
        """)

    // 1. Write. This machine's timings vary by a fifth from run to run:
    // each side is timed `writeRounds` times, the two alternating, and
    // the medians are compared. Every UDR write goes into a repository of
    // its own (the first of them is the one the rest of the benchmark uses).
    print("Write \(rows) rows")
    let copyTarget = work.appendingPathComponent("copy.parquet").path
    let repo = try LocalRepository.create(at: work.appendingPathComponent("repo"))
    let t = try TableName("parcels")
    var first: WriteResult!
    // The input is in key order, which UDR's write notices (from the
    // file's row-group statistics) and does not sort again. The same rows
    // in random order are sorted: both are reported, each by throughput
    // (DuckDB's time over UDR's).
    let shuffled = work.appendingPathComponent("shuffled.parquet").path
    try duck.execute("COPY (SELECT * FROM read_parquet('\(source)') ORDER BY hash(k)) TO '\(shuffled)' (FORMAT parquet)")
    for (input, file) in [("in key order", source), ("in random key order", shuffled)] {
        var (udr, copy): ([Double], [Double]) = ([], [])
        for round in 0..<writeRounds {
            // Each side starts with no dirty pages of earlier steps to write
            // back (DuckDB's COPY does not flush; UDR's writes flush their objects).
            sync()
            copy.append(try await seconds { try duck.execute("COPY (SELECT * FROM read_parquet('\(file)')) TO '\(copyTarget)' (FORMAT parquet)") })
            let keep = first == nil
            let target = keep ? repo : try LocalRepository.create(at: work.appendingPathComponent("scratch-\(round)"))
            sync()
            udr.append(
                try await seconds {
                    let written = try await target.write(t, from: .file(file), key: ["k"], message: "v1")
                    if keep { first = written }
                })
            if !keep { try FileManager.default.removeItem(at: target.layout.root) }
        }
        let (u, d) = (udr.sorted()[writeRounds / 2], copy.sorted()[writeRounds / 2])
        let all = { (times: [Double]) in times.map(fmt).joined(separator: ", ") }
        print("  write, input \(input): UDR \(fmt(u)) (\(all(udr))), DuckDB \(fmt(d)) (\(all(copy))), throughput ratio \(String(format: "%.2f", d / u))")
        lines.append(
            Line(
                name: "write \(rows) rows \(input) (throughput vs COPY, median of \(writeRounds))", udr: fmt(u), peer: fmt(d),
                ratio: String(format: "%.2fx", d / u), target: "≥ 0.5×"))
    }

    // 2. Scan and lookup at the head, against one Parquet file of the same rows.
    print("Queries")
    let scanSQL = "SELECT g, count(*), sum(e), avg(s) FROM parcels GROUP BY g ORDER BY g"
    let lookupKey = (rows / 2) * 10 + 10
    let lookupSQL = "SELECT * FROM parcels WHERE k = \(lookupKey)"
    try duck.execute("CREATE VIEW parcels AS SELECT * FROM read_parquet('\(copyTarget)')")
    _ = try await repo.query(scanSQL)
    let udrScan = try await median { _ = try await repo.query(scanSQL) }
    let duckScan = try await median { _ = try duck.query(scanSQL) }
    report("full-scan aggregate", udr: udrScan, peer: duckScan, target: "≤ 1.15×")
    let udrLookup = try await median { _ = try await repo.query(lookupSQL) }
    let duckLookup = try await median { _ = try duck.query(lookupSQL) }
    report("point lookup by key", udr: udrLookup, peer: duckLookup, target: "≤ 1.2×")

    // 3. Churn: stored bytes of new versions, and time travel to version 1.
    print("Churn")
    let firstBytes = first.bytesAdded
    var churn: [(String, Int64)] = []
    let a = try await repo.write(
        t, from: .sql("SELECT * FROM parcels UNION ALL SELECT * REPLACE (k + \(rows * 10) AS k) FROM parcels WHERE k % 1000 = 0"))
    churn.append(("(a) 1% rows appended after the last key", a.bytesAdded))
    // The first scan after a write rebuilds the read groups the change touched.
    let afterWrite = try await seconds { _ = try await repo.query(scanSQL) }
    let warmAfter = try await median { _ = try await repo.query(scanSQL) }
    report("first scan after (a) (vs the next ones)", udr: afterWrite, peer: warmAfter, peerName: "warm", target: "—")
    let b = try await repo.write(
        t, from: .sql("SELECT * REPLACE (CASE WHEN hash(k, 'b') % 200 = 0 THEN 'changed' ELSE g END AS g) FROM parcels"))
    churn.append(("(b) one column changed in 0.5% of rows", b.bytesAdded))
    let c = try await repo.write(t, from: .sql("SELECT * REPLACE ((hash(k, 'c') % 1000) / 10.0 AS s) FROM parcels"))
    churn.append(("(c) one column recomputed for every row", c.bytesAdded))
    let d = try await repo.write(
        t, from: .sql("SELECT * FROM parcels UNION ALL SELECT * REPLACE (k + 5 AS k) FROM parcels WHERE hash(k, 'd') % 1000 = 0"))
    churn.append(("(d) 0.1% rows inserted at random keys", d.bytesAdded))
    for (name, bytes) in churn { print("  \(name): \(bytes) bytes = \(pct(bytes, firstBytes)) of version 1 (\(firstBytes) bytes)") }

    let travel = ReadOptions(pins: [try TablePin(parsing: "parcels=1")])
    try await repo.clearCache()
    let cold = try await seconds { _ = try await repo.query(scanSQL, options: travel) }
    let warm = try await median { _ = try await repo.query(scanSQL, options: travel) }
    let head = try await median { _ = try await repo.query(scanSQL) }
    report("time travel to v1, cold cache (vs warm head)", udr: cold, peer: head, peerName: "head", target: "—")
    report("time travel to v1, warm (vs head query)", udr: warm, peer: head, peerName: "head", target: "≤ 1.15×")
    let groupBytes = try FileManager.default.contentsOfDirectory(at: repo.layout.cacheDirectory, includingPropertiesForKeys: [.fileSizeKey])
        .filter { $0.lastPathComponent.hasPrefix("group-") }
        .reduce(0) { $0 + ((try? $1.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) }
    print("  read groups in the local cache: \(groupBytes) bytes (version 1 and the head)")

    print("\n| measure | UDR | alternative | ratio | target |\n|---|---|---|---|---|")
    for l in lines { print("| \(l.name) | \(l.udr) | \(l.peer) | \(l.ratio) | \(l.target) |") }
    for (name, bytes) in churn {
        let target = name.hasPrefix("(a)") ? "≤ 3%" : name.hasPrefix("(b)") ? "≤ 25%" : name.hasPrefix("(c)") ? "≤ 20%" : "—"
        print("| stored bytes \(name) | \(bytes) | full copy \(firstBytes) | \(pct(bytes, firstBytes)) | \(target) |")
    }
}

if only == nil || only == "tx" {
    try await transactionBenchmarks(work: work, updateRows: updateRows)
    print("\n| measure | UDR | alternative | ratio | target |\n|---|---|---|---|---|")
    for line in extraLines { print(line) }
}

if only == nil || only == "sql" {
    extraLines = []
    lines = []
    try await sqlBenchmarks(work: work, rows: updateRows)
    print("\n| measure | UDR | alternative | ratio | target |\n|---|---|---|---|---|")
    for l in lines { print("| \(l.name) | \(l.udr) | \(l.peer) | \(l.ratio) | \(l.target) |") }
    for line in extraLines { print(line) }
}

if only == nil || only == "branch" {
    lines = []
    extraLines = []
    try await branchBenchmarks(work: work, diffRows: diffRows)
    print("\n| measure | UDR | alternative | ratio | target |\n|---|---|---|---|---|")
    for l in lines { print("| \(l.name) | \(l.udr) | \(l.peer) | \(l.ratio) | \(l.target) |") }
    for line in extraLines { print(line) }
}

// The row-history part of `branch` alone.
if only == "history" {
    lines = []
    try await historyBenchmark(work: work)
    print("\n| measure | UDR | alternative | ratio | target |\n|---|---|---|---|---|")
    for l in lines { print("| \(l.name) | \(l.udr) | \(l.peer) | \(l.ratio) | \(l.target) |") }
}
