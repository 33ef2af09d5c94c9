import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A repository's objects in remote storage: an S3 bucket prefix
/// (`s3://bucket/prefix`) or a directory on a shared file system. Objects
/// are kept in packs (``PackFormat``), one or a few per write, because a
/// request costs far more than a byte:
///
/// - `udr-store.json`: the marker (format, and the repository it belongs to).
/// - `packs/NAME.pack` (objects, then index and trailer) and `packs/NAME.idx`
///   (the index and trailer again), `NAME` being the index's hash and a
///   nonce, so that no two writes ever share a pack. A write uploads its
///   packs as it goes and their indexes when it commits: an index makes
///   its pack's objects visible, all of them complete.
/// - `gc/doomed/NAME`: pack `NAME` is doomed; writers do not count on it.
/// - `gc/runs/ID.json`: the packs one GC run doomed, and the writers (write
///   leases and transactions) live right after it doomed them.
///
/// GC cannot refresh an object's time when a writer finds it present (S3
/// has no cheap touch), so it deletes in two steps. It first dooms a pack
/// (after copying the objects it must keep into a new pack), then records
/// the writers live at that instant. A writer that begins later lists the
/// doomed packs before it counts on an object being stored, and stores
/// again an object it finds only in a doomed pack. A later GC run deletes a
/// doomed pack once every writer its run recorded has ended, and before
/// that copies out any of its objects that became reachable meanwhile (a
/// writer recorded by the run counted on them). Clocks play no part in
/// this. The storage's times only decide which packs are old enough to
/// doom (the grace period), and which packs without an index a writer
/// abandoned (older than the cutoff by an hour, for clocks that differ).
/// Each read is checked against its id; an object read once is kept in a
/// local cache.
public final class PackedObjectStore: ObjectStore, @unchecked Sendable {
    // @unchecked: the mutable state is guarded by `lock`.
    public let storage: any RemoteStorage
    /// Pack indexes read before, and objects read before (small ones).
    let cache: URL
    static let markerKey = "udr-store.json"
    static let format = 1
    /// A write uploads a pack each time this many new bytes are waiting.
    static let packTarget = 64 << 20
    /// Objects up to this size are kept in the local cache once read.
    static let cachedObjectLimit = 4 << 20

    struct Marker: Codable {
        let format: Int
        let repository: String
    }

    struct Pack {
        let entries: [PackFormat.Entry]
        let modified: Date
    }

    /// One GC run's doomed packs, and the writers live right after.
    struct Run: Codable {
        let packs: [String]
        let writers: [String]
        /// When (for people reading the record).
        let marked: String
    }

    private let lock = NSLock()
    private var loaded = false
    private var packs: [String: Pack] = [:]
    /// Every object's place; one in a pack that is not doomed when there is one.
    private var locations: [ObjectID: RemoteRepository.Location] = [:]
    private var doomed = Set<String>()
    private var damaged: [String: String] = [:]

    var what: String { "the object store \(storage.location)" }

    init(storage: any RemoteStorage, cache: URL) {
        self.storage = storage
        self.cache = cache
    }

    /// Opens the store at `storage`; with `creating`, makes an empty
    /// location one (a location holding anything else is refused: a store
    /// belongs to one repository, whose catalog says what it reaches).
    public static func open(_ storage: any RemoteStorage, cache: URL, creating: Bool) throws(UDRError) -> PackedObjectStore {
        let store = PackedObjectStore(storage: storage, cache: cache)
        try awaitBlocking { () async throws(UDRError) in
            if creating {
                let present = try await storage.list("")
                guard present.isEmpty else {
                    throw UDRError(
                        .alreadyExists,
                        "\(storage.location) is not empty (it holds \(present.prefix(3).joined(separator: ", "))); a repository's object store needs a location of its own"
                    )
                }
                let marker = try ObjectCoding.encode(Marker(format: Self.format, repository: UUID().uuidString.lowercased()))
                guard try await storage.write(Self.markerKey, marker, if: .absent) else {
                    throw UDRError(.alreadyExists, "another repository took \(storage.location) at the same instant; use another location")
                }
                return
            }
            guard let value = try await storage.read(Self.markerKey) else {
                throw UDRError(.notARepository, "\(storage.location) is not a UDR object store (it has no \(Self.markerKey))")
            }
            guard let marker = try? JSONDecoder().decode(Marker.self, from: value.data) else {
                throw UDRError(.invalidInput, "\(storage.location) has a \(Self.markerKey) that UDR cannot read; it is not a UDR object store")
            }
            guard marker.format <= Self.format else {
                throw UDRError(
                    .unsupportedType, "\(storage.location) is a UDR object store of format \(marker.format); this udr reads format \(Self.format). Upgrade udr.")
            }
        }
        for dir in ["idx", "objects"] {
            try? FileManager.default.createDirectory(at: cache.appendingPathComponent(dir), withIntermediateDirectories: true)
        }
        return store
    }

