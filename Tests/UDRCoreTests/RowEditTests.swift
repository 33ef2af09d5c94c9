import DuckDB
import Foundation
import Testing
import UDRSQLite
import UDRTesting

@testable import UDRCore

/// Row-level writes against plain DuckDB applying the same edits.
@Suite struct RowEditTests {
    /// Small segments so that a few thousand rows span many of them.
    static let small = SegmentationPolicy(bits: 5, minimumRows: 16, maximumRows: 128)

    /// Content digest of a table: order-independent, over every column.
    static let digest = "SELECT count(*), sum(hash(k, a, s, note)) FROM t"

    @Test(arguments: [1, 2, 3, 4, 5, 6])
    func randomEditsMatchPlainDuckDB(seed: Int) async throws {
        let (repo, dir) = try makeRepository(segmentation: Self.small)
        let plain = try scratchDuckDB()
        let t = try TableName("t")
        var rng = SeededGenerator(seed: UInt64(seed))
        let initial = "SELECT i * 10 AS k, (i * 7) % 100 AS a, i * 0.5 AS s, 'r' || i AS note FROM range(3000) t(i)"
        try plain.execute("CREATE TABLE t AS \(initial)")
        _ = try await repo.write(t, from: .sql(initial), key: ["k"])
        for step in 0..<12 {
            let file = dir.path("edit-\(step).parquet")
            let op = Int.random(in: 0..<5, using: &rng)
            switch op {
            case 0, 1:
                // Upsert: existing keys, keys between them, before the first and after the last.
                let n = Int.random(in: 1...400, using: &rng)
                let offset = Int.random(in: -50...3100, using: &rng)
                let stride = [1, 3, 10, 37][Int.random(in: 0..<4, using: &rng)]
                try plain.execute(
                    "COPY (SELECT (\(offset) + i * \(stride)) * 10 + \(op == 0 ? 0 : 5) AS k, 1000 + i AS a, -i * 1.0 AS s, 'u\(step)' AS note FROM range(\(n)) t(i)) TO '\(file)'"
                )
                try plain.execute("DELETE FROM t WHERE k IN (SELECT k FROM read_parquet('\(file)'))")
                try plain.execute("INSERT INTO t SELECT k, a, s, note FROM read_parquet('\(file)')")
                _ = try await repo.apply(.upsert(.file(file)), to: t)
            case 2:
                let m = Int.random(in: 2...40, using: &rng)
                let r = Int.random(in: 0..<m, using: &rng)
                try plain.execute("DELETE FROM t WHERE a % \(m) = \(r)")
                _ = try await repo.apply(.delete(where: "a % \(m) = \(r)"), to: t)
            case 3:
                let low = Int.random(in: 0...30000, using: &rng)
                try plain.execute("UPDATE t SET s = s + 1, note = note || '!' WHERE k BETWEEN \(low) AND \(low + 900)")
                _ = try await repo.apply(
                    try .update(set: "s = s + 1, note = note || '!'", where: "k BETWEEN \(low) AND \(low + 900)"), to: t)
            default:
                try plain.execute("COPY (SELECT k FROM t USING SAMPLE 2% (reservoir, \(seed * 100 + step))) TO '\(file)'")
                try plain.execute("DELETE FROM t WHERE k IN (SELECT k FROM read_parquet('\(file)'))")
                _ = try await repo.apply(.delete(keysFrom: .file(file)), to: t)
            }
            let expected = try plain.query(Self.digest).rows
            let actual = try await repo.query(Self.digest).rows
            #expect(actual == expected, "seed \(seed) step \(step) op \(op)")
            // New keys among old ones go to segments after the others, whose
            // ranges overlap theirs; those layers stay within a tenth of the
            // table (past that, the edit re-cuts the segments it touches).
            let manifest = try await repo.manifest(of: t)
            let layered = TableWriter.layeredRows(manifest)
            #expect(
                layered <= max(manifest.rows / 10, Int64(Self.small.minimumRows)) + Int64(Self.small.maximumRows),
                "seed \(seed) step \(step): \(layered) of \(manifest.rows) rows in overlapping segments")
        }
        #expect(try await repo.verify().ok)
    }

    @Test func keylessTablesAppendDeleteAndUpdate() async throws {
        let (repo, _) = try makeRepository(segmentation: Self.small)
        let plain = try scratchDuckDB()
        let t = try TableName("events")
        let initial = "SELECT i AS id, i % 13 AS kind, 'e' || i AS label FROM range(2000) t(i)"
        try plain.execute("CREATE TABLE events AS \(initial)")
        _ = try await repo.write(t, from: .sql(initial))
        let edits: [(String, RowEdit)] = [
            (
                "INSERT INTO events SELECT 5000 + i, 99, 'late' FROM range(5) t(i)",
                .append(.sql("SELECT 5000 + i AS id, 99 AS kind, 'late' AS label FROM range(5) t(i)"))
            ),
            (
                "INSERT INTO events SELECT 6000 + i, 98, 'bulk' FROM range(500) t(i)",
                .append(.sql("SELECT 6000 + i AS id, 98 AS kind, 'bulk' AS label FROM range(500) t(i)"))
            ),
            ("DELETE FROM events WHERE kind = 3", .delete(where: "kind = 3")),
            (
                "UPDATE events SET label = upper(label) WHERE kind IN (1, 99)",
                try .update(set: "label = upper(label)", where: "kind IN (1, 99)")
            ),
        ]
        for (sql, edit) in edits {
            try plain.execute(sql)
            _ = try await repo.apply(edit, to: t)
            let digest = "SELECT count(*), sum(hash(id, kind, label)) FROM events"
            #expect(try await repo.query(digest).rows == (try plain.query(digest).rows), "\(sql)")
        }
        let upsert = await #expect(throws: UDRError.self) { try await repo.apply(.upsert(.sql("SELECT 1 AS id")), to: t) }
        #expect(upsert?.message.contains("has no key") == true)
    }

    @Test func appendedColumnsReadAsNullInOlderRows() async throws {
        let (repo, _) = try makeRepository(segmentation: Self.small)
        let t = try TableName("parcels")
        _ = try await repo.write(t, from: .sql("SELECT i AS bbl, i * 2 AS v FROM range(1000) t(i)"), key: ["bbl"])
        let before = try await repo.manifest(of: t)
        let result = try await repo.apply(
            .upsert(.sql("SELECT 2000 + i AS bbl, i AS v, 'x' || i AS zoning FROM range(300) t(i) UNION ALL SELECT 5, 10, 'changed'")),
            to: t)
        #expect(result.counts == RowCounts(inserted: 300, deleted: 0, updated: 1))
        let counts = try await repo.query("SELECT count(*), count(zoning), max(v) FILTER (WHERE bbl = 5) FROM parcels")
        #expect(counts.rows == [[.int(1300), .int(301), .int(10)]])
        let after = try await repo.manifest(of: t)
        #expect(after.columns.map(\.name) == ["bbl", "v", "zoning"])
        // Untouched segments are kept as they were, naming the columns they hold.
        let kept = after.segments.filter { segment in before.segments.contains { $0.id == segment.id } }
        #expect(kept.count >= before.segments.count - 2)
        #expect(kept.allSatisfy { $0.columns == ["bbl", "v"] })

        // A missing nullable column is NULL; an incompatible type is an error that changes nothing.
        _ = try await repo.apply(.append(.sql("SELECT 9000 AS bbl")), to: t)
        #expect(try await count(repo, "SELECT count(*) FROM parcels WHERE bbl = 9000 AND v IS NULL AND zoning IS NULL") == 1)
        let head = try await repo.log(limit: 1).first?.id
        let bad = await #expect(throws: UDRError.self) {
            try await repo.apply(.append(.sql("SELECT 9001 AS bbl, 'seven' AS v")), to: t)
        }
        #expect(bad?.message.contains("v is BIGINT in parcels but VARCHAR") == true)
        let duplicate = await #expect(throws: UDRError.self) { try await repo.apply(.append(.sql("SELECT 5 AS bbl")), to: t) }
        #expect(duplicate?.code == .duplicateKey)
        #expect(duplicate?.message.contains("(5)") == true)
        #expect(try await repo.log(limit: 1).first?.id == head)
    }

    /// An edit touching every segment rewrites each in place from its own
    /// file: rows deleted before stay deleted (a re-inserted key goes to a
    /// segment after the others, once), rows deleted now are listed, the
    /// rest keep their positions; the table reads like plain DuckDB's.
    @Test func scatteredEditsRewriteSegmentsInPlace() async throws {
        let (repo, _) = try makeRepository(segmentation: tenThousandRowSegments)
        let plain = try scratchDuckDB()
        let t = try TableName("parcels")
        let initial = "SELECT i * 10 AS k, i % 7 AS zone, 'p' || i AS name FROM range(60000) t(i)"
        try plain.execute("CREATE TABLE parcels AS \(initial)")
        _ = try await repo.write(t, from: .sql(initial), key: ["k"])
        let v1 = try await repo.manifest(of: t)
        #expect(v1.segments.count > 3)

        // Delete a row of every segment, in place.
        let doomed = "k % 9000 = 4500"
        _ = try await repo.apply(.delete(where: doomed), to: t)
        try plain.execute("DELETE FROM parcels WHERE \(doomed)")
        #expect(try await repo.manifest(of: t).segments.allSatisfy { $0.deletions != nil })

        // Then: one row of every segment updated, another deleted, the
        // deleted keys back with new values, and a new key among the others.
        let tx = try await repo.beginTransaction()
        try await tx.apply(try .update(set: "name = 'changed ' || name", where: "k % 9000 = 90"), to: t)
        try await tx.apply(.delete(where: "k % 9000 = 180"), to: t)
        try await tx.apply(.upsert(.sql("SELECT k, 99 AS zone, 'back' AS name FROM range(4500, 600000, 9000) r(k) UNION ALL SELECT 15, 98, 'new'")), to: t)
        try await tx.commit()
        try plain.execute("UPDATE parcels SET name = 'changed ' || name WHERE k % 9000 = 90")
        try plain.execute("DELETE FROM parcels WHERE k % 9000 = 180")
        try plain.execute("INSERT INTO parcels SELECT k, 99, 'back' FROM range(4500, 600000, 9000) r(k) UNION ALL SELECT 15, 98, 'new'")

        let v3 = try await repo.manifest(of: t)
        let digest = "SELECT count(*), sum(hash(k, zone, name)) FROM parcels"
        #expect(try await repo.query(digest).rows == plain.query(digest).rows)
        #expect(try await count(repo, "SELECT count(*) FROM parcels WHERE name = 'back'") == 67)
        // Version 1's segments are all still there, in place (the same rows
        // in each file), holding their live rows but for the re-inserted and
        // new keys, which follow them.
        #expect(v3.segments.count > v1.segments.count)
        for (old, new) in zip(v1.segments, v3.segments) {
            #expect(new.fileRows == old.fileRows)
            #expect(new.stats["k"] == old.stats["k"])
            let low = try #require(old.stats["k"]?.min), high = try #require(old.stats["k"]?.max)
            let live = try plain.query("SELECT count(*) FROM parcels WHERE k BETWEEN \(low) AND \(high) AND zone < 98").scalar.int
            #expect(new.rows == live)
        }
        #expect(v3.segments.dropFirst(v1.segments.count).reduce(0) { $0 + $1.rows } == 68)
        #expect(try await repo.verify().ok)
    }

    /// Updating 10 rows of 1,000,000 stores only the updated column's chunks
    /// (and footers) of the segments holding them; appending adds segments.
    @Test func rowEditsStoreOnlyTheChangedColumnChunks() async throws {
        let (repo, dir) = try makeRepository()
        let t = try TableName("big")
        let first = try await repo.write(t, from: .sql(syntheticTableSQL(rows: 1_000_000)), key: ["k"])
        let before = try await repo.manifest(of: t)
        // A twin of the repository, for the same update through SQL.
        try FileManager.default.copyItem(at: repo.layout.root, to: dir.url.appendingPathComponent("twin"))
        let twin = try LocalRepository.open(at: dir.url.appendingPathComponent("twin"))
        let keys = (0..<10).map { String($0 * 997_331 % 1_000_000 * 10) }.joined(separator: ", ")
        let update = try await repo.apply(try .update(set: "g = 'reassessed'", where: "k IN (\(keys))"), to: t)
        #expect(update.counts == RowCounts(inserted: 0, deleted: 0, updated: 10))
        let sql = try #require(try await twin.sql("UPDATE big SET g = 'reassessed' WHERE k IN (\(keys))").statements.first?.write)
        #expect(sql.counts == update.counts)
        // What each stored besides its commit object.
        let updateStaged = update.bytesAdded - (try repo.store.size(try #require(update.commit).id) ?? 0)
        print("row edits: the same update through udr sql stored \(sql.bytesAdded) bytes, through udr update \(updateStaged)")
        #expect(sql.bytesAdded <= updateStaged)
        let after = try await repo.manifest(of: t)
        let oldIDs = Set(before.segments.map(\.id))
        let rewritten = after.segments.filter { !oldIDs.contains($0.id) }
        #expect(rewritten.count <= 10)
        #expect(after.segments.count == before.segments.count)
        let gIndex = try #require(after.columns.firstIndex { $0.name == "g" })
        var oldBlobs = Set<ObjectID>()
        for segment in before.segments {
            for part in try repo.store.getJSON(SegmentRecipe.self, segment.recipe).parts { oldBlobs.insert(part.blob) }
        }
        for segment in rewritten {
            let parts = try repo.store.getJSON(SegmentRecipe.self, segment.recipe).parts
            // Parts: the magic, one chunk per column, then the page index and
            // the footer. Only g's chunk and what follows the chunks are new.
            let new = parts.indices.filter { !oldBlobs.contains(parts[$0].blob) }
            #expect(new.allSatisfy { $0 == gIndex + 1 || $0 > after.columns.count }, "new blobs at \(new) of \(parts.count)")
        }
        print(
            "row edits: updating 10 rows of 1,000,000 stored \(update.bytesAdded) bytes (\(rewritten.count) segments touched; the table is \(first.logicalBytes) bytes)"
        )
        #expect(update.bytesAdded < first.logicalBytes / 100)

        // A key equality in the predicate reads only the segment holding the key.
        try await repo.clearCache()
        _ = try await repo.apply(try .update(set: "h = NOT h", where: "k = 5000000"), to: t)
        let cached = try FileManager.default.contentsOfDirectory(atPath: repo.layout.cacheDirectory.path).filter {
            $0.hasSuffix(".parquet")
        }
        #expect(cached.count == 2, "the old and the new version of one segment, not \(cached.count) files")

        let beforeAppend = try await repo.manifest(of: t)
        let append = try await repo.apply(
            .append(.sql("SELECT 100000000 + k AS k, a, b, c, d, e, f, g, h, s FROM (\(syntheticTableSQL(rows: 10_000)))")), to: t)
        let appended = try await repo.manifest(of: t)
        #expect(appended.segments.prefix(beforeAppend.segments.count).map(\.id) == beforeAppend.segments.map(\.id))
        print(
            "row edits: appending 10,000 rows stored \(append.bytesAdded) bytes in \(appended.segments.count - beforeAppend.segments.count) new segments"
        )
        #expect(try await count(repo, "SELECT count(*) FROM big") == 1_010_000)
    }
}
