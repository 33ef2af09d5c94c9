import DuckDB
import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

@Suite struct DiffTests {
    static let table = try! TableName("p")
    /// Small segments (about 100 rows), so that a few thousand rows make many.
    static let small = SegmentationPolicy(bits: 6, minimumRows: 32, maximumRows: 400)

    /// A random keyed table: integers, decimals with NULLs, strings, lists.
    static func tableSQL(rows: Int, seed: Int) -> String {
        """
        SELECT i * 10 AS k, (hash(i + \(seed)) % 1000)::INTEGER AS a,
               CASE WHEN hash(i * 3 + \(seed)) % 10 = 0 THEN NULL ELSE ((hash(i * 3) % 100000) / 100.0)::DECIMAL(10,2) END AS b,
               'n' || (hash(i * 5 + \(seed)) % 500) AS c, [i % 3, i % 5] AS l
        FROM range(\(rows)) t(i)
        """
    }

    /// One random edit of the table `p`.
    static func randomEdit(_ repo: Repository, _ random: inout SeededGenerator, seed: Int) async throws -> String {
        let salt = Int.random(in: 0..<1_000_000, using: &random)
        let rate = [7, 97, 499, 3000].randomElement(using: &random)!
        switch Int.random(in: 0..<8, using: &random) {
        case 0:
            _ = try await repo.apply(try .update(set: "a = a + 1", where: "hash(k + \(salt)) % \(rate) = 0"), to: table)
            return "update a, 1/\(rate)"
        case 1:
            _ = try await repo.apply(try .update(set: "c = c || 'x', b = NULL", where: "hash(k * 3 + \(salt)) % \(rate) = 0"), to: table)
            return "update b, c, 1/\(rate)"
        case 2:
            _ = try await repo.apply(.delete(where: "hash(k * 7 + \(salt)) % \(rate) = 0"), to: table)
            return "delete 1/\(rate)"
        case 3:
            // New keys between existing ones and after the end, plus replaced rows.
            _ = try await repo.apply(
                .upsert(.sql("SELECT k + CASE WHEN hash(k + \(salt)) % 2 = 0 THEN 5 ELSE 0 END AS k, a * 2 AS a, b, 'u' AS c, l FROM p WHERE hash(k + \(salt)) % \(rate) = 1 UNION ALL SELECT (SELECT max(k) FROM p) + 10 * r AS k, r::INTEGER, NULL, 'tail', [r] FROM range(1, 4) t(r)")),
                to: table)
            return "upsert 1/\(rate)"
        case 4:
            // A whole-table replace that changes a few rows.
            _ = try await repo.write(
                table, from: .sql("SELECT * REPLACE (CASE WHEN hash(k + \(salt)) % \(rate) = 2 THEN a - 1 ELSE a END AS a) FROM p"))
            return "replace 1/\(rate)"
        case 5:
            let manifest = try await repo.manifest(of: table)
            guard !manifest.columns.contains(where: { $0.name == "extra" }) else { return "none" }
            _ = try await repo.write(table, from: .sql("SELECT *, CASE WHEN k % 3 = 0 THEN NULL ELSE k % 7 END AS extra FROM p"))
            return "add column"
        case 6:
            // A nightly refresh: the whole table again, some rows gone, some
            // changed, some new between the others and after them.
            _ = try await repo.write(
                table,
                from: .sql(
                    """
                    SELECT * REPLACE (CASE WHEN hash(k + \(salt)) % \(rate) = 2 THEN 'r' || a ELSE c END AS c) FROM p WHERE hash(k + \(salt)) % \(rate) <> 4
                    UNION ALL SELECT * REPLACE (k + 3 AS k, 'new' AS c) FROM p WHERE hash(k + \(salt)) % \(rate) = 5 AND k + 3 NOT IN (SELECT k FROM p)
                    UNION ALL SELECT * REPLACE (k + 10 AS k, 'tail' AS c) FROM p WHERE k = (SELECT max(k) FROM p)
                    """))
            return "refresh 1/\(rate)"
        default:
            _ = try await repo.apply(.upsert(.sql("SELECT k, a, b, c || '' AS c, l FROM p WHERE hash(k + \(salt)) % \(rate) = 3")), to: table)
            return "no-op upsert"
        }
    }

