import DuckDB
import Foundation

/// A unit of work on one branch: it reads the snapshot the branch head was
/// when it began plus its own writes, stages table versions, and commits
/// them as one commit (or nothing).
///
/// Explicit transactions (``Repository/beginTransaction(on:timeToLive:)``,
/// ``Repository/transaction(on:message:author:timeToLive:_:)``) keep their
/// staged state in the catalog, so separate processes can add to one
/// transaction by id, and GC keeps what they staged. A single write outside
/// a transaction runs in a private one that commits at once.
public final class Transaction: Sendable {
    public let id: String
    public let branch: String
    /// The commit the transaction reads (nil on a branch without commits).
    public let base: ObjectID?
    let repository: Repository
    /// Staged state in memory, for a single write's private transaction;
    /// nil when the catalog holds it.
    private let memory: StagedMemory?
    /// Further parents of the commit (a merge's source); it commits even
    /// when no table changed, so that the merge is recorded.
    let mergeParents: [ObjectID]
    /// When the write this handle stages began: a write that began while
    /// the transaction was live stages even when it outlasts the time to
    /// live (it is activity, not abandonment). Nil outside a write.
    private let writeBegan: Date?

    /// The transaction an enclosing `Repository.transaction { }` runs.
    @TaskLocal static var enclosing: String?

    convenience init(repository: Repository, id: String, branch: String, base: ObjectID?, inMemory: Bool, mergeParents: [ObjectID] = []) {
        self.init(
            repository: repository, id: id, branch: branch, base: base, memory: inMemory ? StagedMemory() : nil, mergeParents: mergeParents,
            writeBegan: nil)
    }

    private init(
        repository: Repository, id: String, branch: String, base: ObjectID?, memory: StagedMemory?, mergeParents: [ObjectID], writeBegan: Date?
    ) {
        self.repository = repository
        self.mergeParents = mergeParents
        self.id = id
        self.branch = branch
        self.base = base
        self.memory = memory
        self.writeBegan = writeBegan
    }

    /// This transaction for one write asked for at `asked`: checked live
    /// then, and judged live at that moment again when the write stages,
    /// however long it waits for a thread or runs.
    private func beginWrite(asked now: Date) throws(UDRError) -> Transaction {
        try checkLive(at: now)
        return Transaction(
            repository: repository, id: id, branch: branch, base: base, memory: memory, mergeParents: mergeParents, writeBegan: now)
    }

    var isPersistent: Bool { memory == nil }

    /// What the transaction has staged, by table.
    func staged() throws(UDRError) -> [TableName: StagedTable] {
        if let memory { return memory.tables }
        let rows = try repository.catalog.stagedTables(in: id)
        return Dictionary(uniqueKeysWithValues: rows.map { ($0.table, $0) })
    }

    /// Stages a table version; `replacing` is the manifest staged before
    /// (compare-and-swap against another process staging the same table).
    func stage(_ table: StagedTable, replacing: ObjectID?) throws(UDRError) {
        if let memory {
            memory.set(table)
        } else {
            try repository.catalog.stage(table, in: id, replacing: replacing, writeBegan: writeBegan ?? Date(), now: Date())
        }
    }

    /// Fails unless the transaction can still take work.
    func checkLive(at now: Date = Date()) throws(UDRError) {
        guard isPersistent else { return }
        guard let record = try repository.catalog.transaction(id) else {
            throw UDRError(.transaction, "there is no transaction \(id); `udr tx list` shows the open ones")
        }
        if let reason = record.closedReason(at: now) { throw UDRError(.transaction, reason) }
    }

    /// The tables the transaction reads: its snapshot with its own writes
    /// over it. With `sql`, only the tables it may mention.
    func snapshot(pins: [TablePin] = [], for sql: String?) throws(UDRError) -> ResolvedSnapshot {
        let snapshot = try repository.snapshot(at: base, pins: pins, for: sql)
        var tables = snapshot.tables
        let pinned = Set(pins.map(\.alias))
        let mentioned = Repository.Mentions(sql)
        for (name, staged) in try staged() where !pinned.contains(name) && mentioned(name) {
            tables[name] = staged.kind == .drop ? nil : try repository.manifest(staged.manifest)
        }
        return ResolvedSnapshot(commit: base, tables: tables)
    }

