import DuckDB
import Foundation

/// Where the rows of a write come from.
public struct WriteSource: Sendable {
    enum Base: Sendable {
        case file(String, FileFormat?)
        case sql(String)
        case arrow(ArrowStreamBox)
    }
    let base: Base
    /// The Arrow schema its writer gives the rows (see ``Manifest/arrowSchema``).
    public var arrowSchema: String?
    /// The writer saw the rows in key order: they are read as they come
    /// and sorted only if a check of the order finds they are not.
    public var likelyInKeyOrder = false

    /// A Parquet, CSV or JSON/NDJSON file; the format comes from the file's
    /// extension unless given.
    public static func file(_ path: String, format: FileFormat? = nil) -> WriteSource { WriteSource(base: .file(path, format)) }
    /// A query over the repository's tables (at the head of the branch written to).
    public static func sql(_ query: String) -> WriteSource { WriteSource(base: .sql(query)) }
    /// Arrow record batches (read once, while the write runs).
    public static func arrow(_ result: ArrowResult) -> WriteSource { WriteSource(base: .arrow(ArrowStreamBox(result: result))) }
    /// An Arrow C stream from elsewhere (a Python process's table), read
    /// once; the caller releases it after the write.
    public static func arrow(stream: UnsafeMutablePointer<ArrowArrayStream>, arrowSchema: String? = nil) -> WriteSource {
        WriteSource(base: .arrow(ArrowStreamBox(stream: stream)), arrowSchema: arrowSchema)
    }
}

/// An Arrow stream handed to a write; the write consumes it.
final class ArrowStreamBox: @unchecked Sendable {
    // @unchecked: the stream is consumed by one write, on one thread.
    let result: ArrowResult?
    let stream: UnsafeMutablePointer<ArrowArrayStream>?
    init(result: ArrowResult) { (self.result, self.stream) = (result, nil) }
    init(stream: UnsafeMutablePointer<ArrowArrayStream>) { (self.result, self.stream) = (nil, stream) }
}

/// Arrow streams handed to DuckDB during one write; released together
/// once DuckDB is done with them.
final class ArrowStreams: @unchecked Sendable {
    // @unchecked: used by one write, on one thread.
    private var streams: [UnsafeMutablePointer<ArrowArrayStream>] = []

    func make(from result: ArrowResult) -> UnsafeMutablePointer<ArrowArrayStream> {
        let stream = result.makeStream()
        streams.append(stream)
        return stream
    }

    func release() {
        for stream in streams {
            stream.pointee.release?(stream)
            stream.deallocate()
        }
        streams.removeAll()
    }
}

/// Input file formats.
public struct FileFormat: Sendable, Hashable, CustomStringConvertible {
    private enum Base: String, Sendable { case parquet, csv, tsv, json }
    private let base: Base
    private init(_ base: Base) { self.base = base }

    public static let parquet = FileFormat(.parquet)
    public static let csv = FileFormat(.csv)
    public static let json = FileFormat(.json)
    static let tsv = FileFormat(.tsv)

    public init(parsing text: String) throws(UDRError) {
        switch text.lowercased() {
        case "parquet", "pq": self = .parquet
        case "csv": self = .csv
        case "tsv": self = .tsv
        case "json", "ndjson", "jsonl": self = .json
        default: throw UDRError(.invalidArgument, "unknown input format '\(text)': use parquet, csv or json")
        }
    }

    static func forFile(_ path: String) throws(UDRError) -> FileFormat {
        let ext = (path as NSString).pathExtension
        do { return try FileFormat(parsing: ext) } catch {
            throw UDRError(
                .invalidArgument, "cannot tell the format of \(path) from its extension; name it .parquet, .csv or .json, or pass --format")
        }
    }

    public var description: String { base.rawValue }

    /// The field delimiter of a delimited format.
    var delimiter: UInt8? {
        switch base {
        case .csv: return UInt8(ascii: ",")
        case .tsv: return UInt8(ascii: "\t")
        default: return nil
        }
    }

    func reader(_ path: String) -> String {
        switch base {
        case .parquet: return "SELECT * FROM read_parquet(\(quoteLiteral(path)))"
        // The delimiter is fixed by the format so that a ragged file is an
        // error, not a one-column table the sniffer settled for.
        case .csv: return "SELECT * FROM read_csv(\(quoteLiteral(path)), delim = ',', strict_mode = true)"
        case .tsv: return "SELECT * FROM read_csv(\(quoteLiteral(path)), delim = '\\t', strict_mode = true)"
        case .json: return "SELECT * FROM read_json(\(quoteLiteral(path)))"
        }
    }
}

