import DuckDB
import Foundation
import Testing
import UDRCore
import UDRTesting

/// Every DuckDB type, NULL anywhere, 20,000 rows in a non-monotonic order
/// (so a keyless table spans several segments and its order matters).
let allTypesSQL = """
    SELECT
      (i * 7919) % 20000 AS id,
      CASE WHEN i % 11 = 0 THEN NULL ELSE (i % 127)::TINYINT END AS t_tinyint,
      (i % 32000 - 16000)::SMALLINT AS t_smallint,
      ((i * 1000003) % 2147483647)::INTEGER AS t_integer,
      CASE WHEN i = 3 THEN 9223372036854775807 ELSE i * 1000000007 END::BIGINT AS t_bigint,
      CASE WHEN i = 5 THEN 170141183460469231731687303715884105727::HUGEINT ELSE (i::HUGEINT * 10000000000000000000) END AS t_hugeint,
      CASE WHEN i = 7 THEN 340282366920938463463374607431768211455::UHUGEINT ELSE i::UHUGEINT END AS t_uhugeint,
      (i % 255)::UTINYINT AS t_utinyint, (i % 65535)::USMALLINT AS t_usmallint, (i * 3)::UINTEGER AS t_uinteger,
      CASE WHEN i = 9 THEN 18446744073709551615::UBIGINT ELSE i::UBIGINT END AS t_ubigint,
      (i / 100)::DECIMAL(4,1) AS t_dec4, (i * 1.25)::DECIMAL(9,2) AS t_dec9, (i * 1.001)::DECIMAL(18,3) AS t_dec18,
      CASE WHEN i = 11 THEN 12345678901234567890.123456789012345678::DECIMAL(38,18) ELSE i::DECIMAL(38,18) / 7 END AS t_dec38,
      CASE i % 5 WHEN 0 THEN 'nan'::FLOAT WHEN 1 THEN 'inf'::FLOAT WHEN 2 THEN '-inf'::FLOAT WHEN 3 THEN '-0.0'::FLOAT ELSE (i / 3)::FLOAT END AS t_float,
      CASE i % 5 WHEN 0 THEN 'nan'::DOUBLE WHEN 1 THEN 'inf'::DOUBLE WHEN 2 THEN '-inf'::DOUBLE WHEN 3 THEN '-0.0'::DOUBLE ELSE i / 7 END AS t_double,
      CASE i % 4 WHEN 0 THEN 'héllo wörld ' || i WHEN 1 THEN '日本語 🦆 ' || i WHEN 2 THEN '' ELSE 'quote''s "and" \\ back' END AS t_varchar,
      ('\\x00\\xFF' || i::VARCHAR)::BLOB AS t_blob,
      i % 3 = 0 AS t_boolean,
      DATE '1970-01-01' + (i * 37 % 40000)::INTEGER AS t_date,
      TIME '00:00:00' + to_microseconds(i * 123456789 % 86400000000) AS t_time,
      TIMESTAMP '2000-01-01' + to_microseconds(i * 987654321) AS t_timestamp,
      (TIMESTAMP '2000-01-01' + to_seconds(i * 1000))::TIMESTAMP_S AS t_timestamp_s,
      (TIMESTAMP '2000-01-01' + to_milliseconds(i * 1001))::TIMESTAMP_MS AS t_timestamp_ms,
      (TIMESTAMP '2000-01-01' + to_microseconds(i * 1000003))::TIMESTAMP_NS AS t_timestamp_ns,
      TIMESTAMPTZ '2020-06-01 12:00:00+00' + to_microseconds(i * 7777777) AS t_timestamptz,
      ('12:34:56.' || lpad((i % 1000000)::VARCHAR, 6, '0') || '+0' || (i % 10) || ':30')::TIMETZ AS t_timetz,
      to_months(i % 30) + to_days(i % 40 - 20) + to_microseconds(i * 1234567) AS t_interval,
      ('12345678-1234-5678-1234-' || lpad(i::VARCHAR, 12, '0'))::UUID AS t_uuid,
      ['sad', 'ok', 'happy'][i % 3 + 1]::ENUM('sad', 'ok', 'happy') AS t_enum,
      CASE WHEN i % 13 = 0 THEN NULL ELSE [i, NULL, i + 1] END AS t_list,
      [i::DOUBLE, i / 2, -0.0]::DOUBLE[3] AS t_array,
      {'a': i, 'b': 'x' || i, 'c': CASE WHEN i % 2 = 0 THEN NULL ELSE [i::HUGEINT] END} AS t_struct,
      MAP(['k' || i, 'z'], [i, NULL]) AS t_map,
      [{'when': INTERVAL 1 DAY * (i % 9), 'tags': ['a', NULL], 'big': i::HUGEINT}] AS t_nested
    FROM range(20000) t(i)
    """

