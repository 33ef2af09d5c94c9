import Foundation

/// A named remote and where it is.
public struct RemoteInfo: Sendable, Codable, Hashable {
    public let name: String
    public let location: RemoteLocation
}

/// A ref a fetch or push moved (nil: absent before, or removed).
public struct RefUpdate: Sendable, Codable, Hashable {
    public let name: String
    public let old: ObjectID?
    public let new: ObjectID?
}

/// What a fetch or push moved.
public struct SyncReport: Sendable, Codable {
    public let remote: String
    /// Objects sent or received, and the bytes of their content.
    public let objects: Int
    public let objectBytes: Int64
    /// Bytes the storage sent (pushes: every request body, refs and pack
    /// indexes included).
    public let bytesSent: Int64
    public let packs: Int
    public let refs: [RefUpdate]
    /// Refs the other side had that were not taken (e.g. a tag that names
    /// another commit here), each with the reason.
    public let skipped: [String]
}

/// Progress of a long fetch or push: `done` of `total` bytes in `phase`.
public typealias SyncProgress = @Sendable (_ phase: String, _ done: Int64, _ total: Int64) -> Void

extension Repository {
    static let remotesSetting = "remotes"

    /// Checks a remote's name: letters, digits, `-`, `_` and `.`, 1–100 characters.
    static func validateRemoteName(_ name: String) throws(UDRError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard !name.isEmpty, name.count <= 100, name.allSatisfy(allowed.contains), !name.hasPrefix("."), !name.hasPrefix("-") else {
            throw UDRError(.invalidArgument, "'\(name)' is not a valid remote name: use 1 to 100 letters, digits, - _ or .")
        }
    }

    func remoteTable() throws(UDRError) -> [String: RemoteLocation] {
        guard let text = try catalog.setting(Self.remotesSetting) else { return [:] }
        return (try? JSONDecoder().decode([String: RemoteLocation].self, from: Data(text.utf8))) ?? [:]
    }

    private func saveRemoteTable(_ table: [String: RemoteLocation]) throws(UDRError) {
        let data = try ObjectCoding.encode(table)
        try catalog.setSetting(Self.remotesSetting, to: String(decoding: data, as: UTF8.self))
    }

    /// The remote named `name` (or the only one, or `origin`, when nil).
    func remote(_ name: String?) throws(UDRError) -> RemoteInfo {
        let table = try remoteTable()
        if let name {
            guard let location = table[name] else {
                throw UDRError(
                    .notFound,
                    "there is no remote '\(name)'; `udr remote list` lists them\(table.isEmpty ? "" : " (\(table.keys.sorted().joined(separator: ", ")))"), `udr remote add \(name) URL` adds it"
                )
            }
            return RemoteInfo(name: name, location: location)
        }
        if let origin = table["origin"] { return RemoteInfo(name: "origin", location: origin) }
        if table.count == 1, let only = table.first { return RemoteInfo(name: only.key, location: only.value) }
        throw UDRError(
            .notFound, table.isEmpty ? "this repository has no remote; add one with `udr remote add origin URL`" : "name the remote: \(table.keys.sorted().joined(separator: ", "))")
    }

    /// Adds a remote (no request is made: a push makes an empty location a remote).
    public func addRemote(_ name: String, _ location: RemoteLocation) async throws(UDRError) {
        try await blocking { () throws(UDRError) in
            try Self.validateRemoteName(name)
            _ = try location.kind()
            var table = try self.remoteTable()
            guard table[name] == nil else {
                throw UDRError(.alreadyExists, "a remote named '\(name)' already exists (\(table[name]!.url)); `udr remote remove \(name)` first")
            }
            table[name] = try location.absolute()
            try self.saveRemoteTable(table)
        }
    }

    /// Removes a remote and its remote-tracking refs (the commits stay).
    public func removeRemote(_ name: String) async throws(UDRError) {
        try await blocking { () throws(UDRError) in
            _ = try self.remote(name)
            var table = try self.remoteTable()
            table[name] = nil
            let tracking = try self.catalog.remoteRefs().keys.filter { $0.hasPrefix(name + "/") }
            try self.catalog.importCommits([], tableVersions: [], remoteRefs: Dictionary(uniqueKeysWithValues: tracking.map { ($0, nil) }))
            try self.saveRemoteTable(table)
        }
    }

