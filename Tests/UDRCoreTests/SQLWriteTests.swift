import DuckDB
import Foundation
import Testing
import UDRSQLite
import UDRTesting

@testable import UDRCore

/// SQL writes through `Repository.sql` against plain DuckDB running the
/// same statements on a copy of the same data.
@Suite struct SQLWriteTests {
    static let small = SegmentationPolicy(bits: 5, minimumRows: 64, maximumRows: 512)

    /// The repository's table and plain DuckDB's hold the same rows (EXCEPT ALL both ways).
    static func expectSame(_ table: String, _ repo: Repository, _ plain: Connection, _ dir: TemporaryDirectory, _ context: String) async throws {
        let file = dir.path("\(table)-\(UUID().uuidString).parquet")
        try await repo.export("SELECT * FROM \(table)", to: file, format: .parquet)
        let missing = try plain.query("SELECT count(*) FROM (FROM \(table) EXCEPT ALL FROM read_parquet('\(file)'))").scalar.int
        let extra = try plain.query("SELECT count(*) FROM (FROM read_parquet('\(file)') EXCEPT ALL FROM \(table))").scalar.int
        #expect(missing == 0 && extra == 0, "\(context): \(missing ?? -1) rows missing, \(extra ?? -1) extra in \(table)")
    }

    static let keyedRows = """
        SELECT i * 10 AS k, CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 7) % 100 END AS a,
               CASE WHEN i % 13 = 0 THEN NULL ELSE 's' || i END AS s, i * 0.25 AS d FROM range(3000) t(i)
        """
    static let keylessRows = "SELECT i % 50 AS a, CASE WHEN i % 7 = 0 THEN NULL ELSE 'n' || (i % 30) END AS s FROM range(2000) t(i)"

    static func setUp() async throws -> (Repository, Connection, TemporaryDirectory) {
        let (repo, dir) = try makeRepository(segmentation: small)
        let plain = try scratchDuckDB()
        try plain.execute("CREATE TABLE t (k BIGINT PRIMARY KEY, a BIGINT, s VARCHAR, d DECIMAL(12,2))")
        try plain.execute("INSERT INTO t \(keyedRows)")
        try plain.execute("CREATE TABLE kl AS \(keylessRows)")
        _ = try await repo.sql("CREATE TABLE t (k BIGINT, a BIGINT, s VARCHAR, d DECIMAL(12,2), PRIMARY KEY (k)); INSERT INTO t \(keyedRows)")
        _ = try await repo.sql("CREATE TABLE kl AS \(keylessRows)")
        try await expectSame("t", repo, plain, dir, "set-up")
        try await expectSame("kl", repo, plain, dir, "set-up")
        return (repo, plain, dir)
    }

    @Test func eachStatementKindMatchesPlainDuckDB() async throws {
        let (repo, plain, dir) = try await Self.setUp()
        let statements = [
            "INSERT INTO t VALUES (100001, NULL, 'x', 1.5), (100002, 7, NULL, NULL)",
            "INSERT INTO t (k, s) SELECT k + 200000, s FROM t WHERE k % 970 = 0",
            "UPDATE t SET a = a + 1, s = coalesce(s, 'was null') WHERE k % 130 = 0",
            "UPDATE t SET d = NULL WHERE a IS NULL",
            "UPDATE t SET s = src.s FROM (SELECT k, 'from ' || k AS s FROM t WHERE k % 1010 = 0) src WHERE t.k = src.k",
            "UPDATE t AS x SET a = (SELECT max(a) FROM t) WHERE x.k = 20",
            "UPDATE t SET k = k + 5000000 WHERE k % 10000 = 10",
            "DELETE FROM t WHERE k % 170 = 30",
            "DELETE FROM t USING (SELECT k FROM t WHERE a % 5 = 0 AND k < 10000) x WHERE t.k = x.k",
            "DELETE FROM t WHERE a > (SELECT avg(a) FROM t) AND k BETWEEN 20000 AND 21000",
            """
            MERGE INTO t USING (SELECT i * 15 AS k, i AS a FROM range(400) r(i)) src ON t.k = src.k
            WHEN MATCHED AND src.a % 2 = 0 THEN UPDATE SET a = src.a
            WHEN MATCHED AND src.a % 3 = 0 THEN DELETE
            WHEN NOT MATCHED THEN INSERT (k, a) VALUES (src.k, src.a)
            """,
            "INSERT OR REPLACE INTO t VALUES (30, -1, 'replaced', 0), (999999, -2, 'new', 0)",
            "INSERT INTO t VALUES (40, -3, 'conflict', 1), (999998, -4, NULL, 2) ON CONFLICT DO UPDATE SET a = excluded.a, s = t.s || '+'",
            "INSERT OR IGNORE INTO t VALUES (50, -5, 'ignored', 0), (999997, -6, 'kept', 0)",
            "UPDATE t SET s = upper(s) WHERE k IN (SELECT k FROM t WHERE a = 3)",
            "INSERT INTO kl VALUES (NULL, NULL), (1, 'dup'), (1, 'dup')",
            "UPDATE kl SET s = s || '!' WHERE a = 3",
            "UPDATE kl SET a = NULL WHERE s IS NULL AND a < 10",
            "DELETE FROM kl WHERE a = 7 OR s = 'n4'",
            "DELETE FROM kl USING (SELECT 12 AS a) x WHERE kl.a = x.a",
            """
            MERGE INTO kl USING (SELECT 20 AS a, 'merged' AS s UNION ALL SELECT 1000, 'brand new') src ON kl.a = src.a
            WHEN MATCHED THEN UPDATE SET s = src.s WHEN NOT MATCHED THEN INSERT VALUES (src.a, src.s)
            """,
            "UPDATE kl SET a = a * 2",
        ]
        for statement in statements {
            try plain.execute(statement)
            let result = try await repo.sql(statement)
            #expect(result.commits.count == 1, "\(statement) made \(result.commits.count) commits")
            for table in ["t", "kl"] { try await Self.expectSame(table, repo, plain, dir, statement) }
        }
        // The row verbs on the keyless table, whose repeating rows make equal segments.
        try plain.execute("DELETE FROM kl WHERE a = 18; UPDATE kl SET s = 'u' WHERE a = 22")
        _ = try await repo.apply(.delete(where: "a = 18"), to: try TableName("kl"))
        _ = try await repo.apply(try .update(set: "s = 'u'", where: "a = 22"), to: try TableName("kl"))
        try await Self.expectSame("kl", repo, plain, dir, "row verbs")
        #expect(try await repo.verify().ok)
    }