@Suite(.serialized) struct FidelityTests {
    /// `EXCEPT ALL` both ways, plus the text form of every value (which
    /// tells -0.0 from 0.0 and keeps NaN), and DESCRIBE.
    func expectIdentical(_ repo: Repository, table: String, to original: String, options: ReadOptions = .init()) async throws {
        let a = try await count(repo, "SELECT count(*) FROM (SELECT * FROM \(table) EXCEPT ALL \(original))", options: options)
        let b = try await count(repo, "SELECT count(*) FROM ((\(original)) EXCEPT ALL SELECT * FROM \(table))", options: options)
        #expect(a == 0)
        #expect(b == 0)
        let described = try await repo.query("SELECT column_name, column_type FROM (DESCRIBE \(table))", options: options).rows
        let expected = try await repo.query("SELECT column_name, column_type FROM (DESCRIBE \(original))", options: options).rows
        #expect(described == expected)
        // Row text in read order: tells -0.0 from 0.0, and a reordered keyless table.
        func ordered(_ relation: String) -> String {
            "SELECT md5(string_agg(r, '|' ORDER BY pos)) FROM (SELECT row_number() OVER () AS pos, CAST(t AS VARCHAR) AS r FROM \(relation) t)"
        }
        let textA = try await repo.query(ordered(table), options: options).rows
        let textB = try await repo.query(ordered("(\(original))"), options: options).rows
        #expect(textA == textB, "values differ in text form (row order or -0.0/NaN)")
    }

    @Test func everyTypeRoundTripsFromSQL() async throws {
        let (repo, _) = try makeRepository()
        let result = try await repo.write(try TableName("all_types"), from: .sql(allTypesSQL), key: [])
        #expect(result.rows == 20000)
        #expect(result.segments > 1, "a keyless table of 20,000 rows spans several segments")
        try await expectIdentical(repo, table: "all_types", to: allTypesSQL)
        // Keyed: ordered by the key, still identical as a set.
        _ = try await repo.write(try TableName("all_types_keyed"), from: .sql(allTypesSQL), key: ["id"])
        let a = try await count(repo, "SELECT count(*) FROM (SELECT * FROM all_types_keyed EXCEPT ALL \(allTypesSQL))")
        #expect(a == 0)
        let ordered = try await count(
            repo, "SELECT count(*) FROM (SELECT id, lag(id) OVER () AS prev FROM all_types_keyed) WHERE prev > id")
        #expect(ordered == 0, "a keyed table reads back in key order")
    }