    public func remotes() async throws(UDRError) -> [RemoteInfo] {
        try await blocking { () throws(UDRError) -> [RemoteInfo] in
            try self.remoteTable().map { RemoteInfo(name: $0.key, location: $0.value) }.sorted { $0.name < $1.name }
        }
    }

    /// Remote-tracking refs (`origin/main` → commit).
    public func remoteRefs() async throws(UDRError) -> [String: ObjectID] {
        try await blocking { () throws(UDRError) -> [String: ObjectID] in try self.catalog.remoteRefs() }
    }

    func openRemote(_ info: RemoteInfo) throws(UDRError) -> RemoteRepository {
        RemoteRepository(storage: try configuration.remoteStorage(info.location), name: info.name)
    }

    static let promisorSetting = "promisor_remote"

    /// The remote a shallow clone reads the segments it did not fetch
    /// from, and its pack index cache; nil for a complete repository.
    func promisorRemote() throws(UDRError) -> (remote: RemoteRepository, cache: URL)? {
        guard let name = try catalog.setting(Self.promisorSetting) else { return nil }
        let info = try remote(name)
        return (try openRemote(info), packIndexCache(info.location))
    }

    /// Whether an object missing here is one the promisor remote holds.
    func isPromised(_ id: ObjectID) throws(UDRError) -> Bool {
        try (store as? PromisingObjectStore)?.promised(id) ?? false
    }

    /// Where the pack indexes of a remote location are cached.
    func packIndexCache(_ location: RemoteLocation) -> URL {
        let key = ObjectID.of(Data("\(location.url)\n\(location.endpoint ?? "")".utf8)).hex.prefix(16)
        return layout.metadata.appendingPathComponent("remotes").appendingPathComponent(String(key))
    }

    // MARK: Fetch

    /// Fetches the remote's branches (as remote-tracking refs `REMOTE/BRANCH`)
    /// and tags, with every object they reach that is not here. With
    /// `depth`, only the newest `depth` commits of each branch bring their
    /// segments; older commits and their manifests come, their segments
    /// are read from the remote when a query needs them.
    ///
    /// Objects are checked against their ids before any is kept; a
    /// damaged one fails the fetch and keeps nothing.
    public func fetch(_ remoteName: String? = nil, depth: Int? = nil, progress: SyncProgress? = nil) async throws(UDRError) -> SyncReport {
        try await blocking { () throws(UDRError) -> SyncReport in try self.fetchNow(remoteName, depth: depth, progress: progress) }
    }

