import DuckDB
import Foundation

/// The history of one row: each commit where it appeared, changed or
/// disappeared, with its values then.
public struct RowHistory: Sendable {
    /// `commit`, `tx_id`, `time`, `author`, `message`, `version`, `change`
    /// (insert, update, delete), `changed` (the columns an update changed),
    /// then the table's columns (NULL after a delete); oldest first.
    public let rows: ResultSet
    /// Table versions on the branch, and how many of them were read: a
    /// version whose segments for the key are the ones the version before
    /// had is skipped unread.
    public let versions: Int
    public let versionsRead: Int
    /// Columns read in segments that kept the row's position: only those
    /// whose chunks changed (the rest are the version before's values).
    public let columnsRead: Int
}

extension Repository {
    /// Each commit of `branch` where the row of `table` with the given key
    /// (`column → value` as text, every key column) changed, appeared or
    /// disappeared, with its values then. Segments are pruned by their
    /// key range; unchanged segments and column chunks are not re-read.
    public func history(of table: TableName, key: [String: String], branch: String? = nil) async throws(UDRError) -> RowHistory {
        try await blocking { () throws(UDRError) -> RowHistory in try self.historyNow(of: table, key: key, branch: branch) }
    }

    private struct HistoryVersion {
        let commit: ObjectID
        let info: Commit
        let version: Int
        let manifest: Manifest
    }

    private func historyNow(of table: TableName, key: [String: String], branch: String?) throws(UDRError) -> RowHistory {
        var clock = StepClock()
        // The table's versions along the branch, oldest first.
        var versions: [HistoryVersion] = []
        var current = try branchHead(branch).head
        var chain: [(ObjectID, Commit)] = []
        while let id = current {
            let commit = try self.commit(id)
            chain.append((id, commit))
            current = try firstParent(commit)
        }
        // Each commit's name for the table: a rename, read going back, gives
        // the older commits the old name.
        var names: [TableName] = []
        var name = table
        for (_, commit) in chain {
            names.append(name)
            if let from = commit.changes.first(where: { $0.table == name })?.renamedFrom { name = from }
        }
        for ((id, commit), name) in zip(chain, names).reversed() {
            guard let entry = commit.tables[name] else { continue }
            if versions.last?.version == entry.version { continue }
            versions.append(HistoryVersion(commit: id, info: commit, version: entry.version, manifest: try manifest(entry.manifest)))
        }
        clock.step("load the versions")
        guard let latest = versions.last?.manifest else {
            throw UDRError(.notFound, "there is no table '\(table)' on \(try branchName(branch))")
        }
        let keyColumns = latest.key
        guard !keyColumns.isEmpty else {
            throw UDRError(.invalidArgument, "\(table) has no key; a row's history needs one (rewrite it with `udr write --key COLUMNS`)")
        }
        guard Set(key.keys) == Set(keyColumns) else {
            throw UDRError(
                .invalidArgument,
                "give every key column of \(table) and only those: --key \(keyColumns.map { "\($0)=VALUE" }.joined(separator: ",")) (got \(key.keys.sorted().joined(separator: ", ")))"
            )
        }
        var columns = latest.columns
        for version in versions.reversed() {
            for column in version.manifest.columns where !columns.contains(where: { $0.name == column.name }) { columns.append(column) }
        }
        let types = Dictionary(columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })

