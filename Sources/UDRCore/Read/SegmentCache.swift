import DuckDB
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Materialized segments: Parquet files DuckDB can read, named by segment
/// id, rebuilt from their blobs on first use and checked against the id.
/// Bounded: when the files exceed ``limitBytes`` the least recently
/// materialized ones are removed.
///
/// A cached file is a copy, and a disk can damage a copy: no read takes
/// one on trust. A file named by an id (a segment's, an object's) must
/// hash to it; a file derived from segments (live rows, read groups),
/// whose bytes DuckDB chose, must hash to what its `.b3` sidecar recorded
/// when it was written. Each process hashes a file the first time it
/// reads it and remembers the file's identity (device, inode, size,
/// modification and change times), so later reads cost a `stat`; a file
/// that fails is removed and rebuilt from the objects.
public struct SegmentCache: Sendable {
    public let directory: URL
    public var limitBytes: Int64
    private let logger = Logger(label: "udr.cache")

    public init(directory: URL, limitBytes: Int64 = 20 << 30) throws(UDRError) {
        self.directory = directory
        self.limitBytes = limitBytes
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw UDRError(.io, "cannot create the segment cache \(directory.path): \(error.localizedDescription)")
        }
    }

    public func path(_ segment: ObjectID) -> String { directory.path + "/" + segment.hex + ".parquet" }

    /// Takes ownership of a freshly written segment file.
    func adopt(file: String, segment: ObjectID) {
        let target = path(segment)
        if access(target, F_OK) == 0 || rename(file, target) != 0 {
            unlink(file)
        } else {
            CheckedFiles.shared.record(target)
        }
    }

    /// The path of a file of the segment's live rows, rebuilding it from
    /// the object store (every blob and the whole file checked) when it is
    /// not cached; `created` tells whether it was rebuilt. A segment with
    /// deletions reads as a file of its rows less the deleted ones, written
    /// by DuckDB on `connection` beside the segment's own file.
    func materialize(_ segment: SegmentRef, store: any ObjectStore, connection: Connection) throws(UDRError) -> (path: String, created: Bool) {
        let whole = try materializeFile(segment, store: store)
        guard segment.deletions != nil else { return whole }
        let target = directory.path + "/" + segment.content.name + ".parquet"
        if intact(target) { return (target, whole.created) }
        let list = try store.deletedPositions(of: segment).map(String.init).joined(separator: ", ")
        let temp = target + "." + UUID().uuidString + ".tmp"
        do {
            try connection.execute(
                """
                COPY (SELECT * EXCLUDE (file_row_number) FROM read_parquet(\(quoteLiteral(whole.path)), file_row_number = true)
                      WHERE file_row_number NOT IN (\(list)))
                TO \(quoteLiteral(temp)) (FORMAT parquet, COMPRESSION lz4_raw\(SegmentStorage.copyOptions(from: [segment])))
                """)
        } catch {
            unlink(temp)
            throw UDRError(.io, "cannot write the live rows of segment \(segment.id): \(error.message)", underlying: error)
        }
        try seal(temp, as: target)
        return (target, true)
    }

    /// The path of the segment's own file, rebuilt from its blobs when
    /// it is not cached.
    func materializeFile(_ segment: SegmentRef, store: any ObjectStore) throws(UDRError) -> (path: String, created: Bool) {
        let target = path(segment.id)
        if intact(target, id: segment.id) { return (target, false) }
        let recipe = try store.getJSON(SegmentRecipe.self, segment.recipe)
        var bytes = Data()
        bytes.reserveCapacity(Int(recipe.bytes))
        for blob in try store.get(many: recipe.parts.map(\.blob)) { bytes.append(blob) }
        let actual = ObjectID.of(bytes)
        guard actual == segment.id, recipe.segment == segment.id else {
            throw UDRError(
                .corruptObject,
                "segment \(segment.id) rebuilt from its blobs hashes to \(actual). The repository is damaged; run `udr verify`.")
        }
        try install(bytes, at: target)
        return (target, true)
    }

    /// The path of a file holding one stored object (a change record's
    /// Parquet file), written from the store (and checked) when it is not cached.
    func materializeObject(_ id: ObjectID, store: any ObjectStore) throws(UDRError) -> String {
        let target = path(id)
        if intact(target, id: id) { return target }
        try install(try store.get(id), at: target)
        return target
    }

    // MARK: Checks

    /// Whether the cached file at `path` is there and whole: it hashes to
    /// `id`, or (a derived file) to what its sidecar recorded. A damaged
    /// file is removed (and said so in the log), so that the caller
    /// rebuilds it.
    func intact(_ path: String, id: ObjectID? = nil) -> Bool {
        switch check(path, id: id) {
        case .missing: return false
        case .intact: return true
        case .damaged(let why):
            logger.warning("the cached file \(path) is damaged (\(why)); it is rebuilt from the objects")
            remove(path)
            return false
        }
    }

    enum FileState: Equatable {
        case missing, intact
        /// What is wrong with it.
        case damaged(String)
    }

    /// What a cached file's bytes say of it, hashing them unless this
    /// process found the same file whole before (and not `rehash`).
    func check(_ path: String, id: ObjectID? = nil, rehash: Bool = false) -> FileState {
        guard let stamp = FileStamp(path) else { return .missing }
        if !rehash && CheckedFiles.shared.isIntact(path, stamp) { return .intact }
        let expected: ObjectID
        if let id {
            expected = id
        } else {
            guard let text = try? String(contentsOfFile: path + Self.sidecar, encoding: .utf8),
                let recorded = try? ObjectID(hex: text.trimmingCharacters(in: .whitespacesAndNewlines))
            else { return .damaged("it has no record of its hash") }
            expected = recorded
        }
        guard let actual = ObjectID.ofFile(path) else { return .damaged("it cannot be read") }
        guard actual == expected else { return .damaged("its bytes hash to \(actual.short)…, not \(expected.short)…") }
        CheckedFiles.shared.record(path, stamp)
        return .intact
    }

    /// The suffix of the file recording a derived file's hash.
    static let sidecar = ".b3"

    /// Puts bytes whose hash names them in place at `target`.
    private func install(_ bytes: Data, at target: String) throws(UDRError) {
        let temp = target + "." + UUID().uuidString + ".tmp"
        try LocalObjectStore.writeFile(temp, bytes)
        if rename(temp, target) != 0 {
            unlink(temp)
        } else {
            CheckedFiles.shared.record(target)
        }
    }

    /// Puts a freshly derived file in place at `target`, its hash recorded
    /// beside it first.
    func seal(_ temp: String, as target: String) throws(UDRError) {
        guard let hash = ObjectID.ofFile(temp) else {
            unlink(temp)
            throw UDRError(.io, "cannot read back the file \(temp) just written to the cache")
        }
        let record = target + Self.sidecar + "." + UUID().uuidString + ".tmp"
        do throws(UDRError) {
            try LocalObjectStore.writeFile(record, Data((hash.hex + "\n").utf8))
        } catch {
            unlink(temp)
            throw error
        }
        guard rename(record, target + Self.sidecar) == 0, rename(temp, target) == 0 else {
            unlink(record)
            unlink(temp)
            throw UDRError(.io, "cannot move a new file into the cache \(directory.path): \(String(cString: strerror(errno)))")
        }
        CheckedFiles.shared.record(target)
    }

    /// Removes a cached file and its sidecar.
    func remove(_ path: String) {
        unlink(path)
        unlink(path + Self.sidecar)
        CheckedFiles.shared.forget(path)
    }

    /// Checks every file of the cache, hashing each: the damaged ones, by
    /// path, with what is wrong, and how many files were checked. A file
    /// derived by an older UDR, which recorded no hash, is not damage:
    /// reads rebuild it.
    func damagedFiles() -> (damaged: [(path: String, why: String)], checked: Int) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
        let present = Set(names)
        var damaged: [(String, String)] = []
        var checked = 0
        for name in names where name.hasSuffix(".parquet") {
            let path = directory.path + "/" + name
            let stem = String(name.dropLast(".parquet".count))
            let id = try? ObjectID(hex: stem)
            if id == nil && !present.contains(name + Self.sidecar) { continue }
            checked += 1
            if case .damaged(let why) = check(path, id: id, rehash: true) { damaged.append((path, why)) }
        }
        return (damaged, checked)
    }

    /// What checking the cache costs (for benchmarks): how many files it
    /// holds and their bytes, the seconds a check of all of them takes
    /// once this process found them whole (a `stat` each), and the seconds
    /// hashing all of them takes (a process's first read of each).
    public func checkCost() -> (files: Int, bytes: Int64, checked: Double, hashed: Double) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".parquet") }
        let paths = names.map { directory.path + "/" + $0 }
        let ids = names.map { try? ObjectID(hex: String($0.dropLast(".parquet".count))) }
        var bytes: Int64 = 0
        let hashStart = DispatchTime.now().uptimeNanoseconds
        for (path, id) in zip(paths, ids) {
            bytes += FileStamp(path)?.size ?? 0
            _ = check(path, id: id, rehash: true)
        }
        let checkStart = DispatchTime.now().uptimeNanoseconds
        for (path, id) in zip(paths, ids) { _ = check(path, id: id) }
        let end = DispatchTime.now().uptimeNanoseconds
        return (paths.count, bytes, Double(end - checkStart) / 1e9, Double(checkStart - hashStart) / 1e9)
    }

    /// Removes the oldest files until the cache fits its limit, sparing
    /// the files in `keeping` (paths).
    func evictIfNeeded(keeping keep: Set<String> = []) {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else { return }
        var files: [(String, Int64, Double)] = []
        var total: Int64 = 0
        for name in names where name.hasSuffix(".parquet") {
            var info = stat()
            let p = directory.path + "/" + name
            guard stat(p, &info) == 0 else { continue }
            let size = Int64(info.st_size)
            total += size
            files.append((p, size, Double(info.st_mtim.tv_sec)))
        }
        guard total > limitBytes else { return }
        for (p, size, _) in files.sorted(by: { $0.2 < $1.2 }) where !keep.contains(p) {
            remove(p)
            total -= size
            if total <= limitBytes { break }
        }
    }
}

