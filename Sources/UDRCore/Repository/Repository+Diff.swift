import DuckDB
import Foundation

/// How one table differs between two refs.
public struct TableDifference: Sendable, Codable, Hashable {
    public enum Status: String, Sendable, Codable { case added, dropped, changed, unchanged, renamed }

    public let table: TableName
    public let status: Status
    public let oldVersion: Int?
    public let newVersion: Int?
    /// The key rows were matched by; empty when compared as multisets.
    public let key: [String]
    public let columnsAdded: [String]
    public let columnsDropped: [String]
    /// Columns whose type changed.
    public let columnsRetyped: [String]
    public let rows: RowCounts
    /// Segments both versions share (never read), segments read whole,
    /// and segment pairs read only in their changed columns.
    public let segmentsSkipped: Int
    public let segmentsRead: Int
    public let segmentPairsRead: Int
    /// Whether the changed rows were read from the new version's change
    /// record (see ``ChangeRecord``) instead of from segments.
    public let fromChangeRecord: Bool
    /// The table's name at the older ref, for a table renamed between them
    /// (`status` is `renamed`; `rows` compare it with that table).
    public var renamedFrom: TableName? = nil

    enum CodingKeys: String, CodingKey {
        case renamedFrom = "renamed_from"
        case table, status, oldVersion = "old_version", newVersion = "new_version", key, columnsAdded = "columns_added"
        case columnsDropped = "columns_dropped", columnsRetyped = "columns_retyped", rows, segmentsSkipped = "segments_skipped"
        case segmentsRead = "segments_read", segmentPairsRead = "segment_pairs_read", fromChangeRecord = "from_change_record"
    }
}

/// What differs between two refs, table by table.
public struct RepositoryDiff: Sendable, Codable, Hashable {
    public let from: ObjectID?
    public let to: ObjectID?
    /// Changed, added and dropped tables (and unchanged ones that were named).
    public let tables: [TableDifference]
}

/// What a diff returns row by row.
public enum DiffRows: Sendable {
    /// One row per changed cell (an update) or per inserted or deleted row,
    /// values as text: table, change, key, column, old, new.
    case cells
    /// The change feed of one table: changed rows with their own columns,
    /// `_change` = insert, delete, update_preimage or update_postimage.
    case feed
}

extension Repository {
    /// The tables that differ between two refs (branch, tag, commit, `~N`,
    /// tx:N, time), with rows inserted, deleted and updated. `tables`
    /// limits it to those tables; `key` compares by other key columns.
    public func diff(_ from: String, _ to: String, tables: [TableName]? = nil, key: [String]? = nil) async throws(UDRError)
        -> RepositoryDiff
    {
        try await blocking { () throws(UDRError) -> RepositoryDiff in
            try self.withDiff(from, to, tables: tables, key: key, complete: false, countsOnly: true) { (_, summary, _) throws(UDRError) in
                summary
            }
        }
    }

    /// The changed rows between two refs: cells, or one table's change feed.
    public func diffRows(
        _ from: String, _ to: String, tables: [TableName]? = nil, key: [String]? = nil, as rows: DiffRows = .cells
    ) async throws(UDRError) -> ResultSet {
        try await diff(from, to, tables: tables, key: key, rows: rows).rows
    }

    /// The tables that differ and their changed rows, from one comparison.
    public func diff(_ from: String, _ to: String, tables: [TableName]? = nil, key: [String]? = nil, rows: DiffRows) async throws(UDRError)
        -> (summary: RepositoryDiff, rows: ResultSet)
    {
        try await blocking { () throws(UDRError) -> (summary: RepositoryDiff, rows: ResultSet) in
            try self.withDiffRows(from, to, tables: tables, key: key, as: rows) { (connection, summary, sql) throws(UDRError) in
                do throws(DuckDBError) { return (summary, try connection.query(sql)) } catch {
                    throw UDRError(.query, error.message, underlying: error)
                }
            }
        }
    }

    /// Writes the changed rows between two refs to a file.
    public func exportDiffRows(
        _ from: String, _ to: String, tables: [TableName]? = nil, key: [String]? = nil, as rows: DiffRows = .cells, to path: String,
        format: OutputFormat
    ) async throws(UDRError) {
        try await blocking { () throws(UDRError) in
            try writeOut { (withoutDictionaries) throws(UDRError) -> Bool in
                try self.withDiffRows(from, to, tables: tables, key: key, as: rows) { (connection, _, sql) throws(UDRError) -> Bool in
                    try copyOut(sql, to: path, format: format, withoutDictionaries: withoutDictionaries, on: connection)
                }
            }
        }
    }

    private func withDiffRows<T>(
        _ from: String, _ to: String, tables: [TableName]?, key: [String]?, as rows: DiffRows,
        _ body: (Connection, RepositoryDiff, String) throws(UDRError) -> T
    ) throws(UDRError) -> T {
        try withDiff(from, to, tables: tables, key: key, complete: rows == .feed) { (connection, summary, shapes) throws(UDRError) -> T in
            switch rows {
            case .feed:
                let changed = summary.tables.filter { $0.status != .unchanged }
                guard changed.count <= 1 else {
                    throw UDRError(
                        .invalidArgument,
                        "a change feed is of one table, and \(changed.count) changed (\(changed.map(\.table.rawValue).joined(separator: ", "))); name one"
                    )
                }
                guard let table = changed.first?.table ?? summary.tables.first?.table, let shape = shapes[table] else {
                    return try body(connection, summary, "SELECT NULL::VARCHAR AS _change WHERE false")
                }
                return try body(connection, summary, TableDiff.feedSQL(shape))
            case .cells:
                let parts = summary.tables.enumerated().compactMap { ordinal, table in
                    shapes[table.table].map { TableDiff.cellsSQL($0, table: table.table, ordinal: ordinal) }
                }
                let empty =
                    "SELECT 0 AS __t, 0 AS __n, NULL::VARCHAR AS \"table\", NULL::VARCHAR AS change, NULL::VARCHAR AS key, NULL::VARCHAR AS \"column\", NULL::VARCHAR AS old, NULL::VARCHAR AS new WHERE false"
                let all = ([empty] + parts).joined(separator: "\nUNION ALL ")
                return try body(connection, summary, "SELECT * EXCLUDE (__t, __n) FROM (\(all)) ORDER BY __t, __n")
            }
        }
    }

