import Dispatch
import DuckDB
import Foundation

/// What a write produced: the new table version's manifest and what it cost.
struct WrittenTable {
    let manifest: Manifest
    /// Bytes of the Parquet files the write produced (a segment kept with
    /// its file is not counted).
    let logicalBytes: Int64
    /// Bytes of blobs and recipes that were not in the store before.
    let bytesAdded: Int64
    /// Whether the write kept the previous version's segments in place
    /// (see ``TableWriter/writeOver(_:columns:key:rowCount:clock:)``).
    var inPlace = false
}

/// Turns rows (any DuckDB query) into a table version: validates keys,
/// orders rows, cuts them into content-defined segments, writes each
/// segment with DuckDB's Parquet writer and stores its column chunks as
/// blobs. See DESIGN.md § Write path.
struct TableWriter {
    let connection: Connection
    let store: any ObjectStore
    let cache: SegmentCache
    let scratch: URL
    var policy: SegmentationPolicy = .standard

    /// Fixed Parquet settings: the same rows always give the same bytes.
    /// zstd level 1 compressed 16% faster than DuckDB's default level 3
    /// and no larger on the benchmark's table; Parquet's version 2 pages
    /// and encodings encode another 10-15% faster and 1% smaller. (Changing
    /// these changes every chunk's bytes: a repository's next write after
    /// such a change shares nothing with the versions before it.)
    static let parquetOptions = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 2000000, PARQUET_VERSION V2"

