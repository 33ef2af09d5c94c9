import DuckDB
import Testing

@Suite struct DuckDBBindingTests {
    @Test func loadsThePinnedVersion() throws {
        let library = try DuckDBLibrary.load()
        #expect(library.version == "v\(DuckDBLibrary.pinnedVersion)")
    }

    @Test func typedReadsAndBoundParameters() throws {
        let db = try Database(configuration: .init(threads: 1, memoryLimit: "1GB"))
        let c = try db.connect()
        let r = try c.query(
            "SELECT $1::INTEGER + 1 AS i, $2 || '!' AS s, $3::DOUBLE * 2 AS d, $4::BOOLEAN AS b, NULL AS n, $5::BLOB AS blob",
            [.int(41), .text("it's quoted\"; DROP TABLE x; --"), .double(1.25), .bool(true), .blob([0, 255, 7])])
        #expect(r[0, "i"] == .int(42))
        #expect(r[0, "s"] == .text("it's quoted\"; DROP TABLE x; --!"))
        #expect(r[0, "d"] == .double(2.5))
        #expect(r[0, "b"] == .bool(true))
        #expect(r[0, "n"] == .null)
        #expect(r[0, "blob"] == .text("\\x00\\xFF\\x07"))
        #expect(r.columns.map(\.name) == ["i", "s", "d", "b", "n", "blob"])
        let threads = try c.query("SELECT current_setting('threads')").scalar
        #expect(threads.int == 1)
    }

    @Test func passesDuckDBErrorsThrough() throws {
        let c = try Database().connect()
        let error = #expect(throws: DuckDBError.self) { try c.execute("SELEC 1") }
        #expect(error?.code == .query)
        #expect(error?.message.contains("syntax error") == true)
        let missing = #expect(throws: DuckDBError.self) { try c.query("SELECT * FROM nowhere") }
        #expect(missing?.message.contains("nowhere") == true)
    }

    @Test func preparedStatementsAreReusable() throws {
        let c = try Database().connect()
        try c.execute("CREATE TABLE t(k INTEGER, v VARCHAR)")
        let insert = try c.prepare("INSERT INTO t VALUES (?, ?)")
        for i in 0..<5 { _ = try insert.execute([.int(Int64(i)), .text("v\(i)")]) }
        #expect(try c.query("SELECT count(*), string_agg(v, ',' ORDER BY k) FROM t").rows[0] == [.int(5), .text("v0,v1,v2,v3,v4")])
        #expect(throws: DuckDBError.self) { try insert.execute([.int(1)]) }
    }

    @Test func interruptStopsALongQuery() async throws {
        let db = try Database()
        let c = try db.connect()
        let handle = c.interruptHandle
        let task = Task.detached {
            try await Task.sleep(for: .milliseconds(200))
            handle.interrupt()
        }
        let error = #expect(throws: DuckDBError.self) {
            try c.query("SELECT count(*) FROM range(100000000000) a WHERE hash(a.range) = 7")
        }
        #expect(error?.code == .interrupted)
        _ = try await task.value
    }
}
