import DuckDB
import Foundation
import Testing
import UDRSQLite
import UDRTesting

@testable import UDRCore

/// Deleting rows by key lists the deleted rows' positions beside each
/// segment file instead of writing the segment again: its file and column
/// chunks stay shared with the versions before.
@Suite struct DeletionTests {
    static let table = try! TableName("parcels")
    static let rows = 100_000
    static let initial = "SELECT i * 10 AS k, i % 97 AS zone, 'p' || i AS name, i * 0.25 AS score FROM range(\(rows)) t(i)"
    /// About one key in a thousand, spread over every segment.
    static let doomed = "SELECT k FROM parcels WHERE hash(k, 'doomed') % 1000 = 0"

    @Test func deletingRowsStoresTheirPositionsAndReadsAgreeEverywhere() async throws {
        let (repo, _) = try makeRepository(segmentation: tenThousandRowSegments)
        let plain = try scratchDuckDB()
        try plain.execute("CREATE TABLE parcels AS \(Self.initial)")
        let first = try await repo.write(Self.table, from: .sql(Self.initial), key: ["k"])
        let v1 = try await repo.manifest(of: Self.table)
        #expect(v1.segments.count >= 5)

        let doomed = try plain.query("SELECT k FROM (\(Self.doomed)) ORDER BY k").rows.compactMap { $0[0].int }
        #expect(doomed.count > 50)
        try plain.execute("DELETE FROM parcels WHERE k IN (\(Self.doomed))")
        let deleted = try await repo.apply(.delete(keysFrom: .sql(Self.doomed)), to: Self.table)
        #expect(deleted.counts?.deleted == Int64(doomed.count))

        // The same files, each with its deleted rows listed; few new bytes.
        let v2 = try await repo.manifest(of: Self.table)
        #expect(v2.segments.map(\.id) == v1.segments.map(\.id))
        #expect(v2.segments.allSatisfy { $0.deletions != nil }, "every segment lost a row")
        #expect(v2.rows == Int64(Self.rows - doomed.count))
        print("deleting \(doomed.count) of \(Self.rows) rows stored \(deleted.bytesAdded) bytes (the table: \(first.bytesAdded))")
        #expect(deleted.bytesAdded * 50 < first.bytesAdded, "a delete stores positions, not segments")

        // Reads: full scans, lookups, time travel.
        let digest = "SELECT count(*), sum(hash(k, zone, name, score)) FROM parcels"
        #expect(try await repo.query(digest).rows == plain.query(digest).rows)
        for k in doomed.prefix(5) {
            #expect(try await count(repo, "SELECT count(*) FROM parcels WHERE k = \(k)") == 0)
            #expect(try await count(repo, "SELECT count(*) FROM parcels WHERE k = \(k)", options: ReadOptions(commit: "main~1")) == 1)
        }
        #expect(try await count(repo, "SELECT count(*) FROM parcels WHERE k = \(doomed[0] + 10)") == 1)
        #expect(try await count(repo, "SELECT count(*) FROM parcels", options: ReadOptions(commit: "main~1")) == Int64(Self.rows))

        // Diff: exactly the deleted keys, from the delete's change record;
        // and from the segments, where only the deleted rows are read, by position.
        let diff = try await repo.diff("main~1", "main").tables[0]
        #expect(diff.rows == RowCounts(deleted: Int64(doomed.count)))
        #expect(diff.fromChangeRecord && diff.segmentsRead == 0 && diff.segmentPairsRead == 0)
        let fromSegments = try repo.withDuckDB { (connection) throws(UDRError) -> (RowCounts, TableDiff.Shape) in
            let diff = repo.tableDiff(connection)
            let shape = try diff.build(old: v1, new: v2, prefix: "d", complete: false)
            return (try diff.counts(shape), shape)
        }
        #expect(fromSegments.0 == RowCounts(deleted: Int64(doomed.count)))
        #expect(fromSegments.1.segmentsRead == 0, "only the deleted rows are read, by position")
        #expect(fromSegments.1.pairsRead == v1.segments.count)
        let feed = try await repo.diffRows("main~1", "main", as: .feed)
        let kColumn = try #require(feed.columns.firstIndex { $0.name == "k" })
        #expect(feed.rows.compactMap { $0[kColumn].int }.sorted() == doomed)

        // History: the row disappears in the version that deleted it.
        let history = try await repo.history(of: Self.table, key: ["k": String(doomed[0])])
        let changes = history.rows.rows.map { $0[history.rows.columns.firstIndex { $0.name == "change" }!].description }
        #expect(changes == ["insert", "delete"])

        // More deletes in the same segments add to their lists.
        let more = "SELECT k FROM parcels WHERE hash(k, 'more') % 500 = 0"
        try plain.execute("DELETE FROM parcels WHERE k IN (\(more))")
        _ = try await repo.apply(.delete(keysFrom: .sql(more)), to: Self.table)
        #expect(try await repo.manifest(of: Self.table).segments.map(\.id) == v1.segments.map(\.id))
        #expect(try await repo.query(digest).rows == plain.query(digest).rows)

        // A deleted row put back as it was is no difference from version 1.
        let i = doomed[1] / 10
        let back = "SELECT \(doomed[1]) AS k, \(i % 97) AS zone, 'p\(i)' AS name, \(i) * 0.25 AS score"
        _ = try await repo.apply(.upsert(.sql(back)), to: Self.table)
        try plain.execute("INSERT INTO parcels \(back)")
        let gone = try plain.query("SELECT count(*) FROM (\(Self.initial)) WHERE k NOT IN (SELECT k FROM parcels)").scalar.int
        #expect(try await repo.diff("main~3", "main").tables.first?.rows == RowCounts(deleted: gone ?? -1))

        // An upsert of a new key inside a segment with deleted rows, and of a
        // changed row in it, keeps its rows and deleted rows in place; the
        // new row goes to a segment of its own.
        let target = try #require(try await repo.manifest(of: Self.table).segments.last { $0.deletions != nil })
        let low = try #require(Int(target.stats["k"]?.min ?? ""))
        let upsert = "SELECT \(low + 5) AS k, 1 AS zone, 'new' AS name, 0.5 AS score UNION ALL SELECT \(low), 2, 'changed', 1.5"
        try plain.execute("DELETE FROM parcels WHERE k = \(low)")
        try plain.execute("INSERT INTO parcels \(upsert)")
        _ = try await repo.apply(.upsert(.sql(upsert)), to: Self.table)
        let after = try await repo.manifest(of: Self.table)
        let rewritten = try #require(after.segments.first { $0.fileRows == target.fileRows && $0.stats["k"] == target.stats["k"] })
        #expect(rewritten.deletions?.count == target.deletions?.count, "its deleted rows stay listed")
        #expect(rewritten.id != target.id, "the changed row was written in place")
        #expect(after.segments.contains { $0.rows == 1 && $0.stats["k"]?.min == String(low + 5) })
        #expect(try await repo.query(digest).rows == plain.query(digest).rows)
        #expect(try await repo.verify().ok)

        // Expiring the old versions keeps what the head needs.
        _ = try await repo.expire(.keepLast(1))
        _ = try await repo.gc(grace: 0)
        try await repo.clearCache()
        #expect(try await repo.verify().ok)
        #expect(try await repo.query(digest).rows == plain.query(digest).rows)
    }

