import DuckDB
import Foundation
import Testing
import UDRSQLite
import UDRTesting

@testable import UDRCore

/// A nightly refresh writes a keyed table's whole content again. The write
/// keeps the previous version's segments in place: the rows stay at their
/// positions, a row whose key is gone is listed as deleted, and rows with
/// new keys go to segments of their own. Columns that did not change keep
/// their chunks, so the refresh stores what changed.
@Suite struct RefreshTests {
    static let table = try! TableName("parcels")
    static let rows = 100_000
    static let initial = """
        SELECT i * 10 AS k, i % 97 AS zone, 'parcel ' || i AS name, (hash(i) % 100000) / 100.0 AS score, 'ACTIVE' AS status,
               'owner ' || hash(i, 'owner') AS owner
        FROM range(\(rows)) t(i)
        """
    static let digest = "SELECT count(*), sum(hash(k, zone, name, score, status, owner)) FROM parcels"

    /// The blobs of each column of a segment's file, from its recipe.
    static func columnBlobs(_ repo: Repository, _ segment: SegmentRef) throws -> [Int: [ObjectID]] {
        try #require(try repo.store.getJSON(SegmentRecipe.self, segment.recipe).columnBlobs)
    }

    /// A night of the pipeline: `plain`'s parcels, rows in `order`, as a
    /// Parquet file, written over the repository's table.
    static func refresh(_ repo: Repository, from plain: Connection, through snapshot: String, order: String) async throws -> WriteResult {
        try plain.execute("COPY (SELECT * FROM parcels ORDER BY \(order)) TO \(quoteLiteral(snapshot)) (FORMAT parquet)")
        return try await repo.write(table, from: .file(snapshot), key: ["k"])
    }

