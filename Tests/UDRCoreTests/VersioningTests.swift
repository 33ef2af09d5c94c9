import DuckDB
import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

@Suite struct TimeTravelTests {
    @Test func oldVersionsStayQueryableAndUnchanged() async throws {
        let (repo, _) = try makeRepository()
        let parcels = try TableName("parcels")
        let v1 = "SELECT i AS bbl, 'v1' AS status, i * 1.5 AS score FROM range(30000) t(i)"
        let first = try await repo.write(parcels, from: .sql(v1), key: ["bbl"], message: "night 1")
        let v1Digest = try await repo.query("SELECT sum(hash(bbl, status, score)) FROM parcels").scalar
        try await Task.sleep(for: .milliseconds(20))
        let afterFirst = Date()
        try await Task.sleep(for: .milliseconds(20))
        _ = try await repo.write(
            parcels,
            from: .sql(
                "SELECT bbl, CASE WHEN bbl % 100 = 0 THEN 'v2' ELSE status END AS status, score FROM parcels UNION ALL SELECT 30000, 'new', 0"
            ), key: nil, message: "night 2")
        _ = try await repo.write(parcels, from: .sql("SELECT bbl, status, score * 2 AS score FROM parcels"), key: nil, message: "night 3")

        #expect(try await count(repo, "SELECT count(*) FROM parcels") == 30001)
        let pinned = ReadOptions(pins: [try TablePin(parsing: "parcels=1")])
        #expect(try await repo.query("SELECT sum(hash(bbl, status, score)) FROM parcels", options: pinned).scalar == v1Digest)
        #expect(try await count(repo, "SELECT count(*) FROM parcels", options: pinned) == 30000)

        // By commit and by time.
        let byCommit = ReadOptions(commit: String(first.commit!.id.hex.prefix(10)))
        #expect(try await repo.query("SELECT sum(hash(bbl, status, score)) FROM parcels", options: byCommit).scalar == v1Digest)
        let byTime = ReadOptions(asOf: afterFirst)
        #expect(try await repo.query("SELECT sum(hash(bbl, status, score)) FROM parcels", options: byTime).scalar == v1Digest)
        let error = await #expect(throws: UDRError.self) {
            try await repo.query("SELECT 1", options: ReadOptions(asOf: Date(timeIntervalSince1970: 0)))
        }
        #expect(error?.code == .notFound)

        // Two versions of one table joined in one query.
        let joined = ReadOptions(pins: [try TablePin(parsing: "old=parcels@1"), try TablePin(parsing: "parcels=3")])
        let changed = try await repo.query(
            """
            SELECT count(*) FILTER (WHERE o.status <> n.status) AS status_changed,
                   count(*) FILTER (WHERE n.score = o.score * 2) AS rescored,
                   count(*) FILTER (WHERE o.bbl IS NULL) AS added
            FROM old o FULL OUTER JOIN parcels n USING (bbl)
            """, options: joined)
        #expect(changed.rows == [[.int(300), .int(30000), .int(1)]])

