import DuckDB
import Foundation

/// A change to a table's columns (`ALTER TABLE`, `udr alter`).
public enum SchemaChange: Sendable, Hashable {
    /// A new column, NULL in every row, or `defaultValue` (a SQL expression).
    case addColumn(name: String, type: String, defaultValue: String? = nil)
    case dropColumn(String)
    case renameColumn(String, to: String)
    /// A column's values cast to `type` (`using`: an expression over the
    /// row instead of the column itself); a value that does not cast is an
    /// error naming its row.
    case changeType(String, to: String, using: String? = nil)
}

extension Repository {
    /// Changes a table's columns as one commit on `branch`.
    public func alter(
        _ table: TableName, _ change: SchemaChange, message: String? = nil, author: String? = nil, branch: String? = nil
    ) async throws(UDRError) -> WriteResult {
        try await blocking { () throws(UDRError) -> WriteResult in
            try self.autocommit(table, branch: branch, message: message ?? "alter \(table): \(change.summary)", author: author) {
                (tx) throws(UDRError) in try self.stageAlter(table, change, in: tx)
            }
        }
    }

    /// Stages a change to a table's columns in `tx`. Adding a column
    /// without a default and dropping one rewrite nothing (older segments
    /// read the new column as NULL, and keep the dropped one unread);
    /// renaming, retyping or adding with a default write every segment
    /// again, storing only the column chunks that changed.
    func stageAlter(_ table: TableName, _ change: SchemaChange, in tx: Transaction) throws(UDRError) -> StagedWrite {
        let current = try tx.current(table)
        guard let manifest = current.manifest else {
            throw UDRError(.notFound, "there is no table '\(table)' to alter on \(tx.branch); `udr tables` lists the tables")
        }
        let base = manifest.renumbered(try catalog.latestVersionNumber(table) + 1)
        let names = base.columns.map(\.name)
        func index(of column: String) throws(UDRError) -> Int {
            if let i = names.firstIndex(of: column) ?? names.firstIndex(where: { $0.lowercased() == column.lowercased() }) { return i }
            throw UDRError(.notFound, "\(table) has no column '\(column)'; its columns are \(names.joined(separator: ", "))")
        }
        func unused(_ column: String) throws(UDRError) {
            if names.contains(where: { $0.lowercased() == column.lowercased() }) {
                throw UDRError(.alreadyExists, "\(table) has a column '\(column)' already")
            }
        }
        let written = try withDuckDB { (connection) throws(UDRError) -> WrittenTable in
            let editor = RowEditor(
                connection: connection, writer: writer(connection), table: table, manifest: base, policy: configuration.segmentation,
                materialize: materializer(connection), file: segmentFile)
            let same = base.columns.map { "o." + quoteIdentifier($0.name) }
            switch change {
            case .addColumn(let name, let type, let defaultValue):
                try unused(name)
                let column = Column(name: name, type: try Self.canonicalType(type, on: connection))
                let stored = Set(base.segments.flatMap { base.columnNames(of: $0) }.map { $0.lowercased() })
                if defaultValue == nil && !stored.contains(name.lowercased()) {
                    // Older segments name the columns they hold; the new one reads as NULL.
                    let segments = base.segments.map { (segment) -> SegmentRef in
                        var copy = segment
                        copy.columns = base.columnNames(of: segment)
                        return copy
                    }
                    return WrittenTable(
                        manifest: Manifest(table: table, version: base.version, columns: base.columns + [column], key: base.key, segments: segments),
                        logicalBytes: 0, bytesAdded: 0)
                }
                let value = "CAST((\(defaultValue ?? "NULL")) AS \(column.type)) AS \(quoteIdentifier(name))"
                return try editor.rewriteAll(columns: base.columns + [column], key: base.key, select: same + [value])
            case .dropColumn(let name):
                let i = try index(of: name)
                if base.key.contains(names[i]) {
                    throw UDRError(.invalidArgument, "cannot drop \(names[i]) from \(table): it is part of the key (\(base.key.joined(separator: ", "))); rewrite the table with `udr write --key` first")
                }
                guard names.count > 1 else { throw UDRError(.invalidArgument, "cannot drop \(names[i]), the only column of \(table); drop the table instead") }
                // The segments keep the column, unread: they name the columns they hold.
                let segments = base.segments.map { (segment) -> SegmentRef in
                    var copy = segment
                    copy.columns = base.columnNames(of: segment)
                    return copy
                }
                var columns = base.columns
                columns.remove(at: i)
                return WrittenTable(
                    manifest: Manifest(table: table, version: base.version, columns: columns, key: base.key, segments: segments),
                    logicalBytes: 0, bytesAdded: 0)
            case .renameColumn(let old, let new):
                let i = try index(of: old)
                if new.lowercased() != names[i].lowercased() { try unused(new) }
                var columns = base.columns
                columns[i] = Column(name: new, type: columns[i].type)
                var select = same
                select[i] = "o.\(quoteIdentifier(names[i])) AS \(quoteIdentifier(new))"
                let key = base.key.map { $0 == names[i] ? new : $0 }
                return try editor.rewriteAll(columns: columns, key: key, select: select)
            case .changeType(let name, let type, let using):
                let i = try index(of: name)
                if base.key.contains(names[i]) {
                    throw UDRError(.invalidArgument, "cannot change the type of \(names[i]): it is part of the key of \(table); rewrite the table with `udr write` instead")
                }
                let target = try Self.canonicalType(type, on: connection)
                var columns = base.columns
                columns[i] = Column(name: names[i], type: target)
                var select = same
                let expression = using ?? "o.\(quoteIdentifier(names[i]))"
                select[i] = "CAST((\(expression)) AS \(target)) AS \(quoteIdentifier(names[i]))"
                do throws(UDRError) {
                    return try editor.rewriteAll(columns: columns, key: base.key, select: select)
                } catch {
                    throw try castFailure(error, base: base, column: names[i], expression: expression, type: target, connection: connection)
                }
            }
        }
        return try stage(written, of: table, in: tx, current: current, kind: .replace, counts: RowCounts())
    }