    /// Resolves both refs, builds each differing table's changed rows in a
    /// fresh DuckDB, and runs `body` with the summary and each table's shape.
    func withDiff<T>(
        _ from: String, _ to: String, tables requested: [TableName]?, key: [String]?, complete: Bool, countsOnly: Bool = false,
        _ body: (Connection, RepositoryDiff, [TableName: TableDiff.Shape]) throws(UDRError) -> T
    ) throws(UDRError) -> T {
        var clock = StepClock()
        let fromID = try resolveRef(from)
        let toID = try resolveRef(to)
        let old = try commit(fromID).tables
        let new = try commit(toID).tables
        if let requested {
            for table in requested where old[table] == nil && new[table] == nil {
                throw UDRError(.notFound, "there is no table '\(table)' at \(from) or at \(to)")
            }
        }
        // Tables renamed between the refs are compared with their old selves.
        var renamed: [TableName: TableName] = [:]
        for (name, source) in try renames(from: fromID, to: toID)
        where new[name] != nil && old[source] != nil && old[name] == nil && new[source] == nil {
            renamed[name] = source
        }
        let hidden = requested == nil ? Set(renamed.values) : []
        let names = (requested ?? Array(Set(old.keys).union(new.keys))).filter { !hidden.contains($0) }.sorted()
        if key != nil, names.count != 1 {
            throw UDRError(.invalidArgument, "--key compares one table by other columns; name the table (\(names.count) are compared)")
        }
        clock.step("diff: resolve refs")
        return try withDuckDB { (connection) throws(UDRError) -> T in
            clock.step("diff: open DuckDB")
            let diff = tableDiff(connection)
            var differences: [TableDifference] = []
            var shapes: [TableName: TableDiff.Shape] = [:]
            for (index, name) in names.enumerated() {
                let oldName = renamed[name] ?? name
                let oldManifest = try old[oldName].map { (entry) throws(UDRError) in try manifest(entry.manifest) }
                let newManifest = try new[name].map { (entry) throws(UDRError) in try manifest(entry.manifest) }
                let same = old[oldName]?.manifest == new[name]?.manifest || (oldManifest.flatMap { o in newManifest.map(o.hasSameContent) } ?? false)
                if same && requested == nil && oldName == name { continue }
                let status: TableDifference.Status =
                    oldManifest == nil ? .added : newManifest == nil ? .dropped : oldName != name ? .renamed : same ? .unchanged : .changed
                // A named table that did not change still gets its (empty,
                // nothing read) result, so its change feed has its columns.
                let prefix = "__udr_d\(index)"
                let shape = try diff.changes(
                    old: oldManifest, oldID: old[oldName]?.manifest, new: newManifest, key: key, prefix: prefix, complete: complete, countsOnly: countsOnly)
                clock.step("diff: build \(name)")
                let counts = same ? RowCounts() : try diff.counts(shape)
                clock.step("diff: count \(name)")
                shapes[name] = shape
                let oldTypes = Dictionary((oldManifest?.columns ?? []).map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
                let newTypes = Dictionary((newManifest?.columns ?? []).map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
                differences.append(
                    TableDifference(
                        table: name, status: status, oldVersion: old[oldName]?.version, newVersion: new[name]?.version, key: shape.key ?? [],
                        columnsAdded: oldManifest == nil ? [] : (newManifest?.columns ?? []).map(\.name).filter { oldTypes[$0] == nil },
                        columnsDropped: newManifest == nil ? [] : (oldManifest?.columns ?? []).map(\.name).filter { newTypes[$0] == nil },
                        columnsRetyped: (oldManifest?.columns ?? []).map(\.name).filter { newTypes[$0] != nil && newTypes[$0] != oldTypes[$0] },
                        rows: counts, segmentsSkipped: shape.segmentsSkipped, segmentsRead: shape.segmentsRead, segmentPairsRead: shape.pairsRead,
                        fromChangeRecord: shape.recorded, renamedFrom: oldName == name ? nil : oldName))
            }
            let summary = RepositoryDiff(from: fromID, to: toID, tables: differences)
            return try body(connection, summary, shapes)
        }
    }
}

extension Repository {
    /// The tables renamed on the way from `from` to `to` (first parents back
    /// from `to` until a commit no newer than `from`): new name → old name.
    func renames(from: ObjectID, to: ObjectID) throws(UDRError) -> [TableName: TableName] {
        let stop = try txID(of: from)
        var map: [TableName: TableName] = [:]
        var current: ObjectID? = to
        while let id = current, id != from {
            let commit = try self.commit(id)
            if try txID(of: id) <= stop { break }
            for change in commit.changes {
                guard let old = change.renamedFrom else { continue }
                // A later rename of the same table: its name then is the old one.
                if let later = map.first(where: { $0.value == change.table })?.key { map[later] = old } else { map[change.table] = old }
            }
            current = try firstParent(commit)
        }
        return map
    }
}