    /// `inputName` names the input in errors (a file, or "the query").
    /// `key` nil keeps `previousKey` when the input still has its columns.
    /// `parquetFile` is the input's file when it is one Parquet file.
    /// `previous`, the table's current version, lets the write keep its
    /// segment files where rows only changed (see ``writeOver(_:columns:key:rowCount:clock:)``).
    func write(
        table: TableName, version: Int, source: String, inputName: String, key requestedKey: [String]?, previousKey: [String],
        parquetFile: String? = nil, previous: Manifest? = nil, likelyInKeyOrder: Bool = false
    ) throws(UDRError) -> WrittenTable {
        var clock = StepClock()
        let columns = try describe(source, inputName: inputName)
        let names = Set(columns.map(\.name))
        let key = requestedKey ?? (previousKey.allSatisfy(names.contains) ? previousKey : [])
        for k in key where !names.contains(k) {
            throw UDRError(
                .invalidArgument,
                "the key column '\(k)' is not in the input; its columns are \(columns.map(\.name).joined(separator: ", "))")
        }
        if Set(key).count != key.count { throw UDRError(.invalidArgument, "the key names a column twice: \(key.joined(separator: ","))") }
        clock.step("describe input")

        defer {
            try? connection.execute("DROP TABLE IF EXISTS __udr_sorted")
            try? connection.execute("DROP VIEW IF EXISTS __udr_input")
            try? connection.execute("DROP TABLE IF EXISTS __udr_input_rows")
        }
        if let previous, canWriteOver(previous, columns: columns, key: key) {
            // Read as it comes: a write over the previous version orders the
            // rows by their old places, once. `__udr_input` holds the rows in
            // storage form with `__udr_row`, a stable row number. A Parquet
            // file is read where it lies (a few scans of its key columns
            // cost less than a copy of every column: a tenth of a nightly
            // refresh); other input is copied into a table first.
            if let parquetFile {
                let rows = "read_parquet(\(quoteLiteral(parquetFile)), file_row_number = true) AS __udr_src"
                try run(
                    "CREATE VIEW __udr_input AS SELECT \(try storageSelect(columns: columns, key: key).joined(separator: ", ")), __udr_src.file_row_number AS __udr_row FROM \(rows)"
                )
            } else {
                try sort(source, columns: columns, key: key, order: [], inputName: inputName, into: "__udr_input_rows")
                try run("CREATE VIEW __udr_input AS SELECT *, rowid AS __udr_row FROM __udr_input_rows")
            }
            clock.step("read")
            let rowCount = Int(try query("SELECT count(*) FROM __udr_input").scalar.int ?? 0)
            if let placement = try writeOver(previous, columns: columns, key: key, rowCount: rowCount, clock: &clock) {
                let segments = placement.segments(replacing: previous.segments)
                cache.evictIfNeeded(keeping: Set(segments.map { cache.path($0.id) }))
                let manifest = Manifest(table: table, version: version, columns: columns, key: key, segments: segments)
                return WrittenTable(manifest: manifest, logicalBytes: placement.logical, bytesAdded: placement.bytesAdded, inPlace: true)
            }
            // Compared as their logical type, as `sort` does.
            let types = Dictionary(columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
            let logicalOrder = key.map { "CAST(\(quoteIdentifier($0)) AS \(types[$0] ?? "VARCHAR"))" }.joined(separator: ", ")
            try run("CREATE OR REPLACE TABLE __udr_sorted AS SELECT * EXCLUDE (__udr_row) FROM __udr_input ORDER BY \(logicalOrder)")
            try run("DROP VIEW __udr_input")
            try run("DROP TABLE IF EXISTS __udr_input_rows")
            clock.step("sort")
        } else if try !key.isEmpty && likelyInKeyOrder ? true : ascendingFile(parquetFile, key: key, columns: columns) {
            // Most likely in key order already: read it as it comes, check
            // the order in one streaming pass, and sort only if it is not.
            try sort(source, columns: columns, key: key, order: [], inputName: inputName)
            clock.step("read (in key order)")
            if try !inKeyOrder(key) {
                try run("CREATE OR REPLACE TABLE __udr_sorted AS SELECT * FROM __udr_sorted ORDER BY \(key.map(quoteIdentifier).joined(separator: ", "))")
                clock.step("sort (it was not)")
            }
        } else {
            try sort(source, columns: columns, key: key, order: key.map { "__udr_src." + quoteIdentifier($0) }, inputName: inputName)
            clock.step("read and sort")
        }
        try checkKeys(key, in: "__udr_sorted", sortedByKey: true)
        clock.step("check keys")
        let rowCount = Int(try query("SELECT count(*) FROM __udr_sorted").scalar.int ?? 0)
        // An empty table still has one (empty) segment: it carries the schema.
        let written = try writeSegments(
            ranges: try cut(runs: [0..<rowCount], keepEmpty: true, key: key, columns: columns), columns: columns, key: key, clock: &clock)
        let segments = written.segments.isEmpty ? [] : written.segments[0]
        cache.evictIfNeeded(keeping: Set(segments.map { cache.path($0.id) }))
        let manifest = Manifest(table: table, version: version, columns: columns, key: key, segments: segments)
        return WrittenTable(manifest: manifest, logicalBytes: written.logical, bytesAdded: written.added)
    }

    /// Writes rows of `source` (the table's `columns` in their logical
    /// types, plus `__udr_run`, and `__udr_pos` for a keyless table) as
    /// runs of segments: run `i` holds the rows whose `__udr_run` is `i`,
    /// ordered by key (by `__udr_pos` when keyless) and cut by the usual
    /// rule. Returns each run's segments (none for an empty run).
    func writeRuns(source: String, columns: [Column], key: [String], runs: Int)
        throws(UDRError) -> (segments: [[SegmentRef]], logical: Int64, added: Int64)
    {
        var clock = StepClock()
        defer { try? connection.execute("DROP TABLE IF EXISTS __udr_sorted") }
        let order =
            ["__udr_src.__udr_run"] + (key.isEmpty ? ["__udr_src.__udr_pos"] : key.map { "__udr_src." + quoteIdentifier($0) })
        try sort(source, columns: columns, key: key, order: order, inputName: "the changed rows", extra: ["__udr_run"])
        clock.step("order the rows")
        let spans = try runSpans(runs: runs, key: key, columns: columns)
        return try writeSortedRuns(spans, columns: columns, key: key, clock: &clock)
    }

    /// Where each run's rows stand in `__udr_sorted`.
    struct RunSpans {
        /// The rowids of each run's rows (empty for a run without rows).
        var rows: [Range<Int>]
        /// The first-key range of each run of `whole` (it bounds the COPY
        /// of an uncut run), when the key has a bounding column.
        var keyRanges: [Int: ClosedRange<Int64>] = [:]
        /// The runs written as one segment each, uncut.
        var whole: Set<Int> = []
    }

    /// The spans of the `runs` runs of `__udr_sorted` (by its `__udr_run`);
    /// those in `whole` are to be written uncut.
    func runSpans(runs: Int, whole: Set<Int> = [], key: [String], columns: [Column]) throws(UDRError) -> RunSpans {
        let bounding = whole.isEmpty ? nil : Self.boundingColumn(key: key, columns: columns)
        let keyRange = bounding.map { ", min(CAST(\($0) AS BIGINT)), max(CAST(\($0) AS BIGINT))" } ?? ""
        let bounds = try query("SELECT __udr_run, min(rowid), max(rowid) + 1\(keyRange) FROM __udr_sorted GROUP BY ALL").rows
        var spans = RunSpans(rows: Array(repeating: 0..<0, count: runs), whole: whole)
        for row in bounds {
            guard let run = row[0].int, let low = row[1].int, let high = row[2].int, run >= 0, run < runs else { continue }
            spans.rows[Int(run)] = Int(low)..<Int(high)
            if bounding != nil, let first = row[3].int, let last = row[4].int, first <= last { spans.keyRanges[Int(run)] = first...last }
        }
        return spans
    }

    /// Writes the rows of `__udr_sorted`, in runs by its `__udr_run` and
    /// in its order within each run, as ``writeRuns(source:columns:key:runs:)`` does.
    /// The runs in `spans.whole` become one segment each, uncut; a run
    /// with no rows in `spans` none.
    func writeSortedRuns(_ spans: RunSpans, columns: [Column], key: [String], clock: inout StepClock)
        throws(UDRError) -> (segments: [[SegmentRef]], logical: Int64, added: Int64)
    {
        try writeSegments(
            ranges: try cut(runs: spans.rows, keepEmpty: false, key: key, columns: columns, whole: spans.whole, keyRanges: spans.keyRanges),
            columns: columns, key: key, clock: &clock)
    }

    /// The input's columns; DESCRIBE binds it without reading its rows.
    func describe(_ source: String, inputName: String) throws(UDRError) -> [Column] {
        let columns: [Column]
        do throws(DuckDBError) {
            columns = try connection.query("SELECT column_name, column_type FROM (DESCRIBE \(source))").rows.map {
                Column(name: $0[0].string ?? "", type: $0[1].string ?? "")
            }
        } catch { throw Self.unreadable(error, inputName) }
        guard !columns.isEmpty else { throw UDRError(.invalidInput, "\(inputName) has no columns") }
        return columns
    }

    static func unreadable(_ error: DuckDBError, _ inputName: String) -> UDRError {
        // DuckDB's CSV errors end in a long list of generic fixes; keep the diagnosis.
        let diagnosis = error.message.components(separatedBy: "\nPossible fixes:").first ?? error.message
        return UDRError(
            .invalidInput, "cannot read \(inputName): \(diagnosis.trimmingCharacters(in: .whitespacesAndNewlines))", underlying: error)
    }

    /// One pass reads the input, casts each column to its storage type,
    /// marks boundary candidates and orders rows (compared as their logical
    /// type) into `table`: a plain table (the database is private to this
    /// write) so that the segment writers' own connections can read it.
    func sort(
        _ source: String, columns: [Column], key: [String], order: [String], inputName: String, extra: [String] = [],
        into table: String = "__udr_sorted"
    ) throws(UDRError) {
        try run("SET preserve_insertion_order = true")
        let select = try storageSelect(columns: columns, key: key) + extra.map { "__udr_src.\($0)" }
        let orderBy = order.isEmpty ? "" : " ORDER BY " + order.joined(separator: ", ")
        do throws(DuckDBError) {
            try connection.execute(
                "CREATE OR REPLACE TABLE \(table) AS SELECT \(select.joined(separator: ", ")) FROM (\(source)) AS __udr_src\(orderBy)")
        } catch { throw Self.unreadable(error, inputName) }
    }

    /// The select list of rows of `__udr_src` in storage form: each column
    /// cast to its storage type, and `__udr_cut`, whether a segment may end
    /// after the row.
    private func storageSelect(columns: [Column], key: [String]) throws(UDRError) -> [String] {
        var select: [String] = []
        for column in columns {
            let storage = try TypeNode.parse(column.type).storage().sql
            select.append("CAST(__udr_src.\(quoteIdentifier(column.name)) AS \(storage)) AS \(quoteIdentifier(column.name))")
        }
        select.append("\(Self.boundaryHash(key: key, columns: columns, source: "__udr_src")) & \(policy.mask) = 0 AS __udr_cut")
        return select
    }

    /// Whether the key is all integer columns (the same values and order
    /// in storage) and the Parquet file's row groups, by their statistics,
    /// hold ascending ranges of its first column that do not overlap: such
    /// a file is most likely in key order already. Reads only the footer.
    private func ascendingFile(_ file: String?, key: [String], columns: [Column]) throws(UDRError) -> Bool {
        guard let file else { return false }
        return try rowGroupsAscend(file, key: key, columns: columns)
    }

    private func rowGroupsAscend(_ file: String, key: [String], columns: [Column]) throws(UDRError) -> Bool {
        let types = Dictionary(columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        guard let first = key.first, key.allSatisfy({ types[$0].map(Self.smallIntegerTypes.contains) == true }) else { return false }
        let groups: ResultSet
        do throws(DuckDBError) {
            groups = try connection.query(
                "SELECT row_group_id, stats_min_value, stats_max_value FROM parquet_metadata(\(quoteLiteral(file))) WHERE path_in_schema = \(quoteLiteral(first)) ORDER BY row_group_id"
            )
        } catch { return false }
        guard groups.rows.count > 1 else { return false }
        var previousMax: Int64?
        for row in groups.rows {
            guard let low = row[1].string.flatMap({ Int64($0) }), let high = row[2].string.flatMap({ Int64($0) }), low <= high else { return false }
            if let previousMax, low < previousMax || (key.count == 1 && low == previousMax) { return false }
            previousMax = high
        }
        return true
    }

    /// Whether `__udr_sorted`'s rows (in rowid order) are in key order.
    private func inKeyOrder(_ key: [String]) throws(UDRError) -> Bool {
        try neighbours(key, in: "__udr_sorted", where: "<") == 0
    }

    /// How many rows of `relation` (in rowid order) have a key that
    /// compares to the previous row's by `comparison` (`=`, `<`): one
    /// streaming pass.
    private func neighbours(_ key: [String], in relation: String, where comparison: String) throws(UDRError) -> Int64 {
        let tuple = key.count == 1 ? quoteIdentifier(key[0]) : "row(\(key.map(quoteIdentifier).joined(separator: ", ")))"
        return try query(
            "SELECT count(*) FROM (SELECT \(tuple) AS __udr_k, lag(\(tuple)) OVER () AS __udr_p FROM \(relation)) WHERE __udr_k \(comparison) __udr_p"
        ).scalar.int ?? 1
    }

    /// The first key column (quoted) when it is an integer column that
    /// bounds segments' rows: rows are sorted and filtered by it as integers.
    static func boundingColumn(key: [String], columns: [Column]) -> String? {
        key.first.flatMap { first in columns.first { $0.name == first && smallIntegerTypes.contains($0.type) }.map { _ in quoteIdentifier(first) } }
    }

    /// Integer types whose values fit a BIGINT.
    static let smallIntegerTypes: Set<String> = ["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"]

    /// The boundary hash of a row, as SQL: it must not depend on DuckDB's
    /// internal hash function (which may change between versions). A key
    /// of one integer column is mixed arithmetically (two 32-bit halves
    /// times odd constants, xor-folded; every product fits a BIGINT), about
    /// ten times cheaper than hashing text; any other key, or a keyless
    /// row, hashes its text form with MD5. The cut takes the low bits.
    static func boundaryHash(key: [String], columns: [Column], source: String) -> String {
        if key.count == 1, let column = columns.first(where: { $0.name == key[0] }), smallIntegerTypes.contains(column.type) {
            let x = "CAST(\(source).\(quoteIdentifier(key[0])) AS BIGINT)"
            let product = "xor((\(x) & 4294967295) * 1640531527, ((\(x) >> 32) & 4294967295) * 1640531513)"
            return "(xor(\(product), \(product) >> 29) >> 20)"
        }
        let hashed = (key.isEmpty ? columns.map(\.name) : key).map {
            "coalesce(CAST(\(source).\(quoteIdentifier($0)) AS VARCHAR), chr(30))"
        }
        let hashInput = hashed.count == 1 ? hashed[0] : "concat_ws(chr(31), \(hashed.joined(separator: ", ")))"
        return "md5_number_lower(\(hashInput))"
    }

    /// Rows of `__udr_sorted` that make one segment. `low` and `high`, when known,
    /// bound the first key column's values in them: they let the segment's
    /// COPY skip the row groups of `__udr_sorted` outside them by their
    /// min/max (a filter on rowid alone reads every row group, about 2 ms
    /// per segment of 5M rows).
    struct SegmentRows {
        var rows: Range<Int>
        /// The first key column (quoted) and bounds of its values.
        var column: String?
        var low: Int64?
        var high: Int64?

        var filter: String {
            var conditions: [String] = []
            if let column, let low { conditions.append("\(column) >= \(low)") }
            if let column, let high { conditions.append("\(column) <= \(high)") }
            return (conditions + ["rowid >= \(rows.lowerBound)", "rowid < \(rows.upperBound)"]).joined(separator: " AND ")
        }
    }

    /// Segment row ranges of `__udr_sorted`, cut within each run. Keys of
    /// one integer column lead (compared as integers both when sorted and
    /// when filtered), each segment's first-key range comes with it: the
    /// key of the cut before it and of its own last row, where those are
    /// content-defined cuts (whose keys the cut query reads anyway). The
    /// runs in `whole` are not cut; `keyRanges` gives their first-key range.
    private func cut(
        runs: [Range<Int>], keepEmpty: Bool, key: [String], columns: [Column], whole: Set<Int> = [],
        keyRanges: [Int: ClosedRange<Int64>] = [:]
    ) throws(UDRError) -> [[SegmentRows]] {
        let bounding = Self.boundingColumn(key: key, columns: columns)
        let rows = try query(
            "SELECT rowid\(bounding.map { ", CAST(\($0) AS BIGINT)" } ?? "") FROM __udr_sorted WHERE __udr_cut ORDER BY rowid"
        ).rows
        let candidates = rows.compactMap { $0[0].int.map(Int.init) }
        var keyAt: [Int: Int64] = [:]
        if bounding != nil { for row in rows { if let at = row[0].int, let value = row[1].int { keyAt[Int(at)] = value } } }
        var out: [[SegmentRows]] = []
        var next = 0
        for (run, span) in runs.enumerated() {
            guard !span.isEmpty || keepEmpty else {
                out.append([])
                continue
            }
            if whole.contains(run) {
                let range = keyRanges[run]
                out.append([SegmentRows(rows: span, column: range == nil ? nil : bounding, low: range?.lowerBound, high: range?.upperBound)])
                continue
            }
            while next < candidates.count && candidates[next] < span.lowerBound { next += 1 }
            var inside: [Int] = []
            while next < candidates.count && candidates[next] < span.upperBound {
                inside.append(candidates[next] - span.lowerBound)
                next += 1
            }
            out.append(
                policy.ranges(rowCount: span.count, candidates: inside).map {
                    let rows = ($0.lowerBound + span.lowerBound)..<($0.upperBound + span.lowerBound)
                    var segment = SegmentRows(rows: rows)
                    if let bounding {
                        segment.column = bounding
                        // Only within the run: the row before a run belongs to another.
                        if rows.lowerBound > span.lowerBound { segment.low = keyAt[rows.lowerBound - 1] }
                        segment.high = keyAt[rows.upperBound - 1]
                    }
                    return segment
                })
        }
        return out
    }

    /// Writes each range of `__udr_sorted` as a segment and stores its blobs.
    private func writeSegments(ranges runs: [[SegmentRows]], columns: [Column], key: [String], clock: inout StepClock) throws(UDRError) -> (
        segments: [[SegmentRef]], logical: Int64, added: Int64
    ) {
        let columnList = columns.map { quoteIdentifier($0.name) }.joined(separator: ", ")
        let ranges = runs.flatMap { $0 }
        let written = try writeSegments(
            selects: ranges.map { "SELECT \(columnList) FROM __udr_sorted WHERE \($0.filter)" }, rows: ranges.map { Int64($0.rows.count) },
            columns: columns, key: key, clock: &clock)
        var grouped: [[SegmentRef]] = []
        var offset = 0
        for run in runs {
            grouped.append(Array(written.segments[offset..<(offset + run.count)]))
            offset += run.count
        }
        return (grouped, written.logical, written.added)
    }

    /// Writes the rows of each SELECT (the table's `columns` in their
    /// storage types, in order; `rows` of them) as one segment and stores
    /// its blobs. The SELECTs run on connections of their own: they may
    /// read the tables of this write's database and files. DOUBLE columns
    /// outside `key` holding decimals are stored as such, and a segment
    /// holding -0.0 without dictionaries (``SegmentStorage``).
    func writeSegments(selects: [String], rows: [Int64], columns: [Column], key: [String], clock: inout StepClock) throws(UDRError) -> (
        segments: [SegmentRef], logical: Int64, added: Int64
    ) {
        let directory = scratch.appendingPathComponent("write-" + UUID().uuidString)
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw UDRError(.io, "cannot create \(directory.path): \(error.localizedDescription)")
        }
        defer { try? FileManager.default.removeItem(at: directory) }

        let storage = try SegmentStorage.plan(selects: selects, columns: columns, key: key, on: connection)
        let objects = LockedBatch(store.batch())
        let written = try copySegments(
            selects: selects, rows: rows, directory: directory.path, columns: columns, storage: storage, into: objects)
        clock.step("write segments")
        let added = try objects.commit()
        clock.step("store blobs")
        return (written, written.reduce(0) { $0 + $1.bytes }, added)
    }

    /// Writes each segment's rows to its file with DuckDB's Parquet writer,
    /// on as many connections as there are cores (up to 4); each worker
    /// then reads its files' footers (a few files per query: a query per
    /// file cost a tenth of the write), cuts the files into blobs at their
    /// column chunks and hands them to `objects` (whose pack writer writes
    /// and flushes them while the workers go on), and moves the files into
    /// the segment cache. Memory holds a few segments per worker.
    private func copySegments(
        selects: [String], rows: [Int64], directory: String, columns: [Column], storage: SegmentStorage, into objects: LockedBatch
    ) throws(UDRError) -> [SegmentRef]
    {
        let (database, cache) = (connection.database, cache)
        let names = Set(columns.map(\.name))
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, selects.count, 4))
        let results = SlotBox<SegmentRef>(count: selects.count)
        let failures = FailureBox()
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            do throws(UDRError) {
                let own: Connection
                do throws(DuckDBError) {
                    own = try database.connect()
                    // One thread per COPY, and insertion order preserved: each
                    // range is written in rowid order without sorting it again.
                    try own.execute("SET threads = 1")
                } catch { throw UDRError(.query, "writing a segment failed: \(error.message)", underlying: error) }
                var leafColumns: [Int]?
                var written: [(index: Int, file: String, storedAs: SegmentStorage)] = []
                func store() throws(UDRError) {
                    let layouts = try Self.chunkLayouts(of: written.map(\.file), columns: names, leafColumns: leafColumns ?? [], on: own)
                    for (index, file, storedAs) in written {
                        // A file without rows has no row groups, so no chunks to list.
                        guard let layout = layouts[file] ?? (rows[index] == 0 ? FileLayout() : nil) else {
                            throw UDRError(.io, "the segment file \(file) has no footer")
                        }
                        let prepared = try Self.prepareSegment(file: file, layout: layout)
                        try objects.add(prepared.objects)
                        cache.adopt(file: file, segment: prepared.id)
                        results.set(
                            index,
                            SegmentRef(
                                id: prepared.id, recipe: prepared.recipe, rows: rows[index], bytes: prepared.bytes, stats: layout.stats,
                                storedTypes: storedAs.storedTypes(columns), withoutDictionaries: storedAs.withoutDictionaries ? true : nil))
                    }
                    written = []
                }
                for index in stride(from: worker, to: selects.count, by: workers) where !failures.failed {
                    let file = directory + "/\(index).parquet"
                    // A column with a value that would not read back from
                    // its decimal is written again as a DOUBLE; a segment
                    // holding -0.0, without dictionaries (``SegmentStorage``).
                    var plan = storage
                    while true {
                        do throws(DuckDBError) {
                            try own.execute("COPY (\(plan.storing(selects[index], columns: columns))) TO \(quoteLiteral(file)) (\(plan.copyOptions))")
                            break
                        } catch {
                            if let next = plan.retrying(after: error.message) {
                                plan = next
                                continue
                            }
                            throw UDRError(.query, "writing a segment failed: \(error.message)", underlying: error)
                        }
                    }
                    // Every file of a write has the same leaf columns.
                    if leafColumns == nil { leafColumns = try Self.leafColumns(of: file, on: own) }
                    written.append((index, file, plan))
                    if written.count == Self.footersPerQuery { try store() }
                }
                if !written.isEmpty && !failures.failed { try store() }
            } catch {
                failures.record(error)
            }
        }
        if let error = failures.first { throw error }
        return results.values.map { $0! }
    }

    /// Segment files whose footers one query reads.
    private static let footersPerQuery = 8

    struct PreparedSegment {
        var id: ObjectID
        var recipe: ObjectID
        var bytes: Int64
        /// The blobs and the recipe, with their ids.
        var objects: [(id: ObjectID, data: Data)]
    }

    /// Hashes a segment file and cuts it into blobs at its column chunks.
    private static func prepareSegment(file: String, layout: FileLayout) throws(UDRError) -> PreparedSegment {
        guard let bytes = FileManager.default.contents(atPath: file) else { throw UDRError(.io, "cannot read back the segment file \(file)") }
        let segmentID = ObjectID.of(bytes)
        let cuts = cutPoints(fileSize: bytes.count, chunkRanges: layout.ranges, bytes: bytes)
        var objects: [(id: ObjectID, data: Data)] = []
        var parts: [SegmentRecipe.Part] = []
        for (start, end) in zip(cuts, cuts.dropFirst()) {
            let piece = bytes[start..<end]  // shares the file's bytes
            let id = ObjectID.of(piece)
            parts.append(.init(blob: id, bytes: Int64(piece.count), column: layout.columnOfChunk[start]))
            objects.append((id, piece))
        }
        let recipe = try ObjectCoding.encode(SegmentRecipe(segment: segmentID, bytes: Int64(bytes.count), parts: parts))
        let recipeID = ObjectID.of(recipe)
        objects.append((recipeID, recipe))
        return PreparedSegment(id: segmentID, recipe: recipeID, bytes: Int64(bytes.count), objects: objects)
    }

    /// Rejects duplicate and NULL keys, naming the offending keys. Runs on
    /// the storage form of the rows, where equal keys stay equal. When
    /// `relation` is a table in key order (rowid order), equal keys are
    /// neighbours: one streaming pass compares each row with the one
    /// before (30x cheaper than grouping 5M keys).
    func checkKeys(_ key: [String], in relation: String, sortedByKey: Bool = false) throws(UDRError) {
        guard !key.isEmpty else { return }
        let cols = key.map(quoteIdentifier).joined(separator: ", ")
        let nullCondition = key.map { "\(quoteIdentifier($0)) IS NULL" }.joined(separator: " OR ")
        let nulls = try query("SELECT count(*) FROM \(relation) WHERE \(nullCondition)").scalar.int ?? 0
        if nulls > 0 {
            let examples = try query("SELECT CAST(row(\(cols)) AS VARCHAR) FROM \(relation) WHERE \(nullCondition) LIMIT 5").rows.map {
                $0[0].description
            }
            throw UDRError(
                .nullKey,
                "\(nulls) row(s) have a NULL in the key (\(key.joined(separator: ", "))), e.g. \(examples.joined(separator: "; ")). Key columns must not be NULL."
            )
        }
        if sortedByKey, try neighbours(key, in: relation, where: "=") == 0 { return }
        // Grouped by the key's own types; the text form only for the message.
        let total = try query("SELECT count(*) FROM (SELECT 1 FROM \(relation) GROUP BY \(cols) HAVING count(*) > 1)").scalar.int ?? 0
        if total > 0 {
            let dupes = try query(
                "SELECT CAST(row(\(cols)) AS VARCHAR) AS k, count(*) AS n FROM \(relation) GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC, k LIMIT 10"
            )
            let shown = dupes.rows.map { "\($0[0]) (\($0[1].description) rows)" }.joined(separator: ", ")
            throw UDRError(
                .duplicateKey,
                "\(total) key value(s) of (\(key.joined(separator: ", "))) occur more than once: \(shown). Each key must identify one row.")
        }
    }

    struct FileLayout {
        var ranges: [(Int, Int)] = []
        /// The top-level column of the chunk starting at each offset.
        var columnOfChunk: [Int: Int] = [:]
        var stats: [String: ColumnStats] = [:]
    }

    /// Byte ranges of every column chunk of each Parquet file and per-column
    /// stats, from their footers, by file. `leafColumns` maps the files'
    /// leaf columns to their top-level column (``leafColumns(of:on:)``).
    private static func chunkLayouts(of files: [String], columns: Set<String>, leafColumns: [Int], on connection: Connection)
        throws(UDRError) -> [String: FileLayout]
    {
        let result: ResultSet
        do throws(DuckDBError) {
            result = try connection.query(
                """
                SELECT file_name, coalesce(dictionary_page_offset, data_page_offset) AS start, total_compressed_size,
                       path_in_schema, stats_min_value, stats_max_value, stats_null_count, column_id
                FROM parquet_metadata([\(files.map(quoteLiteral).joined(separator: ", "))])
                """)
        } catch {
            throw UDRError(.query, "cannot read the footers of the segment files \(files.joined(separator: ", ")): \(error.message)", underlying: error)
        }
        var layouts: [String: FileLayout] = [:]
        for row in result.rows {
            guard let file = row[0].string, let start = row[1].int, let size = row[2].int else { continue }
            var layout = layouts[file, default: FileLayout()]
            layout.ranges.append((Int(start), Int(start + size)))
            if let leaf = row[7].int, leaf >= 0, Int(leaf) < leafColumns.count { layout.columnOfChunk[Int(start)] = leafColumns[Int(leaf)] }
            if let path = row[3].string, columns.contains(path), layout.stats[path] == nil {
                layout.stats[path] = ColumnStats(min: row[4].string, max: row[5].string, nulls: row[6].int)
            }
            layouts[file] = layout
        }
        return layouts
    }

    /// The top-level column of each leaf column of a Parquet file.
    private static func leafColumns(of file: String, on connection: Connection) throws(UDRError) -> [Int] {
        do throws(DuckDBError) {
            return leafColumns(
                schema: try connection.query("SELECT num_children FROM parquet_schema(\(quoteLiteral(file)))").rows.map { $0[0].int.map(Int.init) })
        } catch { throw UDRError(.query, "cannot read the schema of the segment file \(file): \(error.message)", underlying: error) }
    }

    /// The top-level column of each leaf column of a Parquet schema, given
    /// its elements' child counts in schema order (the root first).
    static func leafColumns(schema children: [Int?]) -> [Int] {
        var out: [Int] = []
        var next = 1
        func walk(_ column: Int) {
            guard next < children.count else { return }
            let count = children[next] ?? 0
            next += 1
            if count == 0 { out.append(column) } else { for _ in 0..<count { walk(column) } }
        }
        for column in 0..<(children.first.flatMap { $0 } ?? 0) { walk(column) }
        return out
    }

    /// Offsets that split a Parquet file into blobs: the leading magic, each
    /// column chunk, any bytes between chunks, and the footer.
    static func cutPoints(fileSize: Int, chunkRanges: [(Int, Int)], bytes: Data) -> [Int] {
        var points: Set<Int> = [0, fileSize]
        if fileSize >= 12 {
            let footerLength = bytes.withUnsafeBytes { raw -> Int in
                Int(raw.loadUnaligned(fromByteOffset: fileSize - 8, as: UInt32.self).littleEndian)
            }
            let footerStart = fileSize - 8 - footerLength
            if footerStart >= 4 { points.insert(footerStart) }
            points.insert(4)
        }
        for (start, end) in chunkRanges where start >= 4 && end <= fileSize && start < end {
            points.insert(start)
            points.insert(end)
        }
        return points.sorted()
    }

    func run(_ sql: String, code: UDRError.Code = .query) throws(UDRError) {
        do { try connection.execute(sql) } catch { throw UDRError(code, error.message, underlying: error) }
    }

    func query(_ sql: String) throws(UDRError) -> ResultSet {
        do { return try connection.query(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
    }
}

/// The first error of concurrent workers.
final class FailureBox: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var error: UDRError?

    var failed: Bool { lock.withLock { error != nil } }
    var first: UDRError? { lock.withLock { error } }
    func record(_ e: UDRError) { lock.withLock { if error == nil { error = e } } }
}

