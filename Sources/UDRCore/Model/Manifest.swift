import Foundation

/// A column of a table: its name and its exact DuckDB type (as DuckDB
/// spells it, e.g. `DECIMAL(18,3)`, `STRUCT(a INTEGER, b VARCHAR[])`).
public struct Column: Hashable, Sendable, Codable {
    public let name: String
    public let type: String

    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }
}

/// Statistics of one top-level column within a segment, from the Parquet
/// footer: min, max (DuckDB's text form) and null count.
public struct ColumnStats: Hashable, Sendable, Codable {
    public var min: String?
    public var max: String?
    public var nulls: Int64?
}

/// One segment of a table version: a content-defined run of rows stored as
/// one Parquet file, itself stored as a recipe of blobs.
public struct SegmentRef: Hashable, Sendable, Codable {
    /// BLAKE3 of the whole Parquet file.
    public let id: ObjectID
    /// The object holding the segment's ``SegmentRecipe``.
    public let recipe: ObjectID
    /// Live rows: the file's rows less the deleted ones.
    public var rows: Int64
    /// Size of the Parquet file.
    public let bytes: Int64
    /// Min and max of each top-level column, keyed by column name (of
    /// all the file's rows, deleted ones included: bounds still hold).
    public let stats: [String: ColumnStats]
    /// The columns the segment's file holds when they are fewer than the
    /// manifest's (it was written before columns were added; the missing
    /// ones read as NULL). nil: all of the manifest's columns.
    public var columns: [String]?
    /// Rows of the file deleted since it was written, when any: a delete
    /// stores a list of positions instead of a new segment, so the file
    /// and its column chunks stay shared with the versions before.
    public var deletions: Deletions?
    /// The Parquet type of the columns the file stores in another type
    /// than their usual one, by column name: a DOUBLE column whose values
    /// are all decimals of a few places is stored as `DECIMAL(18,k)` when
    /// every value reads back bit-exactly (see DESIGN.md § Why segments ×
    /// column chunks). Reads cast such columns back. nil: none.
    public var storedTypes: [String: String]?
    /// The file was written without Parquet dictionaries because a FLOAT
    /// or DOUBLE value in it is -0.0 (DuckDB's dictionary would make it
    /// 0.0). Every file DuckDB writes from it must be too. nil: false.
    public var withoutDictionaries: Bool?

    public init(
        id: ObjectID, recipe: ObjectID, rows: Int64, bytes: Int64, stats: [String: ColumnStats], columns: [String]? = nil,
        deletions: Deletions? = nil, storedTypes: [String: String]? = nil, withoutDictionaries: Bool? = nil
    ) {
        self.id = id
        self.recipe = recipe
        self.rows = rows
        self.bytes = bytes
        self.stats = stats
        self.columns = columns
        self.deletions = deletions
        self.storedTypes = storedTypes
        self.withoutDictionaries = withoutDictionaries
    }

    /// Whether reading the segment's file beside others needs DuckDB's
    /// `union_by_name`: the file holds fewer columns, or stores some in
    /// another type (the first file's types would be forced on the rest).
    public var readsByName: Bool { columns != nil || storedTypes != nil }

    /// Rows in the segment's file, deleted ones included.
    public var fileRows: Int64 { rows + (deletions?.count ?? 0) }

    /// The segment's live rows, as stored: the same file with the same
    /// deletions holds the same rows.
    public var content: SegmentContent { SegmentContent(id: id, deletions: deletions?.object) }
}

/// What identifies a segment's live rows: its file and its deletions.
public struct SegmentContent: Hashable, Sendable {
    public let id: ObjectID
    public let deletions: ObjectID?

    /// A name for files derived from these rows.
    var name: String { deletions.map { id.hex + "-" + $0.hex } ?? id.hex }
}

/// The deleted rows of a segment: an object holding a ``DeletedRows``.
public struct Deletions: Hashable, Sendable, Codable {
    public let object: ObjectID
    /// How many rows are deleted.
    public let count: Int64
}

/// Positions (0-based, ascending) of the deleted rows of one segment file.
public struct DeletedRows: Hashable, Sendable, Codable {
    public let segment: ObjectID
    public let positions: [Int64]
}

