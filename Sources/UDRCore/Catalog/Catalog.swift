import Foundation

/// A commit as the catalog indexes it.
public struct CommitRecord: Hashable, Sendable, Codable {
    public let id: ObjectID
    public let txID: Int64
    public let time: Date
    public let author: String
    public let message: String
    public let branch: String
    public let parents: [ObjectID]

    public init(id: ObjectID, commit: Commit) {
        self.id = id
        self.txID = commit.txID
        self.time = commit.time
        self.author = commit.author
        self.message = commit.message
        self.branch = commit.branch
        self.parents = commit.parents
    }

    public init(id: ObjectID, txID: Int64, time: Date, author: String, message: String, branch: String, parents: [ObjectID]) {
        self.id = id
        self.txID = txID
        self.time = time
        self.author = author
        self.message = message
        self.branch = branch
        self.parents = parents
    }
}

/// A table version as the catalog indexes it.
public struct TableVersionRecord: Hashable, Sendable, Codable {
    public let table: TableName
    public let version: Int
    public let manifest: ObjectID
    public let commit: ObjectID
    public let txID: Int64
    public let time: Date
    public let rows: Int64

    public init(table: TableName, version: Int, manifest: ObjectID, commit: ObjectID, txID: Int64, time: Date, rows: Int64) {
        self.table = table
        self.version = version
        self.manifest = manifest
        self.commit = commit
        self.txID = txID
        self.time = time
        self.rows = rows
    }
}

/// The only mutable state of a repository: refs, the transaction sequence,
/// and indexes over commits and table versions (rebuildable from objects).
///
/// Implementations must make ``recordCommit(_:tableVersions:branch:expectedHead:)``
/// one atomic step that moves the branch head by compare-and-swap.
public protocol Catalog: Sendable {
    /// The repository format version recorded at creation.
    func formatVersion() throws(UDRError) -> Int
    /// A new, never reused transaction id.
    func allocateTxID() throws(UDRError) -> Int64
    /// The commit a branch points at; nil for a branch without commits.
    func head(of branch: String) throws(UDRError) -> ObjectID?
    /// Records a commit and its table versions and moves `branch` from
    /// `expectedHead` to the commit, all or nothing. Throws `.conflict` when
    /// the head is no longer `expectedHead`.
    func recordCommit(_ commit: CommitRecord, tableVersions: [TableVersionRecord], branch: String, expectedHead: ObjectID?) throws(UDRError)
    func commitRecord(_ id: ObjectID) throws(UDRError) -> CommitRecord?
    /// Commits whose id starts with `prefix` (for short ids).
    func commitRecords(idPrefix: String) throws(UDRError) -> [CommitRecord]
    func commitRecord(txID: Int64) throws(UDRError) -> CommitRecord?
    func allCommitRecords() throws(UDRError) -> [CommitRecord]
    /// Every version of a table, oldest first.
    func tableVersions(_ table: TableName) throws(UDRError) -> [TableVersionRecord]
    /// The highest version number the table ever had (0 when none).
    func latestVersionNumber(_ table: TableName) throws(UDRError) -> Int
    /// Branch name → head commit.
    func branches() throws(UDRError) -> [String: ObjectID]
}