    @Test func aRefreshKeepsRowsInPlaceAndStoresWhatChanged() async throws {
        let (repo, dir) = try makeRepository()
        let plain = try scratchDuckDB()
        try plain.execute("CREATE TABLE parcels AS \(Self.initial)")
        let snapshot = dir.path("night.parquet")
        func night() async throws -> WriteResult { try await Self.refresh(repo, from: plain, through: snapshot, order: "hash(k)") }
        let first = try await night()
        let v1 = try await repo.manifest(of: Self.table)

        // Night 2: 0.1% of rows deleted, a status changed for 0.5%, the
        // score recomputed for all, new parcels between the others and
        // after the last.
        let doomed = try plain.query("SELECT k FROM parcels WHERE hash(k, 'gone') % 1000 = 0 ORDER BY k").rows.compactMap { $0[0].int }
        try plain.execute("DELETE FROM parcels WHERE hash(k, 'gone') % 1000 = 0")
        try plain.execute("UPDATE parcels SET status = 'REVIEW' WHERE hash(k, 'status') % 200 = 0")
        try plain.execute("UPDATE parcels SET score = (hash(k, 'night 2') % 100000) / 100.0")
        try plain.execute(
            "INSERT INTO parcels SELECT k + 5, zone, 'split ' || name, score, 'PENDING', owner FROM parcels WHERE hash(k, 'split') % 2000 = 0")
        try plain.execute(
            "INSERT INTO parcels SELECT \(Self.rows * 10) + i * 10, i % 97, 'new ' || i, 1.5, 'ACTIVE', 'owner' FROM range(300) t(i)")
        let second = try await night()
        let v2 = try await repo.manifest(of: Self.table)
        #expect(try await repo.query(Self.digest).rows == plain.query(Self.digest).rows)
        #expect(try await repo.query(Self.digest, options: ReadOptions(commit: "main~1")).rows.first?.first == .int(Int64(Self.rows)))

        // Every segment of version 1 is still there, its rows in place: the
        // key, zone, name and owner chunks are the ones stored before; its deleted
        // rows are listed beside it.
        let kept = Array(v2.segments.prefix(v1.segments.count))
        for (old, new) in zip(v1.segments, kept) {
            #expect(new.fileRows == old.fileRows)
            let before = try Self.columnBlobs(repo, old)
            let after = try Self.columnBlobs(repo, new)
            for column in [0, 1, 2, 5] { #expect(before[column] == after[column], "column \(column) of segment \(old.id) was written again") }
            #expect(before[3] != after[3], "the score changed everywhere")
        }
        #expect(kept.reduce(0) { $0 + ($1.deletions?.count ?? 0) } == Int64(doomed.count))
        #expect(v2.segments.count > v1.segments.count, "the new parcels are segments of their own")
        print(
            "refresh of \(Self.rows) rows (\(doomed.count) deleted, score recomputed, status of 0.5% changed, new rows): stored \(second.bytesAdded) bytes, the first version \(first.bytesAdded)"
        )
        #expect(second.bytesAdded * 2 < first.bytesAdded, "only the changed columns' chunks are stored")

        // Point lookups find new parcels among the old ones and after them.
        let split = try #require(try plain.query("SELECT k FROM parcels WHERE name LIKE 'split %' ORDER BY k LIMIT 1").scalar.int)
        #expect(try await count(repo, "SELECT count(*) FROM parcels WHERE k = \(split)") == 1)
        #expect(try await count(repo, "SELECT count(*) FROM parcels WHERE k = \(Self.rows * 10 + 2990)") == 1)
        #expect(try await count(repo, "SELECT count(*) FROM parcels WHERE k = \(doomed[0])") == 0)

        // Diff reads the kept segments as pairs, column by column, and
        // agrees with plain DuckDB's full outer join.
        let diff = try await repo.diff("main~1", "main").tables[0]
        try plain.execute("CREATE TABLE v1 AS \(Self.initial)")
        let expected = try plain.query(
            """
            SELECT count(*) FILTER (WHERE o.k IS NULL), count(*) FILTER (WHERE n.k IS NULL),
                   count(*) FILTER (WHERE o.k IS NOT NULL AND n.k IS NOT NULL AND (o.zone, o.name, o.score, o.status, o.owner) IS DISTINCT FROM (n.zone, n.name, n.score, n.status, n.owner))
            FROM v1 o FULL OUTER JOIN parcels n ON o.k = n.k
            """
        ).rows[0]
        #expect(diff.rows == RowCounts(inserted: expected[0].int!, deleted: expected[1].int!, updated: expected[2].int!))
        #expect(diff.segmentPairsRead == v1.segments.count)
        #expect(diff.segmentsRead == v2.segments.count - v1.segments.count, "only the new segments are read whole")

        // History: a deleted parcel disappears, a changed one shows its columns.
        let history = try await repo.history(of: Self.table, key: ["k": String(doomed[0])])
        let change = try #require(history.rows.columns.firstIndex { $0.name == "change" })
        #expect(history.rows.rows.map { $0[change].description } == ["insert", "delete"])
        let changedStatus = try #require(
            try plain.query("SELECT k FROM parcels WHERE status = 'REVIEW' ORDER BY k LIMIT 1").scalar.int)
        let statusHistory = try await repo.history(of: Self.table, key: ["k": String(changedStatus)])
        let changed = try #require(statusHistory.rows.columns.firstIndex { $0.name == "changed" })
        #expect(statusHistory.rows.rows.last?[changed].description == "score, status")

        // Night 3: a deleted parcel comes back as it was in version 1: it
        // takes its old place, where version 2 kept its values, and its
        // segment's file is the one version 2 stored.
        let back = doomed[1]
        try plain.execute("INSERT INTO parcels SELECT * FROM v1 WHERE k = \(back)")
        _ = try await night()
        let v3 = try await repo.manifest(of: Self.table)
        #expect(try await repo.query(Self.digest).rows == plain.query(Self.digest).rows)
        #expect(v3.segments.map(\.id) == v2.segments.map(\.id), "the row was still in its file, with the same values")
        #expect(v3.rows == v2.rows + 1)
        #expect(try await repo.diff("main~1", "main").tables[0].rows == RowCounts(inserted: 1))

        // The same content again commits nothing.
        let again = try await night()
        #expect(again.unchanged)

        // New keys among the old ones beyond a tenth of the table: written
        // from scratch, as a first write of the same rows would be.
        try plain.execute("INSERT INTO parcels SELECT k + 1, zone, name, score, status, owner FROM parcels WHERE k < \(Self.rows * 10) AND k % 20 = 0")
        _ = try await night()
        let fresh = try await repo.write(try TableName("fresh"), from: .file(snapshot), key: ["k"])
        #expect(try await repo.manifest(of: Self.table).segments.map(\.id) == repo.manifest(of: TableName("fresh")).segments.map(\.id))
        #expect(fresh.rows == (try plain.query("SELECT count(*) FROM parcels").scalar.int ?? -1))
        #expect(try await repo.query(Self.digest).rows == plain.query(Self.digest).rows)

        #expect(try await repo.verify().ok)
    }