        let versions = try await repo.versions(parcels)
        #expect(versions.map(\.version) == [1, 2, 3])
        #expect(versions.map(\.rows) == [30000, 30001, 30001])
        let log = try await repo.log(table: parcels)
        #expect(log.map(\.commit.message) == ["night 3", "night 2", "night 1"])
        #expect(log.map(\.commit.txID) == log.map(\.commit.txID).sorted(by: >))
    }

    @Test func concurrentReadsAtDifferentVersionsSeeTheirOwnSnapshot() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("t")
        _ = try await repo.write(t, from: .sql("SELECT i AS k FROM range(1000) t(i)"), key: ["k"])
        _ = try await repo.write(t, from: .sql("SELECT i AS k FROM range(2000) t(i)"), key: ["k"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<16 {
                group.addTask {
                    let version = i % 2 + 1
                    let options = ReadOptions(pins: [try TablePin(parsing: "t=\(version)")])
                    let n = try await repo.query("SELECT count(*) FROM t", options: options).scalar.int
                    #expect(n == Int64(version * 1000))
                }
            }
            try await group.waitForAll()
        }
    }

    /// Reads one after another keep their views between them: each must
    /// still see exactly its own snapshot — a new version, an older commit,
    /// and no table that its commit does not have.
    @Test func successiveReadsSeeOnlyTheirOwnSnapshot() async throws {
        let (repo, _) = try makeRepository()
        let (a, b) = (try TableName("a"), try TableName("org_1.b"))
        let first = try await repo.write(a, from: .sql("SELECT i AS k FROM range(100) t(i)"), key: ["k"])
        #expect(try await count(repo, "SELECT count(*) FROM a") == 100)
        _ = try await repo.write(b, from: .sql("SELECT i AS k FROM range(7) t(i)"), key: ["k"])
        #expect(try await count(repo, "SELECT (SELECT count(*) FROM a) * 1000 + (SELECT count(*) FROM org_1.b)") == 100_007)
        _ = try await repo.write(a, from: .sql("SELECT i AS k FROM range(250) t(i)"), key: ["k"])
        #expect(try await count(repo, "SELECT count(*) FROM a") == 250)

        // At the first commit: the old rows, and no table b.
        let old = ReadOptions(commit: first.commit!.id.hex)
        #expect(try await count(repo, "SELECT count(*) FROM a", options: old) == 100)
        let missing = await #expect(throws: UDRError.self) { try await repo.query("SELECT count(*) FROM org_1.b", options: old) }
        #expect(missing?.message.contains("b") == true)
        #expect(try await count(repo, "SELECT count(*) FROM duckdb_views() WHERE NOT internal AND view_name = 'b'", options: old) == 0)

        // Back at the head, and a version pinned by number.
        #expect(try await count(repo, "SELECT (SELECT count(*) FROM a) * 1000 + (SELECT count(*) FROM org_1.b)") == 250_007)
        let pinned = ReadOptions(pins: [try TablePin(parsing: "a=1")])
        #expect(try await count(repo, "SELECT count(*) FROM a", options: pinned) == 100)
        #expect(try await count(repo, "SELECT count(*) FROM a") == 250)

        // A query cannot change the views later queries read.
        let dropped = await #expect(throws: UDRError.self) { _ = try await repo.query("DROP VIEW a") }
        #expect(dropped?.code == .readOnly)
        #expect(try await count(repo, "SELECT count(*) FROM a") == 250)
    }

    @Test func unknownVersionsAndTablesAreClearErrors() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(try TableName("t"), from: .sql("SELECT 1 AS a"), key: [])
        let noVersion = await #expect(throws: UDRError.self) {
            try await repo.query("SELECT * FROM t", options: ReadOptions(pins: [try TablePin(parsing: "t=9")]))
        }
        #expect(noVersion?.message.contains("has no version 9") == true)
        let noTable = await #expect(throws: UDRError.self) { try await repo.query("SELECT * FROM nope") }
        #expect(noTable?.message.contains("nope") == true)
        #expect(throws: UDRError.self) { try TablePin(parsing: "t") }
        #expect(throws: UDRError.self) { try TablePin(parsing: "t=0") }
        #expect(throws: UDRError.self) { try TablePin(parsing: "t=") }
        // Not a number: a ref, which must name something.
        let noRef = await #expect(throws: UDRError.self) {
            try await repo.query("SELECT * FROM t", options: ReadOptions(pins: [try TablePin(parsing: "t=zero")]))
        }
        #expect(noRef?.message.contains("'zero' is not a branch, tag, commit id") == true)
    }
}

@Suite struct EconomyTests {
    /// 1,000,000 rows, 10 columns, keyed, with realistic value spread.
    static let base = syntheticTableSQL(rows: 1_000_000)

    @Test func storageGrowsWithTheChange() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("parcels")
        let first = try await repo.write(t, from: .sql(Self.base), key: ["k"])
        let full = Double(first.bytesAdded)
        print("economy: first version stored \(first.bytesAdded) bytes in \(first.segments) segments")

        // (a) 1% new rows with keys after the existing ones.
        let a = try await repo.write(
            t, from: .sql("SELECT * FROM parcels UNION ALL SELECT * REPLACE (k + 10000000 AS k) FROM parcels WHERE k % 1000 = 0"), key: nil)
        print(
            "economy (a) 1% appended rows: \(a.bytesAdded) bytes = \(String(format: "%.2f", Double(a.bytesAdded) / full * 100))% of the first version"
        )
        #expect(a.rows == 1_010_000)
        #expect(Double(a.bytesAdded) <= 0.03 * full)

        // (b) one column changed in 0.5% of rows, scattered at random.
        let b = try await repo.write(
            t, from: .sql("SELECT * REPLACE (CASE WHEN hash(k, 'b') % 200 = 0 THEN 'changed' ELSE g END AS g) FROM parcels"), key: nil)
        print(
            "economy (b) one column changed in 0.5% of rows: \(b.bytesAdded) bytes = \(String(format: "%.2f", Double(b.bytesAdded) / full * 100))%"
        )
        #expect(Double(b.bytesAdded) <= 0.25 * full)

        // (c) one of the 10 columns recomputed for every row.
        let c = try await repo.write(t, from: .sql("SELECT * REPLACE ((hash(k, 'c') % 1000) / 10.0 AS s) FROM parcels"), key: nil)
        print(
            "economy (c) one column recomputed for all rows: \(c.bytesAdded) bytes = \(String(format: "%.2f", Double(c.bytesAdded) / full * 100))%"
        )
        #expect(Double(c.bytesAdded) <= 0.20 * full)