    /// A row edit's change record holds whole rows of every type: the
    /// change feed read from it gives the old and new rows exactly.
    @Test func everyTypeRoundTripsThroughAChangeRecord() async throws {
        let (repo, _) = try makeRepository()
        let table = try TableName("all_types_keyed")
        _ = try await repo.write(table, from: .sql(allTypesSQL), key: ["id"])
        _ = try await repo.apply(.delete(where: "id % 1000 = 3"), to: table)
        _ = try await repo.apply(try .update(set: "t_varchar = t_varchar || '!'", where: "id % 1000 = 5"), to: table)
        for (ref, expected) in [
            ("main~2", "SELECT 'delete' AS _change, * FROM (\(allTypesSQL)) WHERE id % 1000 = 3 ORDER BY id"),
            (
                "main~1",
                """
                SELECT _change, * EXCLUDE (_change, r) FROM (
                  SELECT 'update_preimage' AS _change, 0 AS r, * FROM (\(allTypesSQL)) WHERE id % 1000 = 5
                  UNION ALL SELECT 'update_postimage', 1, * REPLACE (t_varchar || '!' AS t_varchar) FROM (\(allTypesSQL)) WHERE id % 1000 = 5
                ) ORDER BY id, r
                """
            ),
        ] {
            let next = ref == "main~2" ? "main~1" : "main"
            #expect(try await repo.diff(ref, next).tables.first?.fromChangeRecord == true)
            let feed = try await repo.diffRows(ref, next, as: .feed)
            let want = try await repo.query(expected)
            #expect(feed.columns == want.columns, "\(ref): the feed's columns or types differ")
            #expect(feed.rows.count == (ref == "main~2" ? 20 : 40), "20 rows deleted, 20 updated (each before and after)")
            #expect(feed.rows.map { $0.map(\.description) } == want.rows.map { $0.map(\.description) }, "\(ref)")
        }
    }

    /// DOUBLE columns of decimals stored as DECIMAL(18,k), segment by
    /// segment, where every value reads back bit-exactly; a segment with a
    /// value that would not (a third, -0.0, NaN, inf, 5e18, 1e-10) keeps
    /// the column a DOUBLE. The table reads back identical through read
    /// groups and through every segment's own file (types mixed in one read).
    @Test func decimalValuedDoublesReadBackExactlyWhereverTheyAreStored() async throws {
        let sql = """
            SELECT i AS k,
              (hash(i) % 10000000)::BIGINT / 100 AS price,
              CASE WHEN i BETWEEN 20000 AND 20004 THEN 1 / 3 ELSE (hash(i * 3) % 1000000)::BIGINT / 10000 END AS score,
              CASE i % 9 WHEN 0 THEN NULL WHEN 1 THEN 123456789012.5 WHEN 2 THEN 1e17 WHEN 3 THEN 1e-9 WHEN 4 THEN -2.5 ELSE i END::DOUBLE AS wide,
              CASE i WHEN 41000 THEN '-0.0'::DOUBLE WHEN 41001 THEN 'nan'::DOUBLE WHEN 45000 THEN 'inf'::DOUBLE WHEN 47000 THEN 5e18
                     WHEN 10000 THEN 1e-10 ELSE (i % 1000) / 8 END AS edge,
              i / 7 AS ratio
            FROM range(60000) t(i)
            """
        for grouping in [testReadGrouping, .off] {
            let (repo, _) = try makeRepository(segmentation: tenThousandRowSegments, readGrouping: grouping)
            let table = try TableName("prices")
            _ = try await repo.write(table, from: .sql(sql), key: ["k"])
            try await expectIdentical(repo, table: "prices", to: sql)
            let segments = try await repo.manifest(of: table).segments
            #expect(segments.count == 7)
            let holds = Self.holds
            for segment in segments {
                let stored = segment.storedTypes ?? [:]
                #expect(stored["price"] == "DECIMAL(18,2)")
                #expect(stored["score"] == (holds(segment, [20000]) ? nil : "DECIMAL(18,4)"))
                // (None of these values is in the segments the write samples:
                // the first, middle and last of seven.)
                #expect(stored["edge"] == (holds(segment, [10000, 41000, 45000, 47000]) ? nil : "DECIMAL(18,3)"))
                #expect((segment.withoutDictionaries == true) == holds(segment, [41000]), "-0.0 is kept without dictionaries")
                // 123456789012.5 needs one place, 1e-9 nine: no decimal holds both.
                #expect(stored["wide"] == nil && stored["ratio"] == nil && stored["k"] == nil)
            }
            // A value changed from one that needs a DOUBLE to one that does
            // not: the diff from segments (their column types differ) sees
            // only the changed rows, with their exact old and new values.
            _ = try await repo.apply(try .update(set: "score = 0.25", where: "k BETWEEN 20000 AND 20004"), to: table)
            let fixed = try await repo.manifest(of: table).segments.first { holds($0, [20000]) }
            #expect(fixed?.storedTypes?["score"] == "DECIMAL(18,4)")
            let counts = try #require(try await repo.diff("main~1", "main", key: ["k"]).tables.first).rows
            #expect(counts == RowCounts(updated: 5))
            let cells = try await repo.diffRows("main~1", "main", key: ["k"]).rows.map { $0.map(\.string) }
            #expect(cells.count == 5 && cells.allSatisfy { $0[3] == "score" && $0[4] == "0.3333333333333333" && $0[5] == "0.25" }, "\(cells)")
        }
    }