    func fetchNow(_ remoteName: String?, depth: Int?, progress: SyncProgress?) throws(UDRError) -> SyncReport {
        if let depth, depth < 1 { throw UDRError(.invalidArgument, "--depth must be at least 1") }
        let info = try remote(remoteName)
        let remote = try openRemote(info)
        let cache = packIndexCache(info.location)
        // A lease, as for any write: GC keeps what the fetch counts on.
        let lease = Self.holderToken()
        let now = Date()
        _ = try catalog.beginLease(id: lease, branch: Self.defaultBranch, began: now, expires: now.addingTimeInterval(Self.writeLeaseTimeToLive))
        defer { try? catalog.endLease(lease) }
        let (branches, tags, index) = try awaitBlocking { () async throws(UDRError) in
            try await remote.open(creating: false)
            let (branches, tags) = try await remote.refs()
            return (branches, tags, try await remote.index(cache: cache))
        }
        func load(_ ids: [ObjectID]) throws(UDRError) -> [ObjectID: Data] {
            if ids.isEmpty { return [:] }
            return try awaitBlocking { () async throws(UDRError) in try await remote.load(ids, index: index) }
        }
        let knownTracking = try catalog.remoteRefs()
        let knownTags = try catalog.tags()
        let heads = Set(branches.values.map(\.commit) + tags.values.map(\.commit))

        // Commits and manifests first (small), walking back from the heads
        // until commits already here.
        let batch = store.batch()
        var fetchedCommits: [ObjectID: Commit] = [:]
        var fetchedManifests: [ObjectID: Manifest] = [:]
        var objectCount = 0
        var objectBytes: Int64 = 0
        func keep(_ id: ObjectID, _ data: Data) throws(UDRError) {
            try batch.add([(id: id, data: data)])
            objectCount += 1
            objectBytes += Int64(data.count)
        }
        var generation = try unknownCommits(heads)
        var withSegments = Set<ObjectID>()
        var level = 0
        while !generation.isEmpty {
            level += 1
            let loaded = try load(generation)
            var next = Set<ObjectID>()
            var manifests = Set<ObjectID>()
            for id in generation {
                let commit = try ObjectCoding.decode(Commit.self, from: loaded[id]!, id: id)
                fetchedCommits[id] = commit
                try keep(id, loaded[id]!)
                if depth.map({ level <= $0 }) ?? true { withSegments.insert(id) }
                for entry in commit.tables.values where fetchedManifests[entry.manifest] == nil { manifests.insert(entry.manifest) }
                next.formUnion(commit.parents)
            }
            let missing = try absent(manifests)
            for (id, data) in try load(missing) {
                fetchedManifests[id] = try ObjectCoding.decode(Manifest.self, from: data, id: id)
                try keep(id, data)
            }
            generation = try unknownCommits(next.filter { fetchedCommits[$0] == nil })
        }

        // Then what the manifests of the commits with segments reach:
        // recipes, deletions and change records, then blobs.
        var small = Set<ObjectID>()
        var recipes = Set<ObjectID>()
        for id in Set(withSegments.flatMap { fetchedCommits[$0]!.tables.values.map(\.manifest) }) {
            let manifest = try manifest(id, among: fetchedManifests)
            if let record = manifest.changes?.object { small.insert(record) }
            for segment in manifest.segments {
                recipes.insert(segment.recipe)
                if let deletions = segment.deletions?.object { small.insert(deletions) }
            }
        }
        // A recipe here has its blobs here.
        var blobs = Set<ObjectID>()
        for (id, data) in try load(try absent(small.union(recipes))) {
            try keep(id, data)
            if recipes.contains(id) {
                for part in try ObjectCoding.decode(SegmentRecipe.self, from: data, id: id).parts { blobs.insert(part.blob) }
            }
        }
        let missingBlobs = try absent(blobs).sorted { (index[$0]?.offset ?? 0) < (index[$1]?.offset ?? 0) }
        let total = missingBlobs.reduce(Int64(0)) { $0 + (index[$1]?.length ?? 0) }
        var done: Int64 = 0
        var start = 0
        while start < missingBlobs.count {
            // About 64 MB at a time.
            var end = start
            var size: Int64 = 0
            while end < missingBlobs.count, end == start || size < 64 << 20 {
                size += index[missingBlobs[end]]?.length ?? 0
                end += 1
            }
            for (id, data) in try load(Array(missingBlobs[start..<end])) { try keep(id, data) }
            done += size
            progress?("receiving", done, total)
            start = end
        }

        // Objects become visible together; then the commits and refs, in one catalog step.
        _ = try batch.commit()
        var records: [CommitRecord] = []
        var versions: [TableVersionRecord] = []
        for id in Self.parentsFirst(fetchedCommits) {
            let commit = fetchedCommits[id]!
            records.append(CommitRecord(id: id, commit: commit))
            for change in commit.changes where change.newVersion != nil {
                guard let entry = commit.tables[change.table] else { continue }
                let manifest = try manifest(entry.manifest, among: fetchedManifests)
                versions.append(
                    TableVersionRecord(
                        table: change.table, version: entry.version, manifest: entry.manifest, commit: id, txID: commit.txID, time: commit.time,
                        rows: manifest.rows))
            }
        }
        let prefix = info.name + "/"
        var tracking: [String: ObjectID?] = [:]
        var updates: [RefUpdate] = []
        for (branch, ref) in branches where knownTracking[prefix + branch] != ref.commit {
            tracking[prefix + branch] = ref.commit
            updates.append(RefUpdate(name: prefix + branch, old: knownTracking[prefix + branch], new: ref.commit))
        }
        for (name, old) in knownTracking where name.hasPrefix(prefix) && branches[String(name.dropFirst(prefix.count))] == nil {
            tracking[name] = .some(nil)
            updates.append(RefUpdate(name: name, old: old, new: nil))
        }
        try catalog.importCommits(records, tableVersions: versions, remoteRefs: tracking)
        var skipped: [String] = []
        for (tag, ref) in tags.sorted(by: { $0.key < $1.key }) {
            if let mine = knownTags[tag] {
                if mine != ref.commit { skipped.append("tag \(tag): here it names \(mine.short), on \(info.name) \(ref.commit.short)") }
                continue
            }
            do throws(UDRError) {
                try catalog.createRef(tag, kind: .tag, commit: ref.commit)
                updates.append(RefUpdate(name: "tag " + tag, old: nil, new: ref.commit))
            } catch {
                skipped.append("tag \(tag): \(error.message)")
            }
        }
        return SyncReport(
            remote: info.name, objects: objectCount, objectBytes: objectBytes, bytesSent: remote.storage.bytesSent, packs: 0,
            refs: updates.sorted { $0.name < $1.name }, skipped: skipped)
    }

