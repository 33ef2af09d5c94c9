import DuckDB
import Foundation

extension TableWriter {
    /// Creates `table` (`seg`, `pos`): the deleted positions of the
    /// segments at `indices` of `segments`, by index.
    func createDeletedPositions(_ table: String, of segments: [SegmentRef], at indices: [Int], on connection: Connection) throws(UDRError) {
        var rows: [String] = []
        for index in indices where segments[index].deletions != nil {
            rows += try store.deletedPositions(of: segments[index]).map { "(\(index), \($0))" }
        }
        try createTable(table, columns: "seg INTEGER, pos BIGINT", rows: rows, on: connection)
    }

    /// Whether ``writeOver(_:columns:key:rowCount:clock:)`` may apply: a
    /// keyed table whose key and column types stay, with rows.
    func canWriteOver(_ previous: Manifest, columns: [Column], key: [String]) -> Bool {
        let segments = previous.segments
        guard !key.isEmpty, previous.key == key, !segments.isEmpty, segments.contains(where: { $0.rows > 0 }) else { return false }
        let types = Dictionary(columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        for column in previous.columns where types[column.name].map({ $0 != column.type }) == true { return false }
        for segment in segments where !key.allSatisfy(previous.columnNames(of: segment).contains) { return false }
        return Set(segments.map(\.id)).count == segments.count
    }

    /// Writes the new content of a keyed table (in `__udr_input`, in any
    /// order: its rows in storage form, as ``sort(_:columns:key:order:inputName:extra:into:)``
    /// leaves them, with a row number `__udr_row`) as the next version of
    /// `previous`, keeping each of its segments
    /// in place:
    ///
    /// - A segment's file is written again with the same rows at the same
    ///   positions, each with its new values; a row whose key is gone keeps
    ///   its old values and is listed as deleted (see ``Deletions``). The
    ///   columns that did not change give the same column chunks, already
    ///   stored: a refresh that recomputes two columns and deletes a few
    ///   rows stores those two columns' chunks and the deleted positions.
    /// - A segment that would hold more deleted rows than live ones has its
    ///   live rows cut anew, in its place.
    /// - Rows with new keys (with the rows of small segments at the end,
    ///   when they are few) are cut into segments of their own after the
    ///   others. Their key range may overlap the others': every reader
    ///   finds a key by each segment's own range, not by the order of
    ///   the segments.
    ///
    /// The rows are ordered once, by their places; duplicate and NULL keys
    /// are rejected then (a key's rows stand next to each other in that
    /// order). nil when this does not apply (see ``canWriteOver(_:columns:key:)``,
    /// no rows), or when the rows in such layers, with the new keys among
    /// the old ones, would pass a tenth of the table: the caller writes the
    /// rows of `__udr_input` from scratch, in key order, as a first write
    /// would.
    func writeOver(_ previous: Manifest, columns: [Column], key: [String], rowCount: Int, clock: inout StepClock)
        throws(UDRError) -> Placement?
    {
        guard rowCount > 0, canWriteOver(previous, columns: columns, key: key) else { return nil }
        let segments = previous.segments
        let tableRows = Int64(rowCount)
        let types = Dictionary(columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })

        let helpers = ["__udr_wo_files", "__udr_wo_prev", "__udr_wo_match", "__udr_wo_run", "__udr_wo_dead"]
        defer { for table in helpers { try? connection.execute("DROP TABLE IF EXISTS \(table)") } }

        // Every key of the previous version's files (deleted rows too), and
        // the new row holding it.
        var files: [String] = []
        for segment in segments { files.append(try cache.materializeFile(segment, store: store).path) }
        try run(
            "CREATE TABLE __udr_wo_files AS SELECT * FROM (VALUES \(files.enumerated().map { "(\(quoteLiteral($1)), \($0))" }.joined(separator: ", "))) v(file, seg)"
        )
        let unionByName = segments.contains(where: \.readsByName) ? ", union_by_name = true" : ""
        var keyColumns: [String] = []
        for k in key { keyColumns.append("CAST(p.\(quoteIdentifier(k)) AS \(try TypeNode.parse(types[k]!).storage().sql)) AS \(quoteIdentifier(k))") }
        try run(
            """
            CREATE TABLE __udr_wo_prev AS SELECT f.seg AS __seg, p.file_row_number AS __pos, \(keyColumns.joined(separator: ", "))
            FROM read_parquet(\(list(files)), filename = true, file_row_number = true\(unionByName)) p JOIN __udr_wo_files f ON p.filename = f.file
            """)
        let match = key.map { "p.\(quoteIdentifier($0)) = s.\(quoteIdentifier($0))" }.joined(separator: " AND ")
        // A key as one value, compared column by column.
        let keyTuple = { (columns: [String]) in columns.count == 1 ? columns[0] : "row(\(columns.joined(separator: ", ")))" }
        let keyNames = key.indices.map { "__key\($0)" }
        try run(
            """
            CREATE TABLE __udr_wo_match AS SELECT p.__seg, p.__pos, s.__udr_row AS __row, \(zip(key, keyNames).map { "p.\(quoteIdentifier($0)) AS \($1)" }.joined(separator: ", "))
            FROM __udr_wo_prev p LEFT JOIN __udr_input s ON \(match)
            """)
        clock.step("match the previous version's keys")

        // A key held twice (deleted in one file, put back in another) takes
        // the place where it is live; its deleted row stays deleted.
        let twice = "SELECT count(__row) - count(DISTINCT __row) FROM __udr_wo_match"
        if try query(twice).scalar.int != 0 {
            let doubled = "SELECT __row FROM __udr_wo_match WHERE __row IS NOT NULL GROUP BY __row HAVING count(*) > 1"
            // Only the deletions of the files holding such a key are read.
            let holding = try query("SELECT DISTINCT __seg FROM __udr_wo_match WHERE __row IN (\(doubled))").rows.compactMap { $0[0].int.map(Int.init) }
            try createDeletedPositions("__udr_wo_gone", of: segments, at: holding, on: connection)
            defer { try? connection.execute("DROP TABLE IF EXISTS __udr_wo_gone") }
            try run(
                """
                UPDATE __udr_wo_match m SET __row = NULL FROM __udr_wo_gone g
                WHERE g.seg = m.__seg AND g.pos = m.__pos AND m.__row IN (\(doubled))
                """)
            if try query(twice).scalar.int != 0 { return nil }
        }

        var live = Array(repeating: Int64(0), count: segments.count)
        for row in try query("SELECT __seg, count(__row) FROM __udr_wo_match GROUP BY ALL").rows {
            guard let seg = row[0].int.map(Int.init), segments.indices.contains(seg) else { continue }
            live[seg] = row[1].int ?? 0
        }
        // Each segment keeps its place with its rows at their positions,
        // unless it would hold more deleted rows than live ones (its live
        // rows are cut anew, in its place) or has none left; small ones at
        // the end may join the added rows (see `endSegmentsJoining`).
        enum Fate { case inPlace, recut, dropped }
        var fates: [Fate] = segments.indices.map {
            live[$0] == 0 ? .dropped : segments[$0].fileRows - live[$0] > live[$0] ? .recut : .inPlace
        }
        for index in endSegmentsJoining(previous, added: Int64(rowCount) - live.reduce(0, +)) {
            fates[index] = .dropped
        }
        let runs = segments.indices.filter { fates[$0] != .dropped }
        let whole = Set(runs.indices.filter { fates[runs[$0]] == .inPlace })
        try run(
            "CREATE TABLE __udr_wo_run AS SELECT * FROM (VALUES \((runs.enumerated().map { "(\($1), \($0))" } + ["(-1, -1)"]).joined(separator: ", "))) v(seg, run)"
        )
        // The other rows follow as a second layer of segments, their keys
        // among the others' (up to the highest placed key, compared as their
        // logical type). Past a tenth of the table, counting the layers
        // already there, a fresh write is better.
        let placed = runs.reduce(Int64(0)) { $0 + live[$1] }
        let upTo =
            try query(
                """
                SELECT count(*) FROM __udr_input s
                WHERE \(keyTuple(key.map { "CAST(s.\(quoteIdentifier($0)) AS \(types[$0]!))" })) <= (
                    SELECT max(\(keyTuple(zip(key, keyNames).map { "CAST(m.\($1) AS \(types[$0]!))" })))
                    FROM __udr_wo_match m JOIN __udr_wo_run r ON r.seg = m.__seg WHERE m.__row IS NOT NULL)
                """
            ).scalar.int ?? 0
        let among = upTo - placed
        let layered = among + Self.layeredRows(previous)
        if layered > tableRows / 10 && among > 0 && layered > Int64(policy.minimumRows) { return nil }

        // The rows of each kept segment at their positions (the deleted
        // ones from its old file), then the rest in key order.
        let wholeRuns = whole.isEmpty ? "-1" : whole.sorted().map(String.init).joined(separator: ", ")
        try run(
            """
            CREATE TABLE __udr_wo_dead AS SELECT f.file, m.__pos, r.run FROM __udr_wo_match m JOIN __udr_wo_run r ON r.seg = m.__seg
            JOIN __udr_wo_files f ON f.seg = m.__seg WHERE m.__row IS NULL AND r.run IN (\(wholeRuns))
            """)
        let deadFiles = try query("SELECT DISTINCT file FROM __udr_wo_dead ORDER BY file").rows.compactMap { $0[0].string }
        let fileSegment = Dictionary(zip(files, segments), uniquingKeysWith: { a, _ in a })
        let oldColumns = Set(deadFiles.compactMap { fileSegment[$0] }.flatMap { previous.columnNames(of: $0) })
        let fresh = columns.map { "CAST(s.\(quoteIdentifier($0.name)) AS \($0.type)) AS \(quoteIdentifier($0.name))" }.joined(separator: ", ")
        let old = columns.map {
            oldColumns.contains($0.name)
                ? "CAST(o.\(quoteIdentifier($0.name)) AS \($0.type)) AS \(quoteIdentifier($0.name))"
                : "CAST(NULL AS \($0.type)) AS \(quoteIdentifier($0.name))"
        }.joined(separator: ", ")
        let endRun = runs.count
        // Every new row once: at its old place, or in the last run (where
        // the key orders the rows).
        var parts = [
            """
            SELECT \(fresh), coalesce(p.run, \(endRun)) AS __udr_run, p.__pos AS __udr_pos, false AS __udr_dead FROM __udr_input s
            LEFT JOIN (SELECT m.__row, m.__pos, r.run FROM __udr_wo_match m JOIN __udr_wo_run r ON r.seg = m.__seg WHERE m.__row IS NOT NULL) p
            ON p.__row = s.__udr_row
            """
        ]
        if !deadFiles.isEmpty {
            let union = deadFiles.contains { fileSegment[$0]?.readsByName == true } ? ", union_by_name = true" : ""
            parts.append(
                "SELECT \(old), d.run, d.__pos, true FROM read_parquet(\(list(deadFiles)), filename = true, file_row_number = true\(union)) o JOIN __udr_wo_dead d ON d.file = o.filename AND d.__pos = o.file_row_number"
            )
        }
        try sort(
            parts.joined(separator: "\nUNION ALL\n"), columns: columns, key: key,
            order: ["__udr_src.__udr_run", "__udr_src.__udr_pos"] + key.map { "__udr_src." + quoteIdentifier($0) }, inputName: "the new rows",
            extra: ["__udr_run", "__udr_dead"])
        clock.step("order the rows")
        // Rows of one key stand together in this order: at one old place,
        // or side by side in key order in the last run.
        try checkKeys(key, in: "(SELECT * FROM __udr_sorted WHERE NOT __udr_dead)", sortedByKey: true)
        clock.step("check keys")
        // A kept segment whose rows all keep their values keeps its file;
        // only its deleted rows may change. So a refresh that adds rows, or
        // changes some key ranges, writes no other segment again.
        var spans = try runSpans(runs: endRun + 1, whole: whole, key: key, columns: columns)
        let unchanged = try unchangedRuns(spans, runs: runs, segments: segments, files: files, previous: previous, columns: columns)
        for run in unchanged { spans.rows[run] = 0..<0 }
        clock.step("compare the kept segments")
        let written = try writeSortedRuns(spans, columns: columns, key: key, clock: &clock)

        // Each kept segment's deleted rows, listed beside its new file.
        var dead: [Int: [Int64]] = [:]
        for row in try query("SELECT run, __pos FROM __udr_wo_dead ORDER BY run, __pos").rows {
            if let run = row[0].int, let position = row[1].int { dead[Int(run), default: []].append(position) }
        }
        var placement = Placement(added: written.segments[endRun], logical: written.logical)
        for (index, fate) in fates.enumerated() where fate == .dropped { placement.kept[index] = [] }
        var objects: [Data] = []
        for run in 0..<endRun {
            guard whole.contains(run) else {
                placement.kept[runs[run]] = written.segments[run]
                continue
            }
            let segment: SegmentRef
            if unchanged.contains(run) {
                segment = segments[runs[run]]
            } else if written.segments[run].count == 1, let rewritten = written.segments[run].first {
                segment = rewritten
            } else {
                throw UDRError(
                    .runtime,
                    "internal error: a segment kept in place was written as \(written.segments[run].count) segments; nothing was committed. Please report it."
                )
            }
            let deleted = try segment.deleting(dead[run] ?? [])
            if let object = deleted.object { objects.append(object) }
            placement.kept[runs[run]] = [deleted.segment]
        }
        placement.bytesAdded = written.added + (try store.put(objects).bytesAdded)
        clock.step("write over the previous version")
        return placement
    }

