import DuckDB
import Foundation
import Testing
import UDRTesting

@testable import UDRCore

/// Full scans read large local read groups instead of many small segments;
/// what a query sees must not change, and a change rebuilds only its groups.
@Suite struct ReadGroupTests {
    static let small = SegmentationPolicy(bits: 5, minimumRows: 16, maximumRows: 128)
    static let grouping = ReadGrouping(bits: 2, minimumRows: 400, maximumRows: 2000, rowGroupSize: 500)

    func groupFiles(_ repo: Repository) throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: repo.layout.cacheDirectory.path).filter { $0.hasPrefix("group-") })
    }

    @Test func groupsCutByContentAndBounded() throws {
        let segments = (0..<400).map { i in
            SegmentRef(
                id: ObjectID.of(Data("segment \(i)".utf8)), recipe: ObjectID.of(Data("r".utf8)), rows: 50, bytes: 1, stats: [:])
        }
        let groups = Self.grouping.groups(segments)
        #expect(groups.first?.lowerBound == 0)
        #expect(groups.last?.upperBound == segments.count)
        for (a, b) in zip(groups, groups.dropFirst()) { #expect(a.upperBound == b.lowerBound, "groups are consecutive") }
        for group in groups.dropLast() {
            let rows = Int64(group.count) * 50
            #expect(rows >= Self.grouping.minimumRows && rows <= Self.grouping.maximumRows)
        }
        // Replacing one segment moves at most the group boundaries next to it.
        var changed = segments
        changed[200] = SegmentRef(id: ObjectID.of(Data("changed".utf8)), recipe: changed[200].recipe, rows: 50, bytes: 1, stats: [:])
        let after = Self.grouping.groups(changed)
        let kept = Set(groups.filter { !$0.contains(200) }.map { "\($0)" })
        let same = after.filter { kept.contains("\($0)") }.count
        #expect(same >= groups.count - 3, "groups away from the change stay as they were")
        #expect(ReadGrouping.off.groups(segments).count == segments.count)
    }

    @Test func scansThroughGroupsMatchPlainDuckDBAndRebuildOnlyWhatChanged() async throws {
        let (repo, dir) = try makeRepository(segmentation: Self.small, readGrouping: Self.grouping)
        let (plainRepo, _) = try makeRepository(segmentation: Self.small, readGrouping: .off)
        let plain = try scratchDuckDB()
        let t = try TableName("t")
        let initial = "SELECT i * 10 AS k, (i * 7) % 100 AS a, i * 0.5 AS s, 'r' || i AS note FROM range(6000) t(i)"
        try plain.execute("CREATE TABLE t AS \(initial)")
        for r in [repo, plainRepo] { _ = try await r.write(t, from: .sql(initial), key: ["k"]) }
        let segments = try await repo.manifest(of: t).segments.count

        let scan = "SELECT k, a, s, note FROM t ORDER BY k"
        #expect(try await repo.query(scan).rows == (try plain.query(scan).rows))
        let first = try groupFiles(repo)
        #expect(first.count > 1 && first.count < segments / 4, "\(segments) segments read through \(first.count) group files")

        // A key lookup prunes to its segment and reads no group.
        #expect(try await repo.query("SELECT note FROM t WHERE k = 31230").rows == [[.text("r3123")]])

        // One row updated: one segment changes, so at most the group holding
        // it and a neighbour are rebuilt; every other group file is reused.
        try plain.execute("UPDATE t SET a = -1 WHERE k = 31230")
        for r in [repo, plainRepo] { _ = try await r.apply(try .update(set: "a = -1", where: "k = 31230"), to: t) }
        #expect(try await repo.query(scan).rows == (try plain.query(scan).rows))
        let second = try groupFiles(repo)
        let rebuilt = second.subtracting(first)
        #expect(rebuilt.count >= 1 && rebuilt.count <= 2, "a one-row update rebuilt \(rebuilt.count) group files")

        // Rows with a new column: old segments lack it, groups mix both.
        let file = dir.path("extra.parquet")
        try plain.execute(
            "COPY (SELECT i * 50 + 5 AS k, i AS a, 0.25 AS s, 'n' || i AS note, 'x' || i AS extra FROM range(300) t(i)) TO '\(file)'")
        try plain.execute("ALTER TABLE t ADD COLUMN extra VARCHAR")
        try plain.execute("INSERT INTO t SELECT * FROM read_parquet('\(file)')")
        for r in [repo, plainRepo] { _ = try await r.apply(.upsert(.file(file)), to: t) }
        let wide = "SELECT k, a, s, note, extra FROM t ORDER BY k"
        let expected = try plain.query(wide).rows
        #expect(try await repo.query(wide).rows == expected)
        #expect(try await plainRepo.query(wide).rows == expected)

        // Version 1 still reads as it was, through its own groups.
        let v1 = ReadOptions(pins: [try TablePin(parsing: "t=1")])
        #expect(try await repo.query("SELECT sum(a)::BIGINT, count(*) FROM t", options: v1).rows == [[.int(297000), .int(6000)]])
    }

    /// A scan of fewer segments than the grouping's minimum reads them as
    /// they are (no group to build after a write); from that many on, it
    /// reads groups. The answers are the same either way.
    @Test func scansOfFewSegmentsReadThemAsTheyAre() async throws {
        let initial = "SELECT i AS k, i % 7 AS a, 'r' || i AS note FROM range(3000) t(i)"
        let scan = "SELECT k, a, note FROM t ORDER BY k"
        let t = try TableName("t")
        let plain = try scratchDuckDB()
        try plain.execute("CREATE TABLE t AS \(initial)")
        let expected = try plain.query(scan).rows

        let (probe, _) = try makeRepository(segmentation: Self.small, readGrouping: .off)
        _ = try await probe.write(t, from: .sql(initial), key: ["k"])
        let segments = try await probe.manifest(of: t).segments.count
        #expect(segments > 10)
        for (minimum, grouped) in [(segments + 1, false), (segments, true)] {
            var grouping = Self.grouping
            grouping.minimumSegments = minimum
            let (repo, _) = try makeRepository(segmentation: Self.small, readGrouping: grouping)
            _ = try await repo.write(t, from: .sql(initial), key: ["k"])
            #expect(try await repo.query(scan).rows == expected)
            #expect(try groupFiles(repo).isEmpty != grouped, "\(segments) segments, at least \(minimum) to group")
        }
    }
}