    /// A manifest just fetched, or one stored here.
    private func manifest(_ id: ObjectID, among fetched: [ObjectID: Manifest]) throws(UDRError) -> Manifest {
        if let manifest = fetched[id] { return manifest }
        return try manifest(id)
    }

    /// The objects of `ids` the store lacks (or holds only where GC may
    /// take them: see ``ObjectStore/reusable(_:)``), in id order.
    func absent(_ ids: Set<ObjectID>) throws(UDRError) -> [ObjectID] {
        let wanted = Array(ids)
        let here = try store.reusable(wanted)
        return wanted.filter { !here.contains($0) }.sorted()
    }

    /// The commits of `ids` the catalog does not know, in id order.
    func unknownCommits(_ ids: Set<ObjectID>) throws(UDRError) -> [ObjectID] {
        var out: [ObjectID] = []
        for id in ids where try catalog.commitRecord(id) == nil { out.append(id) }
        return out.sorted()
    }

    /// Commits ordered so that each comes after the parents among them.
    static func parentsFirst(_ commits: [ObjectID: Commit]) -> [ObjectID] {
        var order: [ObjectID] = []
        var state: [ObjectID: Bool] = [:]  // false: in progress, true: done
        for root in commits.keys.sorted(by: { commits[$0]!.txID < commits[$1]!.txID }) {
            var stack: [(ObjectID, Bool)] = [(root, false)]
            while let (id, expanded) = stack.popLast() {
                if expanded {
                    state[id] = true
                    order.append(id)
                    continue
                }
                guard state[id] == nil, let commit = commits[id] else { continue }
                state[id] = false
                stack.append((id, true))
                for parent in commit.parents where state[parent] == nil && commits[parent] != nil { stack.append((parent, false)) }
            }
        }
        return order
    }

    // MARK: Push

    /// Pushes `branch` (the current one when nil), and with `tags` every
    /// tag, to the remote: uploads, as packs, the objects it reaches that
    /// the remote lacks, then moves the remote's branch by compare-and-swap.
    /// Rejected, changing no ref, when the remote's branch is not an
    /// ancestor of ours (unless `force`) or moved meanwhile.
    public func push(
        _ remoteName: String? = nil, branch: String? = nil, force: Bool = false, tags: Bool = false, progress: SyncProgress? = nil
    ) async throws(UDRError) -> SyncReport {
        try await blocking { () throws(UDRError) -> SyncReport in
            try self.pushNow(remoteName, branch: branch, force: force, tags: tags, progress: progress)
        }
    }

