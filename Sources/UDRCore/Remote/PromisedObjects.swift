import Foundation

/// The object store of a repository, which reads what a shallow clone did
/// not fetch from the remote it was cloned from: an object missing here
/// that the remote's packs hold is fetched, checked against its id, stored
/// and returned (a recipe brings its blobs in one go). Everything else is
/// the local store's.
final class PromisingObjectStore: ObjectStore, @unchecked Sendable {
    /// The remote that promises missing objects, and where its pack
    /// indexes are cached; nil when there is none (not a shallow clone).
    typealias Source = @Sendable () throws(UDRError) -> (remote: RemoteRepository, cache: URL)?

    let local: any ObjectStore
    // `source` is set once, right after the repository is made; `index`
    // is guarded by `lock`.
    var source: Source?
    private let lock = NSLock()
    private var index: [ObjectID: RemoteRepository.Location]?

    init(local: any ObjectStore) { self.local = local }

    /// The remote's index (read again when `refresh`), or nil without a promisor.
    private func remoteIndex(refresh: Bool) throws(UDRError) -> (RemoteRepository, [ObjectID: RemoteRepository.Location])? {
        guard let (remote, cache) = try source?() else { return nil }
        if !refresh, let index = lock.withLock({ self.index }) { return (remote, index) }
        let fresh = try awaitBlocking { () async throws(UDRError) in try await remote.index(cache: cache) }
        lock.withLock { index = fresh }
        return (remote, fresh)
    }

    /// Whether the promisor remote holds the object (for `verify`).
    func promised(_ id: ObjectID) throws(UDRError) -> Bool {
        guard let (_, index) = try remoteIndex(refresh: false) else { return false }
        return index[id] != nil
    }

    private func fetch(_ id: ObjectID, after error: UDRError) throws(UDRError) -> Data {
        guard error.code == .missingObject, var (remote, index) = try remoteIndex(refresh: false) else { throw error }
        if index[id] == nil {
            guard let refreshed = try remoteIndex(refresh: true), refreshed.1[id] != nil else { throw error }
            (remote, index) = refreshed
        }
        let (source, known) = (remote, index)
        let loaded = try awaitBlocking { () async throws(UDRError) in try await source.load([id], index: known) }
        let data = loaded[id]!
        var objects = [(id: id, data: data)]
        if let recipe = try? ObjectCoding.decode(SegmentRecipe.self, from: data, id: id) {
            var blobs: [ObjectID] = []
            for part in recipe.parts where try !local.contains(part.blob) && index[part.blob] != nil { blobs.append(part.blob) }
            let wanted = blobs
            let fetched = try awaitBlocking { () async throws(UDRError) in try await source.load(wanted, index: known) }
            objects = fetched.map { (id: $0.key, data: $0.value) } + objects
        }
        _ = try local.put(hashed: objects)
        return data
    }

    func contains(_ id: ObjectID) throws(UDRError) -> Bool { try local.contains(id) }

    func get(_ id: ObjectID) throws(UDRError) -> Data {
        do throws(UDRError) { return try local.get(id) } catch { return try fetch(id, after: error) }
    }

    func getUnchecked(_ id: ObjectID) throws(UDRError) -> Data {
        do throws(UDRError) { return try local.getUnchecked(id) } catch { return try fetch(id, after: error) }
    }

    func size(_ id: ObjectID) throws(UDRError) -> Int64? { try local.size(id) }
    func put(hashed objects: [(id: ObjectID, data: Data)]) throws(UDRError) -> Int64 { try local.put(hashed: objects) }
    func batch() -> any ObjectBatch { local.batch() }
    func list() throws(UDRError) -> [ObjectID] { try local.list() }
    func reusable(_ ids: [ObjectID]) throws(UDRError) -> Set<ObjectID> { try local.reusable(ids) }
    func collect(
        roots: () throws(UDRError) -> GarbageRoots, liveWriters: () throws(UDRError) -> Set<String>, dryRun: Bool
    ) throws(UDRError) -> CollectedGarbage {
        try local.collect(roots: roots, liveWriters: liveWriters, dryRun: dryRun)
    }
    func problems() throws(UDRError) -> [String] { try local.problems() }
}