    // MARK: The index

    /// Brings the index up to date with the storage: new packs' indexes
    /// (from the cache when read before), packs gone, and the doomed ones.
    func reload() throws(UDRError) {
        let storage = self.storage
        // The doomed packs first, then the packs: a pack listed after its
        // mark was found absent is not swept (a sweep removes the index
        // before the mark), and a doom after that records this writer.
        let (doomedKeys, keys) = try awaitBlocking { () async throws(UDRError) in
            let doomed = try await storage.list("gc/doomed/")
            return (doomed, try await storage.listKeys("packs/"))
        }
        var packFiles: [String: Date] = [:]
        var indexes = Set<String>()
        for key in keys {
            let name = String(key.key.dropFirst("packs/".count))
            if name.hasSuffix(".pack") { packFiles[String(name.dropLast(5))] = key.modified }
            if name.hasSuffix(".idx") { indexes.insert(String(name.dropLast(4))) }
        }
        let known = lock.withLock { Set(packs.keys).union(damaged.keys) }
        var read: [String: Result<[PackFormat.Entry], PackDamage>] = [:]
        for name in indexes.subtracting(known).sorted() where packFiles[name] != nil {
            let cached = cache.appendingPathComponent("idx/\(name).idx")
            if let tail = FileManager.default.contents(atPath: cached.path),
                let entries = try? PackFormat.entries(tail: tail, name: Self.hashPart(name), dataEnd: nil)
            {
                read[name] = .success(entries)
                continue
            }
            guard let value = try awaitBlocking({ () async throws(UDRError) in try await storage.read("packs/\(name).idx") }) else { continue }
            read[name] = Result { () throws(PackDamage) in try PackFormat.entries(tail: value.data, name: Self.hashPart(name), dataEnd: nil) }
            if case .success = read[name] { try? value.data.write(to: cached, options: .atomic) }
        }
        let doomedNow = Set(doomedKeys.map { String($0.dropFirst("gc/doomed/".count)) })
        lock.withLock {
            loaded = true
            doomed = doomedNow
            for (name, result) in read {
                switch result {
                case .success(let entries): packs[name] = Pack(entries: entries, modified: packFiles[name] ?? .distantPast)
                case .failure(let damage): damaged[name] = damage.message
                }
            }
            packs = packs.filter { indexes.contains($0.key) && packFiles[$0.key] != nil }
            damaged = damaged.filter { indexes.contains($0.key) }
            relocate()
        }
    }

    /// The pack name's index hash (before the nonce).
    static func hashPart(_ name: String) -> String { String(name.prefix { $0 != "-" }) }

    /// Rebuilds `locations`, preferring packs that are not doomed; the
    /// caller holds `lock`.
    private func relocate() {
        locations = [:]
        for (name, pack) in packs where doomed.contains(name) { place(name, pack.entries) }
        for (name, pack) in packs where !doomed.contains(name) { place(name, pack.entries) }
    }

    private func place(_ name: String, _ entries: [PackFormat.Entry]) {
        for entry in entries { locations[entry.id] = RemoteRepository.Location(pack: name, offset: entry.offset, length: entry.length) }
    }

    private func loadIfNeeded() throws(UDRError) {
        if !lock.withLock({ loaded }) { try reload() }
    }

    /// Where an object is; the index is read again once when it is not known.
    func locate(_ id: ObjectID) throws(UDRError) -> RemoteRepository.Location? {
        try loadIfNeeded()
        if let found = lock.withLock({ locations[id] }) { return found }
        try reload()
        return lock.withLock { locations[id] }
    }

    /// Records packs this process has just made visible.
    private func added(_ made: [(name: String, entries: [PackFormat.Entry])]) {
        lock.withLock {
            for (name, entries) in made {
                packs[name] = Pack(entries: entries, modified: Date())
                place(name, entries)
            }
        }
    }

    // MARK: ObjectStore

    public func contains(_ id: ObjectID) throws(UDRError) -> Bool { try locate(id) != nil }