    /// A table as the transaction sees it.
    struct TableState {
        /// The current version: staged, else the snapshot's; nil for a new table.
        let manifest: Manifest?
        /// What the transaction staged for the table, if anything.
        let staged: StagedTable?
        /// The snapshot's manifest id for the table (what commit compares with the head).
        let base: ObjectID?
    }

    func current(_ table: TableName) throws(UDRError) -> TableState {
        let baseID = try base.flatMap { (id) throws(UDRError) in try repository.commit(id).tables[table]?.manifest }
        if let staged = try staged()[table] {
            let manifest = staged.kind == .drop ? nil : try repository.manifest(staged.manifest)
            return TableState(manifest: manifest, staged: staged, base: baseID)
        }
        return TableState(manifest: try baseID.map { (id) throws(UDRError) in try repository.manifest(id) }, staged: nil, base: baseID)
    }

    // MARK: Public API

    /// Replaces a table's content (see ``Repository/write(_:from:key:message:author:branch:)``), staged.
    @discardableResult
    public func write(_ table: TableName, from source: WriteSource, key: [String]? = nil) async throws(UDRError) -> StagedWrite {
        let asked = Date()
        return try await repository.blocking { () throws(UDRError) -> StagedWrite in
            try self.repository.stageWrite(table, from: source, key: key, in: try self.beginWrite(asked: asked))
        }
    }

    /// Replaces the content of several tables, staged: each as ``write(_:from:key:)``,
    /// two at a time. A refresh's tables are mostly small and read from
    /// one Parquet row group each, which DuckDB reads on one thread; two
    /// writes at once keep both cores of a small machine busy (a nightly
    /// refresh of the parcel pipeline's 23 tables: 2.1-2.2 s one by one,
    /// 1.5-1.8 s two at a time). After a write fails no other starts; the
    /// error of the first failed table in `tables` is thrown once the
    /// writes under way end. What the others staged stays staged, as after
    /// separate writes, and a failed write stages nothing.
    public func write(_ tables: [TableWrite]) async throws(UDRError) -> [StagedWrite] {
        var seen: Set<TableName> = []
        for table in tables where !seen.insert(table.table).inserted {
            throw UDRError(.invalidArgument, "the table '\(table.table)' is written twice in one multi-table write; write it once")
        }
        let results = SlotBox<Result<StagedWrite, UDRError>>(count: tables.count)
        await withTaskGroup(of: Bool.self) { group in
            var next = 0
            func start() {
                guard next < tables.count else { return }
                let index = next
                next += 1
                group.addTask {
                    let table = tables[index]
                    do throws(UDRError) {
                        results.set(index, .success(try await self.write(table.table, from: table.source, key: table.key)))
                        return true
                    } catch {
                        results.set(index, .failure(error))
                        return false
                    }
                }
            }
            for _ in 0..<Self.writesAtOnce { start() }
            var failed = false
            while let succeeded = await group.next() {
                failed = failed || !succeeded
                if !failed { start() }
            }
        }
        var staged: [StagedWrite] = []
        for result in results.values {
            guard let result else { continue }
            staged.append(try result.get())
        }
        return staged
    }

    /// How many of ``write(_:)``'s tables are written at once.
    static let writesAtOnce = 2

    /// Drops a table, staged: the commit leaves it out; its versions stay
    /// readable (`--at`, history) as long as commits that hold them are
    /// retained. nil when `ifExists` and there is no such table.
    @discardableResult
    public func drop(_ table: TableName, ifExists: Bool = false) async throws(UDRError) -> StagedWrite? {
        let asked = Date()
        return try await repository.blocking { () throws(UDRError) -> StagedWrite? in
            try self.repository.stageDrop(table, ifExists: ifExists, in: try self.beginWrite(asked: asked))
        }
    }

    /// Applies a row-level edit (append, upsert, delete, update), staged.
    @discardableResult
    public func apply(_ edit: RowEdit, to table: TableName) async throws(UDRError) -> StagedWrite {
        let asked = Date()
        return try await repository.blocking { () throws(UDRError) -> StagedWrite in
            try self.repository.stageRows(edit, to: table, in: try self.beginWrite(asked: asked))
        }
    }