    /// The expected cells of A → B, by an independent FULL OUTER JOIN in
    /// plain DuckDB over the two versions exported to Parquet.
    static func expectedCells(_ connection: Connection, a: String, b: String, key: String) throws -> Set<String> {
        try connection.execute("CREATE OR REPLACE TABLE va AS FROM read_parquet(\(quoteLiteral(a)))")
        try connection.execute("CREATE OR REPLACE TABLE vb AS FROM read_parquet(\(quoteLiteral(b)))")
        let aColumns = try connection.query("SELECT column_name FROM (DESCRIBE va)").rows.compactMap { $0[0].string }
        let bColumns = try connection.query("SELECT column_name FROM (DESCRIBE vb)").rows.compactMap { $0[0].string }
        let all = aColumns + bColumns.filter { !aColumns.contains($0) }
        var out = Set<String>()
        let k = quoteIdentifier(key)
        for row in try connection.query(
            "SELECT CAST(coalesce(va.\(k), vb.\(k)) AS VARCHAR) FROM va FULL OUTER JOIN vb ON va.\(k) = vb.\(k) WHERE va.\(k) IS NULL"
        ).rows {
            out.insert("insert|\(key)=\(row[0].string!)")
        }
        for row in try connection.query(
            "SELECT CAST(coalesce(va.\(k), vb.\(k)) AS VARCHAR) FROM va FULL OUTER JOIN vb ON va.\(k) = vb.\(k) WHERE vb.\(k) IS NULL"
        ).rows {
            out.insert("delete|\(key)=\(row[0].string!)")
        }
        for column in all where column != key {
            let c = quoteIdentifier(column)
            let old = aColumns.contains(column) ? "va.\(c)" : "NULL"
            let new = bColumns.contains(column) ? "vb.\(c)" : "NULL"
            for row in try connection.query(
                "SELECT CAST(va.\(k) AS VARCHAR), CAST(\(old) AS VARCHAR), CAST(\(new) AS VARCHAR) FROM va FULL OUTER JOIN vb ON va.\(k) = vb.\(k) WHERE va.\(k) IS NOT NULL AND vb.\(k) IS NOT NULL AND \(old) IS DISTINCT FROM \(new)"
            ).rows {
                out.insert("update|\(key)=\(row[0].string!)|\(column)|\(row[1].string ?? "NULL")|\(row[2].string ?? "NULL")")
            }
        }
        return out
    }

    static func cells(_ result: ResultSet) -> Set<String> {
        Set(
            result.rows.map { row in
                let change = row[1].string!
                let key = row[2].string ?? ""
                guard change == "update" else { return "\(change)|\(key)" }
                return "update|\(key)|\(row[3].string!)|\(row[4].string ?? "NULL")|\(row[5].string ?? "NULL")"
            })
    }

    /// Diff against an independent full outer join, on random tables and
    /// random edit scripts; and the change feed of A → B applied to A gives B.
    @Test(arguments: 1...12) func diffAgreesWithAFullOuterJoinAndItsFeedRebuildsTheTarget(seed: Int) async throws {
        var random = SeededGenerator(seed: UInt64(seed))
        let (repo, dir) = try makeRepository(segmentation: Self.small)
        let rows = Int.random(in: 500...4000, using: &random)
        _ = try await repo.write(Self.table, from: .sql(Self.tableSQL(rows: rows, seed: seed)), key: ["k"])
        // Sometimes the diff starts after a few edits, not at the first version.
        for _ in 0..<Int.random(in: 0...1, using: &random) { _ = try await Self.randomEdit(repo, &random, seed: seed) }
        let from = try await repo.resolve("main").hex
        var script: [String] = []
        for _ in 0..<Int.random(in: 1...4, using: &random) { script.append(try await Self.randomEdit(repo, &random, seed: seed)) }
        if Bool.random(using: &random) { try await repo.clearCache() }

        let a = dir.path("a.parquet")
        let b = dir.path("b.parquet")
        try await repo.export("SELECT * FROM p", options: ReadOptions(commit: from), to: a, format: .parquet)
        try await repo.export("SELECT * FROM p", to: b, format: .parquet)
        let expected = try Self.expectedCells(try scratchDuckDB(), a: a, b: b, key: "k")
        let actual = Self.cells(try await repo.diffRows(from, "main"))
        #expect(actual == expected, "seed \(seed), edits \(script): missing \(expected.subtracting(actual).prefix(5)), extra \(actual.subtracting(expected).prefix(5))")

        let summary = try await repo.diff(from, "main")
        let counts = summary.tables.first?.rows ?? RowCounts()
        #expect(counts.inserted == expected.filter { $0.hasPrefix("insert|") }.count)
        #expect(counts.deleted == expected.filter { $0.hasPrefix("delete|") }.count)
        #expect(counts.updated == Set(expected.filter { $0.hasPrefix("update|") }.map { $0.split(separator: "|")[1] }).count)

        // Apply the feed to A on a branch: it must give B.
        let (missing, extra) = try await Self.replayFeed(repo, from: from, dir)
        #expect(missing == 0 && extra == 0, "seed \(seed), edits \(script): \(missing) rows of main missing, \(extra) extra")
    }

