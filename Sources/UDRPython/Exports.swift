import DuckDB
import Foundation
import UDRCore
import UDRS3
import UDRSQLite

// The C functions the Python package (python/udr) calls through ctypes.
// Control goes as JSON text, data as Arrow C streams. Every function
// returns 0, or an error code with `error` set to JSON
// {"code": …, "message": …}; strings UDR hands out are freed with
// `udr_free`. Repository handles are opaque pointers, closed with
// `udr_close`. Calls block their thread (ctypes releases the GIL).

/// A repository open for a Python process.
final class Handle: @unchecked Sendable {
    // @unchecked: Repository is Sendable; the handle is immutable.
    let repository: Repository
    init(_ repository: Repository) { self.repository = repository }
}

/// Hands out a C string the caller frees with `udr_free`.
func cString(_ text: String) -> UnsafeMutablePointer<CChar> { strdup(text)! }

func errorJSON(_ error: any Error) -> String {
    let (code, message): (String, String)
    if let error = error as? UDRError {
        (code, message) = (error.code.description, error.message)
    } else if let error = error as? DuckDBError {
        (code, message) = ("query", error.message)
    } else {
        (code, message) = ("runtime", "\(error)")
    }
    return json(["code": code, "message": message])
}

func json(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .custom { date, encoder in
        var c = encoder.singleValueContainer()
        try c.encode(Timestamp.format(date))
    }
    return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
}

/// The outcome of async work, handed from its task to the waiting thread.
final class Outcome<T>: @unchecked Sendable {
    // @unchecked: written by the task before the semaphore signals, read after.
    var result: Result<T, any Error>?
}

/// Runs async work to its end on this (blocking) thread; `cancel` may
/// cancel it from another thread meanwhile.
func wait<T: Sendable>(cancel: Cancel? = nil, _ work: @escaping @Sendable () async throws -> T) throws -> T {
    let box = Outcome<T>()
    let done = DispatchSemaphore(value: 0)
    let task = Task.detached {
        do { box.result = .success(try await work()) } catch { box.result = .failure(error) }
        done.signal()
    }
    cancel?.attach(task)
    done.wait()
    return try box.result!.get()
}

/// What Python holds to cancel a call while it runs (Ctrl-C): made by
/// `udr_cancel_new`, fired by `udr_cancel`, freed by `udr_cancel_free`.
final class Cancel: @unchecked Sendable {
    // @unchecked: `task` and `cancelled` are only touched under `lock`.
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    private var stream: InterruptHandle?
    private var cancelled = false

    func attach(_ task: Task<Void, Never>) {
        lock.withLock {
            self.task = task
            if cancelled { task.cancel() }
        }
    }

    /// A streamed query's connection, which a cancel interrupts while the
    /// stream is read.
    func attach(_ stream: InterruptHandle) {
        lock.withLock {
            self.stream = stream
            if cancelled { stream.interrupt() }
        }
    }

    func fire() {
        lock.withLock {
            cancelled = true
            task?.cancel()
            stream?.interrupt()
        }
    }
}

@_cdecl("udr_cancel_new")
public func udr_cancel_new() -> UnsafeMutableRawPointer { Unmanaged.passRetained(Cancel()).toOpaque() }

@_cdecl("udr_cancel")
public func udr_cancel(_ pointer: UnsafeMutableRawPointer?) {
    guard let pointer else { return }
    Unmanaged<Cancel>.fromOpaque(pointer).takeUnretainedValue().fire()
}

@_cdecl("udr_cancel_free")
public func udr_cancel_free(_ pointer: UnsafeMutableRawPointer?) {
    guard let pointer else { return }
    Unmanaged<Cancel>.fromOpaque(pointer).release()
}

/// Runs `body`, reporting a thrown error through `error`: 0 or 1.
func call(_ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return 0
    } catch let thrown {
        error?.pointee = cString(errorJSON(thrown))
        return 1
    }
}

func handle(_ pointer: UnsafeMutableRawPointer?) throws -> Handle {
    guard let pointer else { throw UDRError(.invalidArgument, "the repository is closed") }
    return Unmanaged<Handle>.fromOpaque(pointer).takeUnretainedValue()
}

