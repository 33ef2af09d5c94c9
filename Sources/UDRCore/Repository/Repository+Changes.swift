import Foundation

/// One commit in the change log: what it changed, table by table.
public struct ChangeEntry: Sendable, Codable, Hashable {
    public struct TableChange: Sendable, Codable, Hashable {
        public let table: TableName
        public let oldVersion: Int?
        public let newVersion: Int?
        public let kind: ChangeKind
        public let inserted: Int64
        public let deleted: Int64
        public let updated: Int64
        /// The table's name before this commit renamed it.
        public var renamedFrom: TableName? = nil
    }

    public let txID: Int64
    public let commit: ObjectID
    public let time: Date
    public let branch: String
    public let author: String
    public let message: String
    public let tables: [TableChange]

    enum CodingKeys: String, CodingKey { case txID = "tx_id", commit, time, branch, author, message, tables }
}

extension Repository {
    /// The tx id of the latest commit on `branch` (nil before the first).
    public func latestTxID(branch: String? = nil) async throws(UDRError) -> Int64? {
        try await blocking { () throws(UDRError) -> Int64? in
            try self.branchHead(branch).head.map { (id) throws(UDRError) in try self.txID(of: id) }
        }
    }

    /// The commits of `branch` after transaction `since` (all when nil),
    /// oldest first, each with its tables' old and new versions and the rows
    /// inserted, deleted and updated. With `table`, only commits that
    /// changed it (and only its entry). With `since`, `limit` keeps the
    /// first commits after it; without, the latest.
    public func changes(
        since: Int64? = nil, table: TableName? = nil, branch: String? = nil, limit: Int? = nil
    ) async throws(UDRError) -> [ChangeEntry] {
        try await blocking { () throws(UDRError) -> [ChangeEntry] in
            // With a table: its entry in each commit, under the name it had
            // then (a rename, read going back, gives older commits the old name).
            var picked: [(ObjectID, Commit, TableName?)] = []
            var current = try self.branchHead(branch).head
            var name = table
            while let id = current {
                let commit = try self.commit(id)
                if let since, try self.txID(of: id) <= since { break }
                if let change = commit.changes.first(where: { $0.table == name }) {
                    picked.append((id, commit, name))
                    if let from = change.renamedFrom { name = from }
                } else if name == nil {
                    picked.append((id, commit, nil))
                }
                if since == nil, let limit, picked.count >= limit { break }
                current = try self.firstParent(commit)
            }
            picked.reverse()
            if since != nil, let limit { picked = Array(picked.prefix(limit)) }
            return try picked.map { (id, commit, name) throws(UDRError) -> ChangeEntry in
                let changes = commit.changes.filter { name == nil || $0.table == name }
                return ChangeEntry(
                    txID: try self.txID(of: id), commit: id, time: commit.time, branch: commit.branch, author: commit.author, message: commit.message,
                    tables: try changes.map { (change) throws(UDRError) in try self.describe(change, in: commit) })
            }
        }
    }

    private func describe(_ change: Commit.Change, in commit: Commit) throws(UDRError) -> ChangeEntry.TableChange {
        let counts: RowCounts
        if let known = change.rows { counts = known } else { counts = try rowCounts(change, in: commit) }
        return ChangeEntry.TableChange(
            table: change.table, oldVersion: change.oldVersion, newVersion: change.newVersion, kind: change.kind ?? .replace,
            inserted: counts.inserted, deleted: counts.deleted, updated: counts.updated, renamedFrom: change.renamedFrom)
    }

    /// Counts a change did not record (a whole-table replace), from the
    /// two versions' differing segments; computed once, then kept in the
    /// catalog.
    private func rowCounts(_ change: Commit.Change, in commit: Commit) throws(UDRError) -> RowCounts {
        let versions = try catalog.tableVersions(change.table)
        // A renamed table's old version is the old name's.
        let oldVersions = try change.renamedFrom.map { (name) throws(UDRError) in try catalog.tableVersions(name) } ?? versions
        func manifestID(_ version: Int?, in versions: [TableVersionRecord]) throws(UDRError) -> ObjectID? {
            guard let version else { return nil }
            guard let record = versions.first(where: { $0.version == version }) else {
                throw UDRError(.notFound, "version \(version) of \(change.table) was expired; the rows this commit changed can no longer be counted")
            }
            return record.manifest
        }
        let oldID = try manifestID(change.oldVersion, in: oldVersions)
        let newID = try manifestID(change.newVersion, in: versions)
        if let known = try catalog.rowCounts(from: oldID, to: newID) { return known }
        let old = try oldID.map { (id) throws(UDRError) in try manifest(id) }
        let new = try newID.map { (id) throws(UDRError) in try manifest(id) }
        if let record = new?.changes(from: oldID) { return record.rows }
        let counts = try withDuckDB { (connection) throws(UDRError) -> RowCounts in
            let diff = tableDiff(connection)
            return try diff.counts(try diff.build(old: old, new: new, prefix: "__udr_change", complete: false, countsOnly: true))
        }
        try catalog.recordRowCounts(counts, from: oldID, to: newID)
        return counts
    }
}