    public func size(_ id: ObjectID) throws(UDRError) -> Int64? { try locate(id)?.length }

    func cachedPath(_ id: ObjectID) -> String {
        cache.appendingPathComponent("objects").path + "/" + id.hex
    }

    public func get(_ id: ObjectID) throws(UDRError) -> Data {
        let data = try getUnchecked(id)
        let actual = ObjectID.of(data)
        guard actual == id else {
            try? FileManager.default.removeItem(atPath: cachedPath(id))
            throw UDRError(
                .corruptObject,
                "object \(id) in \(what) is corrupt: its bytes hash to \(actual). The repository is damaged; run `udr verify`.")
        }
        if data.count <= Self.cachedObjectLimit, !FileManager.default.fileExists(atPath: cachedPath(id)) {
            let temp = cachedPath(id) + "." + UUID().uuidString + ".tmp"
            if FileManager.default.createFile(atPath: temp, contents: data) { rename(temp, cachedPath(id)) }
        }
        return data
    }

    /// Reads the objects not cached in coalesced ranged requests (a
    /// segment's blobs lie side by side in one pack), each checked.
    public func get(many ids: [ObjectID]) throws(UDRError) -> [Data] {
        var found: [ObjectID: Data] = [:]
        var wanted: [(ObjectID, RemoteRepository.Location)] = []
        for id in Set(ids) {
            if let data = FileManager.default.contents(atPath: cachedPath(id)), ObjectID.of(data) == id {
                found[id] = data
            } else if let location = try locate(id) {
                wanted.append((id, location))
            } else {
                found[id] = try get(id)
            }
        }
        if !wanted.isEmpty {
            let (storage, what, request) = (self.storage, self.what, wanted)
            do throws(UDRError) {
                let read = try awaitBlocking { () async throws(UDRError) in try await RemoteRepository.read(request, from: storage, what: what) }
                found.merge(read) { a, _ in a }
            } catch {
                // A pack GC replaced meanwhile: one object at a time, located again.
                guard error.code == .missingObject else { throw error }
                for (id, _) in wanted { found[id] = try get(id) }
            }
        }
        return ids.map { found[$0]! }
    }

    public func getUnchecked(_ id: ObjectID) throws(UDRError) -> Data {
        if let data = FileManager.default.contents(atPath: cachedPath(id)) { return data }
        // A pack GC replaced since it was located: locate the object again.
        var location = try locate(id)
        for attempt in 0..<2 {
            guard let found = location else { break }
            let storage = self.storage
            do throws(UDRError) {
                return try awaitBlocking { () async throws(UDRError) in
                    try await storage.read("packs/\(found.pack).pack", range: found.offset..<(found.offset + found.length))
                }
            } catch {
                guard error.code == .missingObject, attempt == 0 else { throw error }
                try reload()
                location = lock.withLock { locations[id] }
            }
        }
        let damage = lock.withLock { damaged }
        if !damage.isEmpty {
            throw UDRError(
                .corruptObject,
                "object \(id) is not in \(what), and a pack's index is damaged: \(damage.map { "pack \($0.key): \($0.value)" }.sorted().joined(separator: "; ")). Run `udr verify`."
            )
        }
        throw UDRError(.missingObject, "object \(id) is missing from \(what). Run `udr verify` to see what else is affected.")
    }

    public func put(hashed objects: [(id: ObjectID, data: Data)]) throws(UDRError) -> Int64 {
        let batch = PackedObjectBatch(store: self)
        try batch.add(objects)
        return try batch.commit()
    }

    public func batch() -> any ObjectBatch { PackedObjectBatch(store: self) }

    public func list() throws(UDRError) -> [ObjectID] {
        try reload()
        return lock.withLock { Array(locations.keys) }.sorted()
    }

    /// Stored in a pack that is not doomed, by the list of doomed packs as
    /// it is now (read after the caller's lease or transaction began).
    public func reusable(_ ids: [ObjectID]) throws(UDRError) -> Set<ObjectID> {
        try reload()
        return Set(lock.withLock { undoomed(ids) }.keys)
    }

    /// The packs not doomed that hold those of `ids` the index knows; the
    /// caller holds `lock`.
    private func undoomed(_ ids: [ObjectID]) -> [ObjectID: String] {
        var out: [ObjectID: String] = [:]
        for id in ids {
            if let location = locations[id], !doomed.contains(location.pack) { out[id] = location.pack }
        }
        return out
    }

