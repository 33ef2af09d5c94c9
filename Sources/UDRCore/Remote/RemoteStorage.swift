import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// When a write may replace what a key holds.
public struct WriteCondition: Sendable, Hashable {
    public enum Base: Sendable, Hashable {
        case always, absent, matching(String)
    }
    public let base: Base
    /// Unconditionally.
    public static let always = WriteCondition(base: .always)
    /// Only when nothing is stored under the key (`If-None-Match: *`).
    public static let absent = WriteCondition(base: .absent)
    /// Only when the stored value has this version (`If-Match` on its ETag).
    public static func matching(_ version: String) -> WriteCondition { WriteCondition(base: .matching(version)) }
}

/// A value read from remote storage and its version (an ETag).
public struct StoredValue: Sendable {
    public let data: Data
    public let version: String

    public init(data: Data, version: String) {
        self.data = data
        self.version = version
    }
}

/// Where a remote keeps its files: keys (`/`-separated paths) to bytes,
/// with create-only and compare-and-swap writes. A directory and an S3
/// bucket prefix are the two kinds.
public protocol RemoteStorage: Sendable {
    /// The location as the user gave it (for messages).
    var location: String { get }
    /// A key's value and version; nil when absent.
    func read(_ key: String) async throws(UDRError) -> StoredValue?
    /// Bytes `range` of a key's value (`.missingObject` when absent).
    func read(_ key: String, range: Range<Int64>) async throws(UDRError) -> Data
    /// Writes a key if `condition` holds; false when it did not. A reader
    /// sees the old value or the whole new one.
    func write(_ key: String, _ data: Data, if condition: WriteCondition) async throws(UDRError) -> Bool
    /// Whether a key is stored.
    func exists(_ key: String) async throws(UDRError) -> Bool
    /// Every key starting with `prefix`, with its size and time.
    func listKeys(_ prefix: String) async throws(UDRError) -> [StoredKey]
    func delete(_ keys: [String]) async throws(UDRError)
    /// Request-body bytes sent so far (what a push uploaded).
    var bytesSent: Int64 { get }
}

/// A key as a listing gives it.
public struct StoredKey: Sendable, Hashable {
    public let key: String
    public let size: Int64
    /// When it was written, by the storage's clock.
    public let modified: Date

    public init(key: String, size: Int64, modified: Date) {
        self.key = key
        self.size = size
        self.modified = modified
    }
}

extension RemoteStorage {
    /// Every key starting with `prefix`, sorted.
    public func list(_ prefix: String) async throws(UDRError) -> [String] {
        try await listKeys(prefix).map(\.key).sorted()
    }
}

/// A remote's address: a directory (a path or `file://` URL) or an S3
/// bucket and prefix (`s3://bucket/prefix`, with an endpoint for
/// S3-compatible servers). Credentials are never part of it.
public struct RemoteLocation: Sendable, Codable, Hashable {
    public var url: String
    /// `http(s)://host:port` of an S3-compatible server; nil for AWS.
    public var endpoint: String?
    public var region: String?

    public init(url: String, endpoint: String? = nil, region: String? = nil) {
        self.url = url
        self.endpoint = endpoint
        self.region = region
    }

    public enum Kind: Sendable, Hashable {
        case directory(String)
        case s3(bucket: String, prefix: String)
    }

    /// What the URL names; an error says what is wrong with it.
    public func kind() throws(UDRError) -> Kind {
        if url.hasPrefix("s3://") {
            let rest = url.dropFirst(5)
            let bucket = String(rest.prefix { $0 != "/" })
            var prefix = String(rest.dropFirst(bucket.count)).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            guard !bucket.isEmpty else { throw UDRError(.invalidArgument, "'\(url)' names no bucket: write s3://BUCKET/PREFIX") }
            if !prefix.isEmpty { prefix += "/" }
            return .s3(bucket: bucket, prefix: prefix)
        }
        if url.hasPrefix("file://") {
            guard let parsed = URL(string: url), parsed.isFileURL, !parsed.path.isEmpty else {
                throw UDRError(.invalidArgument, "'\(url)' is not a file URL: write file:///absolute/path")
            }
            return .directory(parsed.path)
        }
        if let colon = url.range(of: "://") {
            throw UDRError(
                .invalidArgument,
                "remotes are directories (a path or file://) or S3 (s3://BUCKET/PREFIX), not \(url[..<colon.lowerBound])://")
        }
        guard !url.isEmpty else { throw UDRError(.invalidArgument, "a remote needs a URL or a path") }
        return .directory(URL(fileURLWithPath: url).standardizedFileURL.path)
    }

    /// A directory location as an absolute path (so it means the same from anywhere).
    public func absolute() throws(UDRError) -> RemoteLocation {
        guard case .directory(let path) = try kind(), !url.hasPrefix("file://") else { return self }
        return RemoteLocation(url: path, endpoint: endpoint, region: region)
    }
}

/// Opens the storage of a remote location. The core opens directories;
/// a program that links `UDRS3` passes one that opens S3 too.
public struct RemoteStorageOpener: Sendable {
    let open: @Sendable (RemoteLocation) throws(UDRError) -> any RemoteStorage

    public init(_ open: @escaping @Sendable (RemoteLocation) throws(UDRError) -> any RemoteStorage) {
        self.open = open
    }

    public func callAsFunction(_ location: RemoteLocation) throws(UDRError) -> any RemoteStorage { try open(location) }