    /// Applies the change feed of `from` → main to `from` on a new branch
    /// `replay`; returns the rows of main the branch then lacks, and the
    /// rows it has that main does not (both 0 when the feed is right).
    static func replayFeed(_ repo: Repository, from: String, _ dir: TemporaryDirectory) async throws -> (Int64, Int64) {
        let feed = dir.path("feed.parquet")
        try await repo.exportDiffRows(from, "main", tables: [table], as: .feed, to: feed, format: .parquet)
        try await repo.createBranch("replay", from: from)
        let f = quoteLiteral(feed)
        _ = try await repo.apply(
            .upsert(.sql("SELECT * EXCLUDE (_change) FROM read_parquet(\(f)) WHERE _change IN ('insert', 'update_postimage')")),
            to: table, branch: "replay")
        _ = try await repo.apply(
            .delete(keysFrom: .sql("SELECT k FROM read_parquet(\(f)) WHERE _change = 'delete'")), to: table, branch: "replay")
        let pins = ReadOptions(branch: "replay", pins: [try TablePin(parsing: "target=p@main")])
        return (
            try await count(repo, "SELECT count(*) FROM (SELECT * FROM target EXCEPT ALL SELECT * FROM p)", options: pins),
            try await count(repo, "SELECT count(*) FROM (SELECT * FROM p EXCEPT ALL SELECT * FROM target)", options: pins)
        )
    }

    /// The cost follows the change: untouched segments are skipped, and a
    /// segment whose keys stayed is read only in its changed column. (Each
    /// version here records the rows it changed: a diff reads those
    /// records, composed across versions; with a key given it reads
    /// segments.)
    @Test func diffSkipsSharedSegmentsAndUnchangedColumns() async throws {
        let (repo, _) = try makeRepository(segmentation: Self.small)
        _ = try await repo.write(Self.table, from: .sql(Self.tableSQL(rows: 5000, seed: 1)), key: ["k"])
        let segments = try await repo.manifest(of: Self.table).segments.count
        #expect(segments > 20)
        _ = try await repo.write(Self.table, from: .sql("SELECT * REPLACE (CASE WHEN k = 12340 THEN -1 ELSE a END AS a) FROM p"))
        // A new key goes to a segment after the others (with the small
        // segment at the end, if there is one).
        _ = try await repo.write(
            Self.table, from: .sql("SELECT * FROM p UNION ALL SELECT 12345 AS k, 1 AS a, NULL::DECIMAL(10,2) AS b, 'x' AS c, [1] AS l"))

        let before = try await oldA(repo)
        // Across both writes, from their records: the segments they added
        // read whole, the rest skipped.
        var diff = try await repo.diff("main~2", "main").tables[0]
        #expect(diff.rows == RowCounts(inserted: 1, updated: 1))
        #expect(diff.fromChangeRecord && diff.segmentPairsRead == 0)
        #expect(diff.segmentsRead >= 1 && diff.segmentsRead <= 4)
        #expect(diff.segmentsSkipped >= segments - 3)
        // The same from segments: one pair read in its changed column, the
        // added segments whole, the rest skipped.
        diff = try await repo.diff("main~2", "main", tables: [Self.table], key: ["k"]).tables[0]
        #expect(diff.rows == RowCounts(inserted: 1, updated: 1))
        #expect(!diff.fromChangeRecord)
        #expect(diff.segmentPairsRead == 1)
        #expect(diff.segmentsRead >= 1 && diff.segmentsRead <= 3)
        #expect(diff.segmentsSkipped >= segments - 3)
        let cells = try await repo.diffRows("main~2", "main")
        #expect(cells.rows.map { $0.map(\.string) }.contains(["p", "update", "k=12340", "a", before, "-1"]))

        // Each write from the one before: its record, and the segments it added.
        diff = try await repo.diff("main~2", "main~1").tables[0]
        #expect(diff.rows == RowCounts(updated: 1))
        #expect(diff.fromChangeRecord && diff.segmentPairsRead == 0 && diff.segmentsRead == 0)
        #expect(try await repo.diffRows("main~2", "main~1").rows.map { $0.map(\.string) } == [["p", "update", "k=12340", "a", before, "-1"]])
        diff = try await repo.diff("main~1", "main").tables[0]
        #expect(diff.rows == RowCounts(inserted: 1))
        #expect(diff.fromChangeRecord && diff.segmentPairsRead == 0)
        #expect(diff.segmentsRead >= 1 && diff.segmentsRead <= 3)

        // The same edits as row edits: their records are read, nothing else.
        _ = try await repo.apply(try .update(set: "a = -2", where: "k = 12340"), to: Self.table)
        diff = try await repo.diff("main~1", "main").tables[0]
        #expect(diff.rows == RowCounts(updated: 1))
        #expect(diff.fromChangeRecord && diff.segmentPairsRead == 0 && diff.segmentsRead == 0)
        #expect(try await repo.diffRows("main~1", "main").rows.map { $0.map(\.string) } == [["p", "update", "k=12340", "a", "-1", "-2"]])
        _ = try await repo.apply(.upsert(.sql("SELECT 12346 AS k, 1 AS a, NULL::DECIMAL(10,2) AS b, 'x' AS c, [1] AS l")), to: Self.table)
        diff = try await repo.diff("main~1", "main").tables[0]
        #expect(diff.rows == RowCounts(inserted: 1))
        #expect(diff.fromChangeRecord && diff.segmentPairsRead == 0 && diff.segmentsRead == 0)
    }