    /// The runs of `spans.whole` whose rows in `__udr_sorted` are their
    /// old file's, value for value in storage form (-0.0 is not 0.0; the
    /// deleted rows there keep their old values anyway): their segments
    /// keep their files. The first and the last such segment are compared
    /// first: when both changed, as every segment does when a few rows
    /// change all over the table, the others are not compared, and
    /// reading two segments is all the comparison cost.
    private func unchangedRuns(
        _ spans: RunSpans, runs: [Int], segments: [SegmentRef], files: [String], previous: Manifest, columns: [Column]
    ) throws(UDRError) -> Set<Int> {
        var terms: [String] = []
        for column in columns {
            let storage = try TypeNode.parse(column.type).storage()
            let (new, old) = ("n.\(quoteIdentifier(column.name))", "CAST(o.\(quoteIdentifier(column.name)) AS \(storage.sql))")
            guard let term = storage.distinct(new, old) else { return [] }
            terms.append(term)
        }
        let differs = terms.joined(separator: " OR ")
        let names = columns.map(\.name)
        let candidates = spans.whole.sorted().filter {
            previous.columnNames(of: segments[runs[$0]]) == names && Int64(spans.rows[$0].count) == segments[runs[$0]].fileRows
        }
        guard let first = candidates.first, let last = candidates.last else { return [] }
        let probed = first == last ? [first] : [first, last]
        let probe = try sameRows(probed, spans: spans, runs: runs, segments: segments, files: files, differs: differs)
        guard !probe.isEmpty, candidates.count > probed.count else { return probe }
        let rest = Array(candidates.dropFirst().dropLast())
        return probe.union(try sameRows(rest, spans: spans, runs: runs, segments: segments, files: files, differs: differs))
    }