    /// A refresh keeps the file of every segment whose rows keep their
    /// values: rows added after the last and a row deleted write only the
    /// new rows' segment; a value changed in one segment writes that one.
    /// Values are told apart exactly: 0.0 turned -0.0 is a change.
    @Test func aRefreshKeepsTheFilesOfSegmentsWhoseRowsKeptTheirValues() async throws {
        let (repo, dir) = try makeRepository()
        let plain = try scratchDuckDB()
        try plain.execute("CREATE TABLE parcels AS SELECT * REPLACE (CASE WHEN k % 1000 = 0 THEN 0.0 ELSE score END AS score) FROM (\(Self.initial))")
        let snapshot = dir.path("night.parquet")
        func night() async throws -> WriteResult { try await Self.refresh(repo, from: plain, through: snapshot, order: "k") }
        let first = try await night()
        let v1 = try await repo.manifest(of: Self.table)
        #expect(v1.segments.count >= 4)
        let smallest = try #require(v1.segments.map(\.bytes).min())

        // Night 2: 300 rows after the last, one row of the first segment deleted.
        let gone = try #require(v1.segments[0].stats["k"]?.min.flatMap { Int64($0) }) + 10
        try plain.execute("DELETE FROM parcels WHERE k = \(gone)")
        try plain.execute("INSERT INTO parcels SELECT \(Self.rows * 10) + i * 10, 1, 'new ' || i, 1.5, 'ACTIVE', 'owner' FROM range(300) t(i)")
        let second = try await night()
        let v2 = try await repo.manifest(of: Self.table)
        #expect(second.logicalBytes < smallest, "wrote \(second.logicalBytes) bytes; the version has \(v2.logicalBytes)")
        #expect(Array(v2.segments.prefix(v1.segments.count)).map(\.id) == v1.segments.map(\.id))
        #expect(v2.segments[0].deletions?.count == 1)
        #expect(try await repo.query(Self.digest).rows == plain.query(Self.digest).rows)

        // Night 3: one score of the second segment from 0.0 to -0.0, which
        // DuckDB's equality holds equal: that segment is written again, the
        // others are kept.
        let holding = 1
        let low = try #require(v2.segments[holding].stats["k"]?.min.flatMap { Int64($0) })
        let target = (low / 1000 + 1) * 1000
        #expect(target <= (v2.segments[holding].stats["k"]?.max.flatMap { Int64($0) } ?? 0))
        // (DuckDB's UPDATE keeps 0.0 when it is set to -0.0.)
        try plain.execute(
            "CREATE OR REPLACE TABLE parcels AS SELECT * REPLACE (CASE WHEN k = \(target) THEN '-0.0'::DOUBLE ELSE score END AS score) FROM parcels")
        let third = try await night()
        let v3 = try await repo.manifest(of: Self.table)
        #expect(third.logicalBytes > 0 && third.logicalBytes < first.logicalBytes / 2)
        for (index, (old, new)) in zip(v2.segments, v3.segments).enumerated() {
            #expect((old.id == new.id) == (index != holding), "segment \(index) (the change is in \(holding))")
        }
        let sign = "SELECT signbit(score) FROM parcels WHERE k = \(target)"
        #expect(try await repo.query(sign).rows == [[.bool(true)]])
        #expect(try await repo.query(sign, options: ReadOptions(commit: "main~1")).rows == [[.bool(false)]])
        #expect(try await repo.verify().ok)
    }

