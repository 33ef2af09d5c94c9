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

/// A table and one of its version numbers.
public struct TableVersionKey: Hashable, Sendable {
    public let table: TableName
    public let version: Int

    public init(table: TableName, version: Int) {
        self.table = table
        self.version = version
    }
}

/// A transaction as the catalog keeps it while it is open: the snapshot it
/// reads and, in ``StagedTable`` rows, the table versions it will commit.
public struct TransactionRecord: Hashable, Sendable, Codable {
    public enum State: String, Hashable, Sendable, Codable {
        case open, committed, aborted
    }

    public let id: String
    public let branch: String
    /// The commit the transaction reads (the branch head when it began).
    public let base: ObjectID?
    public let began: Date
    /// When an open transaction without activity expires; each staged
    /// write moves it forward by the transaction's time-to-live.
    public var expires: Date
    public let timeToLive: TimeInterval
    public var state: State
    /// The commit it became, once committed (nil when it changed nothing).
    public var commit: ObjectID?

    public init(
        id: String, branch: String, base: ObjectID?, began: Date, timeToLive: TimeInterval, state: State = .open, commit: ObjectID? = nil,
        expires: Date? = nil
    ) {
        self.id = id
        self.branch = branch
        self.base = base
        self.began = began
        self.timeToLive = timeToLive
        self.expires = expires ?? began.addingTimeInterval(timeToLive)
        self.state = state
        self.commit = commit
    }

    /// Open and not expired at `now`.
    public func isLive(at now: Date = Date()) -> Bool { state == .open && expires > now }

    /// Why the transaction cannot take more work or commit, or nil when it can.
    public func closedReason(at now: Date = Date()) -> String? {
        switch state {
        case .committed: return "transaction \(id) is already committed"
        case .aborted: return "transaction \(id) was aborted; its writes were discarded"
        case .open:
            guard expires <= now else { return nil }
            return
                "transaction \(id) expired at \(Timestamp.format(expires)) after \(Int(timeToLive)) s without activity; its writes were discarded"
        }
    }
}

/// What a ref is.
public enum RefKind: String, Sendable, Codable, Hashable {
    case branch, tag
}

/// A single write in progress (one outside an explicit transaction): GC
/// spares what it writes and what its base commit reaches until it ends.
public struct WriteLease: Hashable, Sendable {
    /// `host:pid:nonce` of the writing process.
    public let id: String
    /// The branch head the write began from.
    public let base: ObjectID?
    public let began: Date
    public let expires: Date

    public init(id: String, base: ObjectID?, began: Date, expires: Date) {
        self.id = id
        self.base = base
        self.began = began
        self.expires = expires
    }
}

/// A table version a transaction has written but not yet committed.
public struct StagedTable: Hashable, Sendable, Codable {
    public let table: TableName
    /// The staged version's manifest.
    public let manifest: ObjectID
    /// The manifest the transaction's snapshot has for the table (nil:
    /// the table is new). Commit compares it with the branch head.
    public let base: ObjectID?
    public let kind: ChangeKind
    /// Rows inserted, deleted and updated relative to `base`, when known.
    public let counts: RowCounts?
    public let rows: Int64
    /// The table this one was renamed from in the transaction (its
    /// versions are this one's history); nil for no rename.
    public let renamedFrom: TableName?

