import DuckDB
import Foundation

extension TableWriter {
    /// Writes the new content of a keyed table (in `__udr_sorted`: key
    /// order, keys checked) as the next version of `previous`, keeping
    /// each of its segments in place:
    ///
    /// - A segment's file is written again with the same rows at the same
    ///   positions, each with its new values; a row whose key is gone keeps
    ///   its old values and is listed as deleted (see ``Deletions``). The
    ///   columns that did not change give the same column chunks, already
    ///   stored: a refresh that recomputes two columns and deletes a few
    ///   rows stores those two columns' chunks and the deleted positions.
    /// - Rows with new keys, with the live rows of segments that would hold
    ///   more deleted rows than live ones, and with the rows of small
    ///   trailing segments, are cut into segments of their own after the
    ///   others. Their key range may overlap the others': every reader
    ///   finds a key by each segment's own range, not by the order of
    ///   the segments.
    ///
    /// nil when this does not apply (a new key or a changed column type,
    /// no rows), or when the new keys among the old ones are more than a
    /// tenth of the rows: the caller writes the table from scratch, in key
    /// order, as a first write would.
    func writeOver(_ previous: Manifest, columns: [Column], key: [String], rowCount: Int, clock: inout StepClock) throws(UDRError)
        -> (segments: [SegmentRef], logical: Int64, added: Int64)?
    {
        let segments = previous.segments
        guard !key.isEmpty, previous.key == key, rowCount > 0, previous.rows > 0 else { return nil }
        let types = Dictionary(columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        for column in previous.columns where types[column.name].map({ $0 != column.type }) == true { return nil }
        for segment in segments where !key.allSatisfy(previous.columnNames(of: segment).contains) { return nil }
        guard Set(segments.map(\.id)).count == segments.count else { return nil }

        let helpers = ["__udr_input", "__udr_files", "__udr_prev", "__udr_match", "__udr_seg_run", "__udr_dead"]
        defer { for table in helpers { try? connection.execute("DROP TABLE IF EXISTS \(table)") } }

        // Every key of the previous version's files (deleted rows too), and
        // the new row holding it.
        var files: [String] = []
        for segment in segments { files.append(try cache.materializeFile(segment, store: store).path) }
        try run(
            "CREATE TABLE __udr_files AS SELECT * FROM (VALUES \(files.enumerated().map { "(\(quoteLiteral($1)), \($0))" }.joined(separator: ", "))) v(file, seg)"
        )
        let unionByName = segments.contains { $0.columns != nil } ? ", union_by_name = true" : ""
        var keyColumns: [String] = []
        for k in key { keyColumns.append("CAST(p.\(quoteIdentifier(k)) AS \(try TypeNode.parse(types[k]!).storage().sql)) AS \(quoteIdentifier(k))") }
        try run(
            """
            CREATE TABLE __udr_prev AS SELECT f.seg AS __seg, p.file_row_number AS __pos, \(keyColumns.joined(separator: ", "))
            FROM read_parquet(\(list(files)), filename = true, file_row_number = true\(unionByName)) p JOIN __udr_files f ON p.filename = f.file
            """)
        let match = key.map { "p.\(quoteIdentifier($0)) = s.\(quoteIdentifier($0))" }.joined(separator: " AND ")
        try run("CREATE TABLE __udr_match AS SELECT p.__seg, p.__pos, s.rowid AS __row FROM __udr_prev p LEFT JOIN __udr_sorted s ON \(match)")
        clock.step("match the previous version's keys")

        var fileRows = Array(repeating: Int64(0), count: segments.count)
        var live = Array(repeating: Int64(0), count: segments.count)
        for row in try query("SELECT __seg, count(*), count(__row) FROM __udr_match GROUP BY ALL").rows {
            guard let seg = row[0].int.map(Int.init), segments.indices.contains(seg) else { continue }
            fileRows[seg] = row[1].int ?? 0
            live[seg] = row[2].int ?? 0
        }
        // A key held twice (a deleted row in one file, a live one in
        // another) cannot take one place.
        let twice = try query("SELECT count(__row) - count(DISTINCT __row) FROM __udr_match").scalar.int ?? 1
        if twice != 0 { return nil }

        // Which segments keep their place: not those left with more deleted
        // rows than live ones, nor, when rows are added, small ones at the end.
        var kept = segments.indices.filter { live[$0] > 0 && fileRows[$0] - live[$0] <= live[$0] }
        let added = Int64(rowCount) - live.reduce(0, +)
        if added > 0 {
            for index in segments.indices.reversed() {
                guard fileRows[index] < Int64(policy.minimumRows) else { break }
                kept.removeAll { $0 == index }
            }
        }
        try run(
            "CREATE TABLE __udr_seg_run AS SELECT * FROM (VALUES \((kept.enumerated().map { "(\($1), \($0))" } + ["(-1, -1)"]).joined(separator: ", "))) v(seg, run)"
        )
        // New rows among the old ones (not after them) make a second layer
        // of segments; past a tenth of the table, a fresh write is better.
        let lastPlaced =
            try query("SELECT max(m.__row) FROM __udr_match m JOIN __udr_seg_run r ON r.seg = m.__seg").scalar.int ?? -1
        let placed = kept.reduce(Int64(0)) { $0 + live[$1] }
        let among = try query("SELECT count(*) FROM __udr_sorted WHERE rowid <= \(lastPlaced)").scalar.int ?? 0
        if among - placed > Int64(rowCount) / 10 && among - placed > Int64(policy.minimumRows) { return nil }

        // The rows of each kept segment at their positions (the deleted
        // ones from its old file), then the rest in key order.
        try run("ALTER TABLE __udr_sorted RENAME TO __udr_input")
        try run(
            """
            CREATE TABLE __udr_dead AS SELECT f.file, m.__pos, r.run FROM __udr_match m JOIN __udr_seg_run r ON r.seg = m.__seg
            JOIN __udr_files f ON f.seg = m.__seg WHERE m.__row IS NULL
            """)
        let deadFiles = try query("SELECT DISTINCT file FROM __udr_dead ORDER BY file").rows.compactMap { $0[0].string }
        let fileSegment = Dictionary(zip(files, segments), uniquingKeysWith: { a, _ in a })
        let oldColumns = Set(deadFiles.compactMap { fileSegment[$0] }.flatMap { previous.columnNames(of: $0) })
        let fresh = columns.map { "CAST(s.\(quoteIdentifier($0.name)) AS \($0.type)) AS \(quoteIdentifier($0.name))" }.joined(separator: ", ")
        let old = columns.map {
            oldColumns.contains($0.name)
                ? "CAST(o.\(quoteIdentifier($0.name)) AS \($0.type)) AS \(quoteIdentifier($0.name))"
                : "CAST(NULL AS \($0.type)) AS \(quoteIdentifier($0.name))"
        }.joined(separator: ", ")
        let endRun = kept.count
        var parts = [
            "SELECT \(fresh), r.run AS __udr_run, m.__pos AS __udr_pos FROM __udr_match m JOIN __udr_seg_run r ON r.seg = m.__seg JOIN __udr_input s ON s.rowid = m.__row",
            "SELECT \(fresh), \(endRun), s.rowid FROM __udr_input s ANTI JOIN (SELECT m.__row FROM __udr_match m JOIN __udr_seg_run r ON r.seg = m.__seg WHERE m.__row IS NOT NULL) p ON p.__row = s.rowid",
        ]
        if !deadFiles.isEmpty {
            let union = deadFiles.contains { fileSegment[$0]?.columns != nil } ? ", union_by_name = true" : ""
            parts.append(
                "SELECT \(old), d.run, d.__pos FROM read_parquet(\(list(deadFiles)), filename = true, file_row_number = true\(union)) o JOIN __udr_dead d ON d.file = o.filename AND d.__pos = o.file_row_number"
            )
        }
        let written = try writeRuns(
            source: parts.joined(separator: "\nUNION ALL\n"), columns: columns, key: key, runs: endRun + 1, byPosition: true,
            whole: Set(0..<endRun))

        // Each kept segment's deleted rows, listed beside its new file.
        var dead: [Int: [Int64]] = [:]
        for row in try query("SELECT run, __pos FROM __udr_dead ORDER BY run, __pos").rows {
            if let run = row[0].int, let position = row[1].int { dead[Int(run), default: []].append(position) }
        }
        var out: [SegmentRef] = []
        var objects: [Data] = []
        for run in 0..<endRun {
            guard written.segments[run].count == 1, var segment = written.segments[run].first else {
                throw UDRError(.runtime, "a kept segment was written as \(written.segments[run].count) segments")
            }
            if let positions = dead[run], !positions.isEmpty {
                let object = try ObjectCoding.encode(DeletedRows(segment: segment.id, positions: positions))
                objects.append(object)
                segment.deletions = Deletions(object: ObjectID.of(object), count: Int64(positions.count))
                segment.rows -= Int64(positions.count)
            }
            out.append(segment)
        }
        out += written.segments[endRun]
        clock.step("write over the previous version")
        return (out, written.logical, written.added + (try store.put(objects).bytesAdded))
    }

    private func list(_ files: [String]) -> String { "[" + files.map(quoteLiteral).joined(separator: ", ") + "]" }
}