    /// Whether `segment` holds any of `keys` by its stats of column `k`.
    static func holds(_ segment: SegmentRef, _ keys: [Int64]) -> Bool {
        let (low, high) = (Int64(segment.stats["k"]?.min ?? "") ?? .max, Int64(segment.stats["k"]?.max ?? "") ?? .min)
        return keys.contains { $0 >= low && $0 <= high }
    }

    /// DuckDB's Parquet dictionary stores -0.0 as 0.0 where both occur in
    /// a column. A segment holding -0.0 anywhere (a column, a LIST, STRUCT,
    /// ARRAY or MAP) is written without dictionaries, and so are the files
    /// DuckDB writes from it: read groups, its live rows after a delete, a
    /// change record.
    /// An edit to a value DuckDB's equality holds equal to the old one
    /// (0.0 to -0.0, INTERVAL '30 days' to '1 month') is a change: an
    /// update and an upsert commit it and it reads back.
    @Test func editsToValuesDuckDBHoldsEqualAreKept() async throws {
        let (repo, _) = try makeRepository()
        let table = try TableName("edits")
        _ = try await repo.write(
            table, from: .sql("SELECT i AS k, 0.0::DOUBLE AS d, INTERVAL 30 DAYS AS v, [0.0::DOUBLE] AS l FROM range(4) t(i)"), key: ["k"])
        let read = "SELECT k, signbit(d), v::VARCHAR, signbit(l[1]) FROM edits ORDER BY k"
        let update = try await repo.apply(try .update(set: "d = '-0.0'::DOUBLE", where: "k = 1"), to: table)
        #expect(!update.unchanged)
        #expect(try await repo.apply(try .update(set: "v = INTERVAL 1 MONTH", where: "k = 2"), to: table).counts?.updated == 1)
        let upsert = try await repo.apply(.upsert(.sql("SELECT 3::BIGINT AS k, 0.0::DOUBLE AS d, INTERVAL 30 DAYS AS v, ['-0.0'::DOUBLE] AS l")), to: table)
        #expect(upsert.counts?.updated == 1)
        #expect(
            try await repo.query(read).rows == [
                [.int(0), .bool(false), .text("30 days"), .bool(false)], [.int(1), .bool(true), .text("30 days"), .bool(false)],
                [.int(2), .bool(false), .text("1 month"), .bool(false)], [.int(3), .bool(false), .text("30 days"), .bool(true)],
            ])
        // The same values again change nothing.
        #expect(try await repo.apply(try .update(set: "v = INTERVAL 1 MONTH", where: "k = 2"), to: table).unchanged)
    }

    @Test func negativeZeroSurvivesAtAnyDepth() async throws {
        let sql = """
            SELECT i AS k, 'status_' || (i % 5) AS status,
              CASE WHEN i = 7000 THEN '-0.0'::DOUBLE ELSE (i % 10) / 8 END AS d,
              CASE WHEN i = 7001 THEN '-0.0'::FLOAT ELSE ((i % 10) / 8)::FLOAT END AS f,
              [(i % 10) / 8, CASE WHEN i = 15000 THEN '-0.0'::DOUBLE ELSE 0.0 END] AS l,
              {'v': CASE WHEN i = 15001 THEN '-0.0'::DOUBLE ELSE (i % 4) / 2 END, 'n': i % 3} AS s,
              [CASE WHEN i = 15002 THEN '-0.0'::FLOAT ELSE 0.0 END, 1.0]::FLOAT[2] AS a,
              MAP(['x'], [CASE WHEN i = 15003 THEN '-0.0'::DOUBLE ELSE 0.0 END]) AS m
            FROM range(30000) t(i)
            """
        let (repo, dir) = try makeRepository()
        let table = try TableName("zeros")
        _ = try await repo.write(table, from: .sql(sql), key: ["k"])
        try await expectIdentical(repo, table: "zeros", to: sql)
        // The user's Parquet files keep it too; without a -0.0, an export
        // keeps its dictionaries.
        let exported = dir.path("zeros.parquet")
        try await repo.export("SELECT * FROM zeros", to: exported, format: .parquet)
        try await expectIdentical(repo, table: "(SELECT * REPLACE (a::FLOAT[2] AS a) FROM read_parquet('\(exported)'))", to: sql)
        let noZeros = dir.path("no-zeros.parquet")
        try await repo.export("SELECT k, status, d FROM zeros WHERE k <> 7000", to: noZeros, format: .parquet)
        func dictionaryEncoded(_ file: String) async throws -> Bool {
            try await count(
                repo, "SELECT count(*) FROM parquet_metadata('\(file)') WHERE path_in_schema = 'status' AND encodings LIKE '%DICTIONARY%'") > 0
        }
        #expect(try await dictionaryEncoded(noZeros))
        #expect(try await !dictionaryEncoded(exported))
        let segments = try await repo.manifest(of: table).segments
        #expect(segments.count >= 3)
        for segment in segments {
            #expect((segment.withoutDictionaries == true) == Self.holds(segment, [7000, 7001, 15000, 15001, 15002, 15003]))
        }
        _ = try await repo.apply(.delete(where: "k = 7002"), to: table)
        try await expectIdentical(repo, table: "zeros", to: "SELECT * FROM (\(sql)) WHERE k <> 7002")
        _ = try await repo.apply(try .update(set: "status = 'x'", where: "k IN (7000, 7001, 15000, 15001) OR k % 100 = 50"), to: table)
        #expect(try await repo.diff("main~1", "main").tables.first?.fromChangeRecord == true)
        let feed = try await repo.diffRows("main~1", "main", as: .feed)
        let want = try await repo.query(
            """
            SELECT _change, * EXCLUDE (_change, r) FROM (
              SELECT 'update_preimage' AS _change, 0 AS r, * FROM (\(sql)) WHERE k IN (7000, 7001, 15000, 15001) OR k % 100 = 50
              UNION ALL SELECT 'update_postimage', 1, * REPLACE ('x' AS status) FROM (\(sql)) WHERE k IN (7000, 7001, 15000, 15001) OR k % 100 = 50
            ) ORDER BY k, r
            """)
        #expect(feed.rows.map { $0.map(\.description) } == want.rows.map { $0.map(\.description) })
        #expect(feed.rows.contains { $0.map(\.description).contains("-0.0") }, "the feed shows -0.0")
        let feedFile = dir.path("feed.parquet")
        try await repo.exportDiffRows("main~1", "main", as: .feed, to: feedFile, format: .parquet)
        let exportedFeed = try await repo.query("SELECT * REPLACE (a::FLOAT[2] AS a) FROM read_parquet('\(feedFile)') ORDER BY k, _change = 'update_postimage'")
        let differing = zip(exportedFeed.rows, want.rows).filter { $0.map(\.description) != $1.map(\.description) }
        #expect(exportedFeed.rows.count == want.rows.count && differing.isEmpty, "the exported feed differs: \(differing.prefix(2))")
    }

    /// Four-place scores recomputed for every row store about 2.6 bytes a
    /// value as decimals, against about 6.8 as DOUBLEs.
    @Test func decimalsStoreInFewerBytesThanDoubles() async throws {
        let (repo, _) = try makeRepository()
        let scores = "SELECT i AS k, (hash(i) % 1000000)::BIGINT / 10000 AS score FROM range(100000) t(i)"
        _ = try await repo.write(try TableName("as_decimal"), from: .sql(scores), key: ["k"])
        // One value per segment of 5,000 keys that is not a decimal keeps every segment a DOUBLE.
        _ = try await repo.write(
            try TableName("as_double"), from: .sql("SELECT k, CASE WHEN k % 5000 = 7 THEN 1 / 3 ELSE score END AS score FROM (\(scores))"),
            key: ["k"])
        let decimal = try await repo.info(try TableName("as_decimal")).storedBytes
        let double = try await repo.info(try TableName("as_double")).storedBytes
        print("100,000 four-place scores and their keys: \(decimal) bytes as decimals, \(double) as DOUBLEs")
        #expect(try await repo.manifest(of: try TableName("as_double")).segments.allSatisfy { $0.storedTypes == nil })
        #expect(Double(decimal) < 0.7 * Double(double))
    }

    @Test func parquetInputRoundTrips() async throws {
        let (repo, dir) = try makeRepository()
        let file = dir.path("input.parquet")
        let db = try scratchDuckDB()
        // Parquet cannot hold negative intervals; DuckDB refuses to write them.
        try db.execute("COPY (SELECT * EXCLUDE (t_interval) FROM (\(allTypesSQL))) TO '\(file)' (FORMAT parquet)")
        _ = try await repo.write(try TableName("from_parquet"), from: .file(file), key: [])
        try await expectIdentical(repo, table: "from_parquet", to: "SELECT * FROM read_parquet('\(file)')")
    }

    @Test func csvInputRoundTripsForTheTypesCSVCarries() async throws {
        let (repo, dir) = try makeRepository()
        let file = dir.path("input.csv")
        let csvTypes = """
            SELECT i AS id, CASE WHEN i % 7 = 0 THEN NULL ELSE i * 1000000007 END AS big, i / 8 AS dbl,
                   CASE WHEN i % 3 = 0 THEN 'a, "quoted" value' ELSE 'plain ' || i END AS txt, i % 2 = 0 AS flag,
                   DATE '2000-01-01' + i::INTEGER AS day, TIMESTAMP '2000-01-01 00:00:00' + to_seconds(i * 17) AS ts
            FROM range(5000) t(i)
            """
        let db = try scratchDuckDB()
        try db.execute("COPY (\(csvTypes)) TO '\(file)' (FORMAT csv, HEADER true)")
        _ = try await repo.write(try TableName("from_csv"), from: .file(file), key: ["id"])
        try await expectIdentical(repo, table: "from_csv", to: csvTypes)
    }

    @Test func jsonInputRoundTrips() async throws {
        let (repo, dir) = try makeRepository()
        let file = dir.path("input.ndjson")
        let db = try scratchDuckDB()
        try db.execute(
            "COPY (SELECT i AS id, 'n' || i AS name, [i, i + 1] AS xs, {'a': i} AS s FROM range(3000) t(i)) TO '\(file)' (FORMAT json)")
        _ = try await repo.write(try TableName("from_json"), from: .file(file), key: [])
        try await expectIdentical(repo, table: "from_json", to: "SELECT * FROM read_json('\(file)')")
    }

    @Test func namespacedTablesAreSchemas() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(try TableName("org_12.parcels"), from: .sql("SELECT 1 AS bbl, 'x' AS v"), key: ["bbl"])
        _ = try await repo.write(try TableName("org_13.parcels"), from: .sql("SELECT 2 AS bbl, 'y' AS v"), key: ["bbl"])
        let rows = try await repo.query("SELECT a.bbl, b.bbl FROM org_12.parcels a, org_13.parcels b").rows
        #expect(rows == [[.int(1), .int(2)]])
    }
}