extension SegmentRef {
    /// The segment with the rows at `positions` (ascending) of its file
    /// deleted instead of the ones it had, and the object that lists them
    /// (nil, with no deletions, for no positions); the caller stores it.
    func deleting(_ positions: [Int64]) throws(UDRError) -> (segment: SegmentRef, object: Data?) {
        var copy = self
        copy.rows = fileRows - Int64(positions.count)
        guard !positions.isEmpty else {
            copy.deletions = nil
            return (copy, nil)
        }
        let object = try ObjectCoding.encode(DeletedRows(segment: id, positions: positions))
        copy.deletions = Deletions(object: ObjectID.of(object), count: Int64(positions.count))
        return (copy, object)
    }
}

extension Sequence<SegmentRef> {
    /// The columns some of these segments store in another type than
    /// their usual one (``SegmentRef/storedTypes``).
    var columnsStoredOtherwise: Set<String> { Set(flatMap { $0.storedTypes.map { Array($0.keys) } ?? [] }) }
}

/// A table version: schema, key, and ordered segments. Stored as an object;
/// its id is what a commit records for the table.
public struct Manifest: Hashable, Sendable, Codable {
    /// 2: segments may carry deletions. 3: segments may store columns in
    /// other types (``SegmentRef/storedTypes``) or be written without
    /// dictionaries; an older reader would read those wrongly.
    public static let currentFormat = 3

    public let format: Int
    public let table: TableName
    /// Per-table version number, 1 for the first write.
    public let version: Int
    public let columns: [Column]
    /// Key columns, in order; empty for a keyless table.
    public let key: [String]
    public let rows: Int64
    public let segments: [SegmentRef]
    /// The rows that changed since the version before, when the write of
    /// this version recorded them (see ``ChangeRecord``).
    public var changes: ChangeRecord?
    /// The Arrow schema the table's rows had when an Arrow client (the
    /// Python package) wrote them, as that client encoded it (base64 of a
    /// zlib-compressed Arrow IPC stream: the schema with its metadata, such
    /// as pandas' dtypes, and a batch of no rows holding the dictionaries;
    /// 1-1.5 KB for 10-30 columns). DuckDB
    /// keeps every value but not every Arrow type (dictionaries, large and
    /// view types, time zones); the client casts a result back to these
    /// types where its columns still match. Row edits keep it; a write of
    /// new content takes the new rows' (nil from a file or a query).
    public var arrowSchema: String?

    public init(table: TableName, version: Int, columns: [Column], key: [String], segments: [SegmentRef], changes: ChangeRecord? = nil) {
        self.format = Self.currentFormat
        self.table = table
        self.version = version
        self.columns = columns
        self.key = key
        self.rows = segments.reduce(0) { $0 + $1.rows }
        self.segments = segments
        self.changes = changes
    }

    /// What a change record is written for: this version's columns, key
    /// and segments (their content). A record whose digest differs
    /// describes other rows (the version was rebuilt since), and is not used.
    var changeDigest: ObjectID {
        var text = columns.map { "\($0.name)\u{1F}\($0.type)" }.joined(separator: "\u{1E}") + "\u{1D}" + key.joined(separator: "\u{1E}")
        for segment in segments { text += "\u{1D}" + segment.content.name }
        return ObjectID.of(Data(text.utf8))
    }

    /// The change record, when it gives exactly the rows that changed
    /// from the version stored as `base` to this one.
    func changes(from base: ObjectID?) -> ChangeRecord? {
        guard let changes, let base, changes.base == base, changes.digest == changeDigest, !key.isEmpty else { return nil }
        return changes
    }

    /// Total size of the Parquet files of all segments (the logical bytes).
    public var logicalBytes: Int64 { segments.reduce(0) { $0 + $1.bytes } }

    /// Same schema, key and segments: the content is the same whatever the version number.
    public func hasSameContent(as other: Manifest) -> Bool {
        columns == other.columns && key == other.key && segments.map(\.content) == other.segments.map(\.content)
    }

    /// Same content and the same Arrow schema: nothing for a commit to record.
    func isUnchanged(from other: Manifest) -> Bool { hasSameContent(as: other) && arrowSchema == other.arrowSchema }

    /// The same table version under another version number.
    func renumbered(_ version: Int) -> Manifest {
        Manifest(table: table, version: version, columns: columns, key: key, segments: segments, changes: changes).keepingArrowSchema(of: self)
    }

    /// The same version with the Arrow schema `other` has (what a row edit
    /// of `other` keeps).
    func keepingArrowSchema(of other: Manifest?) -> Manifest {
        var copy = self
        copy.arrowSchema = other?.arrowSchema
        return copy
    }

