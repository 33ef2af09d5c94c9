import DuckDB
import Foundation

/// Applies a row-level edit to a table version, rewriting only the
/// segments that hold touched rows.
///
/// Keyed tables: the edit becomes a delta — rows to upsert (`__udr_up`) and
/// keys to delete (`__udr_del`). Each touched key is placed by the key
/// ranges in the segments' statistics: inside a segment (that segment is
/// rewritten) or in the gap between two (its new rows become segments of
/// their own, or join a neighbour when they are too few for one).
/// Consecutive touched places form a run, re-cut by the usual boundary
/// rule; segments elsewhere are kept as they are.
///
/// Keyless tables: appended rows go after the last segment; a delete or
/// update rewrites the segments where its predicate matched a row.
struct RowEditor {
    let connection: Connection
    let writer: TableWriter
    let table: TableName
    let manifest: Manifest
    let policy: SegmentationPolicy
    /// A file of a segment's live rows.
    let materialize: (SegmentRef) throws(UDRError) -> String
    /// The segment's own file, deleted rows included.
    let file: (SegmentRef) throws(UDRError) -> String
    /// Whether the edit leaves its changed rows in ``changedRows`` (see
    /// ``Result/recordedChanges``): only a version that will be committed as
    /// written keeps them.
    var recordsChanges = false

    /// The table of the changed rows, for a ``ChangeRecord``: the table's
    /// columns (logical types) and `__udr_new`.
    static let changedRows = "__udr_changed"

    struct Result {
        let written: WrittenTable
        let counts: RowCounts
        /// Whether the changed rows are in ``RowEditor/changedRows`` (the
        /// edit was small enough to record them).
        var recordedChanges = false
    }

    /// nil when the edit changes nothing.
    func apply(_ edit: RowEdit, input: (select: String, name: String)?) throws(UDRError) -> Result? {
        let key = manifest.key
        switch edit.base {
        case .upsert, .deleteKeys:
            guard !key.isEmpty else {
                throw UDRError(
                    .invalidArgument,
                    "cannot \(edit.verb) \(table) by key: it has no key. Use `udr delete --where`, or rewrite it with `udr write --key COLUMNS`."
                )
            }
        default: break
        }
        var columns = manifest.columns
        switch edit.base {
        case .append, .upsert:
            guard let input else { return nil }
            columns = try loadRows(input, verb: edit.verb)
        case .deleteKeys:
            guard let input else { return nil }
            try loadKeys(input)
        case .deleteWhere(let predicate):
            if key.isEmpty { return try rewriteMatching(predicate: predicate, assignments: nil) }
            try run(
                "CREATE TABLE __udr_del AS SELECT \(keyList("t")) FROM \(table.sqlReference) AS t WHERE coalesce((\(predicate)), false)",
                what: "the predicate")
        case .update(let assignments, let predicate):
            try checkAssignments(assignments)
            if key.isEmpty { return try rewriteMatching(predicate: predicate ?? "true", assignments: assignments) }
            let set = Dictionary(assignments.map { ($0.column, $0.expression) }, uniquingKeysWith: { $1 })
            let select = manifest.columns.map { column in
                set[column.name].map { "CAST((\($0)) AS \(column.type)) AS \(quoteIdentifier(column.name))" }
                    ?? "t.\(quoteIdentifier(column.name))"
            }
            let filter = "coalesce((\(predicate ?? "true")), false)"
            try run(
                "CREATE TABLE __udr_matched AS SELECT * FROM \(table.sqlReference) AS t WHERE \(filter)", what: "the update's WHERE clause")
            try run(
                "CREATE TABLE __udr_up AS SELECT \(select.joined(separator: ", ")) FROM __udr_matched AS t", what: "the update's SET clause"
            )
            try run("CREATE TABLE __udr_del AS SELECT \(keyList("t")) FROM __udr_matched AS t", what: "the update")
            try writer.checkKeys(key, in: "__udr_up")
        }
        if key.isEmpty {
            return try applyPositional(columns: columns)
        }
        var newKeys: NewKeys?
        if case .append = edit.base { newKeys = NewKeys(relation: "__udr_up", verb: "append to", hint: "Use upsert to replace rows.") }
        return try applyDelta(columns: columns, newKeys: newKeys)
    }

    /// Keys an edit adds that must not exist in the table yet: a relation
    /// of them (the key columns), and how the error says so.
    struct NewKeys {
        let relation: String
        /// "append to", "insert into" …
        let verb: String
        /// What to do instead.
        let hint: String
    }

    // MARK: Input