    /// Runs SQL over the transaction's snapshot and its own writes.
    public func query(_ sql: String, pins: [TablePin] = []) async throws(UDRError) -> ResultSet {
        try SQLScript.requireReads(sql)
        return try await repository.blocking { () throws(UDRError) -> ResultSet in
            try self.checkLive()
            let snapshot = try self.snapshot(pins: pins, for: sql)
            return try self.repository.withSession(snapshot, sql: sql) { (connection) throws(UDRError) -> ResultSet in
                do throws(DuckDBError) { return try connection.query(sql) } catch { throw self.repository.queryError(error) }
            }
        }
    }

    /// Commits everything staged as one commit; nil when nothing changed.
    @discardableResult
    public func commit(message: String? = nil, author: String? = nil) async throws(UDRError) -> CommitRecord? {
        try await repository.blocking { () throws(UDRError) -> CommitRecord? in
            try self.repository.commit(self, message: message, author: author)
        }
    }

    /// Discards everything staged.
    public func abort() async throws(UDRError) {
        guard isPersistent else { return }
        try await repository.blocking { () throws(UDRError) in try self.repository.catalog.abortTransaction(self.id) }
    }
}

/// One table of a multi-table write (``Transaction/write(_:)``).
public struct TableWrite: Sendable {
    public var table: TableName
    public var source: WriteSource
    /// As ``Transaction/write(_:from:key:)``'s `key`.
    public var key: [String]?

    public init(_ table: TableName, from source: WriteSource, key: [String]? = nil) {
        self.table = table
        self.source = source
        self.key = key
    }
}

/// What a staged write did to its table.
public struct StagedWrite: Sendable, Codable {
    public let table: TableName
    /// False when the table's content stayed the same (nothing was staged).
    public let changed: Bool
    /// Rows of the table after the write.
    public let rows: Int64
    public let segments: Int
    /// Bytes of the Parquet segment files the write produced: a segment
    /// the write kept with its file (its rows kept their values) is not
    /// counted, so this is what the write cost, not the version's size.
    public let logicalBytes: Int64
    /// Bytes newly stored: new blobs, recipes and the manifest.
    public let bytesAdded: Int64
    /// Rows inserted, deleted and updated, when the write knows them.
    public let counts: RowCounts?
}

/// A single write's staged tables.
private final class StagedMemory: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var entries: [TableName: StagedTable] = [:]

    var tables: [TableName: StagedTable] { lock.withLock { entries } }
    func set(_ table: StagedTable) { lock.withLock { entries[table.table] = table } }
}

extension Repository {
    /// How long an explicit transaction lives without activity.
    public static let defaultTransactionTimeToLive: TimeInterval = 24 * 3600

    /// Begins a transaction on `branch` whose staged state lives in the
    /// catalog; any process may continue it by id (``openTransaction(_:)``).
    public func beginTransaction(on branch: String? = nil, timeToLive: TimeInterval? = nil) async throws(UDRError)
        -> Transaction
    {
        try await blocking { () throws(UDRError) -> Transaction in
            try self.beginTransactionNow(on: branch, timeToLive: timeToLive ?? Self.defaultTransactionTimeToLive)
        }
    }

    func beginTransactionNow(on requested: String?, timeToLive: TimeInterval) throws(UDRError) -> Transaction {
        guard timeToLive > 0 else { throw UDRError(.invalidArgument, "a transaction's time to live must be positive") }
        var random = SystemRandomNumberGenerator()
        let id = "tx-" + String(format: "%012llx", random.next() & 0xffff_ffff_ffff)
        // The base is the head when the record lands (expire and GC rely on
        // it); a commit landing in between makes the catalog refuse, and
        // the head is read again.
        var attempts = 0
        while true {
            let (branch, head) = try branchHead(requested)
            do throws(UDRError) {
                try catalog.beginTransaction(TransactionRecord(id: id, branch: branch, base: head, began: Date(), timeToLive: timeToLive))
                return Transaction(repository: self, id: id, branch: branch, base: head, inMemory: false)
            } catch where error.code == .conflict && attempts < 100 {
                attempts += 1
            }
        }
    }

