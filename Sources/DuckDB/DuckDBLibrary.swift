import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The DuckDB shared library, loaded at run time with `dlopen`, and the C API
/// functions UDR calls, resolved with `dlsym`.
///
/// The library is found, in order, at `UDR_DUCKDB_LIBRARY`, or in the runtime
/// cache that `scripts/setup-duckdb.sh` fills
/// (`$UDR_CACHE_DIR` or `~/.cache/udr`, then `duckdb-1.5.5/libduckdb.so`).
/// A `libudr_pystub.so` beside the library is loaded first with `RTLD_GLOBAL`:
/// the PyPI build of DuckDB references CPython symbols nothing calls.
public final class DuckDBLibrary: Sendable {
    public static let pinnedVersion = "1.5.5"

    /// The path the library was loaded from.
    public let path: String
    /// Directory holding `NAME.duckdb_extension` files, if there is one.
    public let extensionDirectory: String?
    let api: DuckDBAPI

    private static let shared: Result<DuckDBLibrary, DuckDBError> = Result { try DuckDBLibrary.loadFromEnvironment() }
        .mapError { $0 as! DuckDBError }

    /// The process-wide library, loaded on first use.
    public static func load() throws(DuckDBError) -> DuckDBLibrary {
        try shared.get()
    }

    /// Where the runtime cache lives.
    public static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["UDR_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/udr" }
        return NSHomeDirectory() + "/.cache/udr"
    }

    private static func loadFromEnvironment() throws(DuckDBError) -> DuckDBLibrary {
        let env = ProcessInfo.processInfo.environment
        let path: String
        if let explicit = env["UDR_DUCKDB_LIBRARY"], !explicit.isEmpty {
            guard FileManager.default.fileExists(atPath: explicit) else {
                throw DuckDBError(
                    .runtimeMissing,
                    "UDR_DUCKDB_LIBRARY points at \(explicit), which does not exist. Unset it to use the runtime installed by `make setup`, or point it at a libduckdb.so."
                )
            }
            path = explicit
        } else {
            path = cacheDirectory + "/duckdb-\(pinnedVersion)/libduckdb.so"
            guard FileManager.default.fileExists(atPath: path) else {
                throw DuckDBError(
                    .runtimeMissing,
                    "The DuckDB \(pinnedVersion) runtime is not installed (looked for \(path)). Run `make setup` (or scripts/setup-duckdb.sh) to install it, or set UDR_DUCKDB_LIBRARY to a libduckdb.so."
                )
            }
        }
        let directory = (path as NSString).deletingLastPathComponent
        let stub = directory + "/libudr_pystub.so"
        if FileManager.default.fileExists(atPath: stub) {
            guard dlopen(stub, RTLD_NOW | RTLD_GLOBAL) != nil else {
                throw DuckDBError(.runtimeMissing, "Cannot load \(stub): \(lastDLError()). Re-run `make setup`.")
            }
        }
        // Lazy binding: the library's calls into other libraries resolve on
        // first use, not all at load (binding them all took ~20 ms of every
        // `udr` command). The C API functions below are looked up now.
        guard let handle = dlopen(path, RTLD_LAZY | RTLD_LOCAL) else {
            throw DuckDBError(
                .runtimeMissing,
                "Cannot load DuckDB from \(path): \(lastDLError()). Re-run `make setup`, or set UDR_DUCKDB_LIBRARY to a working libduckdb.so."
            )
        }
        let api = try DuckDBAPI(handle: handle, path: path)
        var extensions: String? = env["UDR_DUCKDB_EXTENSIONS"]
        if extensions == nil, FileManager.default.fileExists(atPath: directory + "/extensions") {
            extensions = directory + "/extensions"
        }
        return DuckDBLibrary(path: path, extensionDirectory: extensions, api: api)
    }

    private init(path: String, extensionDirectory: String?, api: DuckDBAPI) {
        self.path = path
        self.extensionDirectory = extensionDirectory
        self.api = api
    }

    /// The library's version string, e.g. `v1.5.5`.
    public var version: String { String(cString: api.library_version()) }
}

func lastDLError() -> String {
    if let message = dlerror() { return String(cString: message) }
    return "unknown dlopen error"
}