    func pushNow(_ remoteName: String?, branch: String?, force: Bool, tags: Bool, progress: SyncProgress?) throws(UDRError) -> SyncReport {
        let info = try remote(remoteName)
        let (name, head) = try branchHead(branch)
        guard let head else { throw UDRError(.notFound, "branch \(name) has no commits to push") }
        let localTags = tags ? try catalog.tags() : [:]
        let remote = try openRemote(info)
        let (branches, remoteTags) = try awaitBlocking { () async throws(UDRError) in
            try await remote.open(creating: true, defaultBranch: name)
            return try await remote.refs()
        }
        let theirs = branches[name]
        if let theirs, theirs.commit != head, !force {
            let known = try catalog.commitRecord(theirs.commit) != nil
            guard known, CommitGraph(try catalog.allCommitRecords()).ancestors(of: head).contains(theirs.commit) else {
                throw UDRError(
                    .conflict,
                    "push rejected: \(info.name)'s \(name) is at \(theirs.commit.short), which is not in your \(name)'s history (not a fast-forward). Run `udr pull \(info.name)` to merge it, then push again (or push --force to overwrite it)."
                )
            }
        }
        var pendingTags: [(tag: String, commit: ObjectID, expected: RemoteRepository.Ref?)] = []
        var skipped: [String] = []
        for (tag, commit) in localTags.sorted(by: { $0.key < $1.key }) {
            if let existing = remoteTags[tag] {
                if existing.commit == commit { continue }
                if !force {
                    skipped.append("tag \(tag): on \(info.name) it names \(existing.commit.short) (push --force to move it)")
                    continue
                }
            }
            pendingTags.append((tag, commit, remoteTags[tag]))
        }
        let tagUpdates = pendingTags
        let cache = packIndexCache(info.location)
        let index = try awaitBlocking { () async throws(UDRError) in try await remote.index(cache: cache) }
        let objects = try objectsMissing(from: [head] + tagUpdates.map(\.commit), on: index)
        let total = objects.reduce(Int64(0)) { $0 + Int64($1.data.count) }
        let pushedBranch = theirs?.commit == head ? nil : (head, theirs)
        let (packs, moved, tagsMoved) = try awaitBlocking {
            () async throws(UDRError) -> (Int, Bool, [Bool]) in
            let packs = try await remote.upload(objects) { sent in progress?("sending", sent, total) }
            var moved = true
            if let (head, theirs) = pushedBranch {
                moved = try await remote.updateRef(RemoteRepository.key(branch: name), to: head, expected: theirs)
            }
            var tagsMoved: [Bool] = []
            if moved {
                for update in tagUpdates {
                    tagsMoved.append(try await remote.updateRef(RemoteRepository.key(tag: update.tag), to: update.commit, expected: update.expected))
                }
            }
            return (packs.count, moved, tagsMoved)
        }
        guard moved else {
            throw UDRError(
                .conflict,
                "push rejected: \(info.name)'s \(name) moved while pushing (another push landed first). Run `udr pull \(info.name)`, then push again; the objects sent stay there for the next push."
            )
        }
        var updates: [RefUpdate] = []
        if pushedBranch != nil { updates.append(RefUpdate(name: name, old: theirs?.commit, new: head)) }
        for (update, ok) in zip(tagUpdates, tagsMoved) {
            if ok {
                updates.append(RefUpdate(name: "tag " + update.tag, old: update.expected?.commit, new: update.commit))
            } else {
                skipped.append("tag \(update.tag): moved on \(info.name) while pushing")
            }
        }
        try catalog.importCommits([], tableVersions: [], remoteRefs: [info.name + "/" + name: head])
        return SyncReport(
            remote: info.name, objects: objects.count, objectBytes: total, bytesSent: remote.storage.bytesSent, packs: packs, refs: updates,
            skipped: skipped)
    }

    /// The objects `roots` reach that the remote's index lacks, each after
    /// the objects it reaches. An object the remote has, has all it
    /// reaches there too, so the walk stops at it.
    func objectsMissing(from roots: [ObjectID], on index: [ObjectID: RemoteRepository.Location]) throws(UDRError) -> [(id: ObjectID, data: Data)] {
        var commits: [ObjectID: Commit] = [:]
        var stack = roots.filter { index[$0] == nil }
        while let id = stack.popLast() {
            guard commits[id] == nil else { continue }
            let commit = try self.commit(id)
            commits[id] = commit
            for parent in commit.parents where index[parent] == nil && commits[parent] == nil {
                // A parent expired here (and so never sent) ends the line.
                if try catalog.commitRecord(parent) == nil, try !store.contains(parent) { continue }
                stack.append(parent)
            }
        }
        var manifests: [ObjectID] = []
        var seen = Set<ObjectID>()
        var small: [ObjectID] = []
        var blobs: [ObjectID] = []
        for id in Self.parentsFirst(commits) {
            for entry in commits[id]!.tables.values.sorted(by: { $0.manifest < $1.manifest })
            where index[entry.manifest] == nil && seen.insert(entry.manifest).inserted {
                manifests.append(entry.manifest)
                let manifest = try self.manifest(entry.manifest)
                if let record = manifest.changes?.object, index[record] == nil, seen.insert(record).inserted { small.append(record) }
                for segment in manifest.segments {
                    if let deletions = segment.deletions?.object, index[deletions] == nil, seen.insert(deletions).inserted { small.append(deletions) }
                    guard index[segment.recipe] == nil, seen.insert(segment.recipe).inserted else { continue }
                    small.append(segment.recipe)
                    for part in try store.getJSON(SegmentRecipe.self, segment.recipe).parts where index[part.blob] == nil {
                        if seen.insert(part.blob).inserted { blobs.append(part.blob) }
                    }
                }
            }
        }
        var out: [(id: ObjectID, data: Data)] = []
        for id in blobs + small + manifests + Self.parentsFirst(commits) {
            let data: Data
            do throws(UDRError) { data = try store.get(id) } catch {
                if error.code == .missingObject || error.code == .notFound {
                    throw UDRError(
                        .missingObject, "cannot push: object \(id) is not here (a shallow clone fetches old segments only when read); \(error.message)")
                }
                throw error
            }
            out.append((id, data))
        }
        return out
    }
}

