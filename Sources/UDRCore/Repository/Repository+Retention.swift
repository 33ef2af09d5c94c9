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
            var retained = Set<ObjectID>()
            for (_, head) in try self.catalog.branches() {
                var current: ObjectID? = head
                var depth = 0
                while let id = current {
                    let commit = try self.commit(id)
                    let keep: Bool
                    switch retention {
                    case .keepLast(let n): keep = depth < n
                    case .olderThan(let age): keep = depth == 0 || commit.time >= now.addingTimeInterval(-age)
                    }
                    if !keep { break }
                    retained.insert(id)
                    depth += 1
                    current = try self.firstParent(commit)
                }
            }
            retained.formUnion(try self.catalog.tags().values)
            for record in try self.catalog.openTransactions() where record.isLive(at: now) {
                if let base = record.base { retained.insert(base) }
            }
            let all = try self.catalog.allCommitRecords()
            let expired = all.filter { !retained.contains($0.id) }
            // Versions created by expired commits go, unless a kept commit still reads them.
            var keptManifests = Set<ObjectID>()
            for id in retained where try self.catalog.commitRecord(id) != nil {
                for entry in try self.commit(id).tables.values { keptManifests.insert(entry.manifest) }
            }
            var versions: [TableVersionKey] = []
            let expiredIDs = Set(expired.map(\.id))
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

    /// Deletes objects that no retained commit, ref or live transaction
    /// reaches and that are older than `grace` (and than the oldest live
    /// transaction). Expired transactions are closed first. Safe while writers and readers work: a writer storing
    /// an object again refreshes it, and readers of expired history have
    /// the grace period to finish.
    public func gc(grace: TimeInterval = Repository.defaultGracePeriod, dryRun: Bool = false) async throws(UDRError) -> GCReport {
        try await blocking { () throws(UDRError) -> GCReport in
            guard grace >= 0 else { throw UDRError(.invalidArgument, "the grace period cannot be negative") }
            let started = Date()
            var cutoff = started.addingTimeInterval(-grace)
            // Roots first, objects second: anything written after the roots
            // were read is younger than `cutoff` or refreshed.
            var manifests = Set<ObjectID>()
            var reachable = Set<ObjectID>()
            var closed = 0
            for record in try self.catalog.openTransactions() {
                guard record.isLive(at: started) else {
                    // Expired: what it staged is garbage like the rest.
                    if !dryRun { try self.catalog.abortTransaction(record.id) }
                    closed += 1
                    continue
                }
                cutoff = min(cutoff, record.began)
                for staged in try self.catalog.stagedTables(in: record.id) { manifests.insert(staged.manifest) }
                if let base = record.base { reachable.insert(base) }
            }
            var commits = try self.catalog.allCommitRecords().map(\.id)
            commits += try self.catalog.tags().values
            for id in commits {
                reachable.insert(id)
                for entry in try self.commit(id).tables.values { manifests.insert(entry.manifest) }
            }
            var recipes = Set<ObjectID>()
            for id in manifests {
                reachable.insert(id)
                for segment in try self.manifest(id).segments where !recipes.contains(segment.recipe) {
                    recipes.insert(segment.recipe)
                    reachable.insert(segment.recipe)
                    for part in try self.store.getJSON(SegmentRecipe.self, segment.recipe).parts { reachable.insert(part.blob) }
                }
            }
            let all = try self.store.list()
            var deleted = 0
            var freed: Int64 = 0
            var waiting = 0
            var waitingBytes: Int64 = 0
            for id in all where !reachable.contains(id) {
                guard let modified = try self.store.modificationTime(id) else { continue }
                if modified >= cutoff {
                    waiting += 1
                    waitingBytes += try self.store.size(id) ?? 0
                    continue
                }
                if dryRun {
                    deleted += 1
                    freed += try self.store.size(id) ?? 0
                } else if let bytes = try self.store.delete(id, unlessModifiedSince: cutoff) {
                    deleted += 1
                    freed += bytes
                }
            }
            let abandoned = try self.store.removeAbandoned(before: started.addingTimeInterval(-grace), dryRun: dryRun)
            return GCReport(
                objectsScanned: all.count, objectsReachable: all.count - deleted - waiting, objectsDeleted: deleted, bytesFreed: freed,
                objectsWaiting: waiting, bytesWaiting: waitingBytes, transactionsClosed: closed, abandonedBytesFreed: abandoned,
                dryRun: dryRun)
        }
    }
}