        // The same content again: no commit, no bytes.
        let before = try await repo.storedBytes()
        let same = try await repo.write(t, from: .sql("SELECT * FROM parcels"), key: nil)
        print("economy: same content again added \(same.bytesAdded) bytes")
        #expect(same.unchanged)
        #expect(same.bytesAdded == 0)
        #expect(try await repo.storedBytes() == before)
        #expect(try await repo.versions(t).count == 4)

        // The same rows in shuffled order give the same segments: written
        // over the table, nothing changes; written as a new table, the
        // segments of the same rows written in key order.
        let again = try await repo.write(t, from: .sql("SELECT * FROM parcels ORDER BY hash(k, 'shuffle')"), key: nil)
        #expect(again.unchanged)
        _ = try await repo.write(try TableName("ordered"), from: .sql("SELECT * FROM parcels ORDER BY k"), key: ["k"])
        let shuffled = try await repo.write(
            try TableName("shuffled"), from: .sql("SELECT * FROM parcels ORDER BY hash(k, 'shuffle')"), key: ["k"])
        let ordered = try await repo.manifest(of: try TableName("ordered"))
        let copy = try await repo.manifest(of: try TableName("shuffled"))
        #expect(copy.segments.map(\.id) == ordered.segments.map(\.id))
        #expect(shuffled.bytesAdded < 100_000, "only the manifest and commit are new")
    }
}

@Suite struct IntegrityTests {
    @Test func aFlippedByteIsFoundByVerifyAndFailsReads() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(try TableName("t"), from: .sql("SELECT i AS k, 'v' || i AS v FROM range(20000) t(i)"), key: ["k"])
        let manifest = try await repo.manifest(of: try TableName("t"))
        let store = try #require(repo.localStore as? LocalObjectStore)
        let recipe = manifest.segments[0].recipe
        let blob = try JSONDecoder().decode(SegmentRecipe.self, from: try store.get(recipe)).parts[1].blob
        let head = try #require(try repo.catalog.head(of: "main"))
        let manifestID = try #require(try await repo.versions(try TableName("t")).first?.manifest)

        for (kind, id) in [("blob", blob), ("recipe", recipe), ("manifest", manifestID), ("commit", head)] {
            let original = try flipAByte(of: id, in: repo)

            let report = try await repo.verify()
            #expect(!report.ok, "verify misses a flipped byte in a \(kind)")
            #expect(report.problems.contains { $0.contains(id.hex) && $0.contains("corrupt") }, "\(kind): \(report.problems)")

            // A fresh process's view: no decoded objects in memory, no materialized segments.
            try await repo.clearCache()
            let reopened = try LocalRepository.open(at: repo.layout.root)
            let error = await #expect(throws: UDRError.self, "a read of a damaged \(kind) must fail") {
                try await reopened.query("SELECT count(*), sum(length(v)) FROM t")
            }
            #expect(error?.code == .corruptObject)
            #expect(error?.message.contains(id.hex) == true)

            try original.write(to: try looseObject(id, in: repo))
            #expect(try await repo.verify().ok)
        }
        #expect(try await count(repo, "SELECT count(*) FROM t") == 20000)
    }

    @Test func aMissingObjectIsReported() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(try TableName("t"), from: .sql("SELECT 1 AS k"), key: ["k"])
        let manifest = try await repo.manifest(of: try TableName("t"))
        let id = manifest.segments[0].recipe
        try FileManager.default.removeItem(at: try looseObject(id, in: repo))
        let report = try await repo.verify()
        #expect(report.problems.contains { $0.contains(id.hex) && $0.contains("missing") })
    }
}

