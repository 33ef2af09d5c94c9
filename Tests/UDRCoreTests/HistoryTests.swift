import DuckDB
import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

@Suite struct ChangeLogTests {
    /// Writes, transactions and row-level writes, and the log they leave.
    @Test func theChangeLogOfAScriptedSequenceIsExact() async throws {
        let (repo, _) = try makeRepository(segmentation: SegmentationPolicy(bits: 4, minimumRows: 8, maximumRows: 64))
        let parcels = try TableName("parcels")
        let sales = try TableName("sales")
        #expect(try await repo.latestTxID() == nil)
        _ = try await repo.write(parcels, from: .sql("SELECT r AS bbl, 'open' AS status FROM range(1000) t(r)"), key: ["bbl"])
        let afterFirst = try #require(try await repo.latestTxID())
        _ = try await repo.write(sales, from: .sql("SELECT r AS id, r * 10 AS price FROM range(50) t(r)"))
        try await repo.transaction(message: "night 2") { tx in
            // Replace: 3 rows changed, 2 deleted, 2 added.
            try await tx.write(
                parcels,
                from: .sql(
                    "SELECT bbl, CASE WHEN bbl < 3 THEN 'closed' ELSE status END AS status FROM parcels WHERE bbl >= 5 OR bbl < 3 UNION ALL SELECT 5000 + r, 'new' FROM range(2) t(r)"
                ))
            try await tx.apply(.append(.sql("SELECT 100 + r AS id, 1 AS price FROM range(4) t(r)")), to: sales)
        }
        _ = try await repo.apply(.upsert(.sql("SELECT 10 AS bbl, 'x' AS status UNION ALL SELECT 9000, 'y'")), to: parcels)
        _ = try await repo.apply(.delete(where: "status = 'new'"), to: parcels)
        _ = try await repo.apply(try .update(set: "price = price + 1", where: "id < 5"), to: sales)
        // Edits that change nothing leave no commit.
        let unchanged = try await repo.apply(.delete(where: "bbl < 0"), to: parcels)
        #expect(unchanged.unchanged)

        struct Line: Equatable {
            let table: String
            let from: Int?
            let to: Int?
            let counts: [Int64]
            let kind: ChangeKind
        }
        let all = try await repo.changes()
        #expect(all.map(\.txID) == all.map(\.txID).sorted())
        let lines = all.map { entry in
            entry.tables.map {
                Line(
                    table: $0.table.rawValue, from: $0.oldVersion, to: $0.newVersion, counts: [$0.inserted, $0.deleted, $0.updated],
                    kind: $0.kind)
            }
        }
        #expect(
            lines == [
                [Line(table: "parcels", from: nil, to: 1, counts: [1000, 0, 0], kind: .replace)],
                [Line(table: "sales", from: nil, to: 1, counts: [50, 0, 0], kind: .replace)],
                [
                    Line(table: "parcels", from: 1, to: 2, counts: [2, 2, 3], kind: .replace),
                    Line(table: "sales", from: 1, to: 2, counts: [4, 0, 0], kind: .replace),
                ],
                [Line(table: "parcels", from: 2, to: 3, counts: [1, 0, 1], kind: .rows)],
                [Line(table: "parcels", from: 3, to: 4, counts: [0, 2, 0], kind: .rows)],
                [Line(table: "sales", from: 2, to: 3, counts: [0, 0, 5], kind: .replace)],
            ])
        #expect(all[2].message == "night 2")
        #expect(all[4].message == "delete from parcels")

        let since = try await repo.changes(since: afterFirst)
        #expect(since.count == 5)
        let onlySales = try await repo.changes(since: afterFirst, table: sales, limit: 2)
        #expect(onlySales.map { $0.tables.map(\.table.rawValue) } == [["sales"], ["sales"]])
        #expect(onlySales.map(\.txID) == [all[1].txID, all[2].txID])
        #expect(try await repo.changes(limit: 1).map(\.txID) == [all[5].txID])
        #expect(try await repo.latestTxID() == all[5].txID)
        // The replace of the keyed table kept its segments in place and
        // recorded the rows it changed: its counts come from there.
        let versions = try await repo.versions(parcels)
        let replaced = try await repo.manifest(of: parcels, options: ReadOptions(commit: all[2].commit.hex))
        #expect(replaced.version == 2 && replaced.changes?.rows == RowCounts(inserted: 2, deleted: 2, updated: 3))
        // Counts a replace did not record (a keyless table's) are computed
        // once and kept in the catalog, for every process that asks later.
        _ = try await repo.write(sales, from: .sql("SELECT * FROM sales WHERE id <> 7"))
        let sold = try await repo.versions(sales)
        #expect(try repo.catalog.rowCounts(from: sold[2].manifest, to: sold[3].manifest) == nil)
        #expect(try await repo.changes(limit: 1).first?.tables.first?.deleted == 1)
        #expect(try repo.catalog.rowCounts(from: sold[2].manifest, to: sold[3].manifest) == RowCounts(deleted: 1))
        #expect(versions.count == 4)
    }
}

