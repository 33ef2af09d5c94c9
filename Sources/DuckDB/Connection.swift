/// A connection to a ``Database``. Not thread-safe: use it from one thread at
/// a time, which is why it is not `Sendable`. Closed when released.
public final class Connection {
    public let database: Database
    var handle: ConnectionHandle?
    var api: DuckDBAPI { database.library.api }

    init(database: Database) throws(DuckDBError) {
        self.database = database
        var connection: ConnectionHandle?
        guard let db = database.handle, database.library.api.connect(db, &connection) == duckDBSuccess else {
            throw DuckDBError(.connect, "DuckDB could not open a connection")
        }
        handle = connection
    }

    deinit {
        if handle != nil { api.disconnect(&handle) }
    }

    /// Runs one or more statements, discarding results.
    public func execute(_ sql: String) throws(DuckDBError) {
        _ = try withResult(sql) { _, _ in () }
    }

    /// Runs a query (one or more statements; the first one's rows are
    /// returned, as DuckDB's C API does) with values bound to `$1`, `$2`, …
    /// or `?`. Values are never spliced into SQL text. A column DuckDB's
    /// value API cannot return (see ``ResultSet/needsText(_:)``) is read
    /// by running the query again as a subquery that casts it to text: a
    /// statement that cannot be one (a RETURNING clause) is an error, after
    /// it ran.
    @discardableResult
    public func query(_ sql: String, _ parameters: [Value] = []) throws(DuckDBError) -> ResultSet {
        if !parameters.isEmpty { return try prepare(sql).execute(parameters) }
        switch try withResult(sql, ResultSet.read) {
        case .rows(let rows): return rows
        case .needsText(let columns):
            let again: ResultSet.Reading
            do throws(DuckDBError) { again = try withResult(ResultSet.textSelect(sql, columns: columns), ResultSet.read) } catch {
                throw ResultSet.unreadable(columns, error)
            }
            return try ResultSet.checked(again, columns)
        }
    }

    /// Prepares a single statement.
    public func prepare(_ sql: String) throws(DuckDBError) -> PreparedStatement {
        try PreparedStatement(connection: self, sql: sql)
    }

    /// A handle that can interrupt this connection's running query from any thread.
    public var interruptHandle: InterruptHandle { InterruptHandle(connection: self) }

    func withResult<T>(_ sql: String, _ body: (DuckDBAPI, ResultPointer) -> T) throws(DuckDBError) -> T {
        let result = ResultPointer.allocate(byteCount: resultSize, alignment: 8)
        result.initializeMemory(as: UInt8.self, repeating: 0, count: resultSize)
        defer {
            api.destroy_result(result)
            result.deallocate()
        }
        let state = api.query(handle!, sql, result)
        if state != duckDBSuccess {
            throw Self.error(api: api, result: result)
        }
        return body(api, result)
    }

    static func error(api: DuckDBAPI, result: ResultPointer) -> DuckDBError {
        let message = api.result_error(result).map { String(cString: $0) } ?? "unknown DuckDB error"
        if message.contains("INTERRUPT") { return DuckDBError(.interrupted, message) }
        return DuckDBError(.query, message)
    }
}

/// Interrupts the running query of a connection from another thread.
public struct InterruptHandle: @unchecked Sendable {
    // @unchecked: duckdb_interrupt is documented as callable from any
    // thread; the connection is kept alive by this reference.
    private let connection: Connection
    init(connection: Connection) { self.connection = connection }
    public func interrupt() {
        if let handle = connection.handle { connection.api.interrupt(handle) }
    }
}

/// A value bound to a statement parameter.
public enum Value: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])
}

extension Value: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
}

/// A prepared statement; reusable with different parameters.
public final class PreparedStatement {
    let connection: Connection
    var handle: StatementHandle?
    let sql: String

    init(connection: Connection, sql: String) throws(DuckDBError) {
        self.connection = connection
        self.sql = sql
        let api = connection.api
        var statement: StatementHandle?
        let state = api.prepare(connection.handle!, sql, &statement)
        if state != duckDBSuccess {
            let message = api.prepare_error(statement).map { String(cString: $0) } ?? "unknown error"
            api.destroy_prepare(&statement)
            throw DuckDBError(.prepare, message)
        }
        handle = statement
    }

    deinit { connection.api.destroy_prepare(&handle) }

    public var parameterCount: Int { Int(connection.api.nparams(handle!)) }

    public func execute(_ parameters: [Value] = []) throws(DuckDBError) -> ResultSet {
        let api = connection.api
        guard parameters.count == parameterCount else {
            throw DuckDBError(.bind, "the statement takes \(parameterCount) parameters, \(parameters.count) given")
        }
        for (offset, value) in parameters.enumerated() {
            let index = Index(offset + 1)
            let state: State
            switch value {
            case .null: state = api.bind_null(handle!, index)
            case .bool(let b): state = api.bind_boolean(handle!, index, b)
            case .int(let i): state = api.bind_int64(handle!, index, i)
            case .double(let d): state = api.bind_double(handle!, index, d)
            case .text(let s):
                state = s.utf8CString.withUnsafeBufferPointer { buffer in
                    api.bind_varchar_length(handle!, index, buffer.baseAddress!, Index(buffer.count - 1))
                }
            case .blob(let bytes):
                state = bytes.withUnsafeBytes { api.bind_blob(handle!, index, $0.baseAddress, Index(bytes.count)) }
            }
            guard state == duckDBSuccess else {
                throw DuckDBError(.bind, "DuckDB could not bind parameter \(offset + 1) (\(value))")
            }
        }
        let result = ResultPointer.allocate(byteCount: resultSize, alignment: 8)
        result.initializeMemory(as: UInt8.self, repeating: 0, count: resultSize)
        defer {
            api.destroy_result(result)
            result.deallocate()
        }
        guard api.execute_prepared(handle!, result) == duckDBSuccess else {
            throw Connection.error(api: api, result: result)
        }
        switch ResultSet.read(api: api, result: result) {
        case .rows(let rows): return rows
        case .needsText(let columns):
            let again: ResultSet
            do throws(DuckDBError) {
                again = try PreparedStatement(connection: connection, sql: ResultSet.textSelect(sql, columns: columns)).execute(parameters)
            } catch { throw ResultSet.unreadable(columns, error) }
            return try ResultSet.checked(.rows(again), columns)
        }
    }
}
