import Foundation

/// What `expire` dropped.
public struct ExpireReport: Sendable, Codable {
    public let commitsExpired: Int
    public let commitsKept: Int
    public let tableVersionsExpired: Int
    public let dryRun: Bool
}

/// What `gc` found and freed.
public struct GCReport: Sendable, Codable {
    public let objectsScanned: Int
    public let objectsReachable: Int
    public let objectsDeleted: Int
    public let bytesFreed: Int64
    /// Unreachable objects spared because they are younger than the grace
    /// period (or than the oldest live transaction).
    public let objectsWaiting: Int
    public let bytesWaiting: Int64
    /// Expired transactions closed (their staged writes discarded).
    public let transactionsClosed: Int
    /// Bytes of temporary files that interrupted writes left behind.
    public let abandonedBytesFreed: Int64
    public let dryRun: Bool
}

/// Which history `expire` keeps.
public enum Retention: Sendable, Hashable {
    /// The latest N commits of each branch.
    case keepLast(Int)
    /// Commits newer than this many seconds (and each branch's head).
    case olderThan(TimeInterval)
}

extension Repository {
    /// How long GC spares unreachable objects by default: long enough for
    /// any write or read that started before it to finish.
    public static let defaultGracePeriod: TimeInterval = 3600

    /// Every object `commits` and `manifests` reach, less `known` (already
    /// reached, with all below it). `tolerant` skips objects that are gone:
    /// expired history that a GC with a shorter grace collected in part.
    func objectsReached(commits: [ObjectID], manifests: Set<ObjectID>, tolerant: Bool, known: Set<ObjectID>) throws(UDRError)
        -> Set<ObjectID>
    {
        var reached = Set<ObjectID>()
        var manifests = manifests
        func present(_ id: ObjectID) throws(UDRError) -> Bool {
            if !tolerant { return true }
            return try store.contains(id)
        }
        for id in commits where !known.contains(id) && !reached.contains(id) {
            guard try present(id) else { continue }
            reached.insert(id)
            for entry in try commit(id).tables.values { manifests.insert(entry.manifest) }
        }
        for id in manifests where !known.contains(id) {
            guard try present(id) else { continue }
            reached.insert(id)
            let manifest = try manifest(id)
            if let record = manifest.changes?.object, !known.contains(record), try present(record) { reached.insert(record) }
            for segment in manifest.segments {
                if let deletions = segment.deletions?.object, !known.contains(deletions), try present(deletions) { reached.insert(deletions) }
                guard !known.contains(segment.recipe), !reached.contains(segment.recipe), try present(segment.recipe) else { continue }
                reached.insert(segment.recipe)
                for part in try store.getJSON(SegmentRecipe.self, segment.recipe).parts { reached.insert(part.blob) }
            }
        }
        return reached
    }

    /// Whether a write's lease still protects it: not expired, and not held
    /// by a process of this machine that is gone.
    static func leaseIsLive(_ lease: WriteLease, at now: Date) -> Bool {
        lease.expires > now && !holderIsGone(lease.id)
    }

    /// The first parent of a commit, unless its history was expired.
    func firstParent(_ commit: Commit) throws(UDRError) -> ObjectID? {
        guard let parent = commit.parents.first, try catalog.commitRecord(parent) != nil else { return nil }
        return parent
    }

    /// Drops old history: commits outside `retention` on every branch stop
    /// being readable, and what only they reach becomes garbage for `gc`.
    /// Tagged commits and the snapshots of live transactions are kept.
    public func expire(_ retention: Retention, dryRun: Bool = false) async throws(UDRError) -> ExpireReport {
        try await blocking { () throws(UDRError) -> ExpireReport in
            if case .keepLast(let n) = retention, n < 1 {
                throw UDRError(.invalidArgument, "--keep-last must be at least 1: a branch keeps its head")
            }
            let now = Date()
            // Heads first, then what running writes began from: a write that
            // begins later begins from one of these heads or a newer commit,
            // and commits newer than the heads are never expired here.
            let latest = try self.catalog.latestTxID()
            // Remote-tracking refs keep history as branches do (a pull merges from them).
            let heads = try self.catalog.branches().merging(self.catalog.remoteRefs().map { ("remote " + $0.key, $0.value) }) { a, _ in a }
            // Running writes and transactions keep their base and every
            // commit after it: a row-level rebase walks them. So do merge
            // bases of branches.
            var bases = Set<ObjectID>()
            for record in try self.catalog.openTransactions() where record.isLive(at: now) {
                if let base = record.base { bases.insert(base) }
            }
            for lease in try self.catalog.leases() where Self.leaseIsLive(lease, at: now) {
                if let base = lease.base { bases.insert(base) }
            }
            // Branches keep their history back to where they meet (the base
            // of their next merge), each pair up to 50 branches; beyond, each
            // with the default branch.
            let all = try self.catalog.allCommitRecords()
            let graph = CommitGraph(all)
            let everyPair = heads.count <= 50
            for (name, head) in heads where everyPair || name == Self.defaultBranch {
                let ancestors = graph.ancestors(of: head)
                for (other, otherHead) in heads where everyPair ? other > name : other != name {
                    if let base = graph.mergeBase(head, otherHead, ancestorsOfA: ancestors) { bases.insert(base) }
                }
            }
            var retained = bases
            var candidates = Set<ObjectID>()
            var onBranches = Set<ObjectID>()
            for (_, head) in heads {
                var chain: [ObjectID] = []
                var kept = 0
                var current: ObjectID? = head
                while let id = current {
                    let commit = try self.commit(id)
                    chain.append(id)
                    switch retention {
                    case .keepLast(let n): if chain.count <= n { kept = chain.count }
                    case .olderThan(let age): if chain.count == 1 || commit.time >= now.addingTimeInterval(-age) { kept = chain.count }
                    }
                    if bases.contains(id) { kept = chain.count }
                    current = try self.firstParent(commit)
                }
                retained.formUnion(chain.prefix(kept))
                candidates.formUnion(chain.dropFirst(kept))
                onBranches.formUnion(chain)
            }
            retained.formUnion(try self.catalog.tags().values)
            // Commits no branch reaches (their branch was deleted) go too,
            // if they were recorded before the heads were read.
            for record in all where record.txID <= latest && !onBranches.contains(record.id) { candidates.insert(record.id) }
            let expired = all.filter { candidates.contains($0.id) && !retained.contains($0.id) }
            // Versions created by expired commits go, unless a kept commit still reads them.
            let expiredIDs = Set(expired.map(\.id))
            var keptManifests = Set<ObjectID>()
            for record in all where !expiredIDs.contains(record.id) {
                for entry in try self.commit(record.id).tables.values { keptManifests.insert(entry.manifest) }
            }
            var versions: [TableVersionKey] = []
            var tables = Set<TableName>()
            for id in expiredIDs { for change in try self.commit(id).changes { tables.insert(change.table) } }
            for table in tables {
                for record in try self.catalog.tableVersions(table)
                where expiredIDs.contains(record.commit) && !keptManifests.contains(record.manifest) {
                    versions.append(TableVersionKey(table: table, version: record.version))
                }
            }
            if !dryRun, !expired.isEmpty {
                try self.catalog.expire(commits: expired.map(\.id), tableVersions: versions, at: now)
            }
            return ExpireReport(
                commitsExpired: expired.count, commitsKept: all.count - expired.count, tableVersionsExpired: versions.count, dryRun: dryRun)
        }
    }