    /// The error of a cast that failed: the first row whose value does not cast, by key (or position).
    private func castFailure(
        _ error: UDRError, base: Manifest, column: String, expression: String, type: String, connection: Connection
    ) throws(UDRError) -> UDRError {
        guard error.code == .query || error.code == .invalidInput else { return error }
        var files: [String] = []
        for segment in base.segments { files.append(try materializer(connection)(segment)) }
        let rows = Self.segmentSelect(base, segments: base.segments, files: files, extra: ["file_row_number"])
        let identity = base.key.isEmpty ? "'row ' || (o.file_row_number + 1)" : "CAST(row(\(base.key.map { "o." + quoteIdentifier($0) }.joined(separator: ", "))) AS VARCHAR)"
        let found = try? connection.query(
            """
            SELECT \(identity), CAST(o.\(quoteIdentifier(column)) AS VARCHAR) FROM (\(rows)) AS o
            WHERE (\(expression)) IS NOT NULL AND TRY_CAST((\(expression)) AS \(type)) IS NULL LIMIT 1
            """)
        guard let row = found?.rows.first else { return error }
        let key = base.key.isEmpty ? row[0].description : "\(base.key.joined(separator: ", ")) = \(row[0].description)"
        return UDRError(
            .invalidInput,
            "cannot change \(column) of \(base.table) to \(type): the row with \(key) holds \(row[1].description), which does not cast. Fix that row first, or give USING an expression that casts; nothing was changed"
        )
    }

    /// DuckDB's name for a type as written (`int` → `INTEGER`).
    static func canonicalType(_ type: String, on connection: Connection) throws(UDRError) -> String {
        let name: String?
        do throws(DuckDBError) { name = try connection.query("SELECT typeof(CAST(NULL AS \(type)))").scalar.string } catch {
            throw UDRError(.invalidArgument, "'\(type)' is not a type DuckDB knows: \(error.message)", underlying: error)
        }
        guard let name else { throw UDRError(.invalidArgument, "'\(type)' is not a type DuckDB knows") }
        return name
    }
}

