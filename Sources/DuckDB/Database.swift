/// An open DuckDB database (in memory, or a file). Thread-safe: DuckDB
/// synchronizes access to a database; each thread uses its own ``Connection``.
public final class Database: @unchecked Sendable {
    // @unchecked: DuckDB's database handle is safe to share across threads;
    // `handle` is written only in init and deinit.

    /// Settings applied when the database opens.
    public struct Configuration: Sendable {
        /// Worker threads; nil leaves DuckDB's default (one per core).
        public var threads: Int?
        /// e.g. `"4GB"`; nil leaves DuckDB's default (80% of RAM).
        public var memoryLimit: String?
        /// Where DuckDB spills when memory runs short.
        public var temporaryDirectory: String?
        /// Any other DuckDB setting, by name.
        public var options: [String: String]

        public init(threads: Int? = nil, memoryLimit: String? = nil, temporaryDirectory: String? = nil, options: [String: String] = [:]) {
            self.threads = threads
            self.memoryLimit = memoryLimit
            self.temporaryDirectory = temporaryDirectory
            self.options = options
        }

        var allOptions: [(String, String)] {
            var all = options.sorted { $0.key < $1.key }
            if let threads { all.append(("threads", String(threads))) }
            if let memoryLimit { all.append(("memory_limit", memoryLimit)) }
            if let temporaryDirectory { all.append(("temp_directory", temporaryDirectory)) }
            return all
        }
    }

    public let library: DuckDBLibrary
    var handle: DatabaseHandle?

    /// Opens a database; `path` nil means in memory.
    public init(path: String? = nil, configuration: Configuration = .init(), library explicitLibrary: DuckDBLibrary? = nil)
        throws(DuckDBError)
    {
        let library: DuckDBLibrary
        if let given = explicitLibrary { library = given } else { library = try DuckDBLibrary.load() }
        self.library = library
        let api = library.api
        var config: ConfigHandle?
        guard api.create_config(&config) == duckDBSuccess, let config else {
            throw DuckDBError(.open, "DuckDB could not create a configuration")
        }
        var owned: ConfigHandle? = config
        defer { api.destroy_config(&owned) }
        for (name, value) in configuration.allOptions {
            guard api.set_config(config, name, value) == duckDBSuccess else {
                throw DuckDBError(.open, "DuckDB rejected the setting \(name) = \(value)")
            }
        }
        var database: DatabaseHandle?
        var error: UnsafeMutablePointer<CChar>?
        let state = api.open_ext(path, &database, config, &error)
        if state != duckDBSuccess {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            api.free(error)
            throw DuckDBError(.open, "DuckDB could not open \(path ?? ":memory:"): \(message)")
        }
        handle = database
    }

    deinit {
        if handle != nil { library.api.close(&handle) }
    }

    /// A new connection. Connections are cheap; use one per thread.
    public func connect() throws(DuckDBError) -> Connection {
        try Connection(database: self)
    }
}