@Suite struct ArrowWriteTests {
    @Test func arrowInAndOutRoundTrips() async throws {
        let (repo, _) = try makeRepository()
        let db = try scratchDuckDB()
        let source = "SELECT i AS k, 'v' || i AS v, i / 3 AS d, [i, NULL] AS l FROM range(30000) t(i)"
        let batches = try db.queryArrow(source)
        let result = try await repo.write(try TableName("from_arrow"), from: .arrow(batches), key: ["k"])
        #expect(result.rows == 30000)
        #expect(try await count(repo, "SELECT count(*) FROM (SELECT * FROM from_arrow EXCEPT ALL \(source))") == 0)
        let out = try await repo.queryArrow("SELECT * FROM from_arrow WHERE k < 100")
        #expect(out.rowCount == 100)
        #expect(out.columnNames == ["k", "v", "d", "l"])
    }

    /// What an Arrow client says its rows' schema is stays with the table
    /// through row edits and renames, and goes with a write of new content.
    @Test func theWritersArrowSchemaFollowsTheTable() async throws {
        let (repo, _) = try makeRepository()
        let db = try scratchDuckDB()
        let table = try TableName("t")
        var source = WriteSource.arrow(try db.queryArrow("SELECT range AS k FROM range(10)"))
        source.arrowSchema = "c2NoZW1h"
        _ = try await repo.write(table, from: source, key: ["k"])
        var read = try await repo.arrowQuery("SELECT * FROM t")
        #expect(read.arrowSchemas == [table: "c2NoZW1h"])
        _ = try await repo.apply(.upsert(.sql("SELECT 3 AS k")), to: table)
        _ = try await repo.sql("UPDATE t SET k = k + 100 WHERE k = 9")
        #expect(try await repo.manifest(of: table).arrowSchema == "c2NoZW1h")
        _ = try await repo.rename(table, to: try TableName("u"))
        read = try await repo.arrowQuery("SELECT * FROM u JOIN (SELECT 1) ON true")
        #expect(read.arrowSchemas == [try TableName("u"): "c2NoZW1h"])
        // A write of the same rows with another schema is a new version.
        var again = WriteSource.arrow(try db.queryArrow("SELECT * FROM range(10) t(k)"))
        again.arrowSchema = "b3RoZXI="
        #expect(try await repo.write(try TableName("u"), from: again).commit != nil)
        #expect(try await repo.manifest(of: try TableName("u")).arrowSchema == "b3RoZXI=")
        _ = try await repo.write(try TableName("u"), from: .sql("SELECT range AS k FROM range(10)"))
        #expect(try await repo.manifest(of: try TableName("u")).arrowSchema == nil)
    }

