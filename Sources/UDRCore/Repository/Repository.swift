import Dispatch
import DuckDB
import Foundation
import Logging

/// Where a repository's parts live on disk: everything under `PATH/.udr/`.
public struct RepositoryLayout: Sendable {
    public static let directoryName = ".udr"
    public static let formatVersion = 1

    /// The directory the user named (`udr init PATH`).
    public let root: URL
    public var metadata: URL { root.appendingPathComponent(Self.directoryName) }
    public var formatFile: URL { metadata.appendingPathComponent("FORMAT") }
    public var catalogFile: URL { metadata.appendingPathComponent("catalog.sqlite") }
    public var cacheDirectory: URL { metadata.appendingPathComponent("cache/segments") }
    /// Names the object store when the objects are not under `objects/`.
    public var storeFile: URL { metadata.appendingPathComponent("store.json") }
    /// Pack indexes and objects read from that store.
    public var storeCacheDirectory: URL { metadata.appendingPathComponent("cache/store") }
    public var scratchDirectory: URL { metadata.appendingPathComponent("tmp") }

    public init(root: URL) { self.root = root.standardizedFileURL }

    /// The repository containing `directory`: it or its nearest ancestor
    /// with a `.udr` directory.
    public static func discover(from directory: URL) throws(UDRError) -> RepositoryLayout {
        var current = directory.standardizedFileURL
        while true {
            let candidate = RepositoryLayout(root: current)
            if FileManager.default.fileExists(atPath: candidate.formatFile.path) { return candidate }
            let parent = current.deletingLastPathComponent()
            if parent.path == current.path { break }
            current = parent
        }
        throw UDRError(
            .notARepository, "\(directory.path) is not inside a UDR repository. Create one with `udr init`, or pass --repo PATH.")
    }
}

/// A versioned table store: tables written as content-defined segments,
/// every write a commit, every version queryable with DuckDB SQL.
///
/// Thread-safe. Work that blocks (DuckDB, SQLite, file I/O) runs on a
/// dedicated dispatch queue, never on Swift's cooperative pool.
public final class Repository: Sendable {
    public struct Configuration: Sendable {
        /// DuckDB settings for every session the repository opens.
        public var duckdb: Database.Configuration
        /// How rows are cut into segments.
        public var segmentation: SegmentationPolicy
        /// How a full scan joins segments into larger local read files.
        public var readGrouping: ReadGrouping
        /// The segment cache's size limit.
        public var cacheLimitBytes: Int64
        /// Author recorded in commits when a write names none.
        public var defaultAuthor: String
        /// Opens remotes' storage (directories; S3 where the program links `UDRS3`).
        public var remoteStorage: RemoteStorageOpener = .directories

        public init(
            duckdb: Database.Configuration = .init(), segmentation: SegmentationPolicy = .standard, readGrouping: ReadGrouping = .standard,
            cacheLimitBytes: Int64 = 20 << 30, defaultAuthor: String? = nil
        ) {
            self.duckdb = duckdb
            self.segmentation = segmentation
            self.readGrouping = readGrouping
            self.cacheLimitBytes = cacheLimitBytes
            let env = ProcessInfo.processInfo.environment
            self.defaultAuthor = defaultAuthor ?? env["UDR_AUTHOR"] ?? env["USER"] ?? "unknown"
        }
    }

    public static let defaultBranch = "main"

    public let layout: RepositoryLayout
    /// The objects: the store the repository was opened over, which a
    /// shallow clone's remote completes (see ``PromisingObjectStore``).
    public let store: any ObjectStore
    /// The store the repository was opened over, without its remote.
    public var localStore: any ObjectStore { (store as? PromisingObjectStore)?.local ?? store }
    public let catalog: any Catalog
    public let configuration: Configuration
    let cache: SegmentCache
    /// The local cache of materialized segments.
    public var segmentCache: SegmentCache { cache }
    let logger: Logger
    private let queue = DispatchQueue(label: "udr.repository", attributes: .concurrent)
    private let readDatabase = ReadDatabase()
    /// Decoded commits and manifests: immutable, so safe to keep.
    private let decoded = BoundedCache<ObjectID, any Sendable>(limit: 1024)
    /// How often commits had to retry or wait, for benchmarks and diagnostics.
    public let commitStatistics = CommitStatistics()

    /// Opens a repository over the given backends. The CLI and
    /// `LocalRepository` wire the default ones.
    public init(
        layout: RepositoryLayout, store: any ObjectStore, catalog: any Catalog, configuration: Configuration = .init(), logger: Logger
    ) throws(UDRError) {
        self.layout = layout
        let promising = PromisingObjectStore(local: store)
        self.store = promising
        self.catalog = catalog
        self.configuration = configuration
        self.logger = logger
        self.cache = try SegmentCache(directory: layout.cacheDirectory, limitBytes: configuration.cacheLimitBytes)
        let format = try catalog.formatVersion()
        guard format <= RepositoryLayout.formatVersion else {
            throw UDRError(
                .notARepository,
                "\(layout.root.path) has repository format \(format); this udr understands up to \(RepositoryLayout.formatVersion). Upgrade udr."
            )
        }
        promising.source = { [weak self] () throws(UDRError) in try self?.promisorRemote() }
    }