/// The outcome of a write outside a transaction.
public struct WriteResult: Sendable, Codable {
    public let table: TableName
    /// The commit made; nil when the content equals the current version.
    public let commit: CommitRecord?
    public let version: Int
    public let rows: Int64
    public let segments: Int
    /// Bytes of the Parquet segment files the write produced: a segment
    /// the write kept with its file (its rows kept their values) is not
    /// counted, so this is what the write cost, not the version's size.
    public let logicalBytes: Int64
    /// Bytes newly stored: new blobs, recipes, the manifest and the commit.
    public let bytesAdded: Int64
    /// Rows inserted, deleted and updated, when the write knows them.
    public let counts: RowCounts?
    public var unchanged: Bool { commit == nil }
}

extension Repository {
    /// Replaces a table's content with the rows of `source`, as one commit
    /// on `branch`. `key` nil keeps the current key (none for a new table);
    /// an empty key makes the table keyless. Writing content equal to the
    /// current version commits nothing and stores nothing.
    public func write(
        _ table: TableName, from source: WriteSource, key: [String]? = nil, message: String? = nil, author: String? = nil,
        branch: String? = nil
    ) async throws(UDRError) -> WriteResult {
        try await blocking { () throws(UDRError) -> WriteResult in
            try self.autocommit(table, branch: branch, message: message, author: author) { (tx) throws(UDRError) in
                try self.stageWrite(table, from: source, key: key, in: tx)
            }
        }
    }

    /// Runs one staged write in a private transaction and commits it.
    func autocommit(
        _ table: TableName, branch: String?, message: String?, author: String?, _ body: (Transaction) throws(UDRError) -> StagedWrite
    ) throws(UDRError) -> WriteResult {
        let (tx, lease) = try autocommitTransaction(on: branch)
        defer { try? catalog.endLease(lease) }
        let staged = try body(tx)
        let record = try commit(tx, message: message, author: author)
        let version: Int
        if let record {
            version = try commit(record.id).tables[table]?.version ?? 0
        } else {
            version = try tx.base.flatMap { (id) throws(UDRError) in try commit(id).tables[table]?.version } ?? 0
        }
        let commitBytes = try record.map { (r) throws(UDRError) in try store.size(r.id) ?? 0 } ?? 0
        return WriteResult(
            table: table, commit: record, version: version, rows: staged.rows, segments: staged.segments,
            logicalBytes: staged.logicalBytes, bytesAdded: staged.bytesAdded + commitBytes, counts: staged.counts)
    }

    /// Writes the rows of `source` as the table's new version and stages it in `tx`.
    func stageWrite(_ table: TableName, from source: WriteSource, key requestedKey: [String]?, in tx: Transaction) throws(UDRError)
        -> StagedWrite
    {
        let current = try tx.current(table)
        let previous = current.manifest
        let version = try catalog.latestVersionNumber(table) + 1

        let streams = ArrowStreams()
        defer { streams.release() }
        let written = try withDuckDB { (connection) throws(UDRError) -> WrittenTable in
            if case .sql(let query) = source.base { try attach(try tx.snapshot(for: query), to: connection, for: query) }
            let input = try bind(source, to: connection, streams: streams)
            var parquetFile: String?
            if case .file(let path, let format) = source.base, (format ?? (try? FileFormat.forFile(path))) == .parquet { parquetFile = path }
            let written = try writer(connection).write(
                table: table, version: version, source: input.select, inputName: input.name, key: requestedKey,
                previousKey: previous?.key ?? [], parquetFile: parquetFile, previous: previous, likelyInKeyOrder: source.likelyInKeyOrder)
            guard written.inPlace else { return written }
            return try recordWrite(written, of: current, connection: connection)
        }
        return try stage(
            written, of: table, in: tx, current: current, kind: .replace,
            counts: previous == nil ? RowCounts(inserted: written.manifest.rows) : written.manifest.changes?.rows,
            arrowSchema: .given(source.arrowSchema))
    }

    /// The fewest segments a table has for a whole-table write to record
    /// its changed rows. Below, a diff from the segments reads a few files
    /// (a nightly refresh of a 5-segment table: 45 ms from its record, 80
    /// ms from segments, where recording cost the write 60-120 ms).
    static let segmentsWorthRecording = 16

