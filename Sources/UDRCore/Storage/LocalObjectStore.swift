import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Objects as files in a local directory: `objects/ab/cdef…`. A new object is
/// written under `tmp/`, flushed to disk, then renamed into place, so a
/// crash never leaves a partial object under its id.
public struct LocalObjectStore: ObjectStore {
    public let root: URL
    public var objectsDirectory: URL { root.appendingPathComponent("objects") }
    var temporaryDirectory: URL { root.appendingPathComponent("tmp") }

    /// `root` holds `objects/` and `tmp/`; both are created if missing.
    public init(root: URL) throws(UDRError) {
        self.root = root
        for dir in [root.appendingPathComponent("objects"), root.appendingPathComponent("tmp")] {
            do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
                throw UDRError(.io, "cannot create \(dir.path): \(error.localizedDescription)")
            }
        }
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
        access(path(id), F_OK) == 0
    }

    public func size(_ id: ObjectID) throws(UDRError) -> Int64? {
        var info = stat()
        guard stat(path(id), &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    public func getUnchecked(_ id: ObjectID) throws(UDRError) -> Data {
        guard let data = FileManager.default.contents(atPath: path(id)) else {
            throw UDRError(
                .missingObject,
                "object \(id) is missing from the object store (\(path(id))). Run `udr verify` to see what else is affected.")
        }
        return data
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
        var seen = Set<ObjectID>()
        var pending: [(id: ObjectID, data: Data, temp: String)] = []
        for object in objects where !seen.contains(object.id) {
            seen.insert(object.id)
            // Present: refresh its time so a concurrent GC spares it. A GC
            // that moved it away meanwhile makes this fail; write it anew.
            if utimensat(AT_FDCWD, path(object.id), nil, 0) == 0 { continue }
            pending.append((object.id, object.data, temporaryPath(object.id)))
        }
        if pending.isEmpty { return 0 }
        defer { for object in pending { unlink(object.temp) } }
        var directories = Set<String>()
        for object in pending {
            let dir = (object.temp as NSString).deletingLastPathComponent
            if directories.insert(dir).inserted { mkdir(dir, 0o755) }
        }
        // Temporary files are written on several threads and all are
        // durable before any is renamed into place. Many objects are made
        // durable by one flush of the file system (one journal commit, not
        // one per file: 5.5x faster for the benchmark's 3,762 objects);
        // few objects, or a system without syncfs(2), flush file by file.
        let flushWhole = pending.count >= Self.fileSystemFlushThreshold && FileSystemFlush.available
        let failures = FailureBox()
        let workers = min(8, pending.count)
        let snapshot = pending
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for index in stride(from: worker, to: snapshot.count, by: workers) where !failures.failed {
                do throws(UDRError) { try Self.writeFile(snapshot[index].temp, snapshot[index].data, sync: !flushWhole) } catch {
                    failures.record(error)
                }
            }
        }
        if let error = failures.first { throw error }
        if flushWhole { try FileSystemFlush.flush(objectsDirectory.path) }
        for object in pending {
            guard rename(object.temp, path(object.id)) == 0 else {
                throw UDRError(.io, "cannot move object \(object.id) into place: \(String(cString: strerror(errno)))")
            }
        }
        let added = pending.reduce(Int64(0)) { $0 + Int64($1.data.count) }
        pending.removeAll()
        if flushWhole {
            try FileSystemFlush.flush(objectsDirectory.path)
        } else {
            // Directory flushes, like file flushes, overlap on several threads.
            let flushed = Array(directories.union([objectsDirectory.path]))
            let flushers = min(8, flushed.count)
            DispatchQueue.concurrentPerform(iterations: flushers) { worker in
                for index in stride(from: worker, to: flushed.count, by: flushers) { Self.fsyncPath(flushed[index]) }
            }
        }
        return added
    }

    public func list() throws(UDRError) -> [ObjectID] {
        var ids: [ObjectID] = []
        let fm = FileManager.default
        let prefixes: [String]
        do { prefixes = try fm.contentsOfDirectory(atPath: objectsDirectory.path) } catch {
            throw UDRError(.io, "cannot list \(objectsDirectory.path): \(error.localizedDescription)")
        }
        for prefix in prefixes.sorted() where prefix.count == 2 {
            let names = (try? fm.contentsOfDirectory(atPath: objectsDirectory.path + "/" + prefix)) ?? []
            for name in names.sorted() {
                if let id = try? ObjectID(hex: prefix + name) { ids.append(id) }
            }
        }
        return ids
    }

    public func removeAbandoned(before cutoff: Date, dryRun: Bool) throws(UDRError) -> Int64 {
        let fm = FileManager.default
        // Temporary objects beside the objects, and anything under tmp/
        // (trash of GC, scratch directories of writes).
        var candidates: [String] = []
        for prefix in (try? fm.contentsOfDirectory(atPath: objectsDirectory.path)) ?? [] where prefix.count == 2 {
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

    public func modificationTime(_ id: ObjectID) throws(UDRError) -> Date? {
        var info = stat()
        guard stat(path(id), &info) == 0 else { return nil }
        return Self.modified(info)
    }

    public func delete(_ id: ObjectID, unlessModifiedSince cutoff: Date) throws(UDRError) -> Int64? {
        let source = path(id)
        let trash = temporaryDirectory.path + "/" + id.hex + ".gc." + UUID().uuidString
        // Out of reach first: from here a writer storing the object finds
        // it absent and writes it anew; one that refreshed it just before
        // left a recent time, and the object goes back.
        guard rename(source, trash) == 0 else { return nil }
        var info = stat()
        guard stat(trash, &info) == 0 else { return nil }
        let modified = Self.modified(info)
        if modified >= cutoff {
            if access(source, F_OK) == 0 || rename(trash, source) != 0 { unlink(trash) }
            return nil
        }
        guard unlink(trash) == 0 else { throw UDRError(.io, "cannot delete \(trash): \(String(cString: strerror(errno)))") }
        return Int64(info.st_size)
    }

    /// From this many new objects on, one put flushes the whole file system
    /// instead of each file and directory.
    static let fileSystemFlushThreshold = 16

    /// Writes a new file; with `sync`, flushes it to disk before returning.
    static func writeFile(_ path: String, _ data: Data, sync: Bool = false) throws(UDRError) {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw UDRError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
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
        if sync, fsync(fd) != 0 { throw UDRError(.io, "cannot flush \(path) to disk: \(String(cString: strerror(errno)))") }
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

/// syncfs(2): flushes every dirty page and metadata of one file system.
/// Looked up at run time (Glibc's module does not export it; Darwin has none).
enum FileSystemFlush {
    private typealias Function = @convention(c) (Int32) -> Int32
    private static let function: Function? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "syncfs") else { return nil }
        return unsafeBitCast(symbol, to: Function.self)
    }()

    static var available: Bool { function != nil }

    /// Flushes the file system that holds `path`.
    static func flush(_ path: String) throws(UDRError) {
        guard let function else { return }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw UDRError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard function(fd) == 0 else { throw UDRError(.io, "cannot flush \(path) to disk: \(String(cString: strerror(errno)))") }
    }
}