extension Repository {
    /// Makes this new, empty repository a clone of `location`: adds it as
    /// `origin`, fetches (the newest `depth` commits with their segments),
    /// and checks out `branch` (default: `main`, or the remote's only branch).
    public func becomeClone(of location: RemoteLocation, branch: String? = nil, depth: Int? = nil, progress: SyncProgress? = nil) async throws(UDRError)
        -> SyncReport
    {
        try await addRemote("origin", location)
        if depth != nil {
            try await blocking { () throws(UDRError) in try self.catalog.setSetting(Self.promisorSetting, to: "origin") }
        }
        let report = try await fetch("origin", depth: depth, progress: progress)
        try await blocking { () throws(UDRError) in
            let tracking = try self.catalog.remoteRefs()
            let branches = tracking.keys.filter { $0.hasPrefix("origin/") }.map { String($0.dropFirst("origin/".count)) }.sorted()
            guard let name = branch ?? (branches.contains(Self.defaultBranch) ? Self.defaultBranch : branches.first) else {
                throw UDRError(.notFound, "\(location.url) has no branches yet; push to it first")
            }
            guard let head = tracking["origin/" + name] else {
                throw UDRError(.notFound, "\(location.url) has no branch '\(name)'; it has \(branches.joined(separator: ", "))")
            }
            try self.catalog.moveBranch(name, from: nil, to: head)
            try self.catalog.setSetting(Self.currentBranchSetting, to: name)
        }
        return report
    }

    /// Fetches the remote, then merges its copy of `branch` (the current
    /// one when nil) into it: a fast-forward when the branch has no
    /// commits of its own, else the three-way merge `merge` does, with
    /// its conflicts.
    public func pull(_ remoteName: String? = nil, branch: String? = nil, strategy: MergeStrategy = .fail, progress: SyncProgress? = nil)
        async throws(UDRError) -> (fetch: SyncReport, merge: MergeResult)
    {
        let report = try await fetch(remoteName, progress: progress)
        let (tracking, target) = try await blocking { () throws(UDRError) -> (String, String) in
            let name = try self.branchName(branch)
            let tracking = report.remote + "/" + name
            guard try self.catalog.remoteRefs()[tracking] != nil else {
                throw UDRError(.notFound, "\(report.remote) has no branch '\(name)' to pull; `udr push` creates it")
            }
            return (tracking, name)
        }
        let merge = try await self.merge(tracking, into: target, strategy: strategy)
        return (report, merge)
    }
}

/// What `udr remote verify` found on a remote.
public struct RemoteVerifyReport: Sendable, Codable {
    public let remote: String
    public let refsChecked: Int
    /// Objects the refs reach that were read and re-hashed, and their bytes.
    public let objectsChecked: Int
    public let bytesChecked: Int64
    public let problems: [String]
    public var ok: Bool { problems.isEmpty }
}

extension Repository {
    /// Reads every object the remote's branches and tags reach from its
    /// packs and checks it against its id: commits, manifests, recipes,
    /// deletions, change records and blobs. A commit's parent that is not
    /// there ends its history (expired before it was pushed); anything
    /// else missing or damaged is a problem, named.
    public func verifyRemote(_ remoteName: String? = nil) async throws(UDRError) -> RemoteVerifyReport {
        try await blocking { () throws(UDRError) -> RemoteVerifyReport in try self.verifyRemoteNow(remoteName) }
    }

