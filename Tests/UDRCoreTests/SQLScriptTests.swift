import DuckDB
import Foundation
import Testing
import UDRTesting

@testable import UDRCore

/// The SQL lexer's split of scripts, and `query`'s refusal of writes.
@Suite struct SQLScriptTests {
    @Test func scriptsSplitAtTopLevelSemicolonsOnly() throws {
        let script = try SQLScript(
            """
            SELECT 'a;b' AS s, "we;ird" FROM t; -- a comment; still a comment
            /* a /* nested; */ comment */ INSERT INTO t VALUES ($$x;y$$, E'it\\'s;', $tag$;$tag$);
            ;  SELECT (SELECT 1; )
            """)
        #expect(script.statements.count == 3)
        #expect(script.statements.map(\.verb) == ["SELECT", "INSERT", "SELECT"])
        #expect(script.statements[0].text == "SELECT 'a;b' AS s, \"we;ird\" FROM t")
        #expect(try SQLScript("WITH a AS (SELECT 1), b(x) AS MATERIALIZED (SELECT 2) DELETE FROM t").statements[0].verb == "DELETE")
        #expect(throws: UDRError.self) { try SQLScript("SELECT 'unterminated") }
        #expect(throws: UDRError.self) { try SQLScript("SELECT /* open") }
        let name = try SQLScript("UPDATE org_1 . \"My Table\" SET a = 1").statements[0]
        #expect(name.name(at: 1)?.parts == ["org_1", "My Table"])
    }

    @Test func readsAreToldApartFromWrites() throws {
        let reads = [
            "SELECT 1", "  (SELECT 1) UNION ALL (SELECT 2)", "WITH a AS (SELECT 1 AS x) SELECT * FROM a", "FROM t", "VALUES (1), (2)",
            "TABLE t", "DESCRIBE t", "SHOW TABLES", "SUMMARIZE t", "EXPLAIN SELECT 1", "EXPLAIN ANALYZE SELECT 1",
            "EXPLAIN (FORMAT json) SELECT 1", "PRAGMA table_info('t')", "CALL pragma_version()", "CALL duckdb_settings()",
            "PIVOT t ON a USING sum(b)", "SELECT 'DROP TABLE t'", "SELECT 1; SELECT 2",
        ]
        for sql in reads {
            for statement in try SQLScript(sql).statements {
                #expect(statement.notAReadBecause == nil, "\(sql): \(statement.notAReadBecause ?? "")")
            }
        }
        let writes = [
            "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1", "DELETE FROM t", "MERGE INTO t USING s ON t.k = s.k WHEN MATCHED THEN DELETE",
            "CREATE TABLE x AS SELECT 1", "CREATE OR REPLACE TEMP TABLE x (a INT)", "DROP TABLE t", "ALTER TABLE t ADD COLUMN z INT",
            "TRUNCATE t", "COPY (SELECT 1) TO 'out.csv'", "COPY t FROM 'in.csv'", "ATTACH 'x.db' AS x", "DETACH x", "INSTALL spatial",
            "LOAD spatial", "FORCE INSTALL spatial", "SET threads = 1", "RESET threads", "USE memory", "BEGIN", "COMMIT", "ROLLBACK",
            "CHECKPOINT", "VACUUM", "EXPORT DATABASE 'x'", "IMPORT DATABASE 'x'", "PREPARE p AS SELECT 1", "EXECUTE p",
            "PRAGMA threads = 2", "PRAGMA enable_profiling", "CALL dbgen(sf = 1)", "EXPLAIN ANALYZE CREATE TABLE e AS SELECT 1",
            "WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", "CREATE SCHEMA s", "COMMENT ON TABLE t IS 'x'", "SELECT 1; DROP TABLE t",
        ]
        for sql in writes {
            let refused = try SQLScript(sql).statements.contains { $0.notAReadBecause != nil }
            #expect(refused, "\(sql) was taken for a read")
        }
    }

    @Test func queryRefusesWritesAndChangesNothing() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("t")
        _ = try await repo.write(t, from: .sql("SELECT range AS k, range * 2 AS a FROM range(10)"), key: ["k"])
        let before = try await repo.log()
        for sql in [
            "CREATE TABLE x AS SELECT 1", "INSERT INTO t VALUES (100, 1)", "UPDATE t SET a = 0", "DELETE FROM t", "DROP TABLE t",
            "SET threads = 1", "SELECT 1; CREATE TABLE y AS SELECT 2", "COPY (SELECT 1) TO 'x.csv'",
        ] {
            do {
                _ = try await repo.query(sql)
                Issue.record("\(sql) ran as a query")
            } catch {
                #expect(error.code == .readOnly, "\(sql)")
                #expect(error.message.contains("udr sql"), "\(error.message)")
            }
            await #expect(throws: UDRError.self) { _ = try await repo.queryArrow(sql) }
        }
        #expect(try await repo.log().map(\.id) == before.map(\.id))
        #expect(try await count(repo, "SELECT sum(a) FROM t") == 90)
        #expect(try await repo.tables().map(\.name) == [t])
        // A write whose rows come from SQL takes a query only.
        await #expect(throws: UDRError.self) { _ = try await repo.write(t, from: .sql("DELETE FROM t"), key: ["k"]) }
        #expect(try await count(repo, "SELECT count(*) FROM t") == 10)
    }
}
