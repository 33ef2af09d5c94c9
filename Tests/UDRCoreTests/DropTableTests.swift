import DuckDB
import Foundation
import Testing
import UDRSQLite
import UDRTesting

@testable import UDRCore

/// Dropped tables: gone from the head, their history kept while retained
/// commits hold it, freed by GC after.
@Suite struct DropTableTests {
    @Test func aDroppedTableKeepsItsHistoryUntilGC() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("t")
        let keep = try TableName("keep")
        _ = try await repo.write(t, from: .sql("SELECT range AS k, range * 2 AS v FROM range(1000)"), key: ["k"])
        _ = try await repo.write(keep, from: .sql("SELECT 1 AS k"), key: ["k"])
        _ = try await repo.sql("UPDATE t SET v = -1 WHERE k = 5")
        let dropped = try await repo.sql("DROP TABLE t")
        #expect(dropped.commits.count == 1)
        #expect(try await repo.tables().map(\.name) == [keep])
        let missing = await #expect(throws: UDRError.self) { _ = try await repo.query("SELECT count(*) FROM t") }
        #expect(missing?.message.contains("t is not in this snapshot (it was dropped or renamed); its last version, 2, reads with --at t=2") == true, "\(missing?.message ?? "")")

        // Log, time travel and history still reach it.
        let log = try await repo.log(table: t)
        #expect(log.count == 3)
        #expect(log[0].commit.changes.first { $0.table == t }?.newVersion == nil)
        #expect(log[0].commit.changes.first { $0.table == t }?.rows == RowCounts(deleted: 1000))
        #expect(try await count(repo, "SELECT v FROM t WHERE k = 5", options: ReadOptions(pins: [try TablePin(parsing: "t=2")])) == -1)
        #expect(try await count(repo, "SELECT count(*) FROM t", options: ReadOptions(commit: "main~1")) == 1000)
        let history = try await repo.history(of: t, key: ["k": "5"])
        #expect(history.rows.count == 2)
        let diff = try await repo.diff("main~1", "main")
        #expect(diff.tables.first { $0.table == t }?.status == .dropped)

        // Bad input: dropped twice, or a table that never was.
        for sql in ["DROP TABLE t", "DROP TABLE nope"] {
            let error = await #expect(throws: UDRError.self) { _ = try await repo.sql(sql) }
            #expect(error?.message.contains("there is no such table on main") == true, "\(error?.message ?? "")")
        }
        #expect(try await repo.sql("DROP TABLE IF EXISTS t").commits.isEmpty)
        #expect(try await repo.drop(t, ifExists: true) == nil)
        #expect(try await repo.log().count == 4)

        // GC keeps its objects while a retained commit holds them, frees them after.
        let store = try #require(repo.localStore as? LocalObjectStore)
        let manifest = try #require(try await repo.versions(t).last?.manifest)
        _ = try await repo.gc(grace: 0)
        #expect(try store.size(manifest) != nil)
        _ = try await repo.write(keep, from: .sql("SELECT 2 AS k"), key: ["k"])
        _ = try await repo.expire(.keepLast(1))
        let freed = try await repo.gc(grace: 0)
        #expect(freed.objectsDeleted > 0)
        #expect(try store.size(manifest) == nil)
        #expect(try await repo.verify().ok)
        #expect(try await count(repo, "SELECT k FROM keep") == 2)
    }

    @Test func dropsInTransactionsAndScripts() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("t")
        _ = try await repo.write(t, from: .sql("SELECT range AS k FROM range(10)"), key: ["k"])
        // Dropped and created again in one transaction: one commit, a new version.
        let tx = try await repo.beginTransaction()
        try await tx.drop(t)
        #expect(try await tx.query("SELECT count(*) FROM duckdb_views() WHERE view_name = 't'").scalar.int == 0)
        _ = try await tx.write(t, from: .sql("SELECT 'x' AS s"), key: [])
        try await tx.commit()
        #expect(try await repo.query("SELECT s FROM t").scalar.string == "x")
        // A rolled-back drop leaves the table; a committed one in a script drops it.
        _ = try await repo.sql("BEGIN; DROP TABLE t; ROLLBACK")
        #expect(try await count(repo, "SELECT count(*) FROM t") == 1)
        _ = try await repo.sql("BEGIN; CREATE TABLE u AS SELECT 1 AS a; DROP TABLE t; COMMIT")
        #expect(try await repo.tables().map(\.name.rawValue) == ["u"])
        // A table created and dropped in one transaction leaves nothing.
        let before = try await repo.log().count
        _ = try await repo.sql("BEGIN; CREATE TABLE v AS SELECT 1 AS a; DROP TABLE v; COMMIT")
        #expect(try await repo.log().count == before)
        #expect(try await repo.tables().map(\.name.rawValue) == ["u"])
    }

    @Test func mergeCarriesADropAndConflictsWithAChange() async throws {
        let (repo, _) = try makeRepository()
        let a = try TableName("a")
        let b = try TableName("b")
        _ = try await repo.write(a, from: .sql("SELECT range AS k, 0 AS v FROM range(10)"), key: ["k"])
        _ = try await repo.write(b, from: .sql("SELECT range AS k, 0 AS v FROM range(10)"), key: ["k"])
        _ = try await repo.createBranch("cleanup")
        _ = try await repo.drop(a, branch: "cleanup")
        _ = try await repo.drop(b, branch: "cleanup")
        _ = try await repo.sql("UPDATE b SET v = 1 WHERE k = 1")  // main changes b meanwhile
        let conflicted = try await repo.merge("cleanup")
        #expect(conflicted.outcome == .conflicts)
        #expect(conflicted.conflicts.map(\.table) == [b])
        #expect(try await repo.tables().count == 2)
        let merged = try await repo.merge("cleanup", strategy: .ours)
        #expect(merged.outcome == .merged)
        #expect(try await repo.tables().map(\.name) == [b])
        #expect(try await count(repo, "SELECT v FROM b WHERE k = 1") == 1)
    }

    @Test func schemasAreNamespacesOfTables() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.sql("CREATE SCHEMA org_1; CREATE TABLE org_1.a AS SELECT 1 AS x; CREATE TABLE org_1.b AS SELECT 2 AS x; CREATE TABLE c AS SELECT 3 AS x")
        #expect(try await repo.tables().map(\.name.rawValue) == ["c", "org_1.a", "org_1.b"])
        let exists = await #expect(throws: UDRError.self) { _ = try await repo.sql("CREATE SCHEMA org_1") }
        #expect(exists?.message.contains("exists already") == true)
        #expect(try await repo.sql("CREATE SCHEMA IF NOT EXISTS org_1").commits.isEmpty)
        let restricted = await #expect(throws: UDRError.self) { _ = try await repo.sql("DROP SCHEMA org_1") }
        #expect(restricted?.message.contains("CASCADE") == true)
        let before = try await repo.log().count
        #expect(try await repo.sql("DROP SCHEMA org_1 CASCADE").commits.count == 1)
        #expect(try await repo.log().count == before + 1)
        #expect(try await repo.tables().map(\.name.rawValue) == ["c"])
        #expect(try await repo.sql("DROP SCHEMA IF EXISTS org_1").commits.isEmpty)
        await #expect(throws: UDRError.self) { _ = try await repo.sql("DROP SCHEMA org_1") }
    }
}