    /// Directories only.
    public static let directories = RemoteStorageOpener { (location) throws(UDRError) -> any RemoteStorage in
        switch try location.kind() {
        case .directory(let path): return DirectoryStorage(root: path, location: location.url)
        case .s3:
            throw UDRError(.invalidArgument, "this program was built without S3 support, so it cannot open \(location.url); use the `udr` command")
        }
    }
}

/// Remote storage in a local directory (or a mounted file system): files
/// written under a temporary name, flushed and renamed into place;
/// create-only writes by `link`, compare-and-swap under a lock file.
// `sent` is guarded by `lock`; the rest is immutable.
public final class DirectoryStorage: RemoteStorage, @unchecked Sendable {
    public let root: String
    public let location: String
    // Guarded by `lock`.
    private let lock = NSLock()
    private var sent: Int64 = 0

    public init(root: String, location: String? = nil) {
        self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
        self.location = location ?? root
    }

    public var bytesSent: Int64 { lock.withLock { sent } }

    func path(_ key: String) -> String { root + "/" + key }

    /// The version of a value: the hash of its bytes.
    static func version(_ data: Data) -> String { ObjectID.of(data).hex }

    public func read(_ key: String) async throws(UDRError) -> StoredValue? {
        guard let data = FileManager.default.contents(atPath: path(key)) else {
            if !FileManager.default.fileExists(atPath: root) { throw missingRoot() }
            return nil
        }
        return StoredValue(data: data, version: Self.version(data))
    }

    public func read(_ key: String, range: Range<Int64>) async throws(UDRError) -> Data {
        let fd = open(path(key), O_RDONLY)
        guard fd >= 0 else { throw UDRError(.missingObject, "the remote \(location) has no \(key)") }
        defer { close(fd) }
        guard let data = PackFormat.readRange(fd: fd, offset: range.lowerBound, length: range.count) else {
            throw UDRError(.corruptObject, "the remote \(location)'s \(key) is shorter than \(range.upperBound) bytes; it is damaged")
        }
        return data
    }

    public func write(_ key: String, _ data: Data, if condition: WriteCondition) async throws(UDRError) -> Bool {
        guard FileManager.default.fileExists(atPath: root) else { throw missingRoot() }
        let target = path(key)
        let directory = (target as NSString).deletingLastPathComponent
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw UDRError(.io, "cannot create \(directory): \(error.localizedDescription)")
        }
        let temp = directory + "/.tmp-" + UUID().uuidString
        try LocalObjectStore.writeFile(temp, data, sync: true)
        defer { unlink(temp) }
        lock.withLock { sent += Int64(data.count) }
        switch condition.base {
        case .always:
            try rename(temp, target)
        case .absent:
            guard link(temp, target) == 0 else {
                if errno == EEXIST { return false }
                throw UDRError(.io, "cannot write \(target): \(String(cString: strerror(errno)))")
            }
        case .matching(let version):
            // Writers of one key take turns under its lock file; readers
            // need no lock (a rename replaces the file whole).
            let lockPath = directory + "/.lock-" + (key as NSString).lastPathComponent
            let fd = open(lockPath, O_RDWR | O_CREAT, 0o644)
            guard fd >= 0 else { throw UDRError(.io, "cannot open \(lockPath): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            guard flock(fd, LOCK_EX) == 0 else { throw UDRError(.io, "cannot lock \(lockPath): \(String(cString: strerror(errno)))") }
            defer { flock(fd, LOCK_UN) }
            guard let current = FileManager.default.contents(atPath: target), Self.version(current) == version else { return false }
            try rename(temp, target)
        }
        let dir = open(directory, O_RDONLY)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
        return true
    }

    private func rename(_ from: String, _ to: String) throws(UDRError) {
        guard Glibc.rename(from, to) == 0 else { throw UDRError(.io, "cannot write \(to): \(String(cString: strerror(errno)))") }
    }

    public func exists(_ key: String) async throws(UDRError) -> Bool {
        guard FileManager.default.fileExists(atPath: root) else { throw missingRoot() }
        return access(path(key), F_OK) == 0
    }

    public func listKeys(_ prefix: String) async throws(UDRError) -> [StoredKey] {
        guard FileManager.default.fileExists(atPath: root) else { throw missingRoot() }
        // Only the prefix's directory is walked (`refs/` never reads `packs/`).
        let base = prefix.contains("/") ? String(prefix[...prefix.lastIndex(of: "/")!]) : ""
        guard let walker = FileManager.default.enumerator(atPath: path(base)) else { return [] }
        var out: [StoredKey] = []
        while let relative = walker.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            let key = base + relative
            if name.hasPrefix(".tmp-") || name.hasPrefix(".lock-") || !key.hasPrefix(prefix) { continue }
            guard let attributes = walker.fileAttributes, attributes[.type] as? FileAttributeType == .typeRegular else { continue }
            out.append(
                StoredKey(
                    key: key, size: (attributes[.size] as? NSNumber)?.int64Value ?? 0,
                    modified: attributes[.modificationDate] as? Date ?? .distantPast))
        }
        return out.sorted { $0.key < $1.key }
    }

    public func delete(_ keys: [String]) async throws(UDRError) {
        for key in keys { unlink(path(key)) }
    }

    private func missingRoot() -> UDRError {
        UDRError(.notFound, "the remote directory \(root) does not exist; create it (an empty directory becomes a remote on the first push)")
    }
}