    /// Loads appended/upserted rows into `__udr_up` in the table's schema,
    /// extended by any new columns of the input; returns that schema.
    private func loadRows(_ input: (select: String, name: String), verb: String) throws(UDRError) -> [Column] {
        let given = try writer.describe(input.select, inputName: input.name)
        var columns = manifest.columns
        let known = Dictionary(manifest.columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        var problems: [String] = []
        for column in given {
            guard let type = known[column.name] else {
                columns.append(column)
                continue
            }
            // Integers of another width (a pandas int64 into an INTEGER
            // column) cast value by value; one out of range is an error.
            if column.type != type, !(try canCastImplicitly(column.type, type)),
                !(Self.integerTypes.contains(column.type) && Self.integerTypes.contains(type))
            {
                problems.append("\(column.name) is \(type) in \(table) but \(column.type) in \(input.name)")
            }
        }
        if !problems.isEmpty {
            throw UDRError(
                .invalidInput,
                "cannot \(verb) \(table): incompatible column types: \(problems.joined(separator: "; ")). Cast them in the input (e.g. --sql \"SELECT CAST(col AS TYPE) ...\"), or rewrite the table with `udr write`."
            )
        }
        let givenNames = Set(given.map(\.name))
        let missingKey = manifest.key.filter { !givenNames.contains($0) }
        if !missingKey.isEmpty {
            throw UDRError(
                .invalidInput, "cannot \(verb) \(table): \(input.name) lacks the key column(s) \(missingKey.joined(separator: ", "))")
        }
        let select = columns.map { column in
            givenNames.contains(column.name)
                ? "CAST(i.\(quoteIdentifier(column.name)) AS \(column.type)) AS \(quoteIdentifier(column.name))"
                : "CAST(NULL AS \(column.type)) AS \(quoteIdentifier(column.name))"
        }
        do throws(DuckDBError) {
            try connection.execute("CREATE TABLE __udr_up AS SELECT \(select.joined(separator: ", ")) FROM (\(input.select)) AS i")
        } catch { throw TableWriter.unreadable(error, input.name) }
        try writer.checkKeys(manifest.key, in: "__udr_up")
        return columns
    }

    /// Loads the keys to delete into `__udr_del`.
    private func loadKeys(_ input: (select: String, name: String)) throws(UDRError) {
        let given = Set(try writer.describe(input.select, inputName: input.name).map(\.name))
        let missing = manifest.key.filter { !given.contains($0) }
        if !missing.isEmpty {
            throw UDRError(
                .invalidInput,
                "cannot delete from \(table) by key: \(input.name) lacks the key column(s) \(missing.joined(separator: ", "))")
        }
        let types = Dictionary(manifest.columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        let select = manifest.key.map { "CAST(i.\(quoteIdentifier($0)) AS \(types[$0] ?? "VARCHAR")) AS \(quoteIdentifier($0))" }
        do throws(DuckDBError) {
            try connection.execute(
                "CREATE TABLE __udr_del AS SELECT DISTINCT \(select.joined(separator: ", ")) FROM (\(input.select)) AS i")
        } catch { throw TableWriter.unreadable(error, input.name) }
    }

    private func checkAssignments(_ assignments: [Assignment]) throws(UDRError) {
        let names = Set(manifest.columns.map(\.name))
        for assignment in assignments where !names.contains(assignment.column) {
            throw UDRError(
                .invalidArgument,
                "cannot update \(table): it has no column '\(assignment.column)'; its columns are \(manifest.columns.map(\.name).joined(separator: ", "))"
            )
        }
    }

    static let integerTypes: Set<String> = [
        "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
    ]

    private func canCastImplicitly(_ from: String, _ to: String) throws(UDRError) -> Bool {
        do throws(DuckDBError) {
            return try connection.query("SELECT can_cast_implicitly(NULL::\(from), NULL::\(to))").scalar == .bool(true)
        } catch { return false }
    }

    // MARK: Keyed tables

    private func keyList(_ alias: String) -> String {
        manifest.key.map { "\(alias).\(quoteIdentifier($0))" }.joined(separator: ", ")
    }

    private func keyMatch(_ a: String, _ b: String) -> String {
        manifest.key.map { "\(a).\(quoteIdentifier($0)) = \(b).\(quoteIdentifier($0))" }.joined(separator: " AND ")
    }

    /// Key types whose Parquet min/max order like DuckDB's ORDER BY
    /// (string statistics may be truncated, but stay valid bounds).
    static let orderedStatTypes: Set<String> = [
        "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "VARCHAR", "DATE", "TIMESTAMP",
    ]

    /// Applies the delta in `__udr_up` (rows in `columns`) and `__udr_del`
    /// (keys); either may be absent. A key of `newKeys` that the table
    /// holds already is an error.
    func applyDelta(columns: [Column], newKeys: NewKeys? = nil) throws(UDRError) -> Result? {
        let key = manifest.key
        try run(
            "CREATE TABLE IF NOT EXISTS __udr_up AS SELECT \(typedNulls(columns)) WHERE false"
        )
        try run("CREATE TABLE IF NOT EXISTS __udr_del AS SELECT \(keyList("u")) FROM __udr_up AS u WHERE false")

        // Where each touched key falls: by the first key column's range in
        // each segment (unknown ranges match every key).
        let first = key[0]
        let firstType = manifest.columns.first { $0.name == first }?.type ?? "VARCHAR"
        let usable = Self.orderedStatTypes.contains(firstType)
        let segments = manifest.segments
        var values: [String] = []
        for (index, segment) in segments.enumerated() {
            let stats = usable ? segment.stats[first] : nil
            let low = stats?.min.map { "TRY_CAST(\(quoteLiteral($0)) AS \(firstType))" } ?? "NULL"
            let high = stats?.max.map { "TRY_CAST(\(quoteLiteral($0)) AS \(firstType))" } ?? "NULL"
            values.append("(\(index), \(low), \(high))")
        }
        let q = quoteIdentifier(first)
        try self.values("__udr_bounds", ["seg", "lo", "hi"], values)
        try run(
            """
            CREATE TABLE __udr_place AS
            SELECT k,
                (SELECT min(seg) FROM __udr_bounds b WHERE b.hi IS NULL OR b.hi >= k) AS f,
                (SELECT max(seg) FROM __udr_bounds b WHERE b.lo IS NULL OR b.lo <= k) AS l
            FROM (SELECT DISTINCT \(q) AS k FROM (SELECT \(q) FROM __udr_up UNION ALL SELECT \(q) FROM __udr_del))
            """)
        // Touched segments, and new rows per gap (gap g lies before segment g).
        var touched = Set<Int>()
        var gapRows: [Int: Int] = [:]
        let n = segments.count
        for row in try query("SELECT f, l, count(*) FROM __udr_place GROUP BY ALL").rows {
            let f = row[0].int.map(Int.init)
            let l = row[1].int.map(Int.init)
            if let f, let l, f <= l { touched.formUnion(f...l) }
        }
        let gapQuery = """
            SELECT coalesce(p.f, \(n)) AS gap, count(*) FROM __udr_up u JOIN __udr_place p ON u.\(q) = p.k
            WHERE NOT coalesce(p.f <= p.l, false) GROUP BY ALL
            """
        for row in try query(gapQuery).rows {
            if let gap = row[0].int, let count = row[1].int { gapRows[Int(gap), default: 0] += Int(count) }
        }
        if touched.isEmpty && gapRows.isEmpty { return nil }

        // Too few new rows for a segment of their own join a neighbour.
        var gapTarget: [Int: Int] = [:]
        for (gap, rows) in gapRows where rows < policy.minimumRows && n > 0 {
            let neighbour = gap > 0 ? gap - 1 : 0
            touched.insert(neighbour)
            gapTarget[gap] = neighbour
        }
        // Runs over the places gap 0, segment 0, gap 1, …, segment n-1, gap n.
        var runOfSegment: [Int: Int] = [:]
        var runOfGap: [Int: Int] = [:]
        var runs = 0
        var open = false
        for place in 0...(2 * n) {
            let isGap = place % 2 == 0
            let index = place / 2
            if isGap {
                if gapRows[index] != nil, gapTarget[index] == nil {
                    if !open { runs += 1; open = true }
                    runOfGap[index] = runs - 1
                }
            } else if touched.contains(index) {
                if !open { runs += 1; open = true }
                runOfSegment[index] = runs - 1
            } else {
                open = false
            }
        }
        for (gap, segment) in gapTarget { runOfGap[gap] = runOfSegment[segment] }

        // The touched segments' live rows whose key the edit names.
        let touchedSegments = touched.sorted()
        try loadHits(touchedSegments, columns: columns)

        if let newKeys {
            let existing = try query(
                "SELECT CAST(row(\(keyList("u"))) AS VARCHAR) FROM \(newKeys.relation) u JOIN __udr_hit o ON \(keyMatch("u", "o")) LIMIT 10")
            if existing.count > 0 {
                let total = try query("SELECT count(*) FROM \(newKeys.relation) u JOIN __udr_hit o ON \(keyMatch("u", "o"))").scalar.int ?? 0
                throw UDRError(
                    .duplicateKey,
                    "cannot \(newKeys.verb) \(table): \(total) key value(s) already exist, e.g. \(existing.rows.map { $0[0].description }.joined(separator: ", ")). \(newKeys.hint)"
                )
            }
        }

        // What the edit does, row by row.
        let names = columns.map { quoteIdentifier($0.name) }
        let differ = try Self.rowsDiffer("u", "o", columns: columns)
        let counted = try query(
            """
            SELECT
              (SELECT count(*) FROM __udr_up u WHERE NOT EXISTS (SELECT 1 FROM __udr_hit o WHERE \(keyMatch("o", "u")))),
              (SELECT count(*) FROM __udr_up u JOIN __udr_hit o ON \(keyMatch("u", "o")) WHERE \(differ)),
              (SELECT count(*) FROM __udr_del d JOIN __udr_hit o ON \(keyMatch("d", "o"))
                 WHERE NOT EXISTS (SELECT 1 FROM __udr_up u WHERE \(keyMatch("u", "d"))))
            """
        ).rows[0]
        let counts = RowCounts(inserted: counted[0].int ?? 0, deleted: counted[2].int ?? 0, updated: counted[1].int ?? 0)
        if counts == RowCounts() && columns == manifest.columns { return nil }
        let recorded = recordsChanges ? try recordChanges(columns: columns, counts: counts) : false
        if counts.inserted == 0 && counts.updated == 0 && columns == manifest.columns,
            let segments = try deleteInPlace(touchedSegments)
        {
            return Result(
                written: try finish(segments.segments, columns: columns, logical: 0, added: segments.added), counts: counts, recordedChanges: recorded)
        }
        if let placed = try applyInPlace(touchedSegments, columns: columns, inserted: counts.inserted) {
            return Result(written: placed, counts: counts, recordedChanges: recorded)
        }

        try loadOld(touchedSegments, columns: columns, runs: runOfSegment)
        try self.values("__udr_gap_run", ["gap", "run"], runOfGap.map { "(\($0.key), \($0.value))" })
        try self.values("__udr_seg_run", ["seg", "run"], runOfSegment.map { "(\($0.key), \($0.value))" })
        let list = names.joined(separator: ", ")
        let source = """
            SELECT \(list), __udr_run FROM __udr_old o
              WHERE NOT EXISTS (SELECT 1 FROM __udr_del d WHERE \(keyMatch("d", "o")))
                AND NOT EXISTS (SELECT 1 FROM __udr_up u WHERE \(keyMatch("u", "o")))
            UNION ALL
            SELECT \(names.map { "u.\($0)" }.joined(separator: ", ")), coalesce(s.run, g.run) AS __udr_run
              FROM __udr_up u JOIN __udr_place p ON u.\(q) = p.k
              LEFT JOIN __udr_seg_run s ON coalesce(p.f <= p.l, false) AND s.seg = p.f
              LEFT JOIN __udr_gap_run g ON NOT coalesce(p.f <= p.l, false) AND g.gap = coalesce(p.f, \(n))
            """
        let written = try writer.writeRuns(source: source, columns: columns, key: key, runs: runs)
        var out: [SegmentRef] = []
        var emitted = Set<Int>()
        func emit(_ run: Int?) {
            guard let run, !emitted.contains(run) else { return }
            emitted.insert(run)
            out += written.segments[run]
        }
        for index in 0...n {
            emit(runOfGap[index])
            guard index < n else { break }
            if let run = runOfSegment[index] { emit(run) } else { out.append(kept(segments[index], extendedTo: columns)) }
        }
        return Result(
            written: try finish(out, columns: columns, logical: written.logical, added: written.added), counts: counts, recordedChanges: recorded)
    }

    /// SQL true where the rows aliased `a` and `b` (of `columns`) differ
    /// in a column, exactly (``TypeNode/differ(_:_:logicalType:)``).
    static func rowsDiffer(_ a: String, _ b: String, columns: [Column]) throws(UDRError) -> String {
        var terms: [String] = []
        for column in columns {
            let name = quoteIdentifier(column.name)
            terms.append(try TypeNode.differ("\(a).\(name)", "\(b).\(name)", logicalType: column.type))
        }
        return terms.isEmpty ? "false" : "(" + terms.joined(separator: " OR ") + ")"
    }

    /// Leaves the edit's changed rows in ``changedRows``: the old image
    /// (from `__udr_hit`) of each row it updates or deletes, and the new
    /// one (from `__udr_up`) of each row it updates or inserts. false
    /// (nothing left) when they are more than a record keeps.
    private func recordChanges(columns: [Column], counts: RowCounts) throws(UDRError) -> Bool {
        guard counts.inserted + counts.deleted + 2 * counts.updated <= ChangeRecord.maximumRows(tableRows: manifest.rows) else { return false }
        let names = columns.map { quoteIdentifier($0.name) }
        let differ = try Self.rowsDiffer("u", "o", columns: columns)
        try run(
            """
            CREATE TABLE \(Self.changedRows) AS
            SELECT \(names.map { "o.\($0)" }.joined(separator: ", ")), false AS __udr_new FROM __udr_hit o
            WHERE EXISTS (SELECT 1 FROM __udr_up u WHERE \(keyMatch("u", "o")) AND \(differ))
               OR (EXISTS (SELECT 1 FROM __udr_del d WHERE \(keyMatch("d", "o"))) AND NOT EXISTS (SELECT 1 FROM __udr_up u WHERE \(keyMatch("u", "o"))))
            UNION ALL
            SELECT \(names.map { "u.\($0)" }.joined(separator: ", ")), true FROM __udr_up u
            WHERE NOT EXISTS (SELECT 1 FROM __udr_hit o WHERE \(keyMatch("o", "u")) AND NOT \(differ))
            """)
        return true
    }

    /// Loads into `__udr_hit` the live rows of the `touched` segments whose
    /// key the edit names (in `__udr_up` or `__udr_del`), in `columns`, with
    /// each row's segment (`__seg`) and position in its own file
    /// (`__pos`); and into `__udr_dead` the positions already deleted
    /// there. One scan of the segments' own files, nothing else kept.
    private func loadHits(_ touched: [Int], columns: [Column]) throws(UDRError) {
        let segments = manifest.segments
        var fileSegs: [String] = []
        var files: [String] = []
        for index in touched {
            let path = try file(segments[index])
            files.append(path)
            fileSegs.append("(\(quoteLiteral(path)), \(index))")
        }
        try writer.createDeletedPositions("__udr_dead", of: segments, at: touched, on: connection)
        let none = "CREATE TABLE __udr_hit AS SELECT \(typedNulls(columns)), 0 AS __seg, 0::BIGINT AS __pos WHERE false"
        guard !files.isEmpty else { return try run(none) }
        try self.values("__udr_file_seg", ["file", "seg"], fileSegs)
        // The named rows' places, from the key columns alone; then those
        // rows whole, from the files that hold any.
        let wholes = touched.map { kept(manifest.wholeFile(segments[$0]), extendedTo: columns) }
        let keyColumns = columns.filter { manifest.key.contains($0.name) }
        let keys = Manifest(table: table, version: manifest.version, columns: keyColumns, key: manifest.key, segments: wholes)
        try run(
            """
            CREATE TABLE __udr_hit_pos AS SELECT f.seg AS __seg, o.file_row_number AS __pos
            FROM (\(Repository.segmentSelect(keys, segments: wholes, files: files, extra: ["filename", "file_row_number"]))) AS o
            JOIN __udr_file_seg f ON o.filename = f.file
            WHERE (EXISTS (SELECT 1 FROM __udr_up u WHERE \(keyMatch("u", "o"))) OR EXISTS (SELECT 1 FROM __udr_del d WHERE \(keyMatch("d", "o"))))
              AND NOT EXISTS (SELECT 1 FROM __udr_dead x WHERE x.seg = f.seg AND x.pos = o.file_row_number)
            """)
        let holding = Set(try query("SELECT DISTINCT __seg FROM __udr_hit_pos").rows.compactMap { $0[0].int.map(Int.init) })
        let held = touched.indices.filter { holding.contains(touched[$0]) }
        guard !held.isEmpty else { return try run(none) }
        let extended = Manifest(table: table, version: manifest.version, columns: columns, key: manifest.key, segments: wholes)
        let select = Repository.segmentSelect(
            extended, segments: held.map { wholes[$0] }, files: held.map { files[$0] }, extra: ["filename", "file_row_number"])
        try run(
            """
            CREATE TABLE __udr_hit AS SELECT o.* EXCLUDE (filename, file_row_number), h.__seg, h.__pos
            FROM (\(select)) AS o JOIN __udr_file_seg f ON o.filename = f.file JOIN __udr_hit_pos h ON h.__seg = f.seg AND h.__pos = o.file_row_number
            """)
    }

    /// Loads every live row of the `touched` segments into `__udr_old`,
    /// with its run (for re-cutting them).
    private func loadOld(_ touched: [Int], columns: [Column], runs: [Int: Int]) throws(UDRError) {
        let segments = manifest.segments
        var files: [String] = []
        var fileRuns: [String] = []
        for index in touched {
            let file = try materialize(segments[index])
            files.append(file)
            fileRuns.append("(\(quoteLiteral(file)), \(runs[index]!))")
        }
        guard !files.isEmpty else {
            try run("CREATE TABLE __udr_old AS SELECT \(typedNulls(columns)), 0 AS __udr_run WHERE false")
            return
        }
        try self.values("__udr_file_run", ["file", "run"], fileRuns)
        let extended = Manifest(table: table, version: manifest.version, columns: columns, key: manifest.key, segments: manifest.segments)
        let oldSelect = Repository.segmentSelect(
            extended, segments: touched.map { kept(segments[$0], extendedTo: columns) }, files: files, extra: ["filename"])
        try run(
            "CREATE TABLE __udr_old AS SELECT o.* EXCLUDE (filename), r.run AS __udr_run FROM (\(oldSelect)) AS o JOIN __udr_file_run AS r ON o.filename = r.file"
        )
    }

    /// Writes each `touched` segment holding a row the edit changes or
    /// deletes again, from its own file, with its rows in place: the
    /// upserted ones take their new values, the deleted ones keep theirs
    /// and are listed as deleted (see ``Deletions``); the unchanged column
    /// chunks stay shared. Rows with new keys go to segments after the
    /// others (with the small ones at the end, see
    /// ``TableWriter/endSegmentsJoining(_:added:)``), as a refresh puts
    /// them (see ``TableWriter/writeOver(_:columns:key:rowCount:clock:)``).
    /// Each segment is ordered on its own: no sort of all touched rows.
    /// nil when that does not apply (a segment left with more deleted rows
    /// than live ones, or too many new keys among the old): the caller
    /// re-cuts the touched runs.
    private func applyInPlace(_ touched: [Int], columns: [Column], inserted: Int64) throws(UDRError) -> WrittenTable? {
        let segments = manifest.segments
        let key = manifest.key
        let joining = Set(writer.endSegmentsJoining(manifest, added: inserted))
        // Per touched segment: rows the edit changes, and those it deletes.
        var changed: [Int: Int64] = [:]
        var deleted: [Int: [Int64]] = [:]
        let upserted = "EXISTS (SELECT 1 FROM __udr_up u WHERE \(keyMatch("u", "h")))"
        for row in try query("SELECT __seg, __pos, \(upserted) FROM __udr_hit h").rows {
            guard let seg = row[0].int.map(Int.init), let position = row[1].int else { continue }
            changed[seg, default: 0] += 1
            if row[2] != .bool(true) { deleted[seg, default: []].append(position) }
        }
        var inPlace: [Int] = []
        for index in touched where !joining.contains(index) && changed[index] != nil {
            let segment = segments[index]
            let dead = segment.fileRows - segment.rows + Int64(deleted[index]?.count ?? 0)
            if dead > segment.fileRows - dead { return nil }
            inPlace.append(index)
        }
        // New keys among the old ones make a layer; past a tenth of the
        // table, counting the layers already there, re-cutting is better.
        let n = segments.count
        let among =
            try query(
                """
                SELECT count(*) FROM __udr_up u JOIN __udr_place p ON u.\(quoteIdentifier(key[0])) = p.k
                WHERE NOT EXISTS (SELECT 1 FROM __udr_hit h WHERE \(keyMatch("h", "u"))) AND (coalesce(p.f <= p.l, false) OR coalesce(p.f, \(n)) < \(n))
                """
            ).scalar.int ?? 0
        let layered = among + TableWriter.layeredRows(manifest)
        if layered > manifest.rows / 10 && among > 0 && layered > Int64(policy.minimumRows) { return nil }

        // Each rewritten segment: its own file's rows in order, the upserted
        // ones with their new values, found by position (`__udr_hit` holds
        // live rows only: a row deleted before is not among them).
        try run(
            """
            CREATE TABLE __udr_up_at AS SELECT u.*, true AS __udr_hit, h.__seg AS __udr_seg, h.__pos AS __udr_pos
            FROM __udr_up u JOIN __udr_hit h ON \(keyMatch("u", "h")) ORDER BY h.__seg, h.__pos
            """)
        var selects: [String] = []
        var rows: [Int64] = []
        for index in inPlace {
            let segment = segments[index]
            let present = Set(manifest.columnNames(of: segment))
            var select: [String] = []
            for column in columns {
                let name = quoteIdentifier(column.name)
                let storage = try TypeNode.parse(column.type).storage().sql
                let old = present.contains(column.name) ? "CAST(o.\(name) AS \(storage))" : "CAST(NULL AS \(storage))"
                select.append("CASE WHEN u.__udr_hit THEN CAST(u.\(name) AS \(storage)) ELSE \(old) END AS \(name)")
            }
            selects.append(
                """
                SELECT \(select.joined(separator: ", ")) FROM read_parquet(\(quoteLiteral(try file(segment))), file_row_number = true) o
                LEFT JOIN (SELECT * FROM __udr_up_at WHERE __udr_seg = \(index)) u ON u.__udr_pos = o.file_row_number
                ORDER BY o.file_row_number
                """)
            rows.append(segment.fileRows)
        }
        // The rows of new keys, and those of the small segments at the end
        // that join them (edited), cut in key order after the others; they
        // go first, as writing segments leaves DuckDB on one thread.
        let names = columns.map { quoteIdentifier($0.name) }
        var parts = ["SELECT \(names.joined(separator: ", ")), 0 AS __udr_run FROM __udr_up u WHERE NOT EXISTS (SELECT 1 FROM __udr_hit h WHERE \(keyMatch("h", "u")))"]
        let ending = joining.sorted()
        if !ending.isEmpty {
            var files: [String] = []
            for index in ending { files.append(try materialize(segments[index])) }
            let extended = Manifest(table: table, version: manifest.version, columns: columns, key: key, segments: segments)
            let select = Repository.segmentSelect(extended, segments: ending.map { kept(segments[$0], extendedTo: columns) }, files: files)
            let gone = "EXISTS (SELECT 1 FROM __udr_del d WHERE \(keyMatch("d", "o"))) AND u.__udr_hit IS NULL"
            parts.append(
                """
                SELECT \(names.map { "CASE WHEN u.__udr_hit THEN u.\($0) ELSE o.\($0) END" }.joined(separator: ", ")), 0 FROM (\(select)) o
                LEFT JOIN (SELECT *, true AS __udr_hit FROM __udr_up) u ON \(keyMatch("u", "o")) WHERE NOT (\(gone))
                """)
        }
        let added = try writer.writeRuns(source: parts.joined(separator: "\nUNION ALL\n"), columns: columns, key: key, runs: 1)
        var clock = StepClock()
        let written = try writer.writeSegments(selects: selects, rows: rows, columns: columns, key: key, clock: &clock)

        var placement = TableWriter.Placement(added: added.segments.first ?? [], logical: written.logical + added.logical)
        for index in ending { placement.kept[index] = [] }
        var objects: [Data] = []
        for (index, segment) in zip(inPlace, written.segments) {
            let dead = try Set(writer.store.deletedPositions(of: segments[index])).union(deleted[index] ?? [])
            let listed = try segment.deleting(dead.sorted())
            if let object = listed.object { objects.append(object) }
            placement.kept[index] = [listed.segment]
        }
        let bytes = written.added + added.added + (try writer.store.put(objects).bytesAdded)
        let result = placement.segments(replacing: segments) { kept($0, extendedTo: columns) }
        return try finish(result, columns: columns, logical: placement.logical, added: bytes)
    }

    /// Deletes the keys of `__udr_del` from the `touched` segments by
    /// listing their rows' positions beside each file (see ``Deletions``),
    /// so the files and their column chunks stay shared with the versions
    /// before. nil when a segment would then hold more deleted rows than
    /// live ones: the caller rewrites the touched segments instead, without
    /// their deleted rows.
    private func deleteInPlace(_ touched: [Int]) throws(UDRError) -> (segments: [SegmentRef], added: Int64)? {
        var segments = manifest.segments
        guard !touched.isEmpty else { return (segments, 0) }
        // The deleted keys' positions in the touched files, in one pass.
        let wholes = touched.map { manifest.wholeFile(segments[$0]) }
        var files: [String] = []
        for index in touched { files.append(try file(segments[index])) }
        let select = Repository.segmentSelect(manifest, segments: wholes, files: files, extra: ["filename", "file_row_number"])
        var hits: [String: [Int64]] = [:]
        for row in try query(
            "SELECT o.filename, o.file_row_number FROM (\(select)) AS o WHERE EXISTS (SELECT 1 FROM __udr_del d WHERE \(keyMatch("d", "o")))"
        ).rows {
            if let name = row[0].string, let position = row[1].int { hits[name, default: []].append(position) }
        }
        var objects: [Data] = []
        for (index, name) in zip(touched, files) {
            guard let found = hits[name] else { continue }
            let segment = segments[index]
            let positions = Set(found).union(try writer.store.deletedPositions(of: segment))
            let count = Int64(positions.count)
            guard count <= segment.fileRows - count else { return nil }
            let deleted = try segment.deleting(positions.sorted())
            segments[index] = deleted.segment
            if let object = deleted.object { objects.append(object) }
        }
        return (segments, try writer.store.put(objects).bytesAdded)
    }

    // MARK: Keyless tables

    /// Deletes (`assignments` nil) or updates the rows matching `predicate`
    /// in the segments where it matches, keeping row order.
    private func rewriteMatching(predicate: String, assignments: [Assignment]?) throws(UDRError) -> Result? {
        let segments = manifest.segments
        var files: [String] = []
        for segment in segments { files.append(try materialize(segment)) }
        files = Self.distinctPaths(files)
        let all = Repository.segmentSelect(manifest, segments: segments, files: files, extra: ["filename", "file_row_number"])
        let local = quoteIdentifier(table.localName)
        let filter = "coalesce((\(predicate)), false)"
        var values: [String] = []
        var differs: [String] = []
        let set = Dictionary((assignments ?? []).map { ($0.column, $0.expression) }, uniquingKeysWith: { $1 })
        for column in manifest.columns {
            let name = "\(local).\(quoteIdentifier(column.name))"
            guard let expression = set[column.name] else {
                values.append(name)
                continue
            }
            let value = "CAST((\(expression)) AS \(column.type))"
            values.append("\(value) AS \(quoteIdentifier(column.name))")
            differs.append(try TypeNode.differ(value, name, logicalType: column.type))
        }
        let changed = assignments == nil ? "" : " AND (\(differs.isEmpty ? "false" : differs.joined(separator: " OR ")))"
        try run(
            """
            CREATE TABLE __udr_touch AS SELECT \(local).filename, \(local).file_row_number, \(assignments == nil) AS __udr_deleted,
              \(values.joined(separator: ", ")) FROM (\(all)) AS \(local) WHERE \(filter)\(changed)
            """, what: assignments == nil ? "the predicate" : "the update")
        return try applyPositional(columns: manifest.columns)
    }

    /// The paths of segment files as a keyless table's scans list them: a
    /// file that stands for several segments (a keyless table can hold
    /// equal ones) is named differently each time (`dir/./name`), so that
    /// `filename` and `file_row_number` tell every row apart.
    static func distinctPaths(_ files: [String]) -> [String] {
        var seen: [String: Int] = [:]
        return files.map { file in
            let repeats = seen[file, default: 0]
            seen[file] = repeats + 1
            guard repeats > 0, let slash = file.lastIndex(of: "/") else { return file }
            return String(file[...slash]) + String(repeating: "./", count: repeats) + String(file[file.index(after: slash)...])
        }
    }

    /// Applies changes by row position to a keyless table: `__udr_touch`
    /// names rows by their place in the files ``materialize`` gives, as
    /// ``distinctPaths(_:)`` names them (`filename`, `file_row_number`), each deleted (`__udr_deleted`) or
    /// updated to the values it holds in `columns`; `__udr_up` holds rows
    /// to append. Either may be absent. The segments holding touched rows
    /// are written again with their rows in order, the others kept;
    /// appended rows go after the last segment, as segments of their own
    /// or, when too few for one, rewritten together with it.
    func applyPositional(columns: [Column]) throws(UDRError) -> Result? {
        let names = columns.map { quoteIdentifier($0.name) }
        try run("CREATE TABLE IF NOT EXISTS __udr_up AS SELECT \(typedNulls(columns)) WHERE false")
        try run(
            "CREATE TABLE IF NOT EXISTS __udr_touch AS SELECT ''::VARCHAR AS filename, 0::BIGINT AS file_row_number, false AS __udr_deleted, \(typedNulls(columns)) WHERE false"
        )
        let counted = try query(
            "SELECT (SELECT count(*) FROM __udr_up), (SELECT count(*) FILTER (__udr_deleted) FROM __udr_touch), (SELECT count(*) FILTER (NOT __udr_deleted) FROM __udr_touch)"
        ).rows[0]
        let counts = RowCounts(inserted: counted[0].int ?? 0, deleted: counted[1].int ?? 0, updated: counted[2].int ?? 0)
        if counts == RowCounts() && columns == manifest.columns { return nil }
        let segments = manifest.segments
        var files: [String] = []
        var touched: [Int] = []
        if counts.deleted + counts.updated > 0 {
            let hit = Set(try query("SELECT DISTINCT filename FROM __udr_touch").rows.compactMap { $0[0].string })
            for segment in segments { files.append(try materialize(segment)) }
            files = Self.distinctPaths(files)
            touched = files.indices.filter { hit.contains(files[$0]) }
        }
        let joinLast = counts.inserted > 0 && counts.inserted < policy.minimumRows && !segments.isEmpty
        if joinLast, touched.last != segments.count - 1 {
            if files.isEmpty { files = Array(repeating: "", count: segments.count - 1) + [try materialize(segments[segments.count - 1])] }
            touched.append(segments.count - 1)
        }
        var runOf: [Int: Int] = [:]
        for (run, index) in touched.enumerated() { runOf[index] = run }
        let appendRun = joinLast ? runOf[segments.count - 1]! : touched.count
        let runs = touched.count + (counts.inserted > 0 && !joinLast ? 1 : 0)
        guard runs > 0 else {
            return Result(written: try finish(segments.map { kept($0, extendedTo: columns) }, columns: columns, logical: 0, added: 0), counts: counts)
        }
        var parts: [String] = []
        if !touched.isEmpty {
            try self.values("__udr_file_run", ["file", "run"], touched.map { "(\(quoteLiteral(files[$0])), \(runOf[$0]!))" })
            let extended = Manifest(table: table, version: manifest.version, columns: columns, key: [], segments: segments)
            let old = Repository.segmentSelect(
                extended, segments: touched.map { kept(segments[$0], extendedTo: columns) }, files: touched.map { files[$0] },
                extra: ["filename", "file_row_number"])
            let select = names.map { "CASE WHEN c.filename IS NULL THEN o.\($0) ELSE c.\($0) END AS \($0)" }
            parts.append(
                """
                SELECT \(select.joined(separator: ", ")), r.run AS __udr_run, o.file_row_number AS __udr_pos
                FROM (\(old)) AS o JOIN __udr_file_run r ON o.filename = r.file
                LEFT JOIN __udr_touch c ON c.filename = o.filename AND c.file_row_number = o.file_row_number
                WHERE NOT coalesce(c.__udr_deleted, false)
                """)
        }
        if counts.inserted > 0 {
            parts.append("SELECT \(names.joined(separator: ", ")), \(appendRun) AS __udr_run, 4294967296 + rowid AS __udr_pos FROM __udr_up")
        }
        let written = try writer.writeRuns(source: parts.joined(separator: " UNION ALL "), columns: columns, key: [], runs: runs)
        var out: [SegmentRef] = []
        for (index, segment) in segments.enumerated() {
            if let run = runOf[index] { out += written.segments[run] } else { out.append(kept(segment, extendedTo: columns)) }
        }
        if counts.inserted > 0 && !joinLast { out += written.segments[appendRun] }
        return Result(written: try finish(out.filter { $0.rows > 0 }, columns: columns, logical: written.logical, added: written.added), counts: counts)
    }

    // MARK: Whole tables

    /// Writes every segment again as `columns` (and `key`), each row
    /// through `select` (an expression per column over the old row, `o`),
    /// each segment a run of its own so that the cuts stay where they
    /// were: the column chunks whose values did not change come out
    /// byte-identical and are stored once (a rename stores new footers).
    func rewriteAll(columns: [Column], key: [String], select: [String]) throws(UDRError) -> WrittenTable {
        let segments = manifest.segments
        var files: [String] = []
        for segment in segments { files.append(try materialize(segment)) }
        files = Self.distinctPaths(files)
        try self.values("__udr_file_run", ["file", "run"], files.enumerated().map { "(\(quoteLiteral($1)), \($0))" })
        let old = Repository.segmentSelect(manifest, segments: segments, files: files, extra: ["filename", "file_row_number"])
        let source = """
            SELECT \(select.joined(separator: ", ")), r.run AS __udr_run, o.file_row_number AS __udr_pos
            FROM (\(old)) AS o JOIN __udr_file_run r ON o.filename = r.file
            """
        let written = try writer.writeRuns(source: source, columns: columns, key: key, runs: segments.count)
        let out = written.segments.flatMap { $0 }.filter { $0.rows > 0 }
        guard !out.isEmpty else {
            return try writer.write(
                table: table, version: manifest.version, source: "SELECT \(typedNulls(columns)) WHERE false", inputName: "the empty table",
                key: key, previousKey: key)
        }
        return WrittenTable(
            manifest: Manifest(table: table, version: manifest.version, columns: columns, key: key, segments: out),
            logicalBytes: written.logical, bytesAdded: written.added)
    }

    // MARK: Shared

    /// A kept segment under a schema with more columns names the ones it has.
    private func kept(_ segment: SegmentRef, extendedTo columns: [Column]) -> SegmentRef {
        guard columns != manifest.columns, segment.columns == nil else { return segment }
        var copy = segment
        copy.columns = manifest.columns.map(\.name)
        return copy
    }

    /// The new version; a table left without rows keeps one empty segment
    /// (it carries the schema).
    private func finish(_ segments: [SegmentRef], columns: [Column], logical: Int64, added: Int64) throws(UDRError) -> WrittenTable {
        if segments.isEmpty {
            let empty =
                "SELECT \(typedNulls(columns)) WHERE false"
            return try writer.write(
                table: table, version: manifest.version, source: empty, inputName: "the empty table", key: manifest.key,
                previousKey: manifest.key)
        }
        let result = Manifest(table: table, version: manifest.version, columns: columns, key: manifest.key, segments: segments)
        return WrittenTable(manifest: result, logicalBytes: logical, bytesAdded: added)
    }

    /// A table of literal rows (`(1, 'a')`, …); with none, an empty one of integers.
    private func values(_ name: String, _ columns: [String], _ rows: [String]) throws(UDRError) {
        if rows.isEmpty {
            try run("CREATE TABLE \(name) AS SELECT \(columns.map { "NULL::INTEGER AS \($0)" }.joined(separator: ", ")) WHERE false")
        } else {
            try run(
                "CREATE TABLE \(name) AS SELECT * FROM (VALUES \(rows.joined(separator: ", "))) AS v(\(columns.joined(separator: ", ")))")
        }
    }

    private func run(_ sql: String, what: String? = nil) throws(UDRError) {
        do { try connection.execute(sql) } catch {
            if let what {
                throw UDRError(.query, "cannot evaluate \(what) of this edit on \(table): \(error.message)", underlying: error)
            }
            throw UDRError(.query, error.message, underlying: error)
        }
    }

    private func query(_ sql: String) throws(UDRError) -> ResultSet {
        do { return try connection.query(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
    }
}