    /// Which of `ids` are in packs not doomed and still there. The doomed
    /// list is read again first (with `listDoomed`: once per batch, after
    /// it began), then each pack's index not in `confirmed` is looked up.
    /// A sweep removes a pack's index before its mark, so a pack whose mark
    /// was absent and whose index is found after was not swept, and a doom
    /// after that records the caller's lease among its writers.
    func stillStored(_ ids: [ObjectID], listDoomed: Bool, confirmed: inout Set<String>) throws(UDRError) -> Set<ObjectID> {
        let storage = self.storage
        if listDoomed {
            let doomedKeys = try awaitBlocking { () async throws(UDRError) in try await storage.list("gc/doomed/") }
            let doomedNow = Set(doomedKeys.map { String($0.dropFirst("gc/doomed/".count)) })
            lock.withLock {
                if doomedNow != doomed {
                    doomed = doomedNow
                    relocate()
                }
            }
        }
        let candidates = lock.withLock { undoomed(ids) }
        let unconfirmed = Set(candidates.values).subtracting(confirmed).sorted()
        let found = try awaitBlocking { () async throws(UDRError) -> Set<String> in
            var found = Set<String>()
            for pack in unconfirmed where try await storage.exists("packs/\(pack).idx") { found.insert(pack) }
            return found
        }
        confirmed.formUnion(found)
        if found.count < unconfirmed.count { try reload() }
        return Set(candidates.filter { confirmed.contains($0.value) }.keys)
    }

    /// Objects known to be in packs that are not doomed (no request).
    func knownStored(_ ids: [ObjectID]) -> [ObjectID] {
        lock.withLock { () -> [ObjectID] in
            let found = undoomed(ids)
            return ids.filter { found[$0] != nil }
        }
    }

    public func problems() throws(UDRError) -> [String] {
        try reload()
        return lock.withLock { damaged.map { "pack \($0.key) of \(what) is corrupt: \($0.value)" }.sorted() }
    }

    /// Uploads objects as one pack under a fresh name, without its index
    /// (the objects are not visible yet); returns its name and entries.
    func uploadPack(_ objects: [(id: ObjectID, data: Data)]) throws(UDRError) -> (name: String, entries: [PackFormat.Entry], tail: Data) {
        var body = Data(capacity: objects.reduce(0) { $0 + $1.data.count } + objects.count * PackFormat.entrySize + PackFormat.trailerSize)
        var entries: [PackFormat.Entry] = []
        for (id, data) in objects {
            entries.append(PackFormat.Entry(id: id, offset: Int64(body.count), length: Int64(data.count)))
            body.append(data)
        }
        let (hash, tail) = PackFormat.tail(entries)
        body.append(tail)
        let name = hash + "-" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let (storage, data) = (self.storage, body)
        _ = try awaitBlocking { () async throws(UDRError) in try await storage.write("packs/\(name).pack", data, if: .absent) }
        return (name, entries, tail)
    }

    /// Makes uploaded packs visible by writing their indexes.
    func publish(_ made: [(name: String, entries: [PackFormat.Entry], tail: Data)]) throws(UDRError) {
        let storage = self.storage
        let indexes = made.map { ($0.name, $0.tail) }
        try awaitBlocking { () async throws(UDRError) in
            for (name, tail) in indexes { _ = try await storage.write("packs/\(name).idx", tail, if: .absent) }
        }
        for (name, _, tail) in made { try? tail.write(to: cache.appendingPathComponent("idx/\(name).idx"), options: .atomic) }
        added(made.map { ($0.name, $0.entries) })
    }

    /// Writes objects (read from the store) into a new visible pack.
    private func copy(_ ids: [ObjectID]) throws(UDRError) {
        guard !ids.isEmpty else { return }
        let wanted = lock.withLock { ids.compactMap { id in locations[id].map { (id, $0) } } }
        let (storage, what) = (self.storage, self.what)
        let read = try awaitBlocking { () async throws(UDRError) in try await RemoteRepository.read(wanted, from: storage, what: what) }
        var objects: [(id: ObjectID, data: Data)] = []
        for id in ids { if let data = read[id] { objects.append((id, data)) } }
        try publish([try uploadPack(objects)])
    }

    // MARK: Garbage collection

