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

    /// A Parquet, CSV or JSON/NDJSON file; the format comes from the file's
    /// extension unless given.
    public static func file(_ path: String, format: FileFormat? = nil) -> WriteSource { WriteSource(base: .file(path, format)) }
    /// A query over the repository's tables (at the head of the branch written to).
    public static func sql(_ query: String) -> WriteSource { WriteSource(base: .sql(query)) }
    /// Arrow record batches (read once, while the write runs).
    public static func arrow(_ result: ArrowResult) -> WriteSource { WriteSource(base: .arrow(ArrowStreamBox(result: result))) }
}

/// An Arrow stream handed to a write; the write consumes and releases it.
final class ArrowStreamBox: @unchecked Sendable {
    // @unchecked: the stream is consumed by one write, on one thread.
    let result: ArrowResult
    init(result: ArrowResult) { self.result = result }
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

/// The outcome of a write.
public struct WriteResult: Sendable, Codable {
    public let table: TableName
    /// The commit made; nil when the content equals the current version.
    public let commit: CommitRecord?
    public let version: Int
    public let rows: Int64
    public let segments: Int
    /// Bytes of the Parquet segments of the new version.
    public let logicalBytes: Int64
    /// Bytes newly stored: new blobs, recipes, the manifest and the commit.
    public let bytesAdded: Int64
    public var unchanged: Bool { commit == nil }
}

extension Repository {
    /// Replaces a table's content with the rows of `source`, as one commit
    /// on `branch`. `key` nil keeps the current key (none for a new table);
    /// an empty key makes the table keyless. Writing content equal to the
    /// current version commits nothing and stores nothing.
    public func write(
        _ table: TableName, from source: WriteSource, key: [String]? = nil, message: String? = nil, author: String? = nil,
        branch: String = Repository.defaultBranch
    ) async throws(UDRError) -> WriteResult {
        try await blocking { () throws(UDRError) -> WriteResult in
            try self.writeNow(table, from: source, key: key, message: message, author: author, branch: branch)
        }
    }

    func writeNow(
        _ table: TableName, from source: WriteSource, key requestedKey: [String]?, message: String?, author: String?, branch: String
    ) throws(UDRError) -> WriteResult {
        let head = try catalog.head(of: branch)
        let headCommit: Commit? = try head.map { (id) throws(UDRError) in try commit(id) }
        let previousEntry = headCommit?.tables[table]
        let previous: Manifest? = try previousEntry.map { (entry) throws(UDRError) in try manifest(entry.manifest) }
        let version = try catalog.latestVersionNumber(table) + 1

        var streams: [UnsafeMutablePointer<ArrowArrayStream>] = []
        defer {
            for stream in streams {
                stream.pointee.release?(stream)
                stream.deallocate()
            }
        }
        let written = try withDuckDB { (connection) throws(UDRError) -> WrittenTable in
            let selectSQL: String
            let inputName: String
            switch source.base {
            case .file(let path, let format):
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
                selectSQL = resolved.reader(path)
                inputName = "\(path) as \(resolved)"
            case .sql(let query):
                try attach(try snapshot(at: head, pins: [], for: query), to: connection, for: query)
                selectSQL = query.trimmingCharacters(in: .whitespacesAndNewlines).trimmingCharacters(in: CharacterSet(charactersIn: ";"))
                inputName = "the query"
            case .arrow(let box):
                let stream = box.result.makeStream()
                streams.append(stream)
                do throws(DuckDBError) { try connection.register(stream, as: "__udr_arrow_input") } catch {
                    throw UDRError(.invalidInput, "cannot read the Arrow input: \(error.message)", underlying: error)
                }
                selectSQL = "SELECT * FROM __udr_arrow_input"
                inputName = "the Arrow input"
            }
            let writer = TableWriter(
                connection: connection, store: store, cache: cache, scratch: layout.scratchDirectory, policy: configuration.segmentation)
            return try writer.write(
                table: table, version: version, source: selectSQL, inputName: inputName, key: requestedKey, previousKey: previous?.key ?? []
            )
        }

        if let previous, let previousEntry, previous.hasSameContent(as: written.manifest) {
            return WriteResult(
                table: table, commit: nil, version: previousEntry.version, rows: previous.rows, segments: previous.segments.count,
                logicalBytes: written.logicalBytes, bytesAdded: written.bytesAdded)
        }
        let stored = try store.putJSON(written.manifest)
        let change = Commit.Change(table: table, oldVersion: previousEntry?.version, newVersion: version)
        let (record, commitBytes) = try commitChanges(
            branch: branch, base: head, baseCommit: headCommit,
            entries: [table: Commit.TableEntry(version: version, manifest: stored.id)],
            changes: [change], rows: [table: written.manifest.rows],
            message: message ?? "write \(table)", author: author ?? configuration.defaultAuthor)
        return WriteResult(
            table: table, commit: record, version: version, rows: written.manifest.rows, segments: written.manifest.segments.count,
            logicalBytes: written.logicalBytes, bytesAdded: written.bytesAdded + stored.bytesAdded + commitBytes)
    }

    /// Records a commit on `branch` that sets `entries`, moving the head by
    /// compare-and-swap. When other commits landed meanwhile and touched
    /// none of these tables, the commit is rebased onto them; otherwise it
    /// fails with a conflict naming the tables.
    func commitChanges(
        branch: String, base: ObjectID?, baseCommit: Commit?, entries: [TableName: Commit.TableEntry], changes: [Commit.Change],
        rows: [TableName: Int64], message: String, author: String
    ) throws(UDRError) -> (CommitRecord, Int64) {
        var parent = base
        var parentCommit = baseCommit
        var delay: UInt32 = 2_000
        for attempt in 0..<50 {
            let txID = try catalog.allocateTxID()
            var tables = parentCommit?.tables ?? [:]
            for (name, entry) in entries { tables[name] = entry }
            let commit = Commit(
                parents: parent.map { [$0] } ?? [], txID: txID, time: Date(), author: author, message: message, branch: branch,
                tables: tables, changes: changes)
            let stored = try store.putJSON(commit)
            let record = CommitRecord(id: stored.id, commit: commit)
            let versions = entries.map { name, entry in
                TableVersionRecord(
                    table: name, version: entry.version, manifest: entry.manifest, commit: stored.id, txID: txID, time: commit.time,
                    rows: rows[name] ?? 0)
            }
            do {
                try catalog.recordCommit(record, tableVersions: versions, branch: branch, expectedHead: parent)
                return (record, stored.bytesAdded)
            } catch  where error.code == .conflict && attempt < 49 {
                let newHead = try catalog.head(of: branch)
                let newCommit: Commit? = try newHead.map { (id) throws(UDRError) in try self.commit(id) }
                let touched = entries.keys.filter { newCommit?.tables[$0] != baseCommit?.tables[$0] }
                if !touched.isEmpty {
                    throw UDRError(
                        .conflict,
                        "conflict: \(touched.map(\.rawValue).sorted().joined(separator: ", ")) changed on \(branch) since this write began; nothing was committed. Retry the write."
                    )
                }
                parent = newHead
                parentCommit = newCommit
                usleep(delay)
                delay = min(delay * 2, 200_000)
            }
        }
        throw UDRError(.conflict, "could not commit to \(branch): the head kept moving")
    }
}