    /// A transaction begun earlier, possibly by another process.
    public func openTransaction(_ id: String) async throws(UDRError) -> Transaction {
        try await blocking { () throws(UDRError) -> Transaction in try self.openTransactionNow(id) }
    }

    func openTransactionNow(_ id: String) throws(UDRError) -> Transaction {
        guard let record = try catalog.transaction(id) else {
            throw UDRError(.transaction, "there is no transaction \(id); `udr tx list` shows the open ones")
        }
        if let reason = record.closedReason() { throw UDRError(.transaction, reason) }
        return Transaction(repository: self, id: id, branch: record.branch, base: record.base, inMemory: false)
    }

    /// Transactions not yet committed or aborted, with what each staged.
    public func openTransactions() async throws(UDRError) -> [(TransactionRecord, [StagedTable])] {
        try await blocking { () throws(UDRError) -> [(TransactionRecord, [StagedTable])] in
            try self.catalog.openTransactions().map { (record) throws(UDRError) in (record, try self.catalog.stagedTables(in: record.id)) }
        }
    }

    /// Runs `body` in a transaction on `branch` and commits what it staged
    /// as one commit when it returns; when it throws, everything it staged
    /// is discarded and the error is rethrown. Transactions do not nest.
    public func transaction<T: Sendable>(
        on branch: String? = nil, message: String? = nil, author: String? = nil, timeToLive: TimeInterval? = nil,
        _ body: (Transaction) async throws -> T
    ) async throws -> T {
        if let outer = Transaction.enclosing {
            throw UDRError(
                .transaction,
                "transactions cannot be nested: this one began inside transaction \(outer). Stage the writes in the outer transaction instead."
            )
        }
        let tx = try await beginTransaction(on: branch, timeToLive: timeToLive)
        let value: T
        do {
            value = try await Transaction.$enclosing.withValue(tx.id) { try await body(tx) }
        } catch {
            try? await tx.abort()
            throw error
        }
        try await tx.commit(message: message, author: author)
        return value
    }

    /// How long a single write's lease protects it from GC when its
    /// process cannot be checked (GC drops leases of processes of its own
    /// machine that are gone at once).
    static let writeLeaseTimeToLive: TimeInterval = 6 * 3600

    /// A single write's private transaction on the head of `branch`, with
    /// the lease that keeps GC from collecting what it writes before it
    /// commits. End the lease with ``Catalog/endLease(_:)`` when done.
    func autocommitTransaction(on requested: String?, mergeParents: [ObjectID] = []) throws(UDRError) -> (Transaction, lease: String) {
        let branch = try branchName(requested)
        let lease = Self.holderToken()
        let now = Date()
        let head = try catalog.beginLease(id: lease, branch: branch, began: now, expires: now.addingTimeInterval(Self.writeLeaseTimeToLive))
        if head == nil, branch != Self.defaultBranch {
            try? catalog.endLease(lease)
            throw Self.noBranch(branch)
        }
        return (Transaction(repository: self, id: "write", branch: branch, base: head, inMemory: true, mergeParents: mergeParents), lease)
    }

    /// Commits what `tx` staged as one commit on its branch, moving the
    /// head by compare-and-swap. When other commits landed since the
    /// transaction began and touched none of its tables, the commit is
    /// rebased onto them; otherwise it fails with a conflict naming the
    /// tables. Retries with backoff while the head keeps moving.
    func commit(_ tx: Transaction, message: String?, author: String?) throws(UDRError) -> CommitRecord? {
        let staged = try tx.staged()
        if !staged.isEmpty {
            let holder = try lockBranch(tx.branch)
            defer { try? catalog.unlockBranch(tx.branch, holder: holder) }
            return try commitLocked(tx, staged: staged, message: message, author: author)
        }
        return try commitLocked(tx, staged: staged, message: message, author: author)
    }