        // On the long-lived read database (its Parquet footers stay cached);
        // the working tables are temporary (they shadow its views of the
        // same names) and live only inside this transaction.
        return try withReadConnection { (connection) throws(UDRError) -> RowHistory in
            do throws(DuckDBError) { try connection.execute("BEGIN TRANSACTION") } catch { throw UDRError(.query, error.message, underlying: error) }
            defer { try? connection.execute("ROLLBACK") }
            clock.step("begin on the read database")
            func run(_ sql: String) throws(UDRError) {
                do { try connection.execute(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
            }
            func query(_ sql: String) throws(UDRError) -> ResultSet {
                do { return try connection.query(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
            }
            let literal = { (column: String) in "CAST(\(quoteLiteral(key[column]!)) AS \(types[column]!))" }
            let typedKey: ResultSet
            do throws(DuckDBError) {
                typedKey = try connection.query("SELECT \(keyColumns.map(literal).joined(separator: ", "))")
            } catch {
                throw UDRError(.invalidArgument, "the key value does not fit the key's type: \(error.message)")
            }
            let predicate = keyColumns.map { "\(quoteIdentifier($0)) = \(literal($0))" }.joined(separator: " AND ")

            // Which segments (of all versions) may hold the key, by the first
            // key column's range.
            let first = keyColumns[0]
            var unique: [ObjectID: SegmentRef] = [:]
            for version in versions { for segment in version.manifest.segments { unique[segment.id] = segment } }
            var candidates = Set(unique.keys)
            if TableWriter.smallIntegerTypes.contains(types[first]!), let value = typedKey.rows.first?[0].int {
                // Integers compare here; a bound that does not parse keeps the segment.
                candidates = candidates.filter { id in
                    let stats = unique[id]!.stats[first]
                    return stats?.min.flatMap({ Int64($0) }).map { $0 <= value } ?? true
                        && stats?.max.flatMap({ Int64($0) }).map { value <= $0 } ?? true
                }
            } else if RowEditor.orderedStatTypes.contains(types[first]!) {
                let values = unique.values.map { segment -> String in
                    let stats = segment.stats[first]
                    return "(\(quoteLiteral(segment.id.hex)), \(stats?.min.map(quoteLiteral) ?? "NULL"), \(stats?.max.map(quoteLiteral) ?? "NULL"))"
                }
                if !values.isEmpty {
                    let type = types[first]!
                    let kept = try query(
                        """
                        SELECT id FROM (VALUES \(values.joined(separator: ", "))) v(id, lo, hi)
                        WHERE (lo IS NULL OR TRY_CAST(lo AS \(type)) IS NULL OR TRY_CAST(lo AS \(type)) <= \(literal(first)))
                          AND (hi IS NULL OR TRY_CAST(hi AS \(type)) IS NULL OR \(literal(first)) <= TRY_CAST(hi AS \(type)))
                        """)
                    let ids = Set(kept.rows.compactMap { $0[0].string })
                    candidates = candidates.filter { ids.contains($0.hex) }
                }
            }
            clock.step("prune \(unique.count) segments by key range")

            // The versions whose key segments differ from the version before's.
            var reads: [(index: Int, segments: [SegmentRef])] = []
            for (index, version) in versions.enumerated() {
                let segments = version.manifest.segments.filter { candidates.contains($0.id) }
                if let last = reads.last, last.segments.map(\.content) == segments.map(\.content) { continue }
                reads.append((index, segments))
            }

            // Where the key is in each of their files: one query reads the key
            // columns of every file once; deletions then say which hits are
            // live in which version.
            var files: [ObjectID: String] = [:]
            var wholes: [String: SegmentRef] = [:]  // by file: the segment, every row, its file's columns named
            for read in reads {
                for segment in read.segments where files[segment.id] == nil {
                    let file = try segmentFile(segment)
                    files[segment.id] = file
                    wholes[file] = versions[read.index].manifest.wholeFile(segment)
                }
            }
            /// `columns` of `files` with each row's file and position in it.
            func select(_ columns: [Column], of files: [String]) -> String {
                let shape = Manifest(table: table, version: latest.version, columns: columns, key: keyColumns, segments: [])
                return Self.segmentSelect(shape, segments: files.map { wholes[$0]! }, files: files, extra: ["filename", "file_row_number"])
            }
            var hitsInFile: [String: [Int64]] = [:]
            if !files.isEmpty {
                let keys = keyColumns.map { Column(name: $0, type: types[$0]!) }
                for row in try query("SELECT filename, file_row_number FROM (\(select(keys, of: wholes.keys.sorted()))) WHERE \(predicate)").rows {
                    if let file = row[0].string, let position = row[1].int { hitsInFile[file, default: []].append(position) }
                }
            }
            clock.step("find the key in \(files.count) segments")
            var deleted: [SegmentContent: Set<Int64>] = [:]
            func liveHit(_ segments: [SegmentRef]) throws(UDRError) -> (segment: SegmentRef, file: String, position: Int64)? {
                for segment in segments {
                    guard let file = files[segment.id], let hits = hitsInFile[file] else { continue }
                    if deleted[segment.content] == nil { deleted[segment.content] = Set(try store.deletedPositions(of: segment)) }
                    if let position = hits.first(where: { !deleted[segment.content]!.contains($0) }) { return (segment, file, position) }
                }
                return nil
            }

            // What to read of each: every column, or, where the segment
            // holding the row kept its keys in place since the version
            // before (which held the row), only the columns whose chunks
            // changed; reads of the same columns go in one query.
            var groups: [[String]?: [(index: Int, file: String, position: Int64)]] = [:]
            var absent: [Int] = []
            var blobs = ColumnBlobs(recipe: recipe(of:))
            var columnsRead = 0
            var previous: (segment: SegmentRef, manifest: Manifest)?
            for read in reads {
                let manifest = versions[read.index].manifest
                let hit = try liveHit(read.segments)
                defer { previous = hit.map { ($0.segment, manifest) } }
                guard let hit else {
                    absent.append(read.index)
                    continue
                }
                var changed: [String]?
                if let previous {
                    changed = try changedColumns(previous.segment, in: previous.manifest, hit.segment, in: manifest, key: keyColumns, blobs: &blobs)
                }
                columnsRead += changed?.count ?? manifest.columns.count
                groups[changed, default: []].append((read.index, hit.file, hit.position))
            }

            clock.step("compare column chunks")
            try run("CREATE TEMP TABLE __h AS SELECT 0 AS __v, true AS __present, CAST(NULL AS VARCHAR[]) AS __cols, \(typedNulls(columns)) WHERE false")
            var mapCount = 0
            for (changed, hits) in groups.sorted(by: { ($0.key?.count ?? .max) < ($1.key?.count ?? .max) }) {
                let names = changed.map { Set($0 + keyColumns) } ?? Set(columns.map(\.name))
                let readColumns = columns.filter { names.contains($0.name) }
                let map = "__hm\(mapCount)"
                mapCount += 1
                try createTable(
                    map, columns: "__v INTEGER, __file VARCHAR, __pos BIGINT",
                    rows: hits.map { "(\($0.index), \(quoteLiteral($0.file)), \($0.position))" }, temporary: true, on: connection)
                let list = changed.map { "[" + $0.map(quoteLiteral).joined(separator: ", ") + "]" } ?? "NULL"
                try run(
                    """
                    INSERT INTO __h BY NAME
                    SELECT m.__v AS __v, true AS __present, CAST(\(list) AS VARCHAR[]) AS __cols, \(readColumns.map { "g.\(quoteIdentifier($0.name))" }.joined(separator: ", "))
                    FROM (SELECT * FROM (\(select(readColumns, of: Array(Set(hits.map(\.file))).sorted()))) WHERE \(predicate)) g
                    JOIN \(map) m ON m.__file = g.filename AND m.__pos = g.file_row_number
                    """)
            }
            if !absent.isEmpty { try run("INSERT INTO __h (__v, __present) VALUES \(absent.map { "(\($0), false)" }.joined(separator: ", "))") }
            clock.step("read the rows")

            let info = versions.enumerated().map { index, v in
                "(\(index), \(quoteLiteral(v.commit.hex)), \(v.info.txID), \(quoteLiteral(Timestamp.format(v.info.time))), \(quoteLiteral(v.info.author)), \(quoteLiteral(v.info.message)), \(v.version))"
            }
            try run("CREATE TEMP TABLE __hv AS SELECT * FROM (VALUES \(info.joined(separator: ", "))) v(idx, \"commit\", tx_id, time, author, message, version)")
            let names = columns.map { quoteIdentifier($0.name) }
            let lags = names.enumerated().map { "lag(\($1)) OVER w AS __l\($0)" }
            let changedList = names.enumerated().filter { !keyColumns.contains(columns[$0.offset].name) }.map { i, name in
                "CASE WHEN \(name) IS DISTINCT FROM __l\(i) THEN \(quoteLiteral(columns[i].name)) END"
            }
            // A column not read in a version is the one its last read gave.
            let filled = columns.map(\.name).map { name in
                let column = quoteIdentifier(name)
                let wasRead = "__present AND (__cols IS NULL OR list_contains(__cols, \(quoteLiteral(name))))"
                return "CASE WHEN __present THEN (last_value(CASE WHEN \(wasRead) THEN {'v': \(column)} END IGNORE NULLS) OVER f).v END AS \(column)"
            }
            let rows = try query(
                """
                WITH h AS (SELECT __v, __present, \(filled.joined(separator: ", ")) FROM __h WINDOW f AS (ORDER BY __v ROWS UNBOUNDED PRECEDING)),
                s AS (SELECT *, lag(__present, 1, false) OVER w AS __was, \(lags.joined(separator: ", ")) FROM h WINDOW w AS (ORDER BY __v)),
                c AS (SELECT *, CASE WHEN __present AND NOT __was THEN 'insert' WHEN NOT __present AND __was THEN 'delete'
                                     WHEN __present AND (\(changedList.isEmpty ? "false" : changedList.map { "(\($0)) IS NOT NULL" }.joined(separator: " OR "))) THEN 'update' END AS change,
                                CASE WHEN __present AND __was THEN array_to_string(list_filter([\(changedList.joined(separator: ", "))], x -> x IS NOT NULL), ', ') END AS changed
                      FROM s)
                SELECT v."commit", v.tx_id, v.time, v.author, v.message, v.version, c.change, c.changed, \(names.map { "c.\($0)" }.joined(separator: ", "))
                FROM c JOIN __hv v ON v.idx = c.__v WHERE c.change IS NOT NULL ORDER BY c.__v
                """)
            clock.step("compare the versions")
            return RowHistory(rows: rows, versions: versions.count, versionsRead: reads.count, columnsRead: columnsRead)
        }
    }

    /// The columns whose chunks differ between two segments that hold the
    /// same keys in the same order; nil when that is not known.
    private func changedColumns(
        _ old: SegmentRef, in oldManifest: Manifest, _ new: SegmentRef, in newManifest: Manifest, key: [String],
        blobs: inout ColumnBlobs
    ) throws(UDRError) -> [String]? {
        let names = newManifest.columnNames(of: new)
        guard oldManifest.columnNames(of: old) == names, old.fileRows == new.fileRows, let oldBlobs = try blobs.of(old),
            let newBlobs = try blobs.of(new)
        else { return nil }
        guard newManifest.columns.map(\.name) == names else { return nil }
        return TableDiff.changedColumns(
            names: names, key: key, old: oldBlobs, new: newBlobs,
            oldTypes: Dictionary(oldManifest.columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a }),
            newTypes: Dictionary(newManifest.columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a }))
    }
}