    /// Rows said to be in key order are read as they come; when they are
    /// not, the check finds it and they are sorted all the same.
    @Test func aWrongKeyOrderHintStillSorts() async throws {
        let (repo, _) = try makeRepository()
        let db = try scratchDuckDB()
        for (name, order) in [("ascending", "i"), ("shuffled", "hash(i)")] {
            var source = WriteSource.arrow(try db.queryArrow("SELECT i AS k, i * 2 AS v FROM range(200000) t(i) ORDER BY \(order)"))
            source.likelyInKeyOrder = true
            _ = try await repo.write(try TableName(name), from: source, key: ["k"])
            let manifest = try await repo.manifest(of: try TableName(name))
            let bounds = manifest.segments.map { (Int($0.stats["k"]!.min!)!, Int($0.stats["k"]!.max!)!) }
            #expect(bounds.count > 1)
            #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $0.1 < $1.0 }, "\(name): segments hold disjoint ascending key ranges")
            #expect(try await count(repo, "SELECT count(*) FROM \(name) WHERE v = k * 2") == 200000)
        }
    }

    /// Cancelling the task that waits for a query interrupts DuckDB's work.
    @Test func cancellingAQueryInterruptsIt() async throws {
        let (repo, _) = try makeRepository()
        let query = Task { try await repo.arrowQuery("SELECT count(*) FROM range(1000000) a, range(1000000) b WHERE a.range + b.range = -1") }
        try await Task.sleep(for: .milliseconds(300))
        query.cancel()
        let error = await #expect(throws: UDRError.self) { _ = try await query.value }
        #expect(error?.code == .interrupted)
        #expect(try await count(repo, "SELECT count(*) FROM range(5)") == 5)
    }
}