    /// The same content under another name (without a change record,
    /// which named the old table's version).
    func renamed(_ name: TableName, version: Int) -> Manifest {
        Manifest(table: name, version: version, columns: columns, key: key, segments: segments).keepingArrowSchema(of: self)
    }

    /// The names of the columns a segment's file holds.
    func columnNames(of segment: SegmentRef) -> [String] { segment.columns ?? columns.map(\.name) }

    /// A segment read as its own file: every row, deleted ones too, and
    /// the columns the file holds named (to read it under another schema).
    func wholeFile(_ segment: SegmentRef) -> SegmentRef {
        var copy = segment
        copy.deletions = nil
        copy.columns = columnNames(of: segment)
        return copy
    }
}

/// The rows a write changed in a keyed table, recorded when it was
/// written, so that a diff between the version before and this one
/// follows the rows changed, not the segments they touched ("what
/// changed last night" reads a few rows instead of every segment the
/// night's scattered updates rewrote).
///
/// - A row edit (or the edits of one transaction) records the old image
///   of each updated or deleted row and the new image of each updated or
///   inserted one.
/// - A whole-table write that kept the segments in place records the rows
///   that changed in those segments, and names the segments it did not
///   keep (`oldSegments`, of the version before) and those it added
///   (`newSegments`, such as appended rows): they are read whole, beside
///   the record's rows, rather than copied into it.
///
/// Either way the diff compares, by key, the record's old images and the
/// live rows of `oldSegments` with its new images and the live rows of
/// `newSegments`: every other row is the same in both versions. Only small
/// changes are recorded (see ``maximumRows(tableRows:)``).
public struct ChangeRecord: Hashable, Sendable, Codable {
    /// A Parquet object: the changed rows in the version's columns (in
    /// their storage types), and `__udr_new`, false for an old image and
    /// true for a new one.
    public let object: ObjectID
    /// The manifest (its object id) of the version the changes start from.
    public let base: ObjectID
    public let rows: RowCounts
    /// The ``Manifest/changeDigest`` of the version it was written for.
    public let digest: ObjectID
    /// Segments (ids) of the version before, and of this one, whose rows
    /// are read whole; nil for a row edit's record.
    public var oldSegments: [ObjectID]? = nil
    public var newSegments: [ObjectID]? = nil

    enum CodingKeys: String, CodingKey {
        case object, base, rows, digest, oldSegments = "old_segments", newSegments = "new_segments"
    }

    /// The most row images an edit of a table of `tableRows` rows records:
    /// a hundredth of the table, at least 10,000. A larger edit is diffed
    /// from its segments (it rewrote most of them anyway).
    static func maximumRows(tableRows: Int64) -> Int64 { max(10_000, tableRows / 100) }
}

/// How a segment's Parquet file is put back together: the concatenation of
/// its parts' bytes, in order.
public struct SegmentRecipe: Hashable, Sendable, Codable {
    public struct Part: Hashable, Sendable, Codable {
        public let blob: ObjectID
        public let bytes: Int64
        /// For a column chunk, the position of its top-level column among
        /// the file's columns (a nested column has one chunk per leaf); nil
        /// for the magic, the footer, and recipes written before this was
        /// recorded. Two segments whose chunks of a column are the same
        /// blobs hold the same values in it, row by row.
        public let column: Int?

        public init(blob: ObjectID, bytes: Int64, column: Int? = nil) {
            self.blob = blob
            self.bytes = bytes
            self.column = column
        }
    }

    public let segment: ObjectID
    public let bytes: Int64
    public let parts: [Part]

    /// The blobs of each top-level column (by position in the file), when
    /// the recipe records them.
    public var columnBlobs: [Int: [ObjectID]]? {
        var out: [Int: [ObjectID]] = [:]
        for part in parts { if let column = part.column { out[column, default: []].append(part.blob) } }
        return out.isEmpty ? nil : out
    }
}

/// A commit: the state of every table after one transaction, and what it
/// changed. Stored as an object; its id is the commit id.
public struct Commit: Hashable, Sendable, Codable {
    public static let currentFormat = 1

