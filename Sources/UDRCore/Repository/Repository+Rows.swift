import DuckDB
import Foundation

extension Repository {
    /// Applies a row-level edit to a table as one commit on `branch`. Only
    /// the segments holding touched rows are rewritten. An edit that
    /// changes nothing commits nothing.
    public func apply(
        _ edit: RowEdit, to table: TableName, message: String? = nil, author: String? = nil, branch: String? = nil
    ) async throws(UDRError) -> WriteResult {
        try await blocking { () throws(UDRError) -> WriteResult in
            try self.autocommit(table, branch: branch, message: message ?? "\(edit.verb) \(table)", author: author) {
                (tx) throws(UDRError) in
                try self.stageRows(edit, to: table, in: tx)
            }
        }
    }

    /// Applies a row-level edit to the table's current version in `tx` and stages the result.
    func stageRows(_ edit: RowEdit, to table: TableName, in tx: Transaction) throws(UDRError) -> StagedWrite {
        var clock = StepClock()
        let current = try tx.current(table)
        guard let manifest = current.manifest else {
            throw UDRError(.notFound, "there is no table '\(table)' to \(edit.verb); create it with `udr write`")
        }
        let version = try catalog.latestVersionNumber(table) + 1
        let base = manifest.renumbered(version)
        let streams = ArrowStreams()
        defer { streams.release() }
        let result = try withDuckDB { (connection) throws(UDRError) -> RowEditor.Result? in
            clock.step("open duckdb")
            var snapshot = try tx.snapshot(for: edit.sqlText)
            // A predicate reads the table itself, whatever it names; a key
            // equality in it prunes the segments read, as in a query.
            var pruning: String?
            if let predicate = edit.predicate {
                snapshot = ResolvedSnapshot(commit: snapshot.commit, tables: snapshot.tables.merging([table: manifest]) { a, _ in a })
                pruning = "SELECT * FROM \(table.sqlReference) WHERE \(predicate)"
            }
            // The segments themselves: read groups of a version the edit is
            // about to replace would be built for one scan.
            try attach(snapshot, to: connection, for: pruning, grouping: .off)
            clock.step("attach")
            let input = try edit.source.map { (source) throws(UDRError) in try bind(source, to: connection, streams: streams) }
            let editor = RowEditor(
                connection: connection, writer: writer(connection), table: table, manifest: base, policy: configuration.segmentation,
                materialize: materializer(connection), file: segmentFile, recordsChanges: true)
            guard var result = try editor.apply(edit, input: input) else { return nil }
            clock.step("edit")
            result = try record(result, of: current, connection: connection)
            clock.step("record the changed rows")
            return result
        }
        clock.step("close duckdb")
        guard let result else {
            return StagedWrite(
                table: table, changed: false, rows: manifest.rows, segments: manifest.segments.count, logicalBytes: 0, bytesAdded: 0,
                counts: RowCounts())
        }
        let kind: ChangeKind = manifest.key.isEmpty ? .replace : .rows
        defer { clock.step("stage") }
        return try stage(result.written, of: table, in: tx, current: current, kind: kind, counts: result.counts)
    }

    /// The edit's result with its changed rows recorded in its manifest
    /// (see ``ChangeRecord``), from the version the transaction started
    /// with.
    func record(_ result: RowEditor.Result, of current: Transaction.TableState, connection: Connection) throws(UDRError)
        -> RowEditor.Result
    {
        guard result.recordedChanges else { return result }
        return RowEditor.Result(
            written: try record(result.written, changed: RowEditor.changedRows, counts: result.counts, of: current, connection: connection),
            counts: result.counts)
    }

    /// `written` with the rows it changed recorded in its manifest (see
    /// ``ChangeRecord``), from the version the transaction started with:
    /// `changed` is a relation of them (the table's columns in their
    /// logical types, and `__udr_new`), `segments` the segments read whole
    /// beside them. A write after other staged writes of the table records
    /// their net change together, when they recorded theirs (row images
    /// alone). Unchanged when there is nothing to record from there.
    func record(
        _ written: WrittenTable, changed: String, counts: RowCounts, segments: (old: [ObjectID], new: [ObjectID])? = nil,
        of current: Transaction.TableState, connection: Connection
    ) throws(UDRError) -> WrittenTable {
        guard let base = current.base, let manifest = current.manifest else { return written }
        var version = written.manifest
        let records = ChangeRecords(connection: connection, scratch: layout.scratchDirectory)
        let record: (file: Data, rows: RowCounts)
        if current.staged == nil {
            record = (try records.file(of: "SELECT * FROM \(changed)", columns: version.columns, key: version.key), counts)
        } else {
            // The staged version's own record, from the same base, comes first.
            guard segments == nil, let earlier = manifest.changes(from: base), earlier.oldSegments == nil, earlier.newSegments == nil,
                let combined = try records.combine(
                    first: try cache.materializeObject(earlier.object, store: store), firstColumns: manifest.columns,
                    then: changed, columns: version.columns, key: version.key,
                    limit: ChangeRecord.maximumRows(tableRows: version.rows))
            else { return written }
            record = combined
        }
        let stored = try store.put([record.file])
        version.changes = ChangeRecord(
            object: stored.ids[0], base: base, rows: record.rows, digest: version.changeDigest, oldSegments: segments?.old,
            newSegments: segments?.new)
        return WrittenTable(
            manifest: version, logicalBytes: written.logicalBytes, bytesAdded: written.bytesAdded + stored.bytesAdded, inPlace: written.inPlace)
    }
}