    /// A whole-table write that kept the previous version's segments in
    /// place, with the rows it changed recorded (see ``ChangeRecord``):
    /// the rows that differ in the segments it kept, and the segments it
    /// did not keep or added, by name. Found by diffing the two versions,
    /// which pairs the kept segments and compares only their changed
    /// columns. Nothing is recorded past ``ChangeRecord/maximumRows(tableRows:)``
    /// row images, or when the segments read whole hold more than a tenth
    /// of the rows (a diff reads them either way): the diff stops there.
    private func recordWrite(_ written: WrittenTable, of current: Transaction.TableState, connection: Connection) throws(UDRError)
        -> WrittenTable
    {
        var clock = StepClock()
        let new = written.manifest
        // A column added or retyped changes every row: nothing to record.
        // A table of few segments is diffed from them about as fast. After
        // other staged writes of the table the record would have to start
        // from the version before them, and one that names segments does
        // not combine with another.
        guard current.staged == nil, let old = current.manifest, old.columns == new.columns, !old.hasSameContent(as: new),
            old.segments.count >= Self.segmentsWorthRecording
        else { return written }
        let diff = tableDiff(connection)
        let prefix = "__udr_wr"
        defer {
            for table in ["old", "new", "pold", "pnew"] { try? connection.execute("DROP TABLE IF EXISTS \(prefix)_\(table)") }
        }
        let limit = ChangeRecord.maximumRows(tableRows: new.rows)
        let shape = try diff.build(
            old: old, new: new, prefix: prefix, complete: true, recordPairs: true,
            limit: (images: limit, wholeRows: max(limit, max(old.rows, new.rows) / 10)))
        defer { clock.step("record the changed rows") }
        // The build counted the pairs' row images against the limit.
        guard !shape.overLimit else { return written }
        let changed = "(SELECT *, false AS __udr_new FROM \(shape.pairedOld) UNION ALL SELECT *, true FROM \(shape.pairedNew))"
        return try record(
            written, changed: changed, counts: try diff.counts(shape),
            segments: (shape.unpairedOld.map(\.id), shape.unpairedNew.map(\.id)), of: current, connection: connection)
    }

    /// Where a staged version's Arrow schema (``Manifest/arrowSchema``)
    /// comes from: an edit keeps the current version's; a write of new
    /// content has its own rows' (none from a file or a query).
    enum ArrowSchemaOrigin {
        case kept
        case given(String?)
    }

    /// Stages a written table version unless it equals the current one.
    func stage(
        _ written: WrittenTable, of table: TableName, in tx: Transaction,
        current: Transaction.TableState,
        kind: ChangeKind, counts: RowCounts?, arrowSchema: ArrowSchemaOrigin = .kept
    ) throws(UDRError) -> StagedWrite {
        var manifest = written.manifest
        switch arrowSchema {
        case .kept: manifest.arrowSchema = current.manifest?.arrowSchema
        case .given(let schema): manifest.arrowSchema = schema
        }
        if let previous = current.manifest, previous.isUnchanged(from: manifest) {
            return StagedWrite(
                table: table, changed: false, rows: previous.rows, segments: previous.segments.count, logicalBytes: written.logicalBytes,
                bytesAdded: written.bytesAdded, counts: RowCounts())
        }
        var clock = StepClock()
        let stored = try store.putJSON(manifest)
        clock.step("put manifest")
        // Several edits of one table in a transaction: the kinds combine and
        // the counts are left to the change log, which diffs the versions.
        // A table renamed in this transaction stays renamed.
        let renamedFrom = current.staged?.kind == .drop ? nil : current.staged?.renamedFrom
        let combinedKind: ChangeKind =
            renamedFrom != nil ? .rename : current.staged.map { $0.kind == .rows && kind == .rows ? .rows : .replace } ?? kind
        let combinedCounts = current.staged == nil ? counts : nil
        try tx.stage(
            StagedTable(
                table: table, manifest: stored.id, base: current.base, kind: combinedKind, counts: combinedCounts, rows: manifest.rows,
                renamedFrom: renamedFrom),
            replacing: current.staged?.manifest)
        return StagedWrite(
            table: table, changed: true, rows: manifest.rows, segments: manifest.segments.count, logicalBytes: written.logicalBytes,
            bytesAdded: written.bytesAdded + stored.bytesAdded, counts: counts)
    }

    func writer(_ connection: Connection) -> TableWriter {
        TableWriter(
            connection: connection, store: store, cache: cache, scratch: layout.scratchDirectory, policy: configuration.segmentation)
    }

    /// A write's input as a relation on `connection`: a SELECT over it and
    /// how errors name it. A query's tables must be attached already; an
    /// Arrow stream is registered and kept in `streams` until the write ends.
    func bind(_ source: WriteSource, to connection: Connection, streams: ArrowStreams) throws(UDRError) -> (select: String, name: String) {
        switch source.base {
        case .file(let path, let format): return try Self.fileReader(path, format: format)
        case .sql(let query):
            try SQLScript.requireReads(query)
            return (Self.statement(query), "the query")
        case .arrow(let box):
            let stream = box.stream ?? streams.make(from: box.result!)
            do throws(DuckDBError) { try connection.register(stream, as: "__udr_arrow_input") } catch {
                throw UDRError(.invalidInput, "cannot read the Arrow input: \(error.message)", underlying: error)
            }
            return ("SELECT * FROM __udr_arrow_input", "the Arrow input")
        }
    }