/// Decodes an options object (JSON text; nil or empty for none).
func options<T: Decodable>(_ text: UnsafePointer<CChar>?, as type: T.Type) throws -> T {
    let data = Data((text.map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "{}").utf8)
    do { return try JSONDecoder().decode(T.self, from: data) } catch {
        throw UDRError(.invalidArgument, "cannot read the options \(String(decoding: data, as: UTF8.self)): \(error)")
    }
}

@_cdecl("udr_free")
public func udr_free(_ text: UnsafeMutablePointer<CChar>?) { free(text) }

@_cdecl("udr_version")
public func udr_version() -> UnsafeMutablePointer<CChar> { cString("{\"duckdb\": \"\(DuckDBLibrary.pinnedVersion)\", \"format\": \(RepositoryLayout.formatVersion)}") }

/// What repositories open with: remotes and object stores on S3 too.
let pythonConfiguration: Repository.Configuration = {
    var configuration = Repository.Configuration()
    configuration.remoteStorage = .withS3
    return configuration
}()

/// Where a store or remote is: `{"url", "endpoint", "region"}`.
struct LocationArguments: Decodable {
    var url: String?
    var endpoint: String?
    var region: String?
    var branch: String?
    var depth: Int?

    var location: RemoteLocation? { url.map { RemoteLocation(url: $0, endpoint: endpoint, region: region) } }
}