    @Test func aSegmentLosingMostOfItsRowsIsWrittenAgain() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(Self.table, from: .sql(Self.initial), key: ["k"])
        let v1 = try await repo.manifest(of: Self.table)
        let first = v1.segments[0]
        let last = try #require(first.stats["k"]?.max)
        _ = try await repo.apply(.delete(where: "k <= \(last) AND k % 3 <> 0"), to: Self.table)
        let v2 = try await repo.manifest(of: Self.table)
        #expect(v2.segments.allSatisfy { $0.deletions == nil })
        #expect(!v2.segments.contains { $0.id == first.id })
        #expect(Array(v2.segments.map(\.id).suffix(v1.segments.count - 1)) == Array(v1.segments.map(\.id).dropFirst()))
        #expect(try await count(repo, "SELECT count(*) FROM parcels") == Int64(Self.rows) - (first.rows - (first.rows + 2) / 3))
    }

    /// A row deleted from a file both versions share whose key lives on in
    /// another segment (no write makes this today; a diff must still get
    /// it right): a summary reads it whole, and it is an update or nothing.
    @Test func aDeletedRowWhoseKeyMovedIsComparedWhole() async throws {
        let (repo, _) = try makeRepository()
        let rows = "SELECT i * 10 AS k, i % 7 AS zone, 'p' || i AS name, i * 0.25 AS score FROM range(1000) t(i)"
        _ = try await repo.write(Self.table, from: .sql(rows), key: ["k"])
        let v1 = try await repo.manifest(of: Self.table)
        _ = try await repo.apply(.delete(keysFrom: .sql("SELECT 50 AS k UNION ALL SELECT 60")), to: Self.table)
        let v2 = try await repo.manifest(of: Self.table)
        #expect(v2.segments.allSatisfy { $0.deletions != nil })
        // Key 50 comes back changed, key 60 as it was, both in a segment of their own.
        let moved = try TableName("moved")
        _ = try await repo.write(
            moved, from: .sql("SELECT 50 AS k, 5 AS zone, 'changed' AS name, 12.5 AS score UNION ALL SELECT 60, 6, 'p6', 1.5"), key: ["k"])
        let extra = try await repo.manifest(of: moved).segments
        let v3 = Manifest(table: Self.table, version: 3, columns: v2.columns, key: v2.key, segments: v2.segments + extra)
        for countsOnly in [true, false] {
            let counts = try repo.withDuckDB { (connection) throws(UDRError) -> RowCounts in
                let diff = repo.tableDiff(connection)
                return try diff.counts(diff.build(old: v1, new: v3, prefix: "d", complete: false, countsOnly: countsOnly))
            }
            #expect(counts == RowCounts(updated: 1), "countsOnly \(countsOnly)")
        }
    }

    @Test func damagedDeletionsAreFoundByVerifyAndFailReads() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(Self.table, from: .sql(Self.initial), key: ["k"])
        _ = try await repo.apply(.delete(keysFrom: .sql(Self.doomed)), to: Self.table)
        let deletions = try #require(try await repo.manifest(of: Self.table).segments.first?.deletions?.object)
        try flipAByte(of: deletions, in: repo)

        let report = try await repo.verify()
        #expect(report.problems.contains { $0.contains(deletions.hex) && $0.contains("corrupt") }, "\(report.problems)")
        try await repo.clearCache()
        let reopened = try LocalRepository.open(at: repo.layout.root)
        let error = await #expect(throws: UDRError.self) { try await reopened.query("SELECT count(*) FROM parcels") }
        #expect(error?.code == .corruptObject)
    }
}
