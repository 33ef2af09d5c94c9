import DuckDB
import Foundation
import Testing
import UDRSQLite
import UDRTesting

@testable import UDRCore

/// A row edit records the rows it changed beside the version it writes; a
/// diff from the version before reads them instead of the segments. What
/// it finds must be what an independent comparison of the two versions finds.
@Suite struct ChangeRecordTests {
    static let table = DiffTests.table

    /// The diff of the last commit on main, checked against a full outer
    /// join of the two versions in plain DuckDB (cells and counts).
    func checkLastCommit(_ repo: Repository, _ dir: TemporaryDirectory, _ label: String) async throws -> TableDifference? {
        let a = dir.path("before.parquet")
        let b = dir.path("after.parquet")
        try await repo.export("SELECT * FROM p", options: ReadOptions(commit: "main~1"), to: a, format: .parquet)
        try await repo.export("SELECT * FROM p", to: b, format: .parquet)
        let expected = try DiffTests.expectedCells(try scratchDuckDB(), a: a, b: b, key: "k")
        let actual = DiffTests.cells(try await repo.diffRows("main~1", "main"))
        #expect(actual == expected, "\(label): missing \(expected.subtracting(actual).prefix(5)), extra \(actual.subtracting(expected).prefix(5))")
        let difference = try await repo.diff("main~1", "main").tables.first
        let counts = difference?.rows ?? RowCounts()
        #expect(counts.inserted == expected.filter { $0.hasPrefix("insert|") }.count, "\(label)")
        #expect(counts.deleted == expected.filter { $0.hasPrefix("delete|") }.count, "\(label)")
        #expect(counts.updated == Set(expected.filter { $0.hasPrefix("update|") }.map { $0.split(separator: "|")[1] }).count, "\(label)")
        // The change log gives the same counts.
        let logged = try await repo.changes(limit: 1).last?.tables.first.map { RowCounts(inserted: $0.inserted, deleted: $0.deleted, updated: $0.updated) }
        #expect(logged == counts, "\(label): the change log says \(String(describing: logged)), the diff \(counts)")
        return difference
    }

    /// A transaction of several row edits of the table, some of which undo
    /// others for a few rows (those rows did not change in the end).
    static func editTransaction(_ repo: Repository, _ random: inout SeededGenerator) async throws -> String {
        let salt = Int.random(in: 0..<1_000_000, using: &random)
        let tx = try await repo.beginTransaction()
        try await tx.apply(try .update(set: "a = a + 100", where: "hash(k + \(salt)) % 13 = 0"), to: table)
        try await tx.apply(.delete(where: "hash(k + \(salt)) % 13 = 1"), to: table)
        // Back again for some of the updated rows, changed further for others.
        try await tx.apply(try .update(set: "a = a - 100", where: "hash(k + \(salt)) % 13 = 0 AND hash(k * 5 + \(salt)) % 2 = 0"), to: table)
        try await tx.apply(try .update(set: "c = c || 'y'", where: "hash(k + \(salt)) % 13 IN (0, 2)"), to: table)
        // New keys, a deleted one back, and a new key deleted again.
        try await tx.apply(
            .upsert(
                .sql(
                    "SELECT k + 5 AS k, 1 AS a, NULL::DECIMAL(10,2) AS b, 'new' AS c, [0] AS l FROM p WHERE hash(k + \(salt)) % 29 = 3 AND k % 10 = 0"
                )), to: table)
        try await tx.apply(.delete(where: "c = 'new' AND hash(k + \(salt)) % 3 = 0"), to: table)
        try await tx.commit(message: "several edits")
        return "transaction \(salt)"
    }

