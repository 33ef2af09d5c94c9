import Foundation

/// A commit and its id, as `log` and `show` print it. Encodes as the
/// commit's own fields plus `id`.
public struct CommitInfo: Sendable, Encodable {
    public let id: ObjectID
    public let commit: Commit

    enum CodingKeys: String, CodingKey { case id }

    public func encode(to encoder: any Encoder) throws {
        try commit.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
    }
}

/// A table as `tables` lists it.
public struct TableSummary: Sendable, Codable {
    public let name: TableName
    public let version: Int
    public let rows: Int64
}

/// What `info` reports about a table version.
public struct TableInfo: Sendable, Codable {
    public let table: TableName
    public let version: Int
    public let rows: Int64
    public let segments: Int
    public let columns: [Column]
    public let key: [String]
    /// Bytes of the version's Parquet segments.
    public let logicalBytes: Int64
    /// Bytes of the distinct objects (blobs, recipes) the version references.
    public let storedBytes: Int64
    /// Of those, bytes also referenced by another version of the table.
    public let sharedBytes: Int64
}

extension Repository {
    /// Commits of a branch, newest first, following first parents (with
    /// `allParents`, every ancestor, merged branches' commits included,
    /// newest first); with a table, only those that changed it.
    public func log(table: TableName? = nil, branch: String? = nil, limit: Int? = nil, allParents: Bool = false) async throws(UDRError)
        -> [CommitInfo]
    {
        try await blocking { () throws(UDRError) -> [CommitInfo] in
            var out: [CommitInfo] = []
            // Newest first by transaction id; a commit's parents are older.
            var frontier: [(Int64, ObjectID)] = []
            var seen = Set<ObjectID>()
            // The table's name as of the commits being read: a rename, read
            // going back, gives the older commits the old name.
            var name = table
            if let head = try self.branchHead(branch).head { frontier.append((try self.txID(of: head), head)) }
            while !frontier.isEmpty {
                frontier.sort { $0.0 < $1.0 }
                let (_, id) = frontier.removeLast()
                let commit = try self.commit(id)
                if let change = commit.changes.first(where: { $0.table == name }) ?? (name == nil ? commit.changes.first : nil) {
                    out.append(CommitInfo(id: id, commit: commit))
                    if let from = change.renamedFrom, name != nil { name = from }
                    if let limit, out.count >= limit { break }
                } else if name == nil {
                    out.append(CommitInfo(id: id, commit: commit))
                    if let limit, out.count >= limit { break }
                }
                let next = allParents ? commit.parents : (try self.firstParent(commit)).map { [$0] } ?? []
                for parent in next where seen.insert(parent).inserted {
                    // An expired parent ends its line.
                    guard let record = try self.catalog.commitRecord(parent) else { continue }
                    frontier.append((record.txID, parent))
                }
            }
            return out
        }
    }

    /// One commit, by id, unique prefix or `tx:N`.
    public func show(_ reference: String) async throws(UDRError) -> CommitInfo {
        try await blocking { () throws(UDRError) -> CommitInfo in
            let id = try self.resolveRef(reference)
            return CommitInfo(id: id, commit: try self.commit(id))
        }
    }

    /// The tables of a snapshot.
    public func tables(options: ReadOptions = .init()) async throws(UDRError) -> [TableSummary] {
        try await blocking { () throws(UDRError) -> [TableSummary] in
            guard let id = try self.resolveCommit(options) else { return [] }
            var out: [TableSummary] = []
            for (name, entry) in try self.commit(id).tables.sorted(by: { $0.key < $1.key }) {
                let record = try self.catalog.tableVersions(name).first { $0.version == entry.version }
                out.append(TableSummary(name: name, version: entry.version, rows: record?.rows ?? 0))
            }
            return out
        }
    }

    /// Every version of a table, oldest first.
    public func versions(_ table: TableName) async throws(UDRError) -> [TableVersionRecord] {
        try await blocking { () throws(UDRError) -> [TableVersionRecord] in
            let versions = try self.catalog.tableVersions(table)
            if versions.isEmpty { throw UDRError(.notFound, "there is no table '\(table)'") }
            return versions
        }
    }

    /// Size and shape of a table version (the head's, or a pinned one).
    public func info(_ table: TableName, options: ReadOptions = .init()) async throws(UDRError) -> TableInfo {
        try await blocking { () throws(UDRError) -> TableInfo in
            let manifest = try self.manifestNow(of: table, options: options)
            // Each distinct recipe is read once, however many versions share it.
            var recipes: [ObjectID: [ObjectID: Int64]] = [:]
            func objectSizes(_ manifest: Manifest) throws(UDRError) -> [ObjectID: Int64] {
                var sizes: [ObjectID: Int64] = [:]
                if let record = manifest.changes?.object { sizes[record] = try self.store.size(record) ?? 0 }
                for segment in manifest.segments {
                    if recipes[segment.recipe] == nil {
                        var objects = [segment.recipe: try self.store.size(segment.recipe) ?? 0]
                        for part in try self.store.getJSON(SegmentRecipe.self, segment.recipe).parts { objects[part.blob] = part.bytes }
                        recipes[segment.recipe] = objects
                    }
                    sizes.merge(recipes[segment.recipe]!) { a, _ in a }
                    if let deletions = segment.deletions?.object { sizes[deletions] = try self.store.size(deletions) ?? 0 }
                }
                return sizes
            }
            let mine = try objectSizes(manifest)
            var others: Set<ObjectID> = []
            for record in try self.catalog.tableVersions(manifest.table) where record.version != manifest.version {
                others.formUnion(try objectSizes(try self.manifest(record.manifest)).keys)
            }
            let stored = mine.values.reduce(0, +)
            let shared = mine.filter { others.contains($0.key) }.values.reduce(0, +)
            return TableInfo(
                table: table, version: manifest.version, rows: manifest.rows, segments: manifest.segments.count, columns: manifest.columns,
                key: manifest.key, logicalBytes: manifest.logicalBytes, storedBytes: stored, sharedBytes: shared)
        }
    }

    /// Total bytes of all objects in the store.
    public func storedBytes() async throws(UDRError) -> Int64 {
        try await blocking { () throws(UDRError) -> Int64 in
            var total: Int64 = 0
            for id in try self.store.list() { total += try self.store.size(id) ?? 0 }
            return total
        }
    }
}