    /// Runs blocking work off the cooperative pool.
    func blocking<T: Sendable>(_ work: @escaping @Sendable () throws(UDRError) -> T) async throws(UDRError) -> T {
        let result: Result<T, UDRError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { () throws(UDRError) -> T in try work() })
            }
        }
        return try result.get()
    }

    /// A fresh in-memory DuckDB database and connection for one operation.
    func withDuckDB<T>(_ body: (Connection) throws(UDRError) -> T) throws(UDRError) -> T {
        try body(try freshConnection())
    }

    /// A connection to a new in-memory DuckDB database of its own (closed
    /// with the connection).
    func freshConnection() throws(UDRError) -> Connection {
        do throws(DuckDBError) { return try Database(configuration: configuration.duckdb).connect() } catch {
            throw UDRError(.runtime, error.message, underlying: error)
        }
    }

    /// Runs `body` on the repository's long-lived DuckDB database when it is
    /// free (its Parquet metadata cache stays warm across queries), or on a
    /// fresh one when another read holds it.
    func withReadConnection<T>(_ body: (Connection) throws(UDRError) -> T) throws(UDRError) -> T {
        try withReadConnection { (connection, _) throws(UDRError) -> T in try body(connection) }
    }

    /// As ``withReadConnection(_:)``; `views` is the long-lived database's
    /// record of the table views it holds (nil on a fresh database).
    func withReadConnection<T>(_ body: (Connection, AttachedViews?) throws(UDRError) -> T) throws(UDRError) -> T {
        guard readDatabase.lock.try() else { return try withDuckDB { (connection) throws(UDRError) -> T in try body(connection, nil) } }
        defer { readDatabase.lock.unlock() }
        let connection: Connection
        do {
            if readDatabase.database == nil {
                let database = try Database(configuration: configuration.duckdb)
                try database.connect().execute("SET parquet_metadata_cache = true")
                readDatabase.database = database
            }
            connection = try readDatabase.database!.connect()
        } catch {
            throw UDRError(.runtime, error.message, underlying: error)
        }
        return try body(connection, readDatabase.views)
    }

    // MARK: Reading objects

    func commit(_ id: ObjectID) throws(UDRError) -> Commit {
        if let cached = decoded.get(id) as? Commit { return cached }
        let commit = try store.getJSON(Commit.self, id)
        decoded.put(id, commit)
        return commit
    }

    /// A commit's transaction id here: the catalog's, which follows the
    /// order commits were recorded in this repository (a fetched commit's
    /// own `txID` is its origin's). The commit's own for one not recorded.
    func txID(of id: ObjectID) throws(UDRError) -> Int64 {
        if let record = try catalog.commitRecord(id) { return record.txID }
        return try commit(id).txID
    }

    func manifest(_ id: ObjectID) throws(UDRError) -> Manifest {
        if let cached = decoded.get(id) as? Manifest { return cached }
        let manifest = try store.getJSON(Manifest.self, id)
        guard manifest.format <= Manifest.currentFormat else {
            throw UDRError(
                .unsupportedType,
                "table version \(manifest.table) v\(manifest.version) was written by a newer UDR (manifest format \(manifest.format)); upgrade UDR to read it")
        }
        decoded.put(id, manifest)
        return manifest
    }
}

/// The repository's long-lived read database, used by one read at a time.
private final class ReadDatabase: @unchecked Sendable {
    // @unchecked: `database` is only touched while `lock` is held.
    let lock = NSLock()
    var database: Database?
    let views = AttachedViews()
}

/// The table views a long-lived read database holds, by reference, with
/// the SQL each was created with: a read at the same snapshot as the one
/// before reuses them instead of creating them again. Only touched by the
/// holder of the database's lock.
final class AttachedViews: @unchecked Sendable {
    // @unchecked: only touched while the read database's lock is held.
    var sql: [String: String] = [:]
    var schemas: Set<String> = []
}

/// A bounded map of immutable values (decoded objects, computed counts);
/// cleared when full.
final class BoundedCache<Key: Hashable & Sendable, Value: Sendable>: @unchecked Sendable {
    // @unchecked: every access holds `lock`; values are immutable Sendable values.
    private let lock = NSLock()
    private var entries: [Key: Value] = [:]
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    func get(_ id: Key) -> Value? { lock.withLock { entries[id] } }

    func put(_ id: Key, _ value: Value) {
        lock.withLock {
            if entries.count >= limit { entries.removeAll(keepingCapacity: true) }
            entries[id] = value
        }
    }
}

/// Counters of the commit path: compare-and-swap retries (the head moved)
/// and waits for another committer's branch lock.
public final class CommitStatistics: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var counts = (retries: 0, lockWaits: 0)

    public var retries: Int { lock.withLock { counts.retries } }
    public var lockWaits: Int { lock.withLock { counts.lockWaits } }
    func retried() { lock.withLock { counts.retries += 1 } }
    func waited() { lock.withLock { counts.lockWaits += 1 } }
}