    public func collect(
        roots: () throws(UDRError) -> GarbageRoots, liveWriters: () throws(UDRError) -> Set<String>, dryRun: Bool
    ) throws(UDRError) -> CollectedGarbage {
        var out = try collectOnce(roots: roots, liveWriters: liveWriters, dryRun: dryRun)
        // No writer was live when this run doomed its packs: none can
        // count on them, so a second pass deletes them at once.
        if out.doomedWithoutWriters, !dryRun {
            let second = try collectOnce(roots: roots, liveWriters: liveWriters, dryRun: dryRun)
            out.result.deleted += second.result.deleted
            out.result.freed += second.result.freed
            out.result.waiting = second.result.waiting
            out.result.waitingBytes = second.result.waitingBytes
            out.result.abandonedBytes += second.result.abandonedBytes
        }
        return out.result
    }

    private func collectOnce(
        roots: () throws(UDRError) -> GarbageRoots, liveWriters: () throws(UDRError) -> Set<String>, dryRun: Bool
    ) throws(UDRError) -> (result: CollectedGarbage, doomedWithoutWriters: Bool) {
        let storage = self.storage
        // 1. Runs whose writers have all ended, decided before the roots
        //    are read: whatever those writers committed is then a root.
        let runKeys = try awaitBlocking { () async throws(UDRError) in try await storage.list("gc/runs/") }
        var runs: [(key: String, run: Run)] = []
        for key in runKeys where key.hasSuffix(".json") {
            guard let value = try awaitBlocking({ () async throws(UDRError) in try await storage.read(key) }) else { continue }
            guard let run = try? JSONDecoder().decode(Run.self, from: value.data) else {
                throw UDRError(.corruptObject, "\(what) holds a GC record \(key) that UDR cannot read; remove it only if no GC is running")
            }
            runs.append((key, run))
        }
        let live = try liveWriters()
        let ready = runs.filter { live.isDisjoint(with: $0.run.writers) }
        // 2. The roots, then the packs as they are now.
        let roots = try roots()
        try reload()
        let (packs, doomed) = lock.withLock { (self.packs, self.doomed) }
        var out = CollectedGarbage()
        out.scanned = Set(packs.values.flatMap { $0.entries.map(\.id) }).count
        // Where each object is kept by a pack that stays.
        func keptElsewhere(_ id: ObjectID, leaving gone: Set<String>) -> Bool {
            guard let location = lock.withLock({ locations[id] }) else { return false }
            return !gone.contains(location.pack) && !doomed.contains(location.pack)
        }
        // 3. Delete the packs of ready runs, after copying out what must stay.
        let sweeping = Set(ready.flatMap(\.run.packs)).intersection(packs.keys)
        var rescue: [ObjectID] = []
        for name in sweeping.sorted() {
            for entry in packs[name]!.entries where roots.keeps(entry.id) && !keptElsewhere(entry.id, leaving: sweeping) {
                rescue.append(entry.id)
            }
        }
        let rescued = Set(rescue)
        if !dryRun {
            try copy(Array(rescued))
            let keys = Set(ready.flatMap(\.run.packs)).sorted().flatMap { ["packs/\($0).idx", "packs/\($0).pack", "gc/doomed/\($0)"] }
            let finished = ready.map(\.key)
            try awaitBlocking { () async throws(UDRError) in
                // Indexes first: a pack without its index is invisible.
                try await storage.delete(keys.filter { $0.hasSuffix(".idx") })
                try await storage.delete(keys.filter { !$0.hasSuffix(".idx") })
                try await storage.delete(finished)
            }
        }
        for name in sweeping {
            for entry in packs[name]!.entries where !rescued.contains(entry.id) && !roots.keeps(entry.id) {
                out.deleted += 1
                out.freed += entry.length
            }
        }
        // 4. Doom old packs holding garbage, after copying what they keep.
        //    Packs doomed by a run that died before recording itself are
        //    doomed again by this one.
        let named = Set(runs.flatMap(\.run.packs))
        var dooming: [String] = []
        for (name, pack) in packs where !sweeping.contains(name) {
            if doomed.contains(name) {
                if !named.contains(name) { dooming.append(name) }
            } else if pack.modified < roots.cutoff, pack.entries.contains(where: { !roots.keeps($0.id) }) {
                dooming.append(name)
            }
        }
        dooming.sort()
        for (name, pack) in packs where !sweeping.contains(name) {
            for entry in pack.entries where !roots.keeps(entry.id) {
                out.waiting += 1
                out.waitingBytes += entry.length
            }
        }
        var doomedWithoutWriters = false
        if !dryRun, !dooming.isEmpty {
            let leaving = Set(dooming)
            var keep: [ObjectID] = []
            var seen = Set<ObjectID>()
            for name in dooming {
                for entry in packs[name]!.entries where roots.keeps(entry.id) && !keptElsewhere(entry.id, leaving: leaving) {
                    if seen.insert(entry.id).inserted { keep.append(entry.id) }
                }
            }
            try copy(keep)
            let marks = dooming
            try awaitBlocking { () async throws(UDRError) in
                for name in marks { _ = try await storage.write("gc/doomed/\(name)", Data(), if: .always) }
            }
            // Writers live now may have counted on these packs; any later
            // one lists the doomed packs first.
            let writers = try liveWriters()
            let run = try ObjectCoding.encode(Run(packs: marks, writers: writers.sorted(), marked: Timestamp.format(Date())))
            let key = "gc/runs/\(Timestamp.format(Date()).filter { $0.isNumber })-\(UUID().uuidString.lowercased().prefix(8)).json"
            _ = try awaitBlocking { () async throws(UDRError) in try await storage.write(key, run, if: .absent) }
            lock.withLock {
                self.doomed.formUnion(marks)
                relocate()
            }
            doomedWithoutWriters = writers.isEmpty
        }
        // 5. Packs whose writer died before publishing their index.
        out.abandonedBytes = try removeAbandoned(before: min(roots.cutoff, Date().addingTimeInterval(-3600)), dryRun: dryRun)
        return (out, doomedWithoutWriters)
    }

