import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Objects as files in a local directory: one file per object at
/// `objects/ab/cdef…`, or many objects in one pack under `objects/pack/`
/// (see ``PackFormat``): a put of ``packThreshold`` or more new objects
/// writes one pack. A new file is written under a temporary name, flushed
/// to disk, then renamed into place, so a crash never leaves a partial
/// object under its id.
public struct LocalObjectStore: ObjectStore {
    public let root: URL
    public var objectsDirectory: URL { root.appendingPathComponent("objects") }
    var temporaryDirectory: URL { root.appendingPathComponent("tmp") }
    var packDirectory: String { objectsDirectory.path + "/pack" }
    let packs: PackIndex

    /// From this many new objects on, one put writes them as one pack.
    public static let packThreshold = 16

    /// `root` holds `objects/` and `tmp/`; both are created if missing.
    public init(root: URL) throws(UDRError) {
        self.root = root
        for dir in [root.appendingPathComponent("objects"), root.appendingPathComponent("objects/pack"), root.appendingPathComponent("tmp")] {
            do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
                throw UDRError(.io, "cannot create \(dir.path): \(error.localizedDescription)")
            }
        }
        packs = PackIndex(directory: root.path + "/objects/pack")
    }

    /// A temporary name beside the object's final one: writers spread over
    /// the 256 prefix directories instead of contending for one, and the
    /// rename stays within a directory. The leading dot keeps it out of
    /// ``list()``; GC removes the ones a crash left behind.
    func temporaryPath(_ id: ObjectID) -> String {
        let hex = id.hex
        return objectsDirectory.path + "/" + hex.prefix(2) + "/." + hex.dropFirst(2) + "." + UUID().uuidString + ".tmp"
    }

    func path(_ id: ObjectID) -> String {
        let hex = id.hex
        return objectsDirectory.path + "/" + hex.prefix(2) + "/" + hex.dropFirst(2)
    }

    public func contains(_ id: ObjectID) throws(UDRError) -> Bool {
        access(path(id), F_OK) == 0 || packs.locate(id) != nil
    }

    public func size(_ id: ObjectID) throws(UDRError) -> Int64? {
        var info = stat()
        if stat(path(id), &info) == 0 { return Int64(info.st_size) }
        return packs.locate(id)?.length
    }

    public func getUnchecked(_ id: ObjectID) throws(UDRError) -> Data {
        if let data = FileManager.default.contents(atPath: path(id)) { return data }
        // A pack GC replaced since it was located: locate the object again.
        for _ in 0..<2 {
            guard let location = packs.locate(id) else { break }
            let fd = open(packs.path(location.pack), O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                packs.reload()
                continue
            }
            defer { close(fd) }
            if let data = PackFormat.readRange(fd: fd, offset: location.offset, length: Int(location.length)) { return data }
            throw UDRError(
                .corruptObject, "object \(id) is cut short in pack \(location.pack). The repository is damaged; run `udr verify`.")
        }
        let damage = packs.damage()
        if !damage.isEmpty {
            throw UDRError(
                .corruptObject,
                "object \(id) is not in the object store, and a pack's index is damaged: \(damage.map { "pack \($0.key): \($0.value)" }.sorted().joined(separator: "; ")). Run `udr verify`."
            )
        }
        throw UDRError(
            .missingObject,
            "object \(id) is missing from the object store (\(path(id))). Run `udr verify` to see what else is affected.")
    }

    public func get(_ id: ObjectID) throws(UDRError) -> Data {
        let data = try getUnchecked(id)
        let actual = ObjectID.of(data)
        guard actual == id else {
            throw UDRError(
                .corruptObject,
                "object \(id) is corrupt: its bytes hash to \(actual). The repository is damaged; run `udr verify` and restore the object from a copy of the repository."
            )
        }
        return data
    }

    public func put(hashed objects: [(id: ObjectID, data: Data)]) throws(UDRError) -> Int64 {
        let batch = LocalObjectBatch(store: self)
        try batch.add(objects)
        return try batch.commit()
    }

    public func batch() -> any ObjectBatch { LocalObjectBatch(store: self) }

    /// Whether the object is stored; if so, refreshes its time (its pack's)
    /// so that a concurrent GC spares it. A GC that moved it away meanwhile
    /// makes this false, and the caller writes it anew. A pack in
    /// `refreshed` was refreshed by the caller already (a GC now finds it
    /// recent and puts it back); each newly refreshed one is added.
    func refreshIfPresent(_ id: ObjectID, skipping refreshed: inout Set<String>) -> Bool {
        if utimensat(AT_FDCWD, path(id), nil, 0) == 0 { return true }
        guard let location = packs.known(id) else { return false }
        if refreshed.contains(location.pack) { return true }
        guard utimensat(AT_FDCWD, packs.path(location.pack), nil, 0) == 0 else { return false }
        refreshed.insert(location.pack)
        return true
    }

    /// Writes objects as one pack, whether or not they are stored already
    /// (GC rewriting a pack).
    func writePack(_ objects: [(id: ObjectID, data: Data)]) throws(UDRError) {
        let batch = LocalObjectBatch(store: self, packAlways: true)
        try batch.add(objects)
        _ = try batch.commit()
    }

    /// A new pack's temporary name; the leading dot keeps it from readers.
    func temporaryPackPath() -> String { packDirectory + "/.pack-" + UUID().uuidString + ".tmp" }

    /// Moves a complete, flushed pack file into place under its name.
    func publishPack(_ temp: String, name: String, entries: [PackFormat.Entry]) throws(UDRError) {
        guard rename(temp, packs.path(name)) == 0 else {
            throw UDRError(.io, "cannot move pack \(name) into place: \(String(cString: strerror(errno)))")
        }
        Self.fsyncPath(packDirectory)
        packs.add(name, entries: entries)
    }

    /// Writes objects one file each, on several threads; all are durable
    /// before any is renamed into place, and the names are durable before
    /// this returns.
    func writeLoose(_ objects: [(id: ObjectID, data: Data)]) throws(UDRError) {
        let temps = objects.map { temporaryPath($0.id) }
        defer { for temp in temps { unlink(temp) } }
        var directories = Set<String>()
        for temp in temps {
            let dir = (temp as NSString).deletingLastPathComponent
            if directories.insert(dir).inserted { mkdir(dir, 0o755) }
        }
        let failures = FailureBox()
        let workers = min(8, objects.count)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for index in stride(from: worker, to: objects.count, by: workers) where !failures.failed {
                do throws(UDRError) { try Self.writeFile(temps[index], objects[index].data, sync: true) } catch {
                    failures.record(error)
                }
            }
        }
        if let error = failures.first { throw error }
        for (object, temp) in zip(objects, temps) {
            guard rename(temp, path(object.id)) == 0 else {
                throw UDRError(.io, "cannot move object \(object.id) into place: \(String(cString: strerror(errno)))")
            }
        }
        for dir in directories.union([objectsDirectory.path]) { Self.fsyncPath(dir) }
    }

    public func list() throws(UDRError) -> [ObjectID] {
        var ids = Set<ObjectID>()
        let fm = FileManager.default
        let prefixes: [String]
        do { prefixes = try fm.contentsOfDirectory(atPath: objectsDirectory.path) } catch {
            throw UDRError(.io, "cannot list \(objectsDirectory.path): \(error.localizedDescription)")
        }
        for prefix in prefixes where prefix.count == 2 {
            for name in (try? fm.contentsOfDirectory(atPath: objectsDirectory.path + "/" + prefix)) ?? [] {
                if let id = try? ObjectID(hex: prefix + name) { ids.insert(id) }
            }
        }
        ids.formUnion(packs.all().keys)
        return ids.sorted()
    }

    public func problems() throws(UDRError) -> [String] {
        packs.check().map { "pack \($0.key) is corrupt: \($0.value)" }.sorted()
    }

    /// Removes what interrupted writers left behind (temporary files and
    /// directories) last touched before `cutoff`; returns the bytes freed
    /// (or that would be, with `dryRun`).
    public func removeAbandoned(before cutoff: Date, dryRun: Bool) throws(UDRError) -> Int64 {
        let fm = FileManager.default
        // Temporary objects beside the objects, and anything under tmp/
        // (trash of GC, scratch directories of writes).
        var candidates: [String] = []
        for prefix in (try? fm.contentsOfDirectory(atPath: objectsDirectory.path)) ?? [] where prefix.count == 2 || prefix == "pack" {
            let dir = objectsDirectory.path + "/" + prefix
            for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(".") && name.hasSuffix(".tmp") {
                candidates.append(dir + "/" + name)
            }
        }
        for name in (try? fm.contentsOfDirectory(atPath: temporaryDirectory.path)) ?? [] {
            candidates.append(temporaryDirectory.path + "/" + name)
        }
        var freed: Int64 = 0
        for path in candidates {
            // A directory counts as touched when any file in it was.
            let files = [path] + ((try? fm.subpathsOfDirectory(atPath: path)) ?? []).map { path + "/" + $0 }
            var info = stat()
            var bytes: Int64 = 0
            var touched = false
            for file in files where stat(file, &info) == 0 {
                touched = touched || Self.modified(info) >= cutoff
                if info.st_mode & S_IFMT == S_IFREG { bytes += Int64(info.st_size) }
            }
            guard !touched else { continue }
            if !dryRun { try? fm.removeItem(atPath: path) }
            freed += bytes
        }
        return freed
    }

    public func reusable(_ ids: [ObjectID]) throws(UDRError) -> Set<ObjectID> {
        packs.reload()
        var refreshed = Set<String>()
        var out = Set<ObjectID>()
        for id in ids where refreshIfPresent(id, skipping: &refreshed) { out.insert(id) }
        return out
    }

    /// Deletes every object outside the roots last written before the
    /// cutoff. A writer that stores an object present already refreshes
    /// its time (``refreshIfPresent(_:skipping:)``), and a deletion
    /// moves the file out of reach before checking its time, so an object
    /// a writer counts on is either refreshed in time or written anew.
    public func collect(
        roots: () throws(UDRError) -> GarbageRoots, liveWriters: () throws(UDRError) -> Set<String>, dryRun: Bool
    ) throws(UDRError) -> CollectedGarbage {
        // Roots first, objects second: anything written after the roots
        // were read is younger than the cutoff or refreshed.
        let roots = try roots()
        let all = try list()
        var out = CollectedGarbage()
        out.scanned = all.count
        var doomed: [ObjectID] = []
        for id in all where !roots.reachable.contains(id) {
            guard let modified = try modificationTime(id) else { continue }
            if modified >= roots.cutoff || roots.spared.contains(id) {
                out.waiting += 1
                out.waitingBytes += try size(id) ?? 0
            } else if dryRun {
                out.deleted += 1
                out.freed += try size(id) ?? 0
            } else {
                doomed.append(id)
            }
        }
        if !doomed.isEmpty {
            let gone = try delete(doomed, unlessModifiedSince: roots.cutoff)
            out.deleted += gone.objects
            out.freed += gone.bytes
        }
        // Temporary files of running writes are younger than the cutoff.
        out.abandonedBytes = try removeAbandoned(before: roots.cutoff, dryRun: dryRun)
        return out
    }

    /// When the object was last written, or last stored again by a writer
    /// that found it present (nil when absent).
    public func modificationTime(_ id: ObjectID) throws(UDRError) -> Date? {
        var info = stat()
        if stat(path(id), &info) == 0 { return Self.modified(info) }
        guard let location = packs.locate(id), stat(packs.path(location.pack), &info) == 0 else { return nil }
        return Self.modified(info)
    }

    /// Deletes objects, each unless it was written or stored again at or
    /// after `cutoff` (checked after it is out of readers' and writers'
    /// reach, so a writer storing it concurrently keeps it). Returns how
    /// many objects went and the bytes freed.
    public func delete(_ ids: [ObjectID], unlessModifiedSince cutoff: Date) throws(UDRError) -> (objects: Int, bytes: Int64) {
        var deleted = 0
        var freed: Int64 = 0
        var packed: [String: Set<ObjectID>] = [:]
        let located = packs.all()
        for id in ids {
            if let bytes = removeOutOfReach(path(id), unlessModifiedSince: cutoff) {
                deleted += 1
                freed += bytes
            } else if let location = located[id] {
                packed[location.pack, default: []].insert(id)
            }
        }
        // A pack goes when all its objects go; one that keeps some is
        // rewritten with those first, so readers always find them.
        for (pack, dead) in packed.sorted(by: { $0.key < $1.key }) {
            let entries = packs.entries(of: pack)
            let kept = entries.filter { !dead.contains($0.id) }
            if !kept.isEmpty {
                var objects: [(id: ObjectID, data: Data)] = []
                for entry in kept { objects.append((entry.id, try getUnchecked(entry.id))) }
                try writePack(objects)
            }
            guard removeOutOfReach(packs.path(pack), unlessModifiedSince: cutoff) != nil else { continue }
            let gone = entries.filter { dead.contains($0.id) }
            deleted += gone.count
            freed += gone.reduce(Int64(0)) { $0 + $1.length }
        }
        if !packed.isEmpty {
            Self.fsyncPath(packDirectory)
            packs.reload()
        }
        return (deleted, freed)
    }

    /// Removes a file unless it was written or refreshed at or after
    /// `cutoff`; returns its size, nil when it was kept or absent.
    private func removeOutOfReach(_ source: String, unlessModifiedSince cutoff: Date) -> Int64? {
        let trash = temporaryDirectory.path + "/" + (source as NSString).lastPathComponent + ".gc." + UUID().uuidString
        // Out of reach first: from here a writer storing an object in it
        // finds it absent and writes it anew; one that refreshed it just
        // before left a recent time, and the file goes back.
        guard rename(source, trash) == 0 else { return nil }
        var info = stat()
        guard stat(trash, &info) == 0 else { return nil }
        if Self.modified(info) >= cutoff {
            if access(source, F_OK) == 0 || rename(trash, source) != 0 { unlink(trash) }
            return nil
        }
        unlink(trash)
        return Int64(info.st_size)
    }

    /// Writes a new file; with `sync`, flushes it to disk before returning.
    static func writeFile(_ path: String, _ data: Data, sync: Bool = false) throws(UDRError) {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw UDRError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try writeAll(fd, data, path: path)
        if sync, fsync(fd) != 0 { throw UDRError(.io, "cannot flush \(path) to disk: \(String(cString: strerror(errno)))") }
    }

    /// Writes all of `data` at the file's current offset.
    static func writeAll(_ fd: Int32, _ data: Data, path: String) throws(UDRError) {
        let failure: Int32? = data.withUnsafeBytes { buffer -> Int32? in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += n
            }
            return nil
        }
        if let failure { throw UDRError(.io, "cannot write \(path): \(String(cString: strerror(failure)))") }
    }

    static func modified(_ info: stat) -> Date {
        Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
    }

    static func fsyncPath(_ path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
