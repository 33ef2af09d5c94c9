import CArrowABI

#if canImport(Glibc)
    import Glibc
#endif

/// A query's rows as Arrow record batches that DuckDB makes one at a time,
/// as the consumer asks for them (a streaming result): a result larger than
/// memory can be read batch by batch. It holds its connection, and with it
/// the database, until it is released.
public final class StreamingArrowResult: @unchecked Sendable {
    // @unchecked: the Arrow stream interface has one consumer, which calls
    // it from one thread at a time; `interruptHandle` may be used from any.
    private let connection: Connection
    private var statement: PreparedStatement?
    private let result: ResultPointer
    private var options: OpaquePointer?
    private var types: [OpaquePointer?] = []
    private var names: [UnsafePointer<CChar>?] = []
    private var finished = false
    private var closed = false
    private var lastError: UnsafeMutablePointer<CChar>?

    /// Runs `sql` (one statement) on `connection` as a streaming query.
    public init(connection: Connection, sql: String) throws(DuckDBError) {
        self.connection = connection
        let api = connection.api
        result = ResultPointer.allocate(byteCount: resultSize, alignment: 8)
        result.initializeMemory(as: UInt8.self, repeating: 0, count: resultSize)
        do throws(DuckDBError) {
            let statement = try connection.prepare(sql)
            self.statement = statement
            guard api.execute_prepared_streaming(statement.handle!, result) == duckDBSuccess else {
                throw Connection.error(api: api, result: result)
            }
            options = api.result_get_arrow_options(result)
            let count = api.column_count(result)
            types = (0..<count).map { api.column_logical_type(result, $0) }
            names = (0..<count).map { api.column_name(result, $0) }  // they live as long as the result
            var schema = ArrowSchema()
            try makeSchema(into: &schema)  // fails here, not in the consumer's hands
            schema.release?(&schema)
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Interrupts the query from any thread: the next batch is an error.
    public var interruptHandle: InterruptHandle { connection.interruptHandle }

    private func close() {
        guard !closed else { return }
        closed = true
        let api = connection.api
        free(lastError)
        for i in types.indices { api.destroy_logical_type(&types[i]) }
        api.destroy_result(result)
        result.deallocate()
        if options != nil { api.destroy_arrow_options(&options) }
        statement = nil
    }

    private static func error(api: DuckDBAPI, _ failure: OpaquePointer) -> DuckDBError {
        var failure: OpaquePointer? = failure
        defer { api.destroy_error_data(&failure) }
        let message = api.error_data_message(failure).map { String(cString: $0) } ?? "DuckDB could not make an Arrow batch"
        return DuckDBError(.arrow, message)
    }

    /// The result's schema, made anew for each consumer that asks (DuckDB's
    /// own Arrow scan asks more than once).
    private func makeSchema(into out: UnsafeMutablePointer<ArrowSchema>) throws(DuckDBError) {
        let api = connection.api
        if let failure = api.to_arrow_schema(options, &types, &names, Index(types.count), out) { throw Self.error(api: api, failure) }
    }

    /// The next batch into `out` (released by its consumer); false at the end.
    func next(into out: UnsafeMutablePointer<ArrowArray>) throws(DuckDBError) -> Bool {
        let api = connection.api
        guard !finished else { return false }
        var chunk = api.fetch_chunk(result.load(as: udr_duckdb_result.self))
        guard chunk != nil else {
            finished = true
            if api.result_error(result) != nil { throw Connection.error(api: api, result: result) }
            return false
        }
        defer { api.destroy_data_chunk(&chunk) }
        if let failure = api.data_chunk_to_arrow(options, chunk, out) { throw Self.error(api: api, failure) }
        return true
    }

    /// Exports the result into `out` as an Arrow C stream the consumer owns:
    /// the schema, then each batch as DuckDB makes it. Releasing the
    /// stream releases this result (and its connection) once nothing else
    /// holds it.
    public func export(to out: UnsafeMutablePointer<ArrowArrayStream>) {
        out.initialize(
            to: ArrowArrayStream(
                get_schema: { stream, schema in
                    let me = Unmanaged<StreamingArrowResult>.fromOpaque(stream!.pointee.private_data).takeUnretainedValue()
                    do throws(DuckDBError) { try me.makeSchema(into: schema!) } catch {
                        free(me.lastError)
                        me.lastError = strdup(error.message)
                        return 5  // EIO
                    }
                    return 0
                },
                get_next: { stream, array in
                    let me = Unmanaged<StreamingArrowResult>.fromOpaque(stream!.pointee.private_data).takeUnretainedValue()
                    do throws(DuckDBError) {
                        if try !me.next(into: array!) { array!.pointee.release = nil }  // end of stream
                        return 0
                    } catch {
                        free(me.lastError)
                        me.lastError = strdup(error.message)
                        return 5  // EIO
                    }
                },
                get_last_error: { stream in
                    let me = Unmanaged<StreamingArrowResult>.fromOpaque(stream!.pointee.private_data).takeUnretainedValue()
                    return UnsafePointer(me.lastError)
                },
                release: { stream in
                    guard let stream, let me = stream.pointee.private_data else { return }
                    Unmanaged<StreamingArrowResult>.fromOpaque(me).release()
                    stream.pointee.private_data = nil
                    stream.pointee.release = nil
                },
                private_data: Unmanaged.passRetained(self).toOpaque()))
    }
}
