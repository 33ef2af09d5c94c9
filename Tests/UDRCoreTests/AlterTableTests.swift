import DuckDB
import Foundation
import Testing
import UDRSQLite
import UDRTesting

@testable import UDRCore

/// ALTER TABLE through `Repository.sql` against plain DuckDB, and what
/// each change stores.
@Suite struct AlterTableTests {
    static func schema(_ rows: ResultSet) -> [String] { rows.rows.map { "\($0[0].description) \($0[1].description)" } }

    @Test func columnChangesMatchPlainDuckDBAndStoreOnlyWhatChanged() async throws {
        let (repo, dir) = try makeRepository(segmentation: SQLWriteTests.small)
        let plain = try scratchDuckDB()
        let rows = "SELECT i AS k, CASE WHEN i % 9 = 0 THEN NULL ELSE i * 3 END AS v, 's' || (i % 40) AS s FROM range(4000) t(i)"
        try plain.execute("CREATE TABLE t AS \(rows); CREATE TABLE kl AS SELECT v, s FROM t")
        _ = try await repo.write(try TableName("t"), from: .sql(rows), key: ["k"])
        _ = try await repo.sql("CREATE TABLE kl AS SELECT v, s FROM t")
        let statements: [(String, String)] = [
            ("ALTER TABLE t ADD COLUMN flag BOOLEAN", "t"),
            ("ALTER TABLE t ADD COLUMN n INTEGER DEFAULT 7", "t"),
            ("UPDATE t SET flag = v % 2 = 0 WHERE k < 100", "t"),
            ("ALTER TABLE t RENAME COLUMN v TO value", "t"),
            ("ALTER TABLE t ALTER COLUMN value TYPE VARCHAR", "t"),
            ("ALTER TABLE t ALTER value SET DATA TYPE BIGINT USING value::BIGINT * 2", "t"),
            ("ALTER TABLE t DROP COLUMN s", "t"),
            ("ALTER TABLE t ADD COLUMN s DOUBLE", "t"),
            ("ALTER TABLE t DROP COLUMN IF EXISTS nope", "t"),
            ("ALTER TABLE t ADD COLUMN IF NOT EXISTS n INTEGER", "t"),
            ("ALTER TABLE t RENAME k TO id", "t"),
            ("ALTER TABLE kl ADD COLUMN extra VARCHAR", "kl"),
            ("ALTER TABLE kl RENAME COLUMN s TO label", "kl"),
            ("ALTER TABLE kl DROP COLUMN v", "kl"),
            ("ALTER TABLE kl ALTER label TYPE VARCHAR USING upper(label)", "kl"),
        ]
        for (statement, table) in statements {
            try plain.execute(statement)
            _ = try await repo.sql(statement)
            try await SQLWriteTests.expectSame(table, repo, plain, dir, statement)
            let describe = "SELECT column_name, column_type FROM (DESCRIBE \(table))"
            #expect(Self.schema(try await repo.query(describe)) == Self.schema(try plain.query(describe)), "\(statement)")
        }
        let manifest = try await repo.manifest(of: try TableName("t"))
        #expect(manifest.key == ["id"])
        #expect(try await repo.verify().ok)
    }

    @Test func whatEachChangeStores() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("t")
        let first = try await repo.write(t, from: .sql(syntheticTableSQL(rows: 200_000)), key: ["k"])
        let added = try await repo.alter(t, .addColumn(name: "note", type: "VARCHAR"))
        let renamed = try await repo.alter(t, .renameColumn("g", to: "status"))
        let retyped = try await repo.alter(t, .changeType("a", to: "BIGINT"))
        print(
            "alter: a table of \(first.logicalBytes) bytes; adding a column stored \(added.bytesAdded), renaming one \(renamed.bytesAdded), widening one \(retyped.bytesAdded)"
        )
        // No segment written for an added column; a rename stores footers, a retype its column's chunks.
        #expect(added.bytesAdded < 10_000)
        #expect(renamed.bytesAdded < first.logicalBytes / 20)
        #expect(retyped.bytesAdded < first.logicalBytes / 4)
        #expect(try await count(repo, "SELECT count(*) FROM t WHERE note IS NULL AND status IS NOT NULL") == 200_000)
        let diff = try await repo.diff("main~3", "main")
        let table = try #require(diff.tables.first)
        #expect(Set(table.columnsAdded) == ["note", "status"])
        #expect(table.columnsDropped == ["g"])
        #expect(table.columnsRetyped == ["a"])
    }

    @Test func badChangesAreClearErrorsAndChangeNothing() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.sql("CREATE TABLE t (k INTEGER, s VARCHAR, PRIMARY KEY (k)); INSERT INTO t VALUES (1, '10'), (2, 'x2'), (3, NULL)")
        let log = try await repo.log().map(\.id)
        let cases: [(String, String)] = [
            ("ALTER TABLE t ALTER s TYPE INTEGER", "the row with k = (2) holds x2"),
            ("ALTER TABLE t DROP COLUMN k", "part of the key"),
            ("ALTER TABLE t ALTER k TYPE BIGINT", "part of the key"),
            ("ALTER TABLE t ADD COLUMN s INTEGER", "has a column 's' already"),
            ("ALTER TABLE t DROP COLUMN nope", "no column 'nope'"),
            ("ALTER TABLE t ADD COLUMN z NOTATYPE", "not a type"),
            ("ALTER TABLE t ALTER s SET DEFAULT 'a'", "only TYPE"),
            ("ALTER TABLE nope ADD COLUMN z INTEGER", "no such table"),
        ]
        for (sql, expected) in cases {
            let error = await #expect(throws: UDRError.self, "\(sql)") { _ = try await repo.sql(sql) }
            #expect(error?.message.contains(expected) == true, "\(sql): \(error?.message ?? "")")
        }
        #expect(try await repo.log().map(\.id) == log)
        #expect(try await repo.sql("ALTER TABLE IF EXISTS nope ADD COLUMN z INTEGER").commits.isEmpty)
        #expect(try await repo.query("SELECT s FROM t WHERE k = 2").scalar.string == "x2")
    }
}