@Suite struct RetentionTests {
    @Test func expireAndGCFreeOldVersionsWhileATransactionStages() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("master")
        let keep = try TableName("sources")
        _ = try await repo.write(keep, from: .sql("SELECT r AS id FROM range(1000) t(r)"), key: ["id"])
        for night in 1...10 {
            _ = try await repo.write(
                t, from: .sql("SELECT r AS bbl, (r * \(night)) % 1009 AS score, 'n\(night)' AS tag FROM range(100000) t(r)"), key: ["bbl"])
        }
        let before = try await repo.storedBytes()
        // A transaction staged before expire and gc, committed after.
        let tx = try await repo.beginTransaction()
        try await tx.write(try TableName("staged"), from: .sql("SELECT r AS id, 'pending' AS s FROM range(50000) t(r)"), key: ["id"])

        let dry = try await repo.expire(.keepLast(2), dryRun: true)
        #expect(dry.commitsExpired == 9)
        #expect(try await repo.log().count == 11)
        let expired = try await repo.expire(.keepLast(2))
        #expect(expired.commitsExpired == 9)
        #expect(try await repo.log().count == 2)
        // Versions only expired commits read are gone; the rest stay readable.
        #expect(try await repo.versions(t).map(\.version) == [9, 10])
        #expect(try await repo.versions(keep).map(\.version) == [1])
        let gone = await #expect(throws: UDRError.self) {
            try await repo.query("SELECT 1 FROM master", options: ReadOptions(pins: [try TablePin(parsing: "master=3")]))
        }
        #expect(gone?.code == .notFound)

        // Within the grace period nothing goes; without it, the old versions do.
        let waiting = try await repo.gc()
        #expect(waiting.objectsDeleted == 0 && waiting.objectsWaiting > 0)
        let gc = try await repo.gc(grace: 0)
        let after = try await repo.storedBytes()
        print(
            "gc: 10 versions of a 100,000-row table, 8 expired: freed \(gc.bytesFreed) bytes in \(gc.objectsDeleted) objects; \(before) → \(after) bytes stored"
        )
        #expect(gc.bytesFreed > 0)
        #expect(after < before)
        #expect(try await repo.verify().ok)

        let committed = try await tx.commit()
        #expect(committed != nil)
        #expect(try await count(repo, "SELECT count(*) FROM staged") == 50000)
        #expect(try await count(repo, "SELECT count(DISTINCT tag) FROM master") == 1)
        #expect(try await repo.verify().ok)
        // The staged write reused key chunks of night 1 (the same keys cut
        // the same way), which refreshed night 1's pack: its dropped
        // objects waited while the transaction was live and go now.
        // Nothing that is still read goes with them.
        let again = try await repo.gc(grace: 0)
        #expect(try await repo.verify().ok)
        #expect(try await count(repo, "SELECT count(*) FROM staged") == 50000)
        #expect(try await count(repo, "SELECT count(*) FROM master") == 100000)
        #expect(try await repo.gc(grace: 0).objectsDeleted == 0, "after \(again.objectsDeleted) objects, nothing more is garbage")
    }

    /// A diff from a kept tag to the head after the versions between them
    /// were expired and collected: their change records cannot be
    /// followed, so the diff reads segments, and is still exact.
    @Test func aDiffAcrossExpiredVersionsReadsSegments() async throws {
        let (repo, _) = try makeRepository(segmentation: DiffTests.small)
        let p = DiffTests.table
        _ = try await repo.write(p, from: .sql(DiffTests.tableSQL(rows: 3000, seed: 2)), key: ["k"])
        _ = try await repo.createTag("start")
        _ = try await repo.apply(try .update(set: "a = a + 1", where: "k % 200 = 0"), to: p)
        _ = try await repo.apply(.delete(where: "k IN (10, 20)"), to: p)
        _ = try await repo.apply(.upsert(.sql("SELECT 15 AS k, 1 AS a, NULL::DECIMAL(10,2) AS b, 'n' AS c, [1] AS l")), to: p)
        _ = try await repo.apply(try .update(set: "c = c || '!'", where: "k % 1000 = 510"), to: p)
        let expected = RowCounts(inserted: 1, deleted: 2, updated: 180)
        #expect(try await repo.diff("start", "main").tables[0].rows == expected)
        #expect(try await repo.diff("start", "main").tables[0].fromChangeRecord)

        _ = try await repo.expire(.keepLast(1))
        _ = try await repo.gc(grace: 0)
        let reopened = try LocalRepository.open(at: repo.layout.root)
        let difference = try await reopened.diff("start", "main").tables[0]
        #expect(difference.rows == expected)
        #expect(!difference.fromChangeRecord)
        #expect(try await reopened.verify().ok)
    }

    @Test func gcRemovesWhatInterruptedWritesLeftBehind() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(try TableName("t"), from: .sql("SELECT r AS id FROM range(1000) t(r)"), key: ["id"])
        let fm = FileManager.default
        let objects = repo.layout.metadata.appendingPathComponent("objects/ab")
        try fm.createDirectory(at: objects, withIntermediateDirectories: true)
        let scratch = repo.layout.scratchDirectory.appendingPathComponent("write-crashed")
        try fm.createDirectory(at: scratch, withIntermediateDirectories: true)
        let stale = [objects.appendingPathComponent(".cdef.1.tmp"), scratch.appendingPathComponent("0.parquet")]
        let fresh = objects.appendingPathComponent(".cdef.2.tmp")
        for file in stale + [fresh] { try Data(repeating: 1, count: 1000).write(to: file) }
        let old = Date().addingTimeInterval(-7200)
        for path in stale + [scratch] { try fm.setAttributes([.modificationDate: old], ofItemAtPath: path.path) }

        let dry = try await repo.gc(dryRun: true)
        #expect(dry.abandonedBytesFreed == 2000)
        #expect(stale.allSatisfy { fm.fileExists(atPath: $0.path) })
        let report = try await repo.gc()
        #expect(report.abandonedBytesFreed == 2000)
        #expect(!fm.fileExists(atPath: stale[0].path) && !fm.fileExists(atPath: scratch.path))
        #expect(fm.fileExists(atPath: fresh.path), "a temporary file younger than the grace period may belong to a running write")
        #expect(try await repo.verify().ok)
        #expect(try await count(repo, "SELECT count(*) FROM t") == 1000)
    }

    /// A write in progress holds a lease: GC (even with no grace period)
    /// spares what it stored before committing, until the lease ends.
    @Test func gcSparesWhatAWriteInProgressStored() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(try TableName("t"), from: .sql("SELECT r AS id FROM range(1000) t(r)"), key: ["id"])
        let now = Date()
        let base = try repo.catalog.beginLease(
            id: "elsewhere:1:write", branch: "main", began: now.addingTimeInterval(-60), expires: now.addingTimeInterval(3600))
        #expect(base == (try repo.catalog.head(of: "main")))
        let data = Data("a blob a write stored before its commit".utf8)
        let id = ObjectID.of(data)
        _ = try repo.store.put(hashed: [(id, data)])

        let during = try await repo.gc(grace: 0)
        #expect(during.objectsDeleted == 0)
        #expect(try repo.store.contains(id))
        // An expired lease (its writer died on another machine) protects nothing.
        _ = try repo.catalog.beginLease(
            id: "elsewhere:2:write", branch: "main", began: now.addingTimeInterval(-7200), expires: now.addingTimeInterval(-3600))
        try repo.catalog.endLease("elsewhere:1:write")
        let after = try await repo.gc(grace: 0)
        #expect(after.objectsDeleted == 1)
        #expect(!(try repo.store.contains(id)))
        #expect(try repo.catalog.leases().isEmpty, "gc drops expired leases")
        #expect(try await repo.verify().ok)
    }

    /// A reader may have resolved a commit just before it expired: GC keeps
    /// what such a commit reaches for the grace period, however old the objects.
    @Test func gcSparesCommitsExpiredWithinTheGracePeriod() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("t")
        for night in 1...3 {
            _ = try await repo.write(t, from: .sql("SELECT r AS id, r * \(night) AS v FROM range(5000) t(r)"), key: ["id"])
        }
        let fm = FileManager.default
        let objects = repo.layout.metadata.appendingPathComponent("objects")
        let old = Date().addingTimeInterval(-7200)
        for case let file as URL in fm.enumerator(at: objects, includingPropertiesForKeys: nil)! {
            try fm.setAttributes([.modificationDate: old], ofItemAtPath: file.path)
        }
        let expired = try await repo.expire(.keepLast(1))
        #expect(expired.commitsExpired == 2)

        let spared = try await repo.gc(grace: 600)
        #expect(spared.objectsDeleted == 0)
        let freed = try await repo.gc(grace: 0)
        #expect(freed.objectsDeleted > 0)
        #expect(try await repo.verify().ok)
        #expect(try await count(repo, "SELECT sum(v) FROM t") == 3 * (4999 * 5000 / 2))
    }
}