/// Results of concurrent workers, one slot each.
final class SlotBox<Value>: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var slots: [Value?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Value) { lock.withLock { slots[index] = value } }
    var values: [Value?] { lock.withLock { slots } }
}

/// An object batch that several workers add to, one at a time. Objects
/// are passed on in groups of about 8 MB (each `add` of a local batch
/// lists the store's packs once).
final class LockedBatch: @unchecked Sendable {
    // @unchecked: every access to the rest holds `lock`.
    private let lock = NSLock()
    private let batch: any ObjectBatch
    private var held: [(id: ObjectID, data: Data)] = []
    private var heldBytes = 0

    init(_ batch: any ObjectBatch) { self.batch = batch }

    func add(_ objects: [(id: ObjectID, data: Data)]) throws(UDRError) {
        lock.lock()
        defer { lock.unlock() }
        held += objects
        heldBytes += objects.reduce(0) { $0 + $1.data.count }
        guard heldBytes >= 8 << 20 else { return }
        try passOn()
    }

    func commit() throws(UDRError) -> Int64 {
        lock.lock()
        defer { lock.unlock() }
        try passOn()
        return try batch.commit()
    }

    private func passOn() throws(UDRError) {
        guard !held.isEmpty else { return }
        let objects = held
        (held, heldBytes) = ([], 0)
        try batch.add(objects)
    }
}