    /// Deletes packs without an index last written before `cutoff` (a
    /// writer died before it committed).
    private func removeAbandoned(before cutoff: Date, dryRun: Bool) throws(UDRError) -> Int64 {
        let storage = self.storage
        let keys = try awaitBlocking { () async throws(UDRError) in try await storage.listKeys("packs/") }
        let indexes = Set(keys.filter { $0.key.hasSuffix(".idx") }.map { $0.key.dropLast(4) })
        var doomedKeys: [String] = []
        var freed: Int64 = 0
        for key in keys where key.key.hasSuffix(".pack") && key.modified < cutoff && !indexes.contains(key.key.dropLast(5)) {
            doomedKeys.append(key.key)
            freed += key.size
        }
        if !dryRun, !doomedKeys.isEmpty {
            let abandoned = doomedKeys
            try awaitBlocking { () async throws(UDRError) in try await storage.delete(abandoned) }
        }
        return freed
    }
}

/// A packed store's batch: new objects are held until ``PackedObjectStore/packTarget``
/// bytes wait, then uploaded as a pack without its index; `commit()`
/// uploads the rest and then every pack's index, which makes them visible.
/// An object the store holds already is not sent again, unless it is only
/// in a doomed pack or its pack is gone (the doomed list is read once,
/// after the batch began, when the batch first finds objects stored; then
/// each pack it counts on is looked up once).
final class PackedObjectBatch: ObjectBatch, @unchecked Sendable {
    // @unchecked: used by one writer at a time.
    private let store: PackedObjectStore
    private var seen = Set<ObjectID>()
    private var held: [(id: ObjectID, data: Data)] = []
    private var heldBytes = 0
    private var uploaded: [(name: String, entries: [PackFormat.Entry], tail: Data)] = []
    private var added: Int64 = 0
    private var checkedDoomed = false
    /// Packs this batch found not doomed and still there.
    private var confirmed = Set<String>()
    private var done = false

    init(store: PackedObjectStore) { self.store = store }

    func add(_ objects: [(id: ObjectID, data: Data)]) throws(UDRError) {
        let fresh = objects.filter { seen.insert($0.id).inserted }
        var present = Set(store.knownStored(fresh.map(\.id)))
        if !present.isEmpty {
            present = try store.stillStored(Array(present), listDoomed: !checkedDoomed, confirmed: &confirmed)
            checkedDoomed = true
        }
        for object in fresh where !present.contains(object.id) {
            held.append(object)
            heldBytes += object.data.count
            added += Int64(object.data.count)
            if heldBytes >= PackedObjectStore.packTarget { try flush() }
        }
    }

    private func flush() throws(UDRError) {
        guard !held.isEmpty else { return }
        uploaded.append(try store.uploadPack(held))
        held = []
        heldBytes = 0
    }

    func commit() throws(UDRError) -> Int64 {
        precondition(!done, "a batch commits once")
        done = true
        try flush()
        if !uploaded.isEmpty { try store.publish(uploaded) }
        return added
    }
}