@Suite struct KeyLookupTests {
    /// Point lookups read only the segments whose key range holds the key,
    /// and give the same answers as a full scan in every query shape.
    @Test func lookupsPruneSegmentsWithoutChangingAnswers() async throws {
        let (repo, _) = try makeRepository(segmentation: tenThousandRowSegments)
        _ = try await repo.write(try TableName("t"), from: .sql("SELECT i * 10 AS k, 'v' || i AS v FROM range(100000) t(i)"), key: ["k"])
        let manifest = try await repo.manifest(of: try TableName("t"))
        #expect(manifest.segments.count > 4)

        let cases: [(String, Int64)] = [
            ("SELECT count(*) FROM t WHERE k = 500000", 1),
            ("SELECT count(*) FROM t WHERE k = 500001", 0),
            ("SELECT count(*) FROM t WHERE k = 500000 OR k = 10", 2),
            ("SELECT count(*) FROM t x WHERE x.k = 10 AND v = 'v1'", 1),
            ("SELECT count(*) FROM t WHERE k = 10 UNION ALL SELECT count(*) FROM t", 1),
            ("SELECT (SELECT count(*) FROM t WHERE k = 10) + (SELECT count(*) FROM t WHERE v = 'v99999')", 2),
            ("SELECT count(*) FROM t WHERE k = 99999999", 0),
        ]
        for (sql, expected) in cases {
            #expect(try await count(repo, sql) == expected, "\(sql)")
        }
        let t = try TableName("t")
        #expect(try await repo.segmentsRead(by: "SELECT * FROM t WHERE k = 500000")[t] == 1)
        #expect(try await repo.segmentsRead(by: "SELECT * FROM t x WHERE x.k = 500000 AND x.v = 'a'")[t] == 1)
        // Names in any case: the table and its key are found all the same.
        #expect(try await repo.segmentsRead(by: "SELECT * FROM T WHERE K = 500000")[t] == 1)
        #expect(try await count(repo, "SELECT count(*) FROM T WHERE K = 500000") == 1)
        // An equality on another column prunes nothing.
        #expect(try await repo.segmentsRead(by: "SELECT * FROM t WHERE v = 'a'")[t] == manifest.segments.count)
        #expect(try await repo.segmentsRead(by: "SELECT * FROM t WHERE k = 500000 OR k = 10")[t] == manifest.segments.count)
        #expect(try await repo.segmentsRead(by: "SELECT * FROM t WHERE k = 10 UNION ALL SELECT * FROM t")[t] == manifest.segments.count)
        let both = try await repo.query("SELECT count(*) FROM t WHERE k = 10 UNION ALL SELECT count(*) FROM t").rows
        #expect(both.map { $0[0] }.contains(.int(100000)), "a second reference of the table still sees every row")
    }
}

/// A Parquet file that looks sorted by its row groups' key statistics is
/// read without sorting; its order is checked, and it is sorted when the
/// statistics were misleading. Either way the segments are those of the
/// same rows written in any other order.
@Suite struct InputOrderTests {
    @Test func filesInKeyOrderAndFilesThatOnlyLookSoGiveTheSameSegments() async throws {
        let (repo, dir) = try makeRepository()
        let rows = "SELECT i * 3 AS k, md5(i::VARCHAR) AS v, i % 7 AS n FROM range(40960) t(i)"
        let reference = try await repo.write(try TableName("reference"), from: .sql(rows + " ORDER BY hash(i)"), key: ["k"])
        let duck = try scratchDuckDB()
        let ordered = dir.path("ordered.parquet")
        let shuffledWithinGroups = dir.path("shuffled.parquet")
        try duck.execute("COPY (\(rows)) TO '\(ordered)' (FORMAT parquet, ROW_GROUP_SIZE 4096)")
        try duck.execute("COPY (\(rows) ORDER BY i // 4096, hash(i)) TO '\(shuffledWithinGroups)' (FORMAT parquet, ROW_GROUP_SIZE 4096)")
        // Both files' row groups hold ascending, disjoint key ranges.
        for file in [ordered, shuffledWithinGroups] {
            let groups = try duck.query(
                "SELECT min(stats_min_value::BIGINT), max(stats_max_value::BIGINT), count(*) FROM parquet_metadata('\(file)') WHERE path_in_schema = 'k' GROUP BY row_group_id ORDER BY row_group_id"
            ).rows
            #expect(groups.count == 10)
            for (a, b) in zip(groups, groups.dropFirst()) { #expect(a[1].int! < b[0].int!) }
        }
        let expected = try await repo.manifest(of: try TableName("reference")).segments.map(\.id)
        #expect(expected.count > 1 && reference.bytesAdded > 0)
        for (name, file) in [("ordered", ordered), ("shuffled", shuffledWithinGroups)] {
            _ = try await repo.write(try TableName(name), from: .file(file), key: ["k"])
            #expect(try await repo.manifest(of: try TableName(name)).segments.map(\.id) == expected, "\(name)")
            #expect(try await count(repo, "SELECT count(*) FROM \(name) JOIN reference USING (k) WHERE \(name).v = reference.v") == 40960)
        }
        // A duplicate key in a file that looks sorted is still found.
        let duplicated = dir.path("duplicated.parquet")
        try duck.execute("COPY (SELECT * REPLACE (CASE WHEN k = 30 THEN 27 ELSE k END AS k) FROM '\(ordered)') TO '\(duplicated)' (FORMAT parquet, ROW_GROUP_SIZE 4096)")
        let error = await #expect(throws: UDRError.self) {
            try await repo.write(try TableName("dupes"), from: .file(duplicated), key: ["k"])
        }
        #expect(error?.code == .duplicateKey && error?.message.contains("27") == true)
    }
}