    /// A segment left with more deleted rows than live ones, and small
    /// segments at the end when rows are added, are written again
    /// without their deleted rows.
    @Test func segmentsMostlyDeletedAreWrittenAgain() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(Self.table, from: .sql(Self.initial), key: ["k"])
        let v1 = try await repo.manifest(of: Self.table)
        let second = v1.segments[1]
        let low = try #require(second.stats["k"]?.min.flatMap { Int64($0) })
        let high = try #require(second.stats["k"]?.max.flatMap { Int64($0) })
        // Two thirds of the second segment's rows go, and one new row comes after the last.
        _ = try await repo.write(
            Self.table,
            from: .sql(
                "SELECT * FROM parcels WHERE NOT (k BETWEEN \(low) AND \(high) AND k % 30 <> 0) UNION ALL SELECT \(Self.rows * 10), 1, 'last', 0, 'ACTIVE', 'owner'"
            ))
        let v2 = try await repo.manifest(of: Self.table)
        #expect(!v2.segments.contains { $0.id == second.id }, "the mostly deleted segment was written again")
        #expect(v2.segments.allSatisfy { $0.deletions == nil })
        #expect(v2.segments.contains { $0.id == v1.segments[0].id } && v2.segments.contains { $0.id == v1.segments[2].id })
        let expected = "SELECT count(*) FROM (\(Self.initial)) WHERE NOT (k BETWEEN \(low) AND \(high) AND k % 30 <> 0)"
        let plain = try scratchDuckDB()
        #expect(try await count(repo, "SELECT count(*) FROM parcels") == (try plain.query(expected).scalar.int ?? -1) + 1)
        #expect(try await count(repo, "SELECT count(*) FROM parcels WHERE k = \(low + 30 - low % 30)") == 1)
    }

    /// A refresh orders its rows by their old places; duplicate and NULL
    /// keys are still rejected, naming the keys, wherever they fall: on
    /// a kept row, among new keys, across a kept row and a new one of
    /// another segment, or in a two-column key. Nothing is written.
    @Test func badKeysInARefreshAreRejectedAndChangeNothing() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(Self.table, from: .sql(Self.initial), key: ["k"])
        let before = try await repo.query(Self.digest).rows
        let head = try await repo.log().first?.id
        let all = "SELECT * FROM parcels"
        let cases: [(String, UDRError.Code, String)] = [
            ("\(all) UNION ALL SELECT * FROM parcels WHERE k = 5000", .duplicateKey, "(5000) (2 rows)"),
            ("\(all) UNION ALL SELECT 7, 1, 'a', 0, 'NEW', 'o' UNION ALL SELECT 7, 2, 'b', 0, 'NEW', 'o'", .duplicateKey, "(7) (2 rows)"),
            ("\(all) UNION ALL SELECT \(Self.rows * 10 + 1), 1, 'a', 0, 'NEW', 'o' FROM range(3)", .duplicateKey, "(\(Self.rows * 10 + 1)) (3 rows)"),
            ("\(all) UNION ALL SELECT NULL, 1, 'a', 0, 'NEW', 'o'", .nullKey, "NULL in the key"),
        ]
        for (sql, code, message) in cases {
            let error = await #expect(throws: UDRError.self, "\(sql)") { try await repo.write(Self.table, from: .sql(sql)) }
            #expect(error?.code == code, "\(sql)")
            #expect(error?.message.contains(message) == true, "\(sql): \(error?.message ?? "")")
        }
        #expect(try await repo.query(Self.digest).rows == before)
        #expect(try await repo.log().first?.id == head)

        // Two key columns: the same pair twice, next to a pair that differs in one column.
        let pairs = try TableName("pairs")
        _ = try await repo.write(pairs, from: .sql("SELECT i % 100 AS a, i // 100 AS b, i AS v FROM range(5000) t(i)"), key: ["a", "b"])
        let error = await #expect(throws: UDRError.self) {
            try await repo.write(
                pairs, from: .sql("SELECT * FROM pairs UNION ALL SELECT 3, 7, -1 UNION ALL SELECT 3, 70, -2 UNION ALL SELECT 3, 70, -3"))
        }
        #expect(error?.code == .duplicateKey)
        #expect(
            error?.message.contains("2 key value(s) of (a, b) occur more than once: (3, 7) (2 rows), (3, 70) (2 rows)") == true,
            "\(error?.message ?? "")")
        #expect(try await repo.versions(pairs).count == 1)
        #expect(try await repo.versions(Self.table).count == 1)
        #expect(try await repo.verify().ok)
    }
}