    @Test func scriptsCommitOncePerGroupAndRollBack() async throws {
        let (repo, plain, dir) = try await Self.setUp()
        let before = try await repo.log().count

        // A rollback in the middle of a script: what it wraps is gone, the rest commits.
        let script = """
            UPDATE t SET a = 0 WHERE k = 10;
            BEGIN; DELETE FROM t WHERE k < 1000; INSERT INTO kl VALUES (-1, 'gone'); ROLLBACK;
            BEGIN TRANSACTION; INSERT INTO t VALUES (777777, 1, 'in block', 1); UPDATE t SET a = a + 100 WHERE k = 777777; DELETE FROM kl WHERE a = 2; COMMIT;
            SELECT count(*) AS n FROM t
            """
        try plain.execute(script.replacingOccurrences(of: "SELECT count(*) AS n FROM t", with: ""))
        let result = try await repo.sql(script)
        #expect(result.commits.count == 2)
        #expect(result.statements.last?.rows?.scalar.int == (try plain.query("SELECT count(*) FROM t").scalar.int))
        #expect(try await repo.log().count == before + 2)
        for table in ["t", "kl"] { try await Self.expectSame(table, repo, plain, dir, "script") }
        #expect(try await count(repo, "SELECT a FROM t WHERE k = 777777") == 101)

        // --atomic: one commit, and an error anywhere commits nothing.
        let atomic = try await repo.sql("UPDATE t SET a = 1 WHERE k = 20; DELETE FROM kl WHERE a = 4", atomic: true)
        #expect(atomic.commits.count == 1)
        try plain.execute("UPDATE t SET a = 1 WHERE k = 20; DELETE FROM kl WHERE a = 4")
        let log = try await repo.log().map(\.id)
        await #expect(throws: UDRError.self) {
            _ = try await repo.sql("UPDATE t SET a = 2 WHERE k = 20; INSERT INTO t VALUES (20, 0, 'dup', 0)", atomic: true)
        }
        // Without --atomic, the statements before the failing one stay committed, and the error says so.
        let failed = await #expect(throws: UDRError.self) {
            _ = try await repo.sql("UPDATE t SET a = 3 WHERE k = 30; INSERT INTO nope VALUES (1); UPDATE t SET a = 4 WHERE k = 40")
        }
        #expect(failed?.message.contains("statement 2 of 3") == true, "\(failed?.message ?? "")")
        #expect(failed?.message.contains("had committed 1 commit") == true, "\(failed?.message ?? "")")
        try plain.execute("UPDATE t SET a = 3 WHERE k = 30")
        #expect(try await repo.log().count == log.count + 1)
        // An error inside BEGIN … COMMIT commits nothing of the block.
        await #expect(throws: UDRError.self) {
            _ = try await repo.sql("BEGIN; UPDATE t SET a = 5 WHERE k = 50; UPDATE t SET nope = 1; COMMIT")
        }
        await #expect(throws: UDRError.self) { _ = try await repo.sql("BEGIN; UPDATE t SET a = 5 WHERE k = 50") }
        #expect(try await repo.log().count == log.count + 1)
        for table in ["t", "kl"] { try await Self.expectSame(table, repo, plain, dir, "after failures") }

        // --tx stages in an open transaction, committed with it.
        let tx = try await repo.beginTransaction()
        _ = try await tx.sql("UPDATE t SET a = 6 WHERE k = 60; INSERT INTO kl VALUES (6, 'tx')")
        #expect(try await count(repo, "SELECT a FROM t WHERE k = 60") != 6)
        try await tx.commit()
        try plain.execute("UPDATE t SET a = 6 WHERE k = 60; INSERT INTO kl VALUES (6, 'tx')")
        for table in ["t", "kl"] { try await Self.expectSame(table, repo, plain, dir, "--tx") }
        #expect(try await repo.verify().ok)
    }

    @Test func changesDiffAndHistorySeeSQLWrites() async throws {
        let (repo, plain, _) = try await Self.setUp()
        let updated = try plain.query("SELECT count(*) FROM t WHERE k % 70 = 0 AND a IS NOT NULL").scalar.int ?? 0
        let u = try await repo.sql("UPDATE t SET a = a + 1 WHERE k % 70 = 0 AND a IS NOT NULL")
        #expect(u.statements[0].write?.counts == RowCounts(updated: updated))
        let d = try await repo.sql("DELETE FROM t WHERE k BETWEEN 100 AND 190")
        #expect(d.statements[0].write?.counts == RowCounts(deleted: 10))
        let i = try await repo.sql("INSERT INTO t SELECT 900000 + range, 1, 'i', 0 FROM range(25)")
        #expect(i.statements[0].write?.counts == RowCounts(inserted: 25))
        let changes = try await repo.changes(table: try TableName("t"), limit: 3)
        #expect(changes.map { $0.tables[0].updated } == [updated, 0, 0])
        #expect(changes.map { $0.tables[0].deleted } == [0, 10, 0])
        #expect(changes.map { $0.tables[0].inserted } == [0, 0, 25])
        // Across the three, a row updated and then deleted counts as deleted.
        let net = try plain.query("SELECT count(*) FROM t WHERE k % 70 = 0 AND a IS NOT NULL AND k NOT BETWEEN 100 AND 190").scalar.int ?? 0
        let diff = try await repo.diff("main~3", "main")
        #expect(diff.tables.first { $0.table.rawValue == "t" }?.rows == RowCounts(inserted: 25, deleted: 10, updated: net))

        for value in [11, 12, 13] { _ = try await repo.sql("UPDATE t SET s = 'v\(value)' WHERE k = 2000") }
        let history = try await repo.history(of: try TableName("t"), key: ["k": "2000"])
        let column = try #require(history.rows.columns.firstIndex { $0.name == "s" })
        #expect(history.rows.rows.suffix(3).map { $0[column].string } == ["v11", "v12", "v13"])
    }

    @Test func badStatementsAreClearErrorsAndCommitNothing() async throws {
        let (repo, _, _) = try await Self.setUp()
        let log = try await repo.log().map(\.id)
        let cases: [(String, String)] = [
            ("UPDATE nope SET a = 1", "no such table"),
            ("INSERT INTO nope VALUES (1)", "no such table"),
            ("INSERT INTO t VALUES (10, 1, 'x', 1)", "already exist"),
            ("INSERT INTO t VALUES (NULL, 1, 'x', 1)", "NULL in the key"),
            ("INSERT INTO t VALUES (1, 1, 'x', 1), (1, 2, 'y', 2)", "more than once"),
            ("UPDATE t SET k = 20 WHERE k = 10", "already exist"),
            ("UPDATE t SET nope = 1", "nope"),
            ("INSERT OR REPLACE INTO kl VALUES (1, 'x')", "has no key"),
            ("CREATE TABLE t AS SELECT 1 AS k", "already"),
            ("CREATE TABLE c (a INTEGER CHECK (a > 0))", "CHECK"),
            ("CREATE TABLE c (a INTEGER DEFAULT 3)", "DEFAULT"),
            ("DELETE FROM t WHERE nope = 1", "nope"),
            ("SELEC 1", "syntax error"),
        ]
        for (sql, expected) in cases {
            do {
                _ = try await repo.sql(sql)
                Issue.record("\(sql) succeeded")
            } catch {
                #expect(error.message.contains(expected), "\(sql): \(error.message)")
            }
        }
        #expect(try await repo.log().map(\.id) == log)
        #expect(try await count(repo, "SELECT count(*) FROM t") == 3000)
        #expect(try await repo.verify().ok)
    }
}