    /// Waits for the branch's commit lock (see ``Catalog/lockBranch``); a
    /// lock whose holder process on this machine is gone is taken over.
    private func lockBranch(_ branch: String) throws(UDRError) -> String {
        let holder = Self.holderToken()
        var delay: UInt32 = 500
        let deadline = Date().addingTimeInterval(300)
        var stale: String?
        while true {
            guard
                let current = try catalog.lockBranch(branch, holder: holder, expires: Date().addingTimeInterval(30), replacingStale: stale)
            else { return holder }
            stale = Self.holderIsGone(current) ? current : nil
            if stale != nil { continue }
            commitStatistics.waited()
            guard Date() < deadline else {
                throw UDRError(
                    .conflict, "could not commit to \(branch): another commit held it for 5 minutes (\(current)); nothing was committed")
            }
            usleep(delay + UInt32.random(in: 0...delay))
            delay = min(delay * 2, 20_000)
        }
    }

    static let machineName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        let name = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: name, as: UTF8.self).replacingOccurrences(of: ":", with: "_")
    }()

    /// A new `host:pid:nonce` naming this process as the holder of a lock or lease.
    static func holderToken() -> String { "\(machineName):\(getpid()):\(UUID().uuidString)" }

    /// Whether a lock holder (`host:pid:nonce`) is a process of this machine that no longer runs.
    static func holderIsGone(_ holder: String) -> Bool {
        let parts = holder.split(separator: ":")
        guard parts.count >= 3, String(parts[0]) == machineName, let pid = Int32(parts[1]) else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    private func commitLocked(_ tx: Transaction, staged: [TableName: StagedTable], message: String?, author: String?) throws(UDRError)
        -> CommitRecord?
    {
        var delay: UInt32 = 1_000
        for attempt in 0..<60 {
            let head = try catalog.head(of: tx.branch)
            let headCommit: Commit? = try head.map { (id) throws(UDRError) in try self.commit(id) }
            var entries: [TableName: Commit.TableEntry] = [:]
            var changes: [Commit.Change] = []
            var versions: [(TableName, Int, ObjectID, Int64)] = []
            var conflicts: [String] = []
            var dropped: [TableName] = []
            let renamedAway = Set(staged.values.compactMap { $0.kind == .drop ? nil : $0.renamedFrom })
            for (name, table) in staged.sorted(by: { $0.key < $1.key }) {
                let current = headCommit?.tables[name]
                if table.kind == .drop {
                    // A table dropped in a transaction that had it: the head
                    // must still hold the version it saw.
                    guard let base = table.base else { continue }
                    guard let current, current.manifest == base else {
                        conflicts.append(current == nil ? "\(name) (dropped already)" : name.rawValue)
                        continue
                    }
                    dropped.append(name)
                    // A table renamed away is one change, under its new name.
                    if !renamedAway.contains(name) {
                        changes.append(
                            Commit.Change(table: name, oldVersion: current.version, newVersion: nil, kind: .drop, rows: RowCounts(deleted: table.rows)))
                    }
                    continue
                }
                // A renamed table's versions go on from the old name's.
                let source = table.renamedFrom
                let version = max(try catalog.latestVersionNumber(name), try source.map { (s) throws(UDRError) in try catalog.latestVersionNumber(s) } ?? 0) + 1
                var id = table.manifest
                var counts = table.counts
                if current?.manifest != table.base {
                    // Others changed the table meanwhile: only row-level
                    // changes on both sides, on different keys, rebase.
                    guard table.kind == .rows, let base = table.base, let theirs = current?.manifest, let head,
                        try onlyRowChanges(of: name, from: head, back: tx.base)
                    else {
                        conflicts.append(name.rawValue)
                        continue
                    }
                    do {
                        guard let rebased = try rebaseRows(name, base: base, ours: table.manifest, theirs: theirs, version: version) else {
                            continue
                        }
                        (id, counts) = rebased
                    } catch  where error.code == .conflict {
                        conflicts.append(error.message)
                        continue
                    }
                }
                var manifest = try self.manifest(id)
                if let current, try self.manifest(current.manifest).isUnchanged(from: manifest) { continue }
                if manifest.version != version {
                    manifest = manifest.renumbered(version)
                    id = try store.putJSON(manifest).id
                }
                entries[name] = Commit.TableEntry(version: version, manifest: id)
                // A rename's old version is the old name's.
                changes.append(
                    Commit.Change(
                        table: name, oldVersion: source.map { headCommit?.tables[$0]?.version } ?? current?.version, newVersion: version,
                        kind: source == nil ? table.kind : .rename, rows: counts, renamedFrom: source))
                versions.append((name, version, id, manifest.rows))
            }
            if !conflicts.isEmpty {
                throw UDRError(
                    .conflict,
                    "conflict: \(conflicts.joined(separator: "; ")) changed on \(tx.branch) since \(tx.isPersistent ? "transaction \(tx.id)" : "this write") began; nothing was committed. Retry it."
                )
            }
            if changes.isEmpty && tx.mergeParents.isEmpty {
                if tx.isPersistent { try catalog.closeEmptyTransaction(tx.id, now: Date()) }
                return nil
            }
            var tables = headCommit?.tables ?? [:]
            for (name, entry) in entries { tables[name] = entry }
            for name in dropped { tables[name] = nil }
            let txID = try catalog.allocateTxID()
            let commit = Commit(
                parents: (head.map { [$0] } ?? []) + tx.mergeParents, txID: txID, time: Date(), author: author ?? configuration.defaultAuthor,
                message: message ?? Self.defaultMessage(changes), branch: tx.branch, tables: tables, changes: changes)
            let stored = try store.putJSON(commit)
            let record = CommitRecord(id: stored.id, commit: commit)
            let records = versions.map { name, version, manifest, rows in
                TableVersionRecord(
                    table: name, version: version, manifest: manifest, commit: stored.id, txID: txID, time: commit.time, rows: rows)
            }
            do {
                try catalog.recordCommit(
                    record, tableVersions: records, branch: tx.branch, expectedHead: head, closing: tx.isPersistent ? tx.id : nil)
                return record
            } catch  where error.code == .conflict && attempt < 59 {
                commitStatistics.retried()
                usleep(delay + UInt32.random(in: 0...delay))
                delay = min(delay * 2, 100_000)
            }
        }
        throw UDRError(.conflict, "could not commit to \(tx.branch): the head kept moving")
    }

    /// Whether every commit from `head` back to `base` (first parents)
    /// changed `table` only row by row.
    func onlyRowChanges(of table: TableName, from head: ObjectID, back base: ObjectID?) throws(UDRError) -> Bool {
        var current: ObjectID? = head
        while let id = current, id != base {
            let commit = try self.commit(id)
            if commit.changes.contains(where: { $0.table == table && $0.kind != .rows }) { return false }
            current = try firstParent(commit)
        }
        return current == base
    }

    /// Re-applies the rows a transaction changed in `table` (from `base` to
    /// `ours`) onto the version others committed meanwhile (`theirs`), cell
    /// by cell (``mergeRows``). Fails with a conflict naming the keys whose
    /// same cell (or row) both changed. nil when `theirs` already holds our
    /// change.
    func rebaseRows(_ table: TableName, base: ObjectID, ours: ObjectID, theirs: ObjectID, version: Int) throws(UDRError) -> (
        ObjectID, RowCounts
    )? {
        let baseManifest = try manifest(base)
        let ourManifest = try manifest(ours)
        let merged = try mergeRows(
            table, base: baseManifest, baseID: base, onto: try manifest(theirs), changes: ourManifest, strategy: .fail, version: version)
        if merged.wholeTable { throw UDRError(.conflict, "\(table) (\(merged.conflicts.first?.reason ?? "its key changed"))") }
        if !merged.conflicts.isEmpty {
            var keys: [String] = []
            for key in merged.conflictKeys where !keys.contains(key) && keys.count < 10 { keys.append(key) }
            throw UDRError(.conflict, "\(table) key (\(baseManifest.key.joined(separator: ", "))) = \(keys.joined(separator: ", "))")
        }
        guard let result = merged.result else { return nil }
        return (try store.putJSON(result.written.manifest.keepingArrowSchema(of: ourManifest)).id, merged.counts)
    }

    static func defaultMessage(_ changes: [Commit.Change]) -> String {
        let names = changes.map(\.table.rawValue)
        if names.count <= 3 { return "write " + names.joined(separator: ", ") }
        return "write \(names.count) tables"
    }
}