    /// Deletes objects that no retained commit, ref, live transaction or
    /// write in progress reaches and that are older than `grace` (and than
    /// the oldest live transaction or write). Expired transactions are
    /// closed first. Safe while writers and readers work:
    /// - a write in progress holds a lease: GC spares what it wrote (and
    ///   its base commit), however long it runs;
    /// - a writer storing an object that is there already keeps it by the
    ///   store's protocol (a refreshed time, or a doomed pack it does not
    ///   count on; see ``ObjectStore/collect(roots:liveWriters:dryRun:)``);
    /// - commits expired less than `grace` ago stay reachable, so a reader
    ///   that resolved one before it expired has the grace period to finish.
    public func gc(grace: TimeInterval = Repository.defaultGracePeriod, dryRun: Bool = false) async throws(UDRError) -> GCReport {
        try await blocking { () throws(UDRError) -> GCReport in
            guard grace >= 0 else { throw UDRError(.invalidArgument, "the grace period cannot be negative") }
            var closed = 0
            // What to keep, read when the store asks: the roots of every
            // retained commit, ref, live transaction and write in progress.
            func roots() throws(UDRError) -> GarbageRoots {
                let started = Date()
                var cutoff = started.addingTimeInterval(-grace)
                var staged = Set<ObjectID>()
                var bases: [ObjectID] = []
                for lease in try self.catalog.leases() {
                    guard Self.leaseIsLive(lease, at: started) else {
                        if !dryRun { try self.catalog.endLease(lease.id) }
                        continue
                    }
                    cutoff = min(cutoff, lease.began)
                    bases += lease.base.map { [$0] } ?? []
                }
                for record in try self.catalog.openTransactions() {
                    guard record.isLive(at: started) else {
                        // Expired: what it staged is garbage like the rest.
                        if !dryRun { try self.catalog.abortTransaction(record.id) }
                        closed += 1
                        continue
                    }
                    cutoff = min(cutoff, record.began)
                    for table in try self.catalog.stagedTables(in: record.id) { staged.insert(table.manifest) }
                    bases += record.base.map { [$0] } ?? []
                }
                let recentlyExpired = try self.catalog.expiredCommits(since: started.addingTimeInterval(-grace))
                let commits = try self.catalog.allCommitRecords().map(\.id) + self.catalog.tags().values
                var reachable = try self.objectsReached(commits: commits, manifests: staged, tolerant: false, known: [])
                // A base may have been expired since its write began; what it
                // still reaches stays (what is gone, the write did not need).
                reachable.formUnion(try self.objectsReached(commits: bases, manifests: [], tolerant: true, known: reachable))
                // Readers may still read commits expired within the grace period.
                let spared = try self.objectsReached(commits: recentlyExpired, manifests: [], tolerant: true, known: reachable)
                return GarbageRoots(reachable: reachable, spared: spared, cutoff: cutoff)
            }
            func liveWriters() throws(UDRError) -> Set<String> {
                let now = Date()
                var live = Set<String>()
                for lease in try self.catalog.leases() where Self.leaseIsLive(lease, at: now) { live.insert(lease.id) }
                for record in try self.catalog.openTransactions() where record.isLive(at: now) { live.insert(record.id) }
                return live
            }
            let collected = try self.store.collect(roots: roots, liveWriters: liveWriters, dryRun: dryRun)
            return GCReport(
                objectsScanned: collected.scanned, objectsReachable: collected.scanned - collected.deleted - collected.waiting,
                objectsDeleted: collected.deleted, bytesFreed: collected.freed, objectsWaiting: collected.waiting,
                bytesWaiting: collected.waitingBytes, transactionsClosed: closed, abandonedBytesFreed: collected.abandonedBytes,
                dryRun: dryRun)
        }
    }
}