    /// The path of a file of a segment's live rows, rebuilt from the
    /// store if needed (using `connection` when it has deletions).
    func materializer(_ connection: Connection) -> (SegmentRef) throws(UDRError) -> String {
        { (segment) throws(UDRError) in try self.cache.materialize(segment, store: self.store, connection: connection).path }
    }

    /// The path of a segment's own file, deleted rows included.
    func segmentFile(_ segment: SegmentRef) throws(UDRError) -> String {
        try cache.materializeFile(segment, store: store).path
    }

    /// A diff of table versions on `connection`, reading this repository's segments.
    func recipe(of segment: SegmentRef) throws(UDRError) -> SegmentRecipe {
        try store.getJSON(SegmentRecipe.self, segment.recipe)
    }

    func tableDiff(_ connection: Connection) -> TableDiff {
        TableDiff(
            connection: connection, materialize: materializer(connection), recipe: recipe(of:), file: segmentFile,
            deleted: { (segment) throws(UDRError) in Set(try self.store.deletedPositions(of: segment)) },
            object: { (id) throws(UDRError) in try self.cache.materializeObject(id, store: self.store) },
            manifest: { (id) throws(UDRError) in try self.manifest(id) })
    }

    /// A SELECT over an input file, and how errors name it.
    static func fileReader(_ path: String, format: FileFormat?) throws(UDRError) -> (select: String, name: String) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw UDRError(.notFound, "the input file \(path) does not exist")
        }
        let resolved: FileFormat
        if let format { resolved = format } else { resolved = try FileFormat.forFile(path) }
        if let delimiter = resolved.delimiter, let ragged = CSVDiagnosis.firstRaggedLine(path: path, delimiter: delimiter) {
            throw UDRError(
                .invalidInput,
                "cannot read \(path): line \(ragged.line) has \(ragged.fields) fields, but the header has \(ragged.expected). Every row of a \(resolved) file must have the same number of fields."
            )
        }
        return (resolved.reader(path), "\(path) as \(resolved)")
    }

    /// A query as a relation: without surrounding blanks and trailing semicolons.
    static func statement(_ sql: String) -> String {
        sql.trimmingCharacters(in: .whitespacesAndNewlines).trimmingCharacters(in: CharacterSet(charactersIn: ";"))
    }
}

extension Repository {
    /// Drops a table as one commit on `branch`: the commit leaves it out,
    /// and its versions stay readable (`--at`, `history`, `log`) as long
    /// as retained commits hold them; GC frees them after. nil when
    /// `ifExists` and there is no such table.
    public func drop(
        _ table: TableName, ifExists: Bool = false, message: String? = nil, author: String? = nil, branch: String? = nil
    ) async throws(UDRError) -> CommitRecord? {
        try await blocking { () throws(UDRError) -> CommitRecord? in
            let (tx, lease) = try self.autocommitTransaction(on: branch)
            defer { try? self.catalog.endLease(lease) }
            guard try self.stageDrop(table, ifExists: ifExists, in: tx) != nil else { return nil }
            return try self.commit(tx, message: message ?? "drop \(table)", author: author)
        }
    }

    /// Stages the drop of a table in `tx`; nil when `ifExists` and there is none.
    func stageDrop(_ table: TableName, ifExists: Bool, in tx: Transaction) throws(UDRError) -> StagedWrite? {
        let current = try tx.current(table)
        guard let manifest = current.manifest, let id = current.staged?.manifest ?? current.base else {
            if ifExists { return nil }
            let already = current.staged?.kind == .drop ? " (this transaction dropped it)" : ""
            throw UDRError(.notFound, "there is no table '\(table)' to drop on \(tx.branch)\(already); `udr tables` lists the tables")
        }
        // A table this transaction created is only unstaged (a drop without a base commits nothing).
        try tx.stage(
            StagedTable(table: table, manifest: id, base: current.base, kind: .drop, counts: RowCounts(deleted: manifest.rows), rows: manifest.rows),
            replacing: current.staged?.manifest)
        return StagedWrite(
            table: table, changed: true, rows: 0, segments: 0, logicalBytes: 0, bytesAdded: 0, counts: RowCounts(deleted: manifest.rows))
    }
}