    /// A diff across several versions that each recorded their changed
    /// rows composes the records: a key's first old image against its
    /// last new one. Rows changed back, deleted and put back as they were,
    /// or inserted and deleted again are no change; the result is the
    /// full outer join's, and its change feed rebuilds the target. A
    /// version without a record on the way (a column added) reads segments.
    @Test func diffsAcrossVersionsComposeTheirRecords() async throws {
        let (repo, dir) = try makeRepository(segmentation: Self.small)
        _ = try await repo.write(Self.table, from: .sql(Self.tableSQL(rows: 3000, seed: 4)), key: ["k"])
        let kept = try TableName("kept")
        _ = try await repo.write(kept, from: .sql("SELECT * FROM p WHERE k = 100"))
        let start = try await repo.resolve("main").hex
        _ = try await repo.apply(try .update(set: "a = a + 7", where: "k % 1010 = 0"), to: Self.table)
        _ = try await repo.apply(try .update(set: "a = a - 7", where: "k % 2020 = 0"), to: Self.table)  // half changed back
        _ = try await repo.apply(.delete(where: "k IN (100, 200)"), to: Self.table)
        _ = try await repo.apply(
            .upsert(.sql("SELECT * FROM kept UNION ALL SELECT 15 AS k, 1 AS a, NULL::DECIMAL(10,2) AS b, 'n' AS c, [1] AS l UNION ALL SELECT 25, 2, NULL, 'gone', [2]")),
            to: Self.table)
        _ = try await repo.apply(.delete(where: "k = 25"), to: Self.table)
        // A nightly refresh that records: a few strings changed, one row gone,
        // one after the end. (It keeps the segments in place though k = 100
        // was deleted in one and put back in another.)
        _ = try await repo.write(
            Self.table,
            from: .sql("SELECT * REPLACE (CASE WHEN k % 1540 = 0 THEN c || '!' ELSE c END AS c) FROM p WHERE k <> 300 UNION ALL SELECT 99990, 9, NULL, 't', [9]"))

        func check(_ from: String, composed: Bool) async throws {
            let a = dir.path("a.parquet")
            let b = dir.path("b.parquet")
            try await repo.export("SELECT * FROM p", options: ReadOptions(commit: from), to: a, format: .parquet)
            try await repo.export("SELECT * FROM p", to: b, format: .parquet)
            let expected = try Self.expectedCells(try scratchDuckDB(), a: a, b: b, key: "k")
            #expect(!expected.isEmpty)
            #expect(Self.cells(try await repo.diffRows(from, "main", tables: [Self.table])) == expected, "from \(from)")
            let difference = try await repo.diff(from, "main", tables: [Self.table]).tables[0]
            #expect(difference.fromChangeRecord == composed, "from \(from)")
            #expect(difference.rows.inserted == expected.filter { $0.hasPrefix("insert|") }.count)
            #expect(difference.rows.deleted == expected.filter { $0.hasPrefix("delete|") }.count)
            #expect(difference.rows.updated == Set(expected.filter { $0.hasPrefix("update|") }.map { $0.split(separator: "|")[1] }).count)
            if composed { #expect(difference.segmentPairsRead == 0 && difference.segmentsRead <= 4) }
            let (missing, extra) = try await Self.replayFeed(repo, from: from, dir)
            #expect(missing == 0 && extra == 0, "from \(from)")
            try await repo.deleteBranch("replay")
        }
        try await check(start, composed: true)
        // k = 100 is back as it was, k = 25 came and went; the half changed back is no change.
        let cells = Self.cells(try await repo.diffRows(start, "main", tables: [Self.table]))
        #expect(!cells.contains { ["k=100", "k=25", "k=2020"].contains($0.split(separator: "|")[1]) })
        #expect(cells.contains("delete|k=200") && cells.contains("insert|k=15") && cells.contains("delete|k=300"))
        try await check("main~3", composed: true)

        _ = try await repo.write(Self.table, from: .sql("SELECT *, k % 4 AS extra FROM p"))
        try await check(start, composed: false)
    }

    private func oldA(_ repo: Repository) async throws -> String? {
        try await repo.query("SELECT CAST(a AS VARCHAR) FROM p WHERE k = 12340", options: ReadOptions(commit: "main~2")).scalar.string
    }

    @Test func keylessTablesDiffAsMultisets() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("events")
        _ = try await repo.write(t, from: .sql("SELECT * FROM (VALUES ('x', 1), ('x', 1), ('x', 1), ('y', 2)) v(name, n)"))
        _ = try await repo.write(t, from: .sql("SELECT * FROM (VALUES ('x', 1), ('y', 2), ('x', 1), ('z', 3)) v(name, n)"))
        let diff = try await repo.diff("main~1", "main")
        #expect(diff.tables.map(\.rows) == [RowCounts(inserted: 1, deleted: 1, updated: 0)])
        #expect(diff.tables[0].key.isEmpty)
        let feed = try await repo.diffRows("main~1", "main", as: .feed)
        #expect(Set(feed.rows.map { $0.map(\.description) }) == [["delete", "x", "1"], ["insert", "z", "3"]])
    }