    public struct Change: Hashable, Sendable, Codable {
        public let table: TableName
        /// nil when the table was created by this commit.
        public let oldVersion: Int?
        /// nil when the table was dropped by this commit.
        public let newVersion: Int?
        /// How the table was changed; nil (older commits) reads as `.replace`.
        public let kind: ChangeKind?
        /// Rows inserted, deleted and updated, when the write knew them.
        public let rows: RowCounts?
        /// The table's name before this commit renamed it (`oldVersion` is
        /// that table's); nil for no rename.
        public let renamedFrom: TableName?

        public init(table: TableName, oldVersion: Int?, newVersion: Int?, kind: ChangeKind, rows: RowCounts?, renamedFrom: TableName? = nil) {
            self.table = table
            self.oldVersion = oldVersion
            self.newVersion = newVersion
            self.kind = kind
            self.rows = rows
            self.renamedFrom = renamedFrom
        }
    }

    /// A table's version and manifest as of this commit.
    public struct TableEntry: Hashable, Sendable, Codable {
        public let version: Int
        public let manifest: ObjectID
    }

    public let format: Int
    public let parents: [ObjectID]
    public let txID: Int64
    public let time: Date
    public let author: String
    public let message: String
    public let branch: String
    public let tables: [TableName: TableEntry]
    public let changes: [Change]

    public init(
        parents: [ObjectID], txID: Int64, time: Date, author: String, message: String, branch: String, tables: [TableName: TableEntry],
        changes: [Change]
    ) {
        self.format = Self.currentFormat
        self.parents = parents
        self.txID = txID
        self.time = time
        self.author = author
        self.message = message
        self.branch = branch
        self.tables = tables
        self.changes = changes
    }

    enum CodingKeys: String, CodingKey {
        case format, parents, txID = "tx_id", time, author, message, branch, tables, changes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(Int.self, forKey: .format)
        parents = try c.decode([ObjectID].self, forKey: .parents)
        txID = try c.decode(Int64.self, forKey: .txID)
        time = try c.decode(Date.self, forKey: .time)
        author = try c.decode(String.self, forKey: .author)
        message = try c.decode(String.self, forKey: .message)
        branch = try c.decode(String.self, forKey: .branch)
        let raw = try c.decode([String: TableEntry].self, forKey: .tables)
        var tables: [TableName: TableEntry] = [:]
        for (name, entry) in raw { tables[try TableName(name)] = entry }
        self.tables = tables
        changes = try c.decode([Change].self, forKey: .changes)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .format)
        try c.encode(parents, forKey: .parents)
        try c.encode(txID, forKey: .txID)
        try c.encode(time, forKey: .time)
        try c.encode(author, forKey: .author)
        try c.encode(message, forKey: .message)
        try c.encode(branch, forKey: .branch)
        try c.encode(Dictionary(uniqueKeysWithValues: tables.map { ($0.key.rawValue, $0.value) }), forKey: .tables)
        try c.encode(changes, forKey: .changes)
    }
}

/// How a commit changed a table.
public enum ChangeKind: String, Hashable, Sendable, Codable {
    /// The content was replaced (`write`): any row may have changed.
    case replace
    /// Only keyed rows were inserted, updated or deleted (append, upsert,
    /// update, delete); concurrent row-level writes on other keys rebase.
    case rows
    /// The table was dropped (a change without a new version).
    case drop
    /// The table was renamed (``Commit/Change/renamedFrom``), its content
    /// perhaps changed too.
    case rename
}

/// How many rows a change inserted, deleted and updated.
public struct RowCounts: Hashable, Sendable, Codable {
    public var inserted: Int64
    public var deleted: Int64
    public var updated: Int64

    public init(inserted: Int64 = 0, deleted: Int64 = 0, updated: Int64 = 0) {
        self.inserted = inserted
        self.deleted = deleted
        self.updated = updated
    }
}

/// Canonical JSON for objects: sorted keys, so equal values give equal ids.
enum ObjectCoding {
    static func encode<T: Encodable>(_ value: T) throws(UDRError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(Timestamp.format(date))
        }
        do { return try encoder.encode(value) } catch {
            throw UDRError(.io, "cannot encode \(T.self): \(error)")
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data, id: ObjectID) throws(UDRError) -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let text = try c.decode(String.self)
            guard let date = Timestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "bad time \(text)")
            }
            return date
        }
        do { return try decoder.decode(T.self, from: data) } catch {
            throw UDRError(.corruptObject, "object \(id) is not a valid \(T.self): \(error)")
        }
    }
}
