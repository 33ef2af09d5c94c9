import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A pack holds many objects in one file, so that a write of thousands of
/// column chunks creates one file (and, on object storage, makes one
/// request) instead of one per object. Objects keep their ids: a packed
/// object is found, read, checked and deduplicated by its id like a loose
/// one.
///
/// Layout: the objects' bytes back to back, then the index (per object its
/// 32-byte id, offset and length, each a little-endian UInt64), then a
/// trailer: the object count (UInt64), the BLAKE3 of the index, and the
/// magic `UDRPACK1`. A pack is named by the hex of its index's hash, so the
/// name checks the index and each object checks itself.
enum PackFormat {
    static let magic = Array("UDRPACK1".utf8)
    static let entrySize = 48
    static let trailerSize = 8 + 32 + 8

    struct Entry {
        let id: ObjectID
        let offset: Int64
        let length: Int64
    }

    /// The index and trailer of a pack holding `entries`, and the pack's name.
    static func tail(_ entries: [Entry]) -> (name: String, tail: Data) {
        var index = Data(capacity: entries.count * entrySize)
        for entry in entries {
            index.append(contentsOf: entry.id.rawBytes)
            appendLittleEndian(&index, UInt64(entry.offset))
            appendLittleEndian(&index, UInt64(entry.length))
        }
        let digest = ObjectID.of(index)
        var tail = index
        appendLittleEndian(&tail, UInt64(entries.count))
        tail.append(contentsOf: digest.rawBytes)
        tail.append(contentsOf: magic)
        return (digest.hex, tail)
    }

