import DuckDB
import Foundation
import UDRCore
import UDRSQLite
import UDRTesting

/// Diff, branch creation, merge and row history, each beside what a user
/// would do without UDR: plain DuckDB over Parquet copies of the versions.
@MainActor func branchBenchmarks(work: URL, diffRows: Int) async throws {
    let duck = try Database().connect()
    let t = try TableName("parcels")
    let columns = ["a", "b", "c", "d", "e", "f", "g", "h", "s"]

    /// A plain DuckDB diff of two Parquet files: FULL OUTER JOIN on the key,
    /// rows inserted, deleted, or with any column distinct.
    func duckDiff(_ old: String, _ new: String) throws -> Int64 {
        let differs = columns.map { "o.\($0) IS DISTINCT FROM n.\($0)" }.joined(separator: " OR ")
        return try duck.query(
            "SELECT count(*) FROM read_parquet('\(old)') o FULL OUTER JOIN read_parquet('\(new)') n ON o.k = n.k WHERE o.k IS NULL OR n.k IS NULL OR \(differs)"
        ).scalar.int ?? -1
    }

    print("\nDiff of two versions of a \(diffRows)-row table differing in 0.1% of rows")
    let repo = try LocalRepository.create(at: work.appendingPathComponent("branch-repo"))
    _ = try await repo.write(t, from: .sql(syntheticTableSQL(rows: diffRows)), key: ["k"])
    let v1 = work.appendingPathComponent("v1.parquet").path
    try await repo.export("SELECT * FROM parcels", to: v1, format: .parquet)
    // Each write records the rows it changes, which a diff from the
    // version before reads: row edits, and a whole-table write that keeps
    // the segments in place. A diff across versions composes their records.
    let variants = [
        "0.1% of rows, one column updated", "0.1% of rows, inserted / updated / deleted (a third each)",
        "0.1% of rows, one column changed by a whole-table write",
    ]
    var baseFile = v1
    var files = [v1]
    for (index, label) in variants.enumerated() {
        if index == 0 {
            _ = try await repo.apply(try .update(set: "g = 'changed'", where: "hash(k, 'u') % 1000 = 0"), to: t)
        } else if index == 2 {
            let rewrite = "SELECT * REPLACE (CASE WHEN hash(k, 'w') % 1000 = 0 THEN 'rewritten' ELSE g END AS g) FROM parcels"
            let write = try await seconds { _ = try await repo.write(t, from: .sql(rewrite)) }
            // It finds the rows to record with a diff of the segments it kept.
            print("  the whole-table write took \(fmt(write)), recording the rows it changed included")
        } else {
            let tx = try await repo.beginTransaction()
            try await tx.apply(try .update(set: "s = s + 1", where: "hash(k, 'm') % 3000 = 0"), to: t)
            try await tx.apply(.delete(where: "hash(k, 'm') % 3000 = 1"), to: t)
            try await tx.apply(.upsert(.sql("SELECT * REPLACE (k + 5 AS k) FROM parcels WHERE hash(k, 'm') % 3000 = 2")), to: t)
            try await tx.commit(message: "mixed")
        }
        let file = work.appendingPathComponent("v\(index + 2).parquet").path
        try await repo.export("SELECT * FROM parcels", to: file, format: .parquet)
        var summary: RepositoryDiff!
        let udr = try await median { summary = try await repo.diff("main~1", "main") }
        var expected: Int64 = 0
        let plain = try await median { expected = try duckDiff(baseFile, file) }
        let rows = summary.tables[0].rows
        let found = rows.inserted + rows.deleted + rows.updated
        let read = summary.tables[0].fromChangeRecord ? "the change record read" : "\(summary.tables[0].segmentPairsRead) segment pairs read by column, \(summary.tables[0].segmentsRead) segments whole, \(summary.tables[0].segmentsSkipped) skipped"
        print("  \(label): \(found) rows found (DuckDB: \(expected)); \(read)")
        report("diff counts, \(label)", udr: udr, peer: plain, peerName: "DuckDB FULL OUTER JOIN", target: "≥ 20× faster")
        let cells = try await median { _ = try await repo.diffRows("main~1", "main") }
        report("diff cells (old/new values), \(label)", udr: cells, peer: plain, peerName: "DuckDB FULL OUTER JOIN", target: "≥ 20× faster")
        baseFile = file
        files.append(file)
    }
    // Across the last two writes: their records, composed; and the same
    // from segments (a key given reads segments: pairs by column).
    var across: RepositoryDiff!
    let acrossUDR = try await median { across = try await repo.diff("main~2", "main") }
    var acrossExpected: Int64 = 0
    let acrossPlain = try await median { acrossExpected = try duckDiff(files[files.count - 3], files[files.count - 1]) }
    var fromSegments: RepositoryDiff!
    let segmentsUDR = try await median { fromSegments = try await repo.diff("main~2", "main", tables: [t], key: ["k"]) }
    for (label, diff) in [("records", across!), ("segments", fromSegments!)] {
        let rows = diff.tables[0].rows
        let read = diff.tables[0].fromChangeRecord ? "change records composed" : "\(diff.tables[0].segmentPairsRead) segment pairs read by column"
        print(
            "  across the last two versions (\(label)): \(rows.inserted + rows.deleted + rows.updated) rows found (DuckDB: \(acrossExpected)); \(read), \(diff.tables[0].segmentsRead) segments whole"
        )
    }
    report("diff counts, 0.2% of rows across two versions (records)", udr: acrossUDR, peer: acrossPlain, peerName: "DuckDB FULL OUTER JOIN", target: "≥ 20× faster")
    report("diff counts, same, from segments (--key)", udr: segmentsUDR, peer: acrossPlain, peerName: "DuckDB FULL OUTER JOIN", target: "—")

    print("\nBranch creation")
    let fresh = try LocalRepository.create(at: work.appendingPathComponent("branch-fresh"))
    _ = try await fresh.write(t, from: .sql("SELECT r AS k FROM range(10) t(r)"), key: ["k"])
    let one = try await sample(50) { i in _ = try await fresh.createBranch("b\(i)") }
    // 10,000 commits: recorded through the catalog (each a real commit
    // object with its parent), since branch creation reads none of them.
    let deep = try LocalRepository.create(at: work.appendingPathComponent("branch-deep"))
    _ = try await deep.write(t, from: .sql("SELECT r AS k FROM range(10) t(r)"), key: ["k"])
    var head = try await deep.resolve("main")
    let tables = try await deep.show("main").commit.tables
    for i in 0..<9_999 {
        let txID = try deep.catalog.allocateTxID()
        let commit = Commit(parents: [head], txID: txID, time: Date(), author: "bench", message: "night \(i)", branch: "main", tables: tables, changes: [])
        let id = try deep.store.putJSON(commit).id
        try deep.catalog.recordCommit(CommitRecord(id: id, commit: commit), tableVersions: [], branch: "main", expectedHead: head, closing: nil)
        head = id
    }
    let many = try await sample(50) { i in _ = try await deep.createBranch("b\(i)") }
    print("  at 1 commit: p50 \(fmt(one.p50)); at 10,000 commits: p50 \(fmt(many.p50))")
    extraLines.append("| branch creation at 1 / 10,000 commits (p50) | \(fmt(one.p50)) / \(fmt(many.p50)) | — | \(String(format: "%.2fx", many.p50 / one.p50)) | the same |")

    print("\nMerge of two branches each changing 1% of a 1,000,000-row table")
    let mergeRepo = try LocalRepository.create(at: work.appendingPathComponent("merge-repo"))
    _ = try await mergeRepo.write(t, from: .sql(syntheticTableSQL(rows: 1_000_000)), key: ["k"])
    let baseMerge = work.appendingPathComponent("merge-base.parquet").path
    try await mergeRepo.export("SELECT * FROM parcels", to: baseMerge, format: .parquet)
    try await mergeRepo.createBranch("experiment")
    _ = try await mergeRepo.apply(try .update(set: "g = 'ours'", where: "hash(k, 'o') % 100 = 0"), to: t)
    _ = try await mergeRepo.apply(try .update(set: "s = -1", where: "hash(k, 't') % 100 = 0"), to: t, branch: "experiment")
    let oursFile = work.appendingPathComponent("merge-ours.parquet").path
    let theirsFile = work.appendingPathComponent("merge-theirs.parquet").path
    try await mergeRepo.export("SELECT * FROM parcels", to: oursFile, format: .parquet)
    try await mergeRepo.export("SELECT * FROM parcels", options: ReadOptions(branch: "experiment"), to: theirsFile, format: .parquet)
    var merged: MergeResult!
    let udrMerge = try await seconds { merged = try await mergeRepo.merge("experiment") }
    // By hand in DuckDB: three-way per cell over the three versions, written back as Parquet.
    let cells = (["k"] + columns).map { c in
        c == "k" ? "coalesce(o.k, t.k) AS k" : "CASE WHEN t.\(c) IS NOT DISTINCT FROM b.\(c) THEN o.\(c) ELSE t.\(c) END AS \(c)"
    }.joined(separator: ", ")
    let duckMergeFile = work.appendingPathComponent("merge-duck.parquet").path
    let duckMerge = try await seconds {
        try duck.execute(
            "COPY (SELECT \(cells) FROM read_parquet('\(oursFile)') o FULL OUTER JOIN read_parquet('\(theirsFile)') t ON o.k = t.k LEFT JOIN read_parquet('\(baseMerge)') b ON b.k = coalesce(o.k, t.k) ORDER BY k) TO '\(duckMergeFile)' (FORMAT parquet)"
        )
    }
    let duckRows = "SELECT * FROM read_parquet('\(duckMergeFile)')"
    let differing = try await mergeRepo.query(
        "SELECT (SELECT count(*) FROM (SELECT * FROM parcels EXCEPT ALL \(duckRows))) + (SELECT count(*) FROM (\(duckRows) EXCEPT ALL SELECT * FROM parcels))"
    ).scalar.int ?? -1
    print("  \(merged.outcome.rawValue), \(merged.conflicts.count) conflicts; rows differing from DuckDB's merge: \(differing)")
    report("three-way merge, 1% changed on each side of 1M rows", udr: udrMerge, peer: duckMerge, peerName: "DuckDB 3-way join", target: "—")

    try await historyBenchmark(work: work)
}