/// Opens (or, with `create`, creates) the repository at `path`; a new
/// one keeps its objects in the store `options` names (`{"url", "endpoint",
/// "region"}`), when it names one.
@_cdecl("udr_open")
public func udr_open(
    _ path: UnsafePointer<CChar>, _ create: Int32, _ storeOptions: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> Int32 {
    call(error) {
        let url = URL(fileURLWithPath: String(cString: path))
        let store = try options(storeOptions, as: LocationArguments.self).location
        let repository =
            create != 0
            ? try LocalRepository.create(at: url, store: store, configuration: pythonConfiguration)
            : try LocalRepository.open(at: url, configuration: pythonConfiguration)
        out.pointee = Unmanaged.passRetained(Handle(repository)).toOpaque()
    }
}

/// Clones the remote `options` names (`{"url", "endpoint", "region",
/// "branch", "depth"}`) into a new repository at `path`; `report` gets
/// what was fetched as JSON.
@_cdecl("udr_clone")
public func udr_clone(
    _ path: UnsafePointer<CChar>, _ remoteOptions: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
    _ report: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> Int32 {
    call(error) {
        let url = URL(fileURLWithPath: String(cString: path))
        let given = try options(remoteOptions, as: LocationArguments.self)
        guard let location = given.location else { throw UDRError(.invalidArgument, "a clone needs the remote's url") }
        let (repository, fetched) = try wait {
            try await LocalRepository.clone(location, into: url, branch: given.branch, depth: given.depth, configuration: pythonConfiguration)
        }
        report.pointee = cString(json(fetched))
        out.pointee = Unmanaged.passRetained(Handle(repository)).toOpaque()
    }
}

@_cdecl("udr_close")
public func udr_close(_ pointer: UnsafeMutableRawPointer?) {
    guard let pointer else { return }
    Unmanaged<Handle>.fromOpaque(pointer).release()
}

/// What a read sees: `{"branch", "commit", "as_of", "at": {"alias": "table@ref" or version}, "tx", "stream"}`.
struct ReadRequest: Decodable {
    var branch: String?
    var commit: String?
    var as_of: String?
    var at: [String: String]?
    var tx: String?
    /// Rows made as they are read (``Repository/arrowStream(_:options:)``).
    var stream: Bool?

    func readOptions() throws -> ReadOptions {
        let pins = (at ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return try ReadOptions(branch: branch, commit: commit, asOf: as_of, pins: pins, transaction: tx)
    }
}

/// What a query read, beside its rows: the Arrow schemas writers gave the
/// tables (``Manifest/arrowSchema``), by table.
struct QueryInfo: Encodable {
    let arrow_schemas: [String: String]
    init(_ schemas: [TableName: String]) { arrow_schemas = Dictionary(uniqueKeysWithValues: schemas.map { ($0.key.rawValue, $0.value) }) }
}

/// Runs a query; its rows go to `stream` (the caller owns and releases it),
/// and `info` gets a ``QueryInfo`` as JSON. `cancel` (or nil) interrupts
/// it. With `"stream": true` in the request the rows are made as `stream`
/// is read, and `cancel`, kept meanwhile, interrupts that (the next batch
/// fails).
@_cdecl("udr_query")
public func udr_query(
    _ pointer: UnsafeMutableRawPointer?, _ sql: UnsafePointer<CChar>, _ request: UnsafePointer<CChar>?, _ cancel: UnsafeMutableRawPointer?,
    _ stream: UnsafeMutablePointer<ArrowArrayStream>, _ info: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
    _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> Int32 {
    call(error) {
        let repository = try handle(pointer).repository
        let text = String(cString: sql)
        let given = try options(request, as: ReadRequest.self)
        let read = try given.readOptions()
        let token = token(cancel)
        let schemas: [TableName: String]
        if given.stream == true {
            let result = try wait(cancel: token) { try await repository.arrowStream(text, options: read) }
            token?.attach(result.rows.interruptHandle)
            result.rows.export(to: stream)
            schemas = result.arrowSchemas
        } else {
            let result = try wait(cancel: token) { try await repository.arrowQuery(text, options: read) }
            result.rows.export(to: stream)
            schemas = result.arrowSchemas
        }
        info.pointee = cString(json(QueryInfo(schemas)))
    }
}

func token(_ cancel: UnsafeMutableRawPointer?) -> Cancel? { cancel.map { Unmanaged<Cancel>.fromOpaque($0).takeUnretainedValue() } }

/// A write of rows: `{"key": [...] or null, "message", "author", "branch", "tx", "mode": "write"|"append"|"upsert"|"delete"}`.
struct WriteRequest: Decodable {
    var key: [String]?
    var message: String?
    var author: String?
    var branch: String?
    var tx: String?
    var mode: String?
    /// The rows' Arrow schema as the client encodes it (``Manifest/arrowSchema``).
    var arrow_schema: String?
    /// The client saw the rows in key order (``WriteSource/likelyInKeyOrder``).
    var in_key_order: Bool?
}

/// Writes the rows of `stream` (consumed and released here) to `table`;
/// `out` gets the result as JSON.
@_cdecl("udr_write")
public func udr_write(
    _ pointer: UnsafeMutableRawPointer?, _ table: UnsafePointer<CChar>, _ stream: UnsafeMutablePointer<ArrowArrayStream>,
    _ request: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
    _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> Int32 {
    defer { stream.pointee.release?(stream) }
    return call(error) {
        let repository = try handle(pointer).repository
        let name = try TableName(String(cString: table))
        let write = try options(request, as: WriteRequest.self)
        var given = WriteSource.arrow(stream: stream, arrowSchema: write.arrow_schema)
        given.likelyInKeyOrder = write.in_key_order ?? false
        let source = given
        let mode = write.mode ?? "write"
        let edit: RowEdit?
        switch mode {
        case "write": edit = nil
        case "append": edit = .append(source)
        case "upsert": edit = .upsert(source)
        case "delete": edit = .delete(keysFrom: source)
        default: throw UDRError(.invalidArgument, "unknown write mode '\(mode)': write, append, upsert or delete")
        }
        let text: String
        if let tx = write.tx {
            let transaction = try wait { try await repository.openTransaction(tx) }
            let staged =
                try edit.map { (edit) in try wait { try await transaction.apply(edit, to: name) } }
                ?? wait { try await transaction.write(name, from: source, key: write.key) }
            text = json(staged)
        } else if let edit {
            text = json(try wait { try await repository.apply(edit, to: name, message: write.message, author: write.author, branch: write.branch) })
        } else {
            text = json(
                try wait {
                    try await repository.write(name, from: source, key: write.key, message: write.message, author: write.author, branch: write.branch)
                })
        }
        out.pointee = cString(text)
    }
}

struct Rows: Encodable {
    let columns: [String]
    let rows: [[JSONCell]]
    init(_ result: ResultSet) {
        columns = result.columns.map(\.name)
        rows = result.rows.map { $0.map(JSONCell.init) }
    }
}

struct StatementJSON: Encodable {
    let statement: String
    let kind: String
    let table: String?
    let write: StagedWrite?
    let commit: CommitRecord?
    let rows: Rows?
}

/// `{"branch", "atomic", "message", "author", "tx"}` for `udr_sql`.
struct SQLRequest: Decodable {
    var branch: String?
    var atomic: Bool?
    var message: String?
    var author: String?
    var tx: String?
}

/// Runs SQL that may write (see `Repository.sql`); `out` gets each
/// statement's result as JSON, with the rows of queries and RETURNING.
@_cdecl("udr_sql")
public func udr_sql(
    _ pointer: UnsafeMutableRawPointer?, _ sql: UnsafePointer<CChar>, _ request: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> Int32 {
    call(error) {
        let repository = try handle(pointer).repository
        let text = String(cString: sql)
        let given = try options(request, as: SQLRequest.self)
        let result: SQLResult
        if let tx = given.tx {
            let transaction = try wait { try await repository.openTransaction(tx) }
            result = try wait { try await transaction.sql(text) }
        } else {
            result = try wait {
                try await repository.sql(
                    text, branch: given.branch, atomic: given.atomic ?? false, message: given.message, author: given.author)
            }
        }
        let statements = result.statements.map {
            StatementJSON(
                statement: $0.statement, kind: $0.kind.rawValue, table: $0.table?.rawValue, write: $0.write, commit: $0.commit,
                rows: $0.rows.map(Rows.init))
        }
        out.pointee = cString(json(statements))
    }
}

/// The control calls: `method` with its arguments as a JSON object; `out`
/// gets the result as JSON.
@_cdecl("udr_call")
public func udr_call(
    _ pointer: UnsafeMutableRawPointer?, _ method: UnsafePointer<CChar>, _ arguments: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> Int32 {
    call(error) {
        let repository = try handle(pointer).repository
        let args = try options(arguments, as: Arguments.self)
        out.pointee = cString(try Calls.run(String(cString: method), args, on: repository))
    }
}

/// Every argument a control call may take.
struct Arguments: Decodable, Sendable {
    var table: String?
    var name: String?
    var to: String?
    var ref: String?
    var from: String?
    var branch: String?
    var since: Int64?
    var limit: Int?
    var key: [String]?
    var values: [String: String]?
    var tables: [String]?
    var message: String?
    var author: String?
    var strategy: String?
    var tx: String?
    var keep_last: Int?
    var older_than: Double?
    var grace: Double?
    var repair: Bool?
    var if_exists: Bool?
    var ttl: Double?
    var url: String?
    var endpoint: String?
    var region: String?
    var depth: Int?
    var force: Bool?
    var tags: Bool?

    func required(_ value: String?, _ name: String) throws -> String {
        guard let value else { throw UDRError(.invalidArgument, "this call needs '\(name)'") }
        return value
    }
}

struct PullResult: Encodable {
    let fetch: SyncReport
    let merge: MergeResult
}

func mergeStrategy(_ text: String?) throws -> MergeStrategy {
    guard let text else { return .fail }
    guard let strategy = MergeStrategy(rawValue: text) else { throw UDRError(.invalidArgument, "the strategy is fail, ours or theirs, not '\(text)'") }
    return strategy
}

enum Calls {
    static func run(_ method: String, _ a: Arguments, on repository: Repository) throws -> String {
        func table(_ field: String? = nil) throws -> TableName { try TableName(try a.required(field ?? a.table, "table")) }
        switch method {
        case "log":
            return json(try wait { try await repository.log(table: try a.table.map { try TableName($0) }, branch: a.branch, limit: a.limit) }.map {
                LogEntry(id: $0.id.hex, commit: $0.commit)
            })
        case "tables":
            return json(try wait { try await repository.tables(options: ReadOptions(branch: a.branch, commit: a.ref)) })
        case "refs":
            return json(try wait { try await repository.refs() })
        case "create_branch":
            let name = try a.required(a.name, "name")
            return json(["commit": try wait { try await repository.createBranch(name, from: a.from) }.hex])
        case "delete_branch":
            let name = try a.required(a.name, "name")
            return json(["commit": try wait { try await repository.deleteBranch(name) }.hex])
        case "switch":
            let name = try a.required(a.name, "name")
            try wait { try await repository.switchBranch(to: name) }
            return json(["branch": name])
        case "current_branch":
            return json(["branch": try wait { try await repository.currentBranch() }])
        case "create_tag":
            let name = try a.required(a.name, "name")
            return json(["commit": try wait { try await repository.createTag(name, at: a.ref) }.hex])
        case "changes":
            return json(try wait { try await repository.changes(since: a.since, table: try a.table.map { try TableName($0) }, branch: a.branch, limit: a.limit) })
        case "latest_tx_id":
            return json(["tx_id": try wait { try await repository.latestTxID(branch: a.branch) }])
        case "diff":
            let from = try a.required(a.from, "from")
            let to = try a.required(a.to, "to")
            let names = try a.tables.map { try $0.map { try TableName($0) } }
            return json(try wait { try await repository.diff(from, to, tables: names, key: a.key) })
        case "diff_rows":
            let from = try a.required(a.from, "from")
            let to = try a.required(a.to, "to")
            let names = try a.tables.map { try $0.map { try TableName($0) } }
            return json(Rows(try wait { try await repository.diffRows(from, to, tables: names, key: a.key) }))
        case "history":
            let name = try table()
            let key = a.values ?? [:]
            return json(Rows(try wait { try await repository.history(of: name, key: key, branch: a.branch) }.rows))
        case "verify":
            return json(try wait { try await repository.verify(repair: a.repair ?? false) })
        case "gc":
            return json(try wait { try await repository.gc(grace: a.grace ?? Repository.defaultGracePeriod) })
        case "expire":
            let retention: Retention
            if let n = a.keep_last { retention = .keepLast(n) } else if let s = a.older_than { retention = .olderThan(s) } else {
                throw UDRError(.invalidArgument, "expire needs keep_last or older_than")
            }
            return json(try wait { try await repository.expire(retention) })
        case "merge":
            let source = try a.required(a.from, "from")
            let strategy = try mergeStrategy(a.strategy)
            return json(try wait { try await repository.merge(source, into: a.to, strategy: strategy, message: a.message, author: a.author) })
        case "remote_add":
            let name = try a.required(a.name, "name")
            let location = RemoteLocation(url: try a.required(a.url, "url"), endpoint: a.endpoint, region: a.region)
            try wait { try await repository.addRemote(name, location) }
            return json(["name": name])
        case "remote_remove":
            let name = try a.required(a.name, "name")
            try wait { try await repository.removeRemote(name) }
            return json(["name": name])
        case "remotes":
            return json(try wait { try await repository.remotes() })
        case "fetch":
            return json(try wait { try await repository.fetch(a.name, depth: a.depth) })
        case "pull":
            let strategy = try mergeStrategy(a.strategy)
            let (fetched, merged) = try wait { try await repository.pull(a.name, branch: a.branch, strategy: strategy) }
            return json(PullResult(fetch: fetched, merge: merged))
        case "push":
            return json(try wait { try await repository.push(a.name, branch: a.branch, force: a.force ?? false, tags: a.tags ?? false) })
        case "begin":
            let tx = try wait { try await repository.beginTransaction(on: a.branch, timeToLive: a.ttl) }
            return json(["tx": tx.id, "branch": tx.branch])
        case "commit":
            let id = try a.required(a.tx, "tx")
            let record = try wait { try await repository.openTransaction(id).commit(message: a.message, author: a.author) }
            return json(["commit": record])
        case "abort":
            let id = try a.required(a.tx, "tx")
            try wait { try await repository.openTransaction(id).abort() }
            return json(["tx": id])
        case "drop":
            let name = try table()
            return json(["commit": try wait { try await repository.drop(name, ifExists: a.if_exists ?? false, message: a.message, author: a.author, branch: a.branch) }])
        case "rename":
            let old = try table()
            let new = try table(a.to)
            return json(["commit": try wait { try await repository.rename(old, to: new, message: a.message, author: a.author, branch: a.branch) }])
        default:
            throw UDRError(.invalidArgument, "there is no call '\(method)'")
        }
    }
}

struct LogEntry: Encodable {
    let id: String
    let commit: Commit
}