    /// Reads a pack's index; throws a message naming what is wrong.
    static func readIndex(fd: Int32, name: String) throws(PackDamage) -> [Entry] {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw PackDamage("cannot read it: \(String(cString: strerror(errno)))") }
        let size = Int64(info.st_size)
        guard size >= Int64(trailerSize), let trailer = readRange(fd: fd, offset: size - Int64(trailerSize), length: trailerSize),
            Array(trailer.suffix(8)) == magic
        else { throw PackDamage("its trailer is damaged (no pack magic at its end)") }
        let count = trailer.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        let indexLength = count.multipliedReportingOverflow(by: UInt64(entrySize))
        guard !indexLength.overflow, Int64(indexLength.partialValue) <= size - Int64(trailerSize),
            let index = readRange(fd: fd, offset: size - Int64(trailerSize) - Int64(indexLength.partialValue), length: Int(indexLength.partialValue))
        else { throw PackDamage("its trailer is damaged (an object count of \(count) does not fit the file)") }
        let dataEnd = size - Int64(trailerSize) - Int64(index.count)
        return try entries(tail: index + trailer, name: name, dataEnd: dataEnd)
    }

    /// The entries of a pack's tail (its index and trailer, as a remote
    /// keeps it beside the pack), checked against the pack's name; with
    /// `dataEnd`, each must lie within the pack's data.
    static func entries(tail: Data, name: String, dataEnd: Int64?) throws(PackDamage) -> [Entry] {
        let tail = Data(tail)
        guard tail.count >= trailerSize, Array(tail.suffix(8)) == magic else { throw PackDamage("its trailer is damaged (no pack magic at its end)") }
        let trailer = tail.suffix(trailerSize)
        let count = trailer.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        let indexLength = count.multipliedReportingOverflow(by: UInt64(entrySize))
        guard !indexLength.overflow, indexLength.partialValue == UInt64(tail.count - trailerSize) else {
            throw PackDamage("its trailer is damaged (an object count of \(count) does not fit its index)")
        }
        let index = tail.prefix(tail.count - trailerSize)
        let digest = ObjectID.of(index)
        guard digest.hex == name, Array(trailer.dropFirst(8).prefix(32)) == digest.rawBytes else {
            throw PackDamage("its index is damaged (the index hashes to \(digest))")
        }
        let limit = dataEnd ?? Int64.max
        var entries: [Entry] = []
        entries.reserveCapacity(Int(count))
        var outside: ObjectID?
        index.withUnsafeBytes { raw in
            for i in 0..<Int(count) {
                let base = i * entrySize
                let id = ObjectID(rawBytes: UnsafeRawBufferPointer(rebasing: raw[base..<(base + 32)]))
                let offset = Int64(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + 32, as: UInt64.self)))
                let length = Int64(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + 40, as: UInt64.self)))
                guard offset >= 0, length >= 0, length <= limit, offset <= limit - length else {
                    outside = id
                    return
                }
                entries.append(Entry(id: id, offset: offset, length: length))
            }
        }
        if let outside { throw PackDamage("its index places object \(outside) outside the file") }
        return entries
    }

    /// `length` bytes at `offset`, or nil when the file is shorter.
    static func readRange(fd: Int32, offset: Int64, length: Int) -> Data? {
        var data = Data(count: length)
        let complete = data.withUnsafeMutableBytes { buffer -> Bool in
            var done = 0
            while done < length {
                let n = pread(fd, buffer.baseAddress! + done, length - done, off_t(offset) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
        return complete ? data : nil
    }

    static func appendLittleEndian(_ data: inout Data, _ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }
}

/// What is wrong with a pack.
struct PackDamage: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Where packed objects are, for one directory of packs. Loaded on first
/// need and reloaded when an id is not found, since another process may
/// have added a pack or GC may have replaced one.
final class PackIndex: @unchecked Sendable {
    // @unchecked: every access to the mutable state holds `lock`.
    struct Location: Sendable {
        let pack: String
        let offset: Int64
        let length: Int64
    }

    let directory: String
    private let lock = NSLock()
    private var loaded = false
    private var packs: [String: [PackFormat.Entry]] = [:]
    private var locations: [ObjectID: Location] = [:]
    private var damaged: [String: String] = [:]

    init(directory: String) { self.directory = directory }

    func path(_ pack: String) -> String { directory + "/" + pack + ".pack" }

    /// The object's place, reloading the index once when it is not known.
    func locate(_ id: ObjectID) -> Location? {
        if let found = lock.withLock({ loaded ? locations[id] : nil }) { return found }
        reload()
        return lock.withLock { locations[id] }
    }

    /// The object's place as currently known, without reloading.
    func known(_ id: ObjectID) -> Location? {
        lock.withLock { locations[id] }
    }

    /// Every packed object (after a reload).
    func all() -> [ObjectID: Location] {
        reload()
        return lock.withLock { locations }
    }

    /// The objects of one pack, as last loaded.
    func entries(of pack: String) -> [PackFormat.Entry] {
        lock.withLock { packs[pack] ?? [] }
    }

    /// Packs whose index cannot be read, with what is wrong (after a reload).
    func damage() -> [String: String] {
        reload()
        return lock.withLock { damaged }
    }

    /// Reads every pack's index again from disk (not what memory holds);
    /// returns the packs whose index is damaged, with what is wrong.
    func check() -> [String: String] {
        var found: [String: String] = [:]
        for name in packNames() {
            let fd = open(path(name), O_RDONLY | O_CLOEXEC)
            if fd < 0 { continue }
            defer { close(fd) }
            do throws(PackDamage) { _ = try PackFormat.readIndex(fd: fd, name: name) } catch { found[name] = error.message }
        }
        return found
    }

    private func packNames() -> Set<String> {
        Set(
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap { name -> String? in
                guard name.hasSuffix(".pack"), !name.hasPrefix(".") else { return nil }
                return String(name.dropLast(5))
            })
    }

    /// Records a pack this process has just written.
    func add(_ pack: String, entries: [PackFormat.Entry]) {
        lock.withLock { record(pack, entries) }
    }

    /// Records a pack's objects; the caller holds `lock`.
    private func record(_ pack: String, _ entries: [PackFormat.Entry]) {
        packs[pack] = entries
        for entry in entries { locations[entry.id] = Location(pack: pack, offset: entry.offset, length: entry.length) }
    }

    /// Brings the index up to date with the directory: loads new packs and
    /// forgets removed ones.
    func reload() {
        let names = packNames()
        let (new, gone) = lock.withLock { () -> ([String], Bool) in
            let known = Set(packs.keys).union(damaged.keys)
            return (names.subtracting(known).sorted(), !known.subtracting(names).isEmpty)
        }
        var read: [String: Result<[PackFormat.Entry], PackDamage>] = [:]
        for name in new {
            let fd = open(path(name), O_RDONLY | O_CLOEXEC)
            if fd < 0 { continue }  // removed meanwhile
            read[name] = Result { () throws(PackDamage) in try PackFormat.readIndex(fd: fd, name: name) }
            close(fd)
        }
        lock.withLock {
            loaded = true
            for (name, result) in read {
                switch result {
                case .success(let entries): record(name, entries)
                case .failure(let damage):
                    damaged[name] = damage.message
                }
            }
            if gone {
                let kept = packs.filter { names.contains($0.key) }
                damaged = damaged.filter { names.contains($0.key) }
                (packs, locations) = ([:], [:])
                for (name, entries) in kept { record(name, entries) }
            }
        }
    }
}

extension ObjectID {
    /// The 32 bytes the hex digits spell.
    var rawBytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        var high: UInt8 = 0
        for (i, c) in hex.utf8.enumerated() {
            let v = c <= 57 ? c - 48 : c - 87
            if i % 2 == 0 { high = v << 4 } else { out.append(high | v) }
        }
        return out
    }

    init(rawBytes: UnsafeRawBufferPointer) {
        self.init(uncheckedHex: hexString(Array(rawBytes)))
    }
}

/// A local store's batch: objects not stored yet are held until there are
/// ``LocalObjectStore/packThreshold`` of them, then appended to a new pack
/// file on a background queue, each append followed by a flush, so that
/// writing and flushing overlap the writer's own work. `commit()` appends
/// the index, flushes the rest and renames the pack into place. Fewer new
/// objects are written loose at commit. With `packAlways` (GC rewriting a
/// pack) every object goes into the pack, stored elsewhere or not.
final class LocalObjectBatch: ObjectBatch, @unchecked Sendable {
    // @unchecked: `fd` and `temp` are written before any work is queued
    // and read only by queued work or after it is drained; `failure` holds
    // its own lock; the rest belongs to the one thread that adds.
    private let store: LocalObjectStore
    private let packAlways: Bool
    private var seen = Set<ObjectID>()
    /// Packs whose time this batch has refreshed already.
    private var refreshed = Set<String>()
    private var held: [(id: ObjectID, data: Data)] = []
    private var entries: [PackFormat.Entry] = []
    private var offset: Int64 = 0
    private var added: Int64 = 0
    private var temp: String?
    private var fd: Int32 = -1
    private var done = false
    private let queue = DispatchQueue(label: "udr.pack-writer")
    private let failure = FailureBox()

    init(store: LocalObjectStore, packAlways: Bool = false) {
        self.store = store
        self.packAlways = packAlways
    }

    func add(_ objects: [(id: ObjectID, data: Data)]) throws(UDRError) {
        if let error = failure.first { throw error }
        var fresh: [(id: ObjectID, data: Data)] = []
        var reloaded = false
        for object in objects where seen.insert(object.id).inserted {
            if !packAlways {
                if !reloaded {
                    store.packs.reload()
                    reloaded = true
                }
                if store.refreshIfPresent(object.id, skipping: &refreshed) { continue }
            }
            fresh.append(object)
            added += Int64(object.data.count)
        }
        if fd < 0 {
            held += fresh
            guard held.count >= (packAlways ? 1 : LocalObjectStore.packThreshold) else { return }
            let path = store.temporaryPackPath()
            let opened = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
            guard opened >= 0 else { throw UDRError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
            (temp, fd) = (path, opened)
            fresh = held
            held = []
        }
        guard !fresh.isEmpty else { return }
        for object in fresh {
            entries.append(PackFormat.Entry(id: object.id, offset: offset, length: Int64(object.data.count)))
            offset += Int64(object.data.count)
        }
        let (fd, path, failure, data) = (fd, temp ?? "", failure, fresh.map(\.data))
        queue.async {
            guard !failure.failed else { return }
            do throws(UDRError) {
                for bytes in data { try LocalObjectStore.writeAll(fd, bytes, path: path) }
                guard fdatasync(fd) == 0 else { throw UDRError(.io, "cannot flush \(path) to disk: \(String(cString: strerror(errno)))") }
            } catch { failure.record(error) }
        }
    }

    func commit() throws(UDRError) -> Int64 {
        precondition(!done, "a batch commits once")
        done = true
        guard fd >= 0, let temp else {
            if !held.isEmpty { try store.writeLoose(held) }
            return added
        }
        queue.sync {}
        if let error = failure.first { throw error }
        let (name, tail) = PackFormat.tail(entries)
        try LocalObjectStore.writeAll(fd, tail, path: temp)
        guard fsync(fd) == 0 else { throw UDRError(.io, "cannot flush \(temp) to disk: \(String(cString: strerror(errno)))") }
        try store.publishPack(temp, name: name, entries: entries)
        self.temp = nil
        return added
    }

    deinit {
        queue.sync {}
        if fd >= 0 { close(fd) }
        if let temp { unlink(temp) }
    }
}