/// Row history of one key across 100 versions, beside the loop a user
/// would write without it: the key's row queried at each version in turn.
@MainActor func historyBenchmark(work: URL) async throws {
    let t = try TableName("parcels")
    print("\nRow history of one key across 100 versions (1,000,000 rows)")
    let historyRepo = try LocalRepository.create(at: work.appendingPathComponent("history-repo"))
    _ = try await historyRepo.write(t, from: .sql(syntheticTableSQL(rows: 1_000_000)), key: ["k"])
    let key = 4_321_230
    for night in 2...100 {
        let target = night % 5 == 0 ? "k = \(key)" : "hash(k, \(night)) % 10000 = 0"
        _ = try await historyRepo.apply(try .update(set: "s = s + 1, g = 'night \(night)'", where: target), to: t)
    }
    var history: RowHistory!
    let udrHistory = try await median { history = try await historyRepo.history(of: t, key: ["k": String(key)]) }
    var naiveChanges = 0
    let naive = try await median {
        var previous: [Cell]?
        naiveChanges = 0
        for version in 1...100 {
            let row = try await historyRepo.query(
                "SELECT * FROM parcels WHERE k = \(key)", options: ReadOptions(pins: [try TablePin(parsing: "parcels=\(version)")])
            ).rows.first
            if row != previous { naiveChanges += 1 }
            previous = row
        }
    }
    print("  \(history.rows.count) changes found (naive loop: \(naiveChanges)); \(history.versionsRead) of \(history.versions) versions read, \(history.columnsRead) columns")
    report("row history, 100 versions", udr: udrHistory, peer: naive, peerName: "query each version", target: "≥ 10× faster")
}