    public init(
        table: TableName, manifest: ObjectID, base: ObjectID?, kind: ChangeKind, counts: RowCounts?, rows: Int64, renamedFrom: TableName? = nil
    ) {
        self.table = table
        self.manifest = manifest
        self.base = base
        self.kind = kind
        self.counts = counts
        self.rows = rows
        self.renamedFrom = renamedFrom
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
    /// the head is no longer `expectedHead`, or when a commit with a higher
    /// transaction id was recorded meanwhile (tx ids follow commit order,
    /// so "changes since N" never misses one). With `closing`, the
    /// transaction must still be live; it is marked committed in the same
    /// step (`.transaction` error otherwise).
    func recordCommit(
        _ commit: CommitRecord, tableVersions: [TableVersionRecord], branch: String, expectedHead: ObjectID?, closing transaction: String?
    ) throws(UDRError)

    /// Moves `branch` from `expectedHead` to an existing commit (a
    /// fast-forward merge). `.conflict` when the head is no longer
    /// `expectedHead`.
    func moveBranch(_ branch: String, from expectedHead: ObjectID?, to commit: ObjectID) throws(UDRError)

    // MARK: Transactions

    /// Records a new transaction; `.conflict` unless its base is still the
    /// head of its branch (checked in the same step).
    func beginTransaction(_ record: TransactionRecord) throws(UDRError)
    func transaction(_ id: String) throws(UDRError) -> TransactionRecord?
    /// Every transaction not committed or aborted (including expired ones).
    func openTransactions() throws(UDRError) -> [TransactionRecord]
    /// Stages a table version in a transaction that was live when the write
    /// began (`writeBegan`) and is still open, replacing the one staged for
    /// the table if it is still `replacing` (compare-and-swap: `.conflict`
    /// otherwise); moves the expiry to `now` plus the time to live.
    func stage(_ table: StagedTable, in transaction: String, replacing: ObjectID?, writeBegan: Date, now: Date) throws(UDRError)
    func stagedTables(in transaction: String) throws(UDRError) -> [StagedTable]
    /// Marks a transaction aborted and forgets what it staged. Committed
    /// transactions cannot be aborted.
    func abortTransaction(_ id: String) throws(UDRError)
    /// Marks a committed-nothing transaction committed (it staged no change).
    func closeEmptyTransaction(_ id: String, now: Date) throws(UDRError)
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
    /// Tag name → commit.
    func tags() throws(UDRError) -> [String: ObjectID]
    /// The commit a tag names; nil when there is no such tag.
    func tag(_ name: String) throws(UDRError) -> ObjectID?
    /// The highest tx id of a recorded commit (0 before the first).
    func latestTxID() throws(UDRError) -> Int64

    // MARK: Refs and settings

    /// Creates a branch or tag; `.conflict` if any ref has the name.
    func createRef(_ name: String, kind: RefKind, commit: ObjectID) throws(UDRError)
    /// Deletes a ref of that kind; returns the commit it pointed at (nil: none).
    func deleteRef(_ name: String, kind: RefKind) throws(UDRError) -> ObjectID?
    /// A repository setting (e.g. the current branch).
    func setting(_ key: String) throws(UDRError) -> String?
    func setSetting(_ key: String, to value: String) throws(UDRError)

    // MARK: Commit lock

    /// Takes the commit lock of `branch` for `holder` until `expires` when it
    /// is free, expired, or held by `stale`; otherwise returns the holder.
    /// The lock only keeps committers from starving each other (a commit
    /// that must rebase would otherwise lose every race); correctness rests
    /// on the compare-and-swap in ``recordCommit``.
    func lockBranch(_ branch: String, holder: String, expires: Date, replacingStale stale: String?) throws(UDRError) -> String?
    func unlockBranch(_ branch: String, holder: String) throws(UDRError)

    // MARK: Retention

    /// Forgets expired history: removes the commits' records and the named
    /// table versions, and remembers the commits as expired (so that a
    /// retained commit naming one as parent is not a broken repository).
    /// Fails with `.conflict`, changing nothing, if a branch or tag now
    /// points at one of them.
    func expire(commits: [ObjectID], tableVersions: [TableVersionKey], at time: Date) throws(UDRError)
    func isExpired(_ commit: ObjectID) throws(UDRError) -> Bool
    /// Commits expired at or after `time`.
    func expiredCommits(since time: Date) throws(UDRError) -> [ObjectID]

    // MARK: Write leases

    /// Records a single write beginning on `branch` and returns the branch
    /// head, read in the same step: the write's base.
    func beginLease(id: String, branch: String, began: Date, expires: Date) throws(UDRError) -> ObjectID?
    func endLease(_ id: String) throws(UDRError)
    /// Every lease not ended (including expired ones).
    func leases() throws(UDRError) -> [WriteLease]

    // MARK: Remotes

    /// Remote-tracking refs: `REMOTE/BRANCH` → the commit the remote's
    /// branch pointed at when last fetched or pushed.
    func remoteRefs() throws(UDRError) -> [String: ObjectID]
    /// Records commits fetched from a remote, parents first, and moves
    /// remote-tracking refs (nil removes one), all in one step. A commit
    /// already known is skipped; each new one gets the next local tx id
    /// (its own, when that is still above every recorded one, so a clone
    /// numbers commits as its origin does). A table version is indexed
    /// under its number when that number is free here; otherwise it stays
    /// reachable through its commit only.
    func importCommits(_ commits: [CommitRecord], tableVersions: [TableVersionRecord], remoteRefs: [String: ObjectID?]) throws(UDRError)

    // MARK: Derived data

    /// Rows inserted, deleted and updated from manifest `old` (nil: no
    /// table) to `new`, when computed before.
    func rowCounts(from old: ObjectID?, to new: ObjectID?) throws(UDRError) -> RowCounts?
    func recordRowCounts(_ counts: RowCounts, from old: ObjectID?, to new: ObjectID?) throws(UDRError)
}
