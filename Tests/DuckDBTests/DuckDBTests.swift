import DuckDB
import Foundation
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

    /// UUID, BIT and BIGNUM columns, which DuckDB's C value API cannot
    /// return (a UUID broke every column after it), read as their text,
    /// beside other columns, with repeated names, and with parameters.
    @Test func typesTheValueAPICannotReadComeBackAsText() throws {
        let c = try Database().connect()
        let uuid = "12345678-1234-5678-1234-567812345678"
        let rows = try c.query(
            "SELECT 'x' AS a, '\(uuid)'::UUID AS u, '0101'::BIT AS b, 123456789012345678901234567890::BIGNUM AS n, 7 AS a, NULL::UUID AS z;"
        )
        #expect(rows.columns.map(\.name) == ["a", "u", "b", "n", "a", "z"])
        #expect(rows.rows.map { $0.map(\.description) } == [["x", uuid, "0101", "123456789012345678901234567890", "7", "NULL"]])
        let bound = try c.query("SELECT $1::UUID AS u, $2 AS s", [.text(uuid), .text("y")])
        #expect(bound.rows.map { $0.map(\.description) } == [[uuid, "y"]])
        // A statement that cannot be read as a subquery says what to do.
        try c.execute("CREATE TABLE t (u UUID)")
        let error = #expect(throws: DuckDBError.self) { try c.query("INSERT INTO t VALUES ('\(uuid)') RETURNING u") }
        #expect(error?.message.contains("CAST AS VARCHAR") == true, "\(String(describing: error?.message))")
    }

    /// Nested values, ENUMs and the timestamps other than TIMESTAMP, which
    /// the value API reads as empty strings, read as their text.
    @Test func nestedEnumAndZonedValuesComeBackAsText() throws {
        let c = try Database().connect()
        try c.execute("SET TimeZone = 'UTC'")
        let rows = try c.query(
            """
            SELECT [1, 2] AS l, {'x': 1, 'y': 'a'} AS s, MAP(['k'], [2.5]) AS m, [1, 2]::INTEGER[2] AS a,
              union_value(n := 3) AS u, 'b'::ENUM('a', 'b') AS e, TIMESTAMP_S '2024-01-02 03:04:05' AS ts_s,
              TIMESTAMP_MS '2024-01-02 03:04:05.123' AS ts_ms, TIMESTAMP_NS '2024-01-02 03:04:05.123456789' AS ts_ns,
              TIMESTAMPTZ '2024-01-02 03:04:05+00' AS tz,
              TIMETZ '03:04:05+01' AS ttz, ['-0.0'::DOUBLE, 0.0] AS zeros, 'plain' AS v
            """)
        #expect(
            rows.rows.map { $0.map(\.description) } == [
                [
                    "[1, 2]", "{'x': 1, 'y': a}", "{k=2.5}", "[1, 2]", "3", "b", "2024-01-02 03:04:05", "2024-01-02 03:04:05.123",
                    "2024-01-02 03:04:05.123456789", "2024-01-02 03:04:05+00", "03:04:05+01", "[-0.0, 0.0]", "plain",
                ]
            ])
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

    @Test func interruptStopsALongQuery() throws {
        let db = try Database()
        let c = try db.connect()
        let handle = c.interruptHandle
        // Interrupts until the query has stopped: an interrupt that lands
        // before the query starts (a loaded machine) is not enough. A thread
        // of its own: a task could wait for a cooperative thread that the
        // tests' blocking queries hold until this query ends.
        let stopped = NSLock()
        nonisolated(unsafe) var done = false
        let interrupter = Thread {
            while !stopped.withLock({ done }) {
                usleep(200_000)
                handle.interrupt()
            }
        }
        interrupter.start()
        let error = #expect(throws: DuckDBError.self) {
            try c.query("SELECT count(*) FROM range(100000000000) a WHERE hash(a.range) = 7")
        }
        stopped.withLock { done = true }
        #expect(error?.code == .interrupted)
    }
}

@Suite struct ArrowTests {
    @Test func resultsTravelAsArrowAndBack() throws {
        let c = try Database().connect()
        let arrow = try c.queryArrow("SELECT i AS k, 'v' || i AS v, [i, NULL] AS l, {'a': i / 2} AS s FROM range(5000) t(i)")
        #expect(arrow.rowCount == 5000)
        #expect(arrow.columnNames == ["k", "v", "l", "s"])
        #expect(arrow.batches.count >= 2, "5,000 rows come in several batches")
        let stream = arrow.makeStream()
        defer { stream.pointee.release?(stream); stream.deallocate() }
        try c.register(stream, as: "from_arrow")
        let back = try c.query("SELECT count(*), sum(k), count(DISTINCT v), sum(l[1]), sum(s.a) FROM from_arrow").rows[0]
        let expected = try c.query("SELECT count(*), sum(i), count(DISTINCT 'v' || i), sum(i), sum(i / 2) FROM range(5000) t(i)").rows[0]
        #expect(back == expected)
    }

    /// A streamed result reaches DuckDB (another connection scans it)
    /// batch by batch, the same rows as the materialized one.
    @Test func aStreamedResultReadsBackTheSameRows() throws {
        let db = try Database()
        let sql = "SELECT i AS k, 'v' || i AS v, [i, NULL] AS l, {'a': i / 2} AS s FROM range(50000) t(i)"
        let streamed = try StreamingArrowResult(connection: try db.connect(), sql: sql)
        let stream = UnsafeMutablePointer<ArrowArrayStream>.allocate(capacity: 1)
        defer { stream.deallocate() }
        streamed.export(to: stream)
        let c = try db.connect()
        try c.register(stream, as: "streamed")
        let back = try c.query("SELECT count(*), sum(k), count(DISTINCT v), sum(l[1]), sum(s.a) FROM streamed").rows[0]
        #expect(back == (try c.query("SELECT count(*), sum(k), count(DISTINCT v), sum(l[1]), sum(s.a) FROM (\(sql))").rows[0]))
        stream.pointee.release?(stream)
        #expect(throws: DuckDBError.self) { try StreamingArrowResult(connection: try db.connect(), sql: "SELECT * FROM nowhere") }
    }

    @Test func arrowErrorsPassThrough() throws {
        let c = try Database().connect()
        let error = #expect(throws: DuckDBError.self) { try c.queryArrow("SELECT * FROM nowhere") }
        #expect(error?.message.contains("nowhere") == true)
    }
}