    @Test func tablesAddedAndUnchangedAndOtherKeys() async throws {
        let (repo, _) = try makeRepository()
        let p = try TableName("people")
        let q = try TableName("other")
        _ = try await repo.write(p, from: .sql("SELECT r AS id, 'e' || r AS email, r % 3 AS team FROM range(100) t(r)"), key: ["id"])
        _ = try await repo.write(q, from: .sql("SELECT 1 AS x"))
        _ = try await repo.apply(try .update(set: "team = 9", where: "id < 2"), to: p)
        let all = try await repo.diff("main~2", "main")
        #expect(all.tables.map(\.table) == [q, p])
        #expect(all.tables.map(\.status) == [.added, .changed])
        #expect(all.tables[0].rows == RowCounts(inserted: 1))
        // Named tables appear even when unchanged.
        #expect(try await repo.diff("main~1", "main", tables: [q]).tables.map(\.status) == [.unchanged])
        // Matched by another unique column.
        let byEmail = try await repo.diffRows("main~1", "main", tables: [p], key: ["email"])
        #expect(byEmail.rows.map { $0[2].string } == ["email=e0", "email=e1"])
        // Not unique: a clear error.
        let notUnique = await #expect(throws: UDRError.self) { try await repo.diff("main~1", "main", tables: [p], key: ["team"]) }
        #expect(notUnique?.message.contains("is not a key") == true)
        await #expect(throws: UDRError.self) { try await repo.diff("main", "nope") }
        await #expect(throws: UDRError.self) { try await repo.diff("main~1", "main", tables: [try TableName("missing")]) }
    }
}
