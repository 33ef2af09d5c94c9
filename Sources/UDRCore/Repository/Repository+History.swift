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
        // The table's versions along the branch, oldest first.
        var versions: [HistoryVersion] = []
        var current = try branchHead(branch).head
        var chain: [(ObjectID, Commit)] = []
        while let id = current {
            let commit = try self.commit(id)
            chain.append((id, commit))
            current = try firstParent(commit)
        }
        for (id, commit) in chain.reversed() {
            guard let entry = commit.tables[table] else { continue }
            if versions.last?.version == entry.version { continue }
            versions.append(HistoryVersion(commit: id, info: commit, version: entry.version, manifest: try manifest(entry.manifest)))
        }
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

        return try withDuckDB { (connection) throws(UDRError) -> RowHistory in
            func run(_ sql: String) throws(UDRError) {
                do { try connection.execute(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
            }
            func query(_ sql: String) throws(UDRError) -> ResultSet {
                do { return try connection.query(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
            }
            let literal = { (column: String) in "CAST(\(quoteLiteral(key[column]!)) AS \(types[column]!))" }
            do throws(DuckDBError) {
                _ = try connection.query("SELECT \(keyColumns.map(literal).joined(separator: ", "))")
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
            if RowEditor.orderedStatTypes.contains(types[first]!) {
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

            try run(
                "CREATE TABLE __h AS SELECT 0 AS __v, true AS __present, \(typedNulls(columns)) WHERE false")
            // The last version read: its key segments, and whether it held the row.
            var previous: (segments: [SegmentRef], index: Int, manifest: Manifest, present: Bool)?
            var blobs = ColumnBlobs(recipe: recipe(of:))
            let materialize = materializer(connection)
            var read = 0
            var columnsRead = 0
            for (index, version) in versions.enumerated() {
                let segments = version.manifest.segments.filter { candidates.contains($0.id) }
                if let previous, previous.segments.map(\.content) == segments.map(\.content) { continue }
                read += 1
                var inserted = 0
                if !segments.isEmpty {
                    // Same keys in the same order as the version before (same key
                    // chunks): read only the columns whose chunks changed.
                    var changed: [String]?
                    if let previous, previous.present, previous.segments.count == 1, segments.count == 1 {
                        changed = try changedColumns(
                            previous.segments[0], in: previous.manifest, segments[0], in: version.manifest, key: keyColumns, blobs: &blobs)
                    }
                    var files: [String] = []
                    for segment in segments { files.append(try materialize(segment)) }
                    if let changed, let previous {
                        columnsRead += changed.count
                        let readColumns = version.manifest.columns.filter { changed.contains($0.name) || keyColumns.contains($0.name) }
                        let subset = Manifest(table: table, version: version.version, columns: readColumns, key: keyColumns, segments: segments)
                        let kept = columns.map(\.name).filter { !changed.contains($0) && !keyColumns.contains($0) }.map(quoteIdentifier)
                        let fresh = readColumns.map { "n.\(quoteIdentifier($0.name))" }
                        inserted = try query(
                            """
                            INSERT INTO __h BY NAME SELECT \(index) AS __v, true AS __present, \((fresh + kept.map { "p.\($0)" }).joined(separator: ", "))
                            FROM (SELECT * FROM (\(Self.segmentSelect(subset, segments: segments, files: files))) WHERE \(predicate)) n,
                                 (SELECT * FROM __h WHERE __v = \(previous.index)) p
                            """
                        ).rowsChanged
                    } else {
                        columnsRead += version.manifest.columns.count
                        inserted = try query(
                            "INSERT INTO __h BY NAME SELECT \(index) AS __v, true AS __present, * FROM (\(Self.segmentSelect(version.manifest, segments: segments, files: files))) WHERE \(predicate)"
                        ).rowsChanged
                    }
                }
                if inserted == 0 { try run("INSERT INTO __h (__v, __present) VALUES (\(index), false)") }
                previous = (segments, index, version.manifest, inserted > 0)
            }

            let info = versions.enumerated().map { index, v in
                "(\(index), \(quoteLiteral(v.commit.hex)), \(v.info.txID), \(quoteLiteral(Timestamp.format(v.info.time))), \(quoteLiteral(v.info.author)), \(quoteLiteral(v.info.message)), \(v.version))"
            }
            try run("CREATE TABLE __hv AS SELECT * FROM (VALUES \(info.joined(separator: ", "))) v(idx, \"commit\", tx_id, time, author, message, version)")
            let names = columns.map { quoteIdentifier($0.name) }
            let lags = names.enumerated().map { "lag(\($1)) OVER w AS __l\($0)" }
            let changedList = names.enumerated().filter { !keyColumns.contains(columns[$0.offset].name) }.map { i, name in
                "CASE WHEN \(name) IS DISTINCT FROM __l\(i) THEN \(quoteLiteral(columns[i].name)) END"
            }
            let rows = try query(
                """
                WITH s AS (SELECT *, lag(__present, 1, false) OVER w AS __was, \(lags.joined(separator: ", ")) FROM __h WINDOW w AS (ORDER BY __v)),
                c AS (SELECT *, CASE WHEN __present AND NOT __was THEN 'insert' WHEN NOT __present AND __was THEN 'delete'
                                     WHEN __present AND (\(changedList.isEmpty ? "false" : changedList.map { "(\($0)) IS NOT NULL" }.joined(separator: " OR "))) THEN 'update' END AS change,
                                CASE WHEN __present AND __was THEN array_to_string(list_filter([\(changedList.joined(separator: ", "))], x -> x IS NOT NULL), ', ') END AS changed
                      FROM s)
                SELECT v."commit", v.tx_id, v.time, v.author, v.message, v.version, c.change, c.changed, \(names.map { "c.\($0)" }.joined(separator: ", "))
                FROM c JOIN __hv v ON v.idx = c.__v WHERE c.change IS NOT NULL ORDER BY c.__v
                """)
            return RowHistory(rows: rows, versions: versions.count, versionsRead: read, columnsRead: columnsRead)
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