/// A file's identity and the times it last changed: what a rewrite, a
/// copy over it or a truncation changes.
struct FileStamp: Equatable, Sendable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modified: timespec
    let changed: timespec

    init?(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        #if canImport(Darwin)
            modified = info.st_mtimespec
            changed = info.st_ctimespec
        #else
            modified = info.st_mtim
            changed = info.st_ctim
        #endif
    }

    static func == (a: FileStamp, b: FileStamp) -> Bool {
        a.device == b.device && a.inode == b.inode && a.size == b.size && a.modified.tv_sec == b.modified.tv_sec
            && a.modified.tv_nsec == b.modified.tv_nsec && a.changed.tv_sec == b.changed.tv_sec && a.changed.tv_nsec == b.changed.tv_nsec
    }
}

/// The cached files this process found whole (or wrote), by path.
final class CheckedFiles: @unchecked Sendable {
    static let shared = CheckedFiles()
    private let lock = NSLock()
    private var stamps: [String: FileStamp] = [:]

    func isIntact(_ path: String, _ stamp: FileStamp) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return stamps[path] == stamp
    }

    /// Records a file as whole as it is now.
    func record(_ path: String, _ stamp: FileStamp? = nil) {
        guard let stamp = stamp ?? FileStamp(path) else { return }
        lock.lock()
        stamps[path] = stamp
        lock.unlock()
    }

    func forget(_ path: String) {
        lock.lock()
        stamps[path] = nil
        lock.unlock()
    }
}
