import DuckDB
import Foundation
import UDRCore
import UDRSQLite
import UDRTesting

/// SQL statements through `Repository.sql` (what `udr sql` runs) next to
/// DuckLake (SQLite catalog) running the same statements, and what
/// verifying the segment cache costs a warm query.
@MainActor func sqlBenchmarks(work: URL, rows: Int) async throws {
    print("\nSQL writes on a \(rows)-row table")
    let repo = try LocalRepository.create(at: work.appendingPathComponent("sql-repo"))
    let lakeDirectory = work.appendingPathComponent("sql-lake")
    try FileManager.default.createDirectory(at: lakeDirectory, withIntermediateDirectories: true)
    let lake = try openDuckLake(in: lakeDirectory)
    let big = try TableName("big")
    let bigSQL = syntheticTableSQL(rows: rows)
    _ = try await repo.write(big, from: .sql(bigSQL), key: ["k"])
    try lake.execute("CREATE TABLE lake.big AS \(bigSQL)")

    let keys = (0..<30).map { ($0 * 7_919_993 % rows) * 10 }
    let update = try await sample(keys.count) { i in
        _ = try await repo.sql("UPDATE big SET s = s + 1 WHERE k = \(keys[i])")
    }
    let lakeUpdate = try await sample(keys.count) { i in
        try lake.execute("UPDATE lake.big SET s = s + 1 WHERE k = \(keys[i])")
    }
    reportLatency("UPDATE … WHERE k = key through udr sql, \(rows) rows", udr: update, peer: lakeUpdate)

    let row = "'name_new', DATE '2026-01-01', 1.50, 7, 'active', true, 1.5"
    let insert = try await sample(30) { i in
        _ = try await repo.sql("INSERT INTO big VALUES (\(rows * 10 + i * 10 + 5), 1, 2.5, \(row))")
    }
    let lakeInsert = try await sample(30) { i in
        try lake.execute("INSERT INTO lake.big VALUES (\(rows * 10 + i * 10 + 5), 1, 2.5, \(row))")
    }
    reportLatency("INSERT of one row through udr sql", udr: insert, peer: lakeInsert)

    // 0.1% of the rows: k = i * 10, so one i in 1,000.
    let delete = "DELETE FROM big WHERE k % 10000 = 70"
    var deleted: StagedWrite?
    let deleteTime = try await seconds { deleted = try await repo.sql(delete).statements.first?.write }
    let lakeDeleteTime = try await seconds { try lake.execute(delete.replacingOccurrences(of: "FROM big", with: "FROM lake.big")) }
    report("DELETE of 0.1% of \(rows) rows (\(deleted?.counts?.deleted ?? 0) rows, \(Output.bytes(deleted?.bytesAdded ?? 0)) stored)",
        udr: deleteTime, peer: lakeDeleteTime, peerName: "DuckLake", target: "—")

    let digest = "SELECT count(*), sum(hash(k, a, s)) FROM "
    let same = try await repo.query(digest + "big").rows == (try lake.query(digest + "lake.big").rows)
    print("  same content after the statements: \(same ? "yes" : "NO")")

    // The cache check on warm queries: a full scan and a lookup, as the
    // peer benchmark's driver runs them (one process, files checked once).
    print("Verifying the segment cache")
    let queries = [("aggregate", "SELECT g, count(*), avg(s) FROM big GROUP BY g"), ("lookup", "SELECT * FROM big WHERE k = 4200")]
    for (name, sql) in queries {
        _ = try await repo.query(sql)
        let warm = try await median { _ = try await repo.query(sql) }
        let cost = repo.segmentCache.checkCost()
        // The query reads at most one file per segment it reads (read groups join them).
        let read = try await repo.segmentsRead(by: sql).values.reduce(0, +)
        let check = cost.checked / Double(max(cost.files, 1)) * Double(read)
        print(
            "  \(name): warm query \(fmt(warm)); a check of a file found whole costs \(String(format: "%.1f µs", cost.checked / Double(max(cost.files, 1)) * 1e6)), of its \(read) files at most \(fmt(check)) = \(String(format: "%.2f%%", check / warm * 100)) of the query; hashing the cache's \(cost.files) files (\(Output.bytes(cost.bytes))), what a process's first reads pay: \(fmt(cost.hashed))"
        )
        extraLines.append(
            "| cache check on a warm \(name) (\(read) files) | \(fmt(check)) | query \(fmt(warm)) | \(String(format: "%.2f%%", check / warm * 100)) | < 5% |")
    }
}

enum Output {
    static func bytes(_ n: Int64) -> String { n < 1 << 20 ? "\(n / 1024) KB" : String(format: "%.1f MB", Double(n) / 1_048_576) }
}