extension SchemaChange {
    var summary: String {
        switch self {
        case .addColumn(let name, let type, let value): return "add \(name) \(type)\(value.map { " default \($0)" } ?? "")"
        case .dropColumn(let name): return "drop \(name)"
        case .renameColumn(let old, let new): return "rename \(old) to \(new)"
        case .changeType(let name, let type, _): return "\(name) to \(type)"
        }
    }
}

extension Transaction {
    /// Changes a table's columns (see ``Repository/alter(_:_:message:author:branch:)``), staged.
    @discardableResult
    public func alter(_ table: TableName, _ change: SchemaChange) async throws(UDRError) -> StagedWrite {
        try await repository.blocking { () throws(UDRError) -> StagedWrite in
            try self.checkLive()
            return try self.repository.stageAlter(table, change, in: self)
        }
    }
}

extension Repository {
    /// Renames a table as one commit on `branch`. The table keeps its
    /// history: its versions go on from the old name's, and `log`,
    /// `history`, `diff` and `merge` follow the rename.
    public func rename(_ table: TableName, to name: TableName, message: String? = nil, author: String? = nil, branch: String? = nil)
        async throws(UDRError) -> CommitRecord?
    {
        try await blocking { () throws(UDRError) -> CommitRecord? in
            let (tx, lease) = try self.autocommitTransaction(on: branch)
            defer { try? self.catalog.endLease(lease) }
            _ = try self.stageRename(table, to: name, in: tx)
            return try self.commit(tx, message: message ?? "rename \(table) to \(name)", author: author)
        }
    }

    /// Stages the rename of a table in `tx`: the old name dropped, the new
    /// one holding the same content (the segments are shared as they are).
    func stageRename(_ table: TableName, to name: TableName, in tx: Transaction) throws(UDRError) -> StagedWrite {
        let current = try tx.current(table)
        guard let manifest = current.manifest else {
            throw UDRError(.notFound, "there is no table '\(table)' to rename on \(tx.branch); `udr tables` lists the tables")
        }
        guard name != table else { throw UDRError(.invalidArgument, "\(table) has that name already") }
        if try tx.tableNames().contains(where: { $0.rawValue.lowercased() == name.rawValue.lowercased() && $0 != table }) {
            throw UDRError(.alreadyExists, "there is a table '\(name)' already: drop it first, or pick another name")
        }
        let target = try tx.current(name)
        let version = max(try catalog.latestVersionNumber(table), try catalog.latestVersionNumber(name)) + 1
        let stored = try store.putJSON(manifest.renamed(name, version: version))
        // The name the table had at the transaction's start, if it had one then.
        let source = current.staged?.kind == .drop ? nil : current.staged?.renamedFrom ?? (current.base == nil ? nil : table)
        _ = try stageDrop(table, ifExists: false, in: tx)
        try tx.stage(
            StagedTable(
                table: name, manifest: stored.id, base: target.base, kind: source == nil ? .replace : .rename, counts: RowCounts(),
                rows: manifest.rows, renamedFrom: source),
            replacing: target.staged?.manifest)
        return StagedWrite(
            table: name, changed: true, rows: manifest.rows, segments: manifest.segments.count, logicalBytes: 0, bytesAdded: stored.bytesAdded,
            counts: RowCounts())
    }
}

extension Transaction {
    /// Renames a table (see ``Repository/rename(_:to:message:author:branch:)``), staged.
    @discardableResult
    public func rename(_ table: TableName, to name: TableName) async throws(UDRError) -> StagedWrite {
        try await repository.blocking { () throws(UDRError) -> StagedWrite in
            try self.checkLive()
            return try self.repository.stageRename(table, to: name, in: self)
        }
    }
}