    /// Which of `batch` (runs kept in place) hold their old file's rows:
    /// each file row against the row at its position in the run, paired
    /// by a positional join (a hash join on the positions took twice as
    /// long), 32 runs a query.
    private func sameRows(_ batch: [Int], spans: RunSpans, runs: [Int], segments: [SegmentRef], files: [String], differs: String)
        throws(UDRError) -> Set<Int>
    {
        var same: Set<Int> = []
        for start in stride(from: 0, to: batch.count, by: 32) {
            let parts = batch[start..<min(start + 32, batch.count)].map { run in
                let rows = spans.rows[run]
                return """
                    SELECT \(run) AS run FROM read_parquet(\(quoteLiteral(files[runs[run]]))) o
                    POSITIONAL JOIN (SELECT * FROM __udr_sorted WHERE rowid >= \(rows.lowerBound) AND rowid < \(rows.upperBound)) n
                    HAVING count(*) = \(segments[runs[run]].fileRows) AND NOT bool_or(\(differs))
                    """
            }
            for row in try query(parts.joined(separator: "\nUNION ALL\n")).rows { if let run = row[0].int { same.insert(Int(run)) } }
        }
        return same
    }

    /// Where ``writeOver(_:columns:key:rowCount:clock:)`` and a row edit in place put the rows.
    struct Placement {
        /// What became of each previous segment the write replaced, by
        /// index: the segment in its place (none when it was dropped).
        var kept: [Int: [SegmentRef]] = [:]
        /// Segments of the other rows, to follow the rest.
        var added: [SegmentRef]
        var logical: Int64
        var bytesAdded: Int64 = 0