    @Test(arguments: 1...8) func eachCommitsRecordGivesItsDiff(seed: Int) async throws {
        var random = SeededGenerator(seed: UInt64(seed * 7919))
        let (repo, dir) = try makeRepository(segmentation: DiffTests.small)
        let rows = Int.random(in: 500...3000, using: &random)
        _ = try await repo.write(Self.table, from: .sql(DiffTests.tableSQL(rows: rows, seed: seed)), key: ["k"])
        var recorded = 0
        for step in 0..<6 {
            let before = try await repo.resolve("main")
            let label =
                Bool.random(using: &random)
                ? try await Self.editTransaction(repo, &random) : try await DiffTests.randomEdit(repo, &random, seed: seed)
            guard try await repo.resolve("main") != before else { continue }
            let difference = try await checkLastCommit(repo, dir, "seed \(seed), step \(step), \(label)")
            // Row edits record what they change (these tables are small);
            // a whole-table write does when it kept the segments in place
            // (see wholeTableWritesRecordTheRowsTheyChanged), never when it
            // adds a column.
            let rowEdit = ["update", "delete", "upsert", "transaction"].contains { label.hasPrefix($0) }
            if rowEdit {
                #expect(difference?.fromChangeRecord == true, "seed \(seed), step \(step), \(label)")
            } else if label == "add column" {
                #expect(difference?.fromChangeRecord == false, "seed \(seed), step \(step), \(label)")
            }
            if difference?.fromChangeRecord == true {
                recorded += 1
                // A row edit's record holds every changed row; a write's
                // names the segments it added or did not keep.
                #expect(difference?.segmentPairsRead == 0)
                if rowEdit { #expect(difference?.segmentsRead == 0) }
            }
        }

        // The change feed of the last commit, applied to the version before
        // it on a branch, gives the last version: its row images are whole.
        guard recorded > 0, try await repo.diff("main~1", "main").tables.first?.fromChangeRecord == true else { return }
        let (missing, extra) = try await DiffTests.replayFeed(repo, from: "main~1", dir)
        #expect(missing == 0 && extra == 0)
    }

    /// A nightly refresh written as a whole table (rows updated, deleted,
    /// appended, and new keys among the old) keeps its segments in place
    /// and records the rows it changed in them; the segments it added are
    /// named, not copied. Its diff reads the record and those segments
    /// only, and matches a full outer join. A refresh that changes most
    /// rows records nothing and is diffed from its segments.
    @Test func wholeTableWritesRecordTheRowsTheyChanged() async throws {
        let (repo, dir) = try makeRepository(segmentation: DiffTests.small)
        _ = try await repo.write(Self.table, from: .sql(DiffTests.tableSQL(rows: 6000, seed: 11)), key: ["k"])
        let before = try await repo.manifest(of: Self.table)
        let written = try await repo.write(
            Self.table,
            from: .sql(
                """
                SELECT * REPLACE (CASE WHEN k % 170 = 0 THEN a + 1 ELSE a END AS a, CASE WHEN k % 230 = 0 THEN c || '!' ELSE c END AS c)
                FROM p WHERE k % 310 <> 0
                UNION ALL SELECT * REPLACE (k + 3 AS k, 'between' AS c) FROM p WHERE k % 590 = 0
                UNION ALL SELECT * REPLACE (k + 100000 AS k, 'appended' AS c) FROM p WHERE k % 400 = 0
                """))
        let difference = try #require(try await checkLastCommit(repo, dir, "refresh"))
        #expect(difference.fromChangeRecord && difference.segmentPairsRead == 0)
        // The added segments (new keys), not the kept ones.
        #expect(difference.segmentsRead >= 1 && difference.segmentsRead < before.segments.count / 4, "\(difference)")
        #expect(written.counts == difference.rows)
        let record = try #require(try await repo.manifest(of: Self.table).changes)
        #expect(record.oldSegments == [] && (record.newSegments?.count ?? 0) >= 1)
        let (missing, extra) = try await DiffTests.replayFeed(repo, from: "main~1", dir)
        #expect(missing == 0 && extra == 0)

        // Every row's `a` recomputed (12,000 row images, over the 10,000
        // a table this size may record): diffed from segments.
        _ = try await repo.write(Self.table, from: .sql("SELECT * REPLACE (a * 3 + 1 AS a) FROM p"))
        let recomputed = try #require(try await checkLastCommit(repo, dir, "recomputed"))
        #expect(!recomputed.fromChangeRecord && recomputed.segmentPairsRead > 0)
        #expect(try await repo.manifest(of: Self.table).changes == nil)

        // In a transaction, a whole-table write after a row edit of the
        // table, then a row edit after it: no record spans them (the write's
        // would start between the edits, and names segments, which do not
        // combine), and the diff is right all the same.
        try await repo.transaction(message: "edits around a write") { tx in
            try await tx.apply(try .update(set: "a = 0", where: "k % 1000 = 0"), to: Self.table)
            try await tx.write(Self.table, from: .sql("SELECT * REPLACE (CASE WHEN k % 770 = 0 THEN -5 ELSE a END AS a) FROM p"))
            try await tx.apply(.delete(where: "k % 930 = 0"), to: Self.table)
        }
        let spanned = try #require(try await checkLastCommit(repo, dir, "edits around a write"))
        #expect(!spanned.fromChangeRecord && spanned.rows.deleted > 0 && spanned.rows.updated > 0)
        #expect(try await repo.verify().ok)
    }

    /// A record describes one version from one other: a commit that rebased
    /// its edit onto another's, or a merge, is diffed right from the version
    /// before it all the same.
    @Test func rebasedAndMergedEditsDiffRight() async throws {
        let (repo, dir) = try makeRepository(segmentation: DiffTests.small)
        _ = try await repo.write(Self.table, from: .sql(DiffTests.tableSQL(rows: 2000, seed: 3)), key: ["k"])
        // Two transactions from the same version, on different rows: the
        // second commits onto the first by rebasing its rows.
        let first = try await repo.beginTransaction()
        let second = try await repo.beginTransaction()
        try await first.apply(try .update(set: "a = -1", where: "k < 5000"), to: Self.table)
        try await second.apply(try .update(set: "a = -2", where: "k > 15000"), to: Self.table)
        try await first.commit(message: "first")
        try await second.commit(message: "second")
        #expect(try await count(repo, "SELECT count(*) FROM p WHERE a IN (-1, -2)") == 500 + 499)
        _ = try await checkLastCommit(repo, dir, "rebased")

        // A branch's edit merged into main after main's own.
        try await repo.createBranch("side")
        _ = try await repo.apply(try .update(set: "c = 'side'", where: "k % 70 = 0"), to: Self.table, branch: "side")
        _ = try await repo.apply(try .update(set: "c = 'main'", where: "k % 110 = 0 AND k % 70 <> 0"), to: Self.table)
        _ = try await repo.merge("side", message: "merge side")
        let merged = try await checkLastCommit(repo, dir, "merge")
        #expect(merged?.rows.updated ?? 0 > 0)
    }

    /// A record is part of its version: collected with it, not before, and
    /// checked by verify.
    @Test func recordsAreKeptByGCAndCheckedByVerify() async throws {
        let (repo, _) = try makeRepository(segmentation: DiffTests.small)
        _ = try await repo.write(Self.table, from: .sql(DiffTests.tableSQL(rows: 2000, seed: 5)), key: ["k"])
        _ = try await repo.apply(try .update(set: "a = 0", where: "k % 130 = 0"), to: Self.table)
        _ = try await repo.gc(grace: 0)
        try await repo.clearCache()
        let difference = try #require(try await repo.diff("main~1", "main").tables.first)
        #expect(difference.fromChangeRecord)
        #expect(difference.rows.updated == (try await count(repo, "SELECT count(*) FROM p WHERE k % 130 = 0 AND a IS DISTINCT FROM 0", options: ReadOptions(commit: "main~1"))))
        #expect(try await repo.verify().ok)

        let record = try #require(try await repo.manifest(of: Self.table).changes?.object)
        try flipAByte(of: record, in: repo)
        let report = try await repo.verify()
        #expect(report.problems.contains { $0.contains(record.hex) && $0.contains("corrupt") }, "\(report.problems)")
        try await repo.clearCache()
        let error = await #expect(throws: UDRError.self) { try await repo.diff("main~1", "main") }
        #expect(error?.code == .corruptObject)
    }
}
