import DuckDB
import Foundation
import UDRCore
import UDRSQLite
import UDRTesting

/// Percentiles of a sample of durations.
struct Latency {
    let samples: [Double]
    var p50: Double { percentile(0.5) }
    var p99: Double { percentile(0.99) }
    func percentile(_ q: Double) -> Double {
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.down)))]
    }
}

@MainActor func sample(_ n: Int, _ body: (Int) async throws -> Void) async rethrows -> Latency {
    var samples: [Double] = []
    for i in 0..<n {
        let start = DispatchTime.now().uptimeNanoseconds
        try await body(i)
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return Latency(samples: samples)
}

/// DuckLake with a SQLite catalog and a local data path, in one DuckDB session.
func openDuckLake(in work: URL) throws -> Connection {
    guard let extensions = try DuckDBLibrary.load().extensionDirectory,
        FileManager.default.fileExists(atPath: extensions + "/ducklake.duckdb_extension")
    else {
        throw UDRError(.runtime, "the DuckLake extension is not installed; run `make bench` (it runs scripts/setup-bench.sh)")
    }
    let lake = try Database().connect()
    try lake.execute("LOAD '\(extensions)/sqlite_scanner.duckdb_extension'")
    try lake.execute("LOAD '\(extensions)/ducklake.duckdb_extension'")
    let data = work.appendingPathComponent("lake-data").path
    try lake.execute(
        "ATTACH 'ducklake:sqlite:\(work.appendingPathComponent("lake.sqlite").path)' AS lake (DATA_PATH '\(data)/')")
    return lake
}

/// Commit latency, concurrent writers, and single-row updates on a large
/// table next to DuckLake doing the same.
@MainActor func transactionBenchmarks(work: URL, updateRows: Int) async throws {
    print("\nTransactions")
    let repo = try LocalRepository.create(at: work.appendingPathComponent("tx-repo"))
    let lake = try openDuckLake(in: work)
    let small = try TableName("small")
    _ = try await repo.write(small, from: .sql("SELECT r AS k, 0 AS v FROM range(1000) t(r)"), key: ["k"])
    try lake.execute("CREATE TABLE lake.small AS SELECT r AS k, 0 AS v FROM range(1000) t(r)")

    let empty = try await sample(200) { _ in
        let tx = try await repo.beginTransaction()
        try await tx.commit()
    }
    let lakeEmpty = try await sample(200) { _ in
        try lake.execute("BEGIN")
        try lake.execute("COMMIT")
    }
    reportLatency("empty transaction commit", udr: empty, peer: lakeEmpty)
    let oneRow = try await sample(100) { i in
        let tx = try await repo.beginTransaction()
        try await tx.apply(.upsert(.sql("SELECT \(100_000 + i) AS k, \(i) AS v")), to: small)
        try await tx.commit()
    }
    let lakeOneRow = try await sample(100) { i in
        try lake.execute("BEGIN")
        try lake.execute("INSERT INTO lake.small VALUES (\(100_000 + i), \(i))")
        try lake.execute("COMMIT")
    }
    reportLatency("one-row transaction (insert 1 row, commit)", udr: oneRow, peer: lakeOneRow)

    // Eight writer processes.
    let harness = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("udr-harness")
    for mode in ["own", "shared"] {
        let path = work.appendingPathComponent("tx-\(mode)")
        let shared = try LocalRepository.create(at: path)
        _ = try await shared.write(try TableName("shared"), from: .sql("SELECT r AS k, 0 AS v FROM range(10000) t(r)"), key: ["k"])
        let start = Date()
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for id in 0..<8 {
                group.addTask {
                    let p = Process()
                    p.executableURL = harness
                    p.arguments = ["worker", path.path, String(id), "25", mode]
                    let out = Pipe()
                    p.standardOutput = out
                    try p.run()
                    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                    p.waitUntilExit()
                    guard p.terminationStatus == 0 else { throw UDRError(.conflict, "a writer failed: \(text)") }
                    return text
                }
            }
            var all: [String] = []
            for try await text in group { all.append(text) }
            return all
        }
        let elapsed = Date().timeIntervalSince(start)
        var retries = 0
        var waits = 0
        for line in outputs.flatMap({ $0.split(separator: "\n") }) where line.hasPrefix("retries ") {
            let parts = line.split(separator: " ")
            retries += Int(parts[1]) ?? 0
            waits += Int(parts[3]) ?? 0
        }
        let label = mode == "own" ? "8 writers × 25 commits, disjoint tables" : "8 writers × 25 upserts, one shared table"
        print("  \(label): \(String(format: "%.1f", 200 / elapsed)) commits/s, 0 conflicts, \(retries) retries, \(waits) lock waits")
        extraLines.append("| \(label) | \(String(format: "%.1f commits/s", 200 / elapsed)) | — | 0 conflicts, \(retries) retries | — |")
    }

    // A single-row update on a large table.
    print("Single-row update on a \(updateRows)-row table")
    let big = try TableName("big")
    let bigSQL = syntheticTableSQL(rows: updateRows)
    _ = try await repo.write(big, from: .sql(bigSQL), key: ["k"])
    try lake.execute("CREATE TABLE lake.big AS \(bigSQL)")
    let keys = (0..<20).map { ($0 * 7_919_993 % updateRows) * 10 }
    let update = try await sample(keys.count) { i in
        _ = try await repo.apply(try .update(set: "s = s + 1", where: "k = \(keys[i])"), to: big)
    }
    let lakeUpdate = try await sample(keys.count) { i in
        try lake.execute("UPDATE lake.big SET s = s + 1 WHERE k = \(keys[i])")
    }
    reportLatency("single-row update, \(updateRows) rows", udr: update, peer: lakeUpdate)
    let digest = "SELECT count(*), sum(hash(k, s)) FROM "
    let check = try await repo.query(digest + "big").rows
    let lakeCheck = try lake.query(digest + "lake.big").rows
    print("  same content after the updates: \(check == lakeCheck ? "yes" : "NO (\(check) vs \(lakeCheck))")")
}

@MainActor var extraLines: [String] = []

@MainActor func reportLatency(_ name: String, udr: Latency, peer: Latency) {
    print(
        "  \(name): UDR p50 \(fmt(udr.p50)) p99 \(fmt(udr.p99)); DuckLake p50 \(fmt(peer.p50)) p99 \(fmt(peer.p99)); ratio p50 \(String(format: "%.2f", udr.p50 / peer.p50))"
    )
    extraLines.append(
        "| \(name) (p50 / p99) | \(fmt(udr.p50)) / \(fmt(udr.p99)) | DuckLake \(fmt(peer.p50)) / \(fmt(peer.p99)) | \(String(format: "%.2fx", udr.p50 / peer.p50)) | — |"
    )
}