    func verifyRemoteNow(_ remoteName: String?) throws(UDRError) -> RemoteVerifyReport {
        let info = try remote(remoteName)
        let remote = try openRemote(info)
        let cache = packIndexCache(info.location)
        let (branches, tags, index) = try awaitBlocking { () async throws(UDRError) in
            try await remote.open(creating: false)
            let (branches, tags) = try await remote.refs()
            return (branches, tags, try await remote.index(cache: cache))
        }
        var problems: [String] = []
        var checked = 0
        var bytes: Int64 = 0
        // Reads objects in runs of about 64 MB; a run that fails is read
        // again one object at a time, so each problem names its object.
        func read(_ ids: [ObjectID], _ what: (ObjectID) -> String) -> [ObjectID: Data] {
            var out: [ObjectID: Data] = [:]
            var present: [ObjectID] = []
            for id in ids.sorted() {
                if index[id] == nil { problems.append("\(what(id)) \(id) is missing") } else { present.append(id) }
            }
            var start = 0
            while start < present.count {
                var end = start
                var size: Int64 = 0
                while end < present.count, end == start || size < 64 << 20 {
                    size += index[present[end]]!.length
                    end += 1
                }
                let run = Array(present[start..<end])
                start = end
                if let loaded = try? awaitBlocking({ () async throws(UDRError) in try await remote.load(run, index: index) }) {
                    out.merge(loaded) { a, _ in a }
                    continue
                }
                for id in run {
                    do throws(UDRError) {
                        out[id] = try awaitBlocking { () async throws(UDRError) in try await remote.load([id], index: index) }[id]
                    } catch {
                        problems.append("\(what(id)) \(id): \(error.message)")
                    }
                }
            }
            checked += out.count
            bytes += out.values.reduce(Int64(0)) { $0 + Int64($1.count) }
            return out
        }
        func decode<T: Decodable>(_ type: T.Type, _ id: ObjectID, _ data: Data, _ what: String) -> T? {
            do throws(UDRError) { return try ObjectCoding.decode(type, from: data, id: id) } catch {
                problems.append("\(what) \(id) cannot be read: \(error.message)")
                return nil
            }
        }
        var commits: [ObjectID: Commit] = [:]
        var heads = Set(branches.values.map(\.commit) + tags.values.map(\.commit))
        for (name, ref) in branches.sorted(by: { $0.key < $1.key }) where index[ref.commit] == nil {
            problems.append("branch \(name) names commit \(ref.commit), which the remote lacks")
            heads.remove(ref.commit)
        }
        for (name, ref) in tags.sorted(by: { $0.key < $1.key }) where index[ref.commit] == nil {
            problems.append("tag \(name) names commit \(ref.commit), which the remote lacks")
            heads.remove(ref.commit)
        }
        var generation = Array(heads)
        while !generation.isEmpty {
            var next = Set<ObjectID>()
            for (id, data) in read(generation, { _ in "commit" }) {
                guard let commit = decode(Commit.self, id, data, "commit") else { continue }
                commits[id] = commit
                // A parent the remote lacks: history expired before the push.
                for parent in commit.parents where commits[parent] == nil && index[parent] != nil { next.insert(parent) }
            }
            generation = Array(next.subtracting(commits.keys))
        }
        var manifests: [ObjectID: Manifest] = [:]
        let manifestIDs = Set(commits.values.flatMap { $0.tables.values.map(\.manifest) })
        for (id, data) in read(Array(manifestIDs), { _ in "manifest" }) {
            if let manifest = decode(Manifest.self, id, data, "manifest") { manifests[id] = manifest }
        }
        var small: [ObjectID: String] = [:]
        var recipes = Set<ObjectID>()
        for manifest in manifests.values {
            if let record = manifest.changes?.object { small[record] = "change record" }
            for segment in manifest.segments {
                recipes.insert(segment.recipe)
                if let deletions = segment.deletions?.object { small[deletions] = "deletions of segment \(segment.id)" }
            }
        }
        _ = read(Array(small.keys)) { small[$0] ?? "object" }
        var blobs: [ObjectID: String] = [:]
        for (id, data) in read(Array(recipes), { _ in "recipe" }) {
            guard let recipe = decode(SegmentRecipe.self, id, data, "recipe") else { continue }
            for part in recipe.parts { blobs[part.blob] = "blob of segment \(recipe.segment)" }
        }
        _ = read(Array(blobs.keys)) { blobs[$0] ?? "blob" }
        return RemoteVerifyReport(
            remote: info.name, refsChecked: branches.count + tags.count, objectsChecked: checked, bytesChecked: bytes, problems: problems)
    }
}