        /// The new segments: `previous`'s in their order, each one the write
        /// replaced in its place (`others` gives those it did not touch),
        /// then the added.
        func segments(replacing previous: [SegmentRef], others: (SegmentRef) -> SegmentRef = { $0 }) -> [SegmentRef] {
            previous.enumerated().flatMap { index, segment in kept[index] ?? [others(segment)] } + added
        }
    }

    /// Rows of segments whose first-key range (integer keys) overlaps a
    /// segment's before them: the layers new keys among old ones made.
    static func layeredRows(_ manifest: Manifest) -> Int64 {
        guard let first = manifest.key.first,
            let type = manifest.columns.first(where: { $0.name == first })?.type, smallIntegerTypes.contains(type)
        else { return 0 }
        var highest: Int64?
        var layered: Int64 = 0
        for segment in manifest.segments {
            guard let low = segment.stats[first]?.min.flatMap({ Int64($0) }), let high = segment.stats[first]?.max.flatMap({ Int64($0) })
            else { continue }
            if let highest, low <= highest { layered += segment.rows }
            highest = max(highest ?? high, high)
        }
        return layered
    }

    /// How many small segments (fewer than the policy's minimum rows) may
    /// stand at a table's end before added rows are written with them.
    static let smallSegmentsAtEnd = 4

    /// The small segments at the end of `manifest` that `added` new rows
    /// are written with: none unless the rows are too few for a segment of
    /// their own and `smallSegmentsAtEnd` - 1 small ones stand there
    /// already. So a few rows added at each write make a small segment,
    /// and each row is written again about once per that many writes.
    func endSegmentsJoining(_ manifest: Manifest, added: Int64) -> [Int] {
        let small = manifest.segments.reversed().prefix { $0.fileRows < Int64(policy.minimumRows) }.count
        guard added > 0, added < Int64(policy.minimumRows), small >= Self.smallSegmentsAtEnd - 1 else { return [] }
        return Array(manifest.segments.indices.suffix(small))
    }

    private func list(_ files: [String]) -> String { "[" + files.map(quoteLiteral).joined(separator: ", ") + "]" }
}
