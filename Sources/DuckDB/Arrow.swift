@_exported import CArrowABI

/// A query result in Arrow's C data interface: one schema and the record
/// batches, owned by this object and released with it. Hand it to any
/// Arrow consumer, or back to DuckDB with ``Connection/register(_:as:)``.
public final class ArrowResult: @unchecked Sendable {
    // @unchecked: immutable after init; the C structs are only read.
    public let schema: UnsafeMutablePointer<ArrowSchema>
    public let batches: [UnsafeMutablePointer<ArrowArray>]

    init(schema: UnsafeMutablePointer<ArrowSchema>, batches: [UnsafeMutablePointer<ArrowArray>]) {
        self.schema = schema
        self.batches = batches
    }

    /// Rows in all batches.
    public var rowCount: Int { batches.reduce(0) { $0 + Int($1.pointee.length) } }

    /// Column names, from the schema.
    public var columnNames: [String] {
        (0..<Int(schema.pointee.n_children)).map { String(cString: schema.pointee.children[$0]!.pointee.name) }
    }

    deinit {
        for batch in batches {
            batch.pointee.release?(batch)
            batch.deallocate()
        }
        schema.pointee.release?(schema)
        schema.deallocate()
    }

    /// A stream over the batches for a consumer that reads them while this
    /// result is alive. The structs it hands out borrow this result's
    /// memory; their release callbacks only mark them released.
    public func makeStream() -> UnsafeMutablePointer<ArrowArrayStream> {
        let stream = UnsafeMutablePointer<ArrowArrayStream>.allocate(capacity: 1)
        fill(stream, owning: false)
        return stream
    }

    /// Exports the result into `out` as a stream whose schema and batches
    /// the consumer owns once it takes them (their release callbacks are
    /// DuckDB's own): what outlives this result, such as a Python process's
    /// Arrow tables. The schema can be taken once.
    public func export(to out: UnsafeMutablePointer<ArrowArrayStream>) {
        fill(out, owning: true)
    }

    private func fill(_ stream: UnsafeMutablePointer<ArrowArrayStream>, owning: Bool) {
        let state = Unmanaged.passRetained(StreamState(result: self, owning: owning)).toOpaque()
        stream.initialize(
            to: ArrowArrayStream(
                get_schema: { stream, out in
                    let state = Unmanaged<StreamState>.fromOpaque(stream!.pointee.private_data).takeUnretainedValue()
                    let schema = state.result.schema
                    guard schema.pointee.release != nil else { return 22 }  // EINVAL: taken already
                    out!.pointee = schema.pointee
                    if state.owning { schema.pointee.release = nil } else { out!.pointee.release = { $0?.pointee.release = nil } }
                    return 0
                },
                get_next: { stream, out in
                    let state = Unmanaged<StreamState>.fromOpaque(stream!.pointee.private_data).takeUnretainedValue()
                    if state.next < state.result.batches.count {
                        let batch = state.result.batches[state.next]
                        out!.pointee = batch.pointee
                        if state.owning { batch.pointee.release = nil } else { out!.pointee.release = { $0?.pointee.release = nil } }
                        state.next += 1
                    } else {
                        out!.pointee.release = nil  // end of stream
                    }
                    return 0
                },
                get_last_error: { _ in nil },
                release: { stream in
                    guard let stream, let state = stream.pointee.private_data else { return }
                    Unmanaged<StreamState>.fromOpaque(state).release()
                    stream.pointee.private_data = nil
                    stream.pointee.release = nil
                },
                private_data: state))
    }

    private final class StreamState {
        let result: ArrowResult
        /// Whether what the stream hands out moves to the consumer.
        let owning: Bool
        var next = 0
        init(result: ArrowResult, owning: Bool) {
            self.result = result
            self.owning = owning
        }
    }
}

extension Connection {
    /// Runs a query and returns its rows as Arrow record batches.
    public func queryArrow(_ sql: String) throws(DuckDBError) -> ArrowResult {
        var arrow: OpaquePointer?
        let state = api.query_arrow(handle!, sql, &arrow)
        defer { api.destroy_arrow(&arrow) }
        guard state == duckDBSuccess, let arrow else {
            let message = arrow.flatMap { api.query_arrow_error($0) }.map { String(cString: $0) } ?? "unknown DuckDB error"
            throw DuckDBError(.query, message)
        }
        let schema = UnsafeMutablePointer<ArrowSchema>.allocate(capacity: 1)
        schema.initialize(to: ArrowSchema())
        var schemaSlot: UnsafeMutablePointer<ArrowSchema>? = schema
        guard api.query_arrow_schema(arrow, &schemaSlot) == duckDBSuccess else {
            schema.deallocate()
            throw DuckDBError(.arrow, api.query_arrow_error(arrow).map { String(cString: $0) } ?? "cannot export the Arrow schema")
        }
        var batches: [UnsafeMutablePointer<ArrowArray>] = []
        while true {
            let batch = UnsafeMutablePointer<ArrowArray>.allocate(capacity: 1)
            batch.initialize(to: ArrowArray())
            var slot: UnsafeMutablePointer<ArrowArray>? = batch
            let ok = api.query_arrow_array(arrow, &slot) == duckDBSuccess
            if !ok || batch.pointee.release == nil {
                batch.deallocate()
                if !ok {
                    let result = ArrowResult(schema: schema, batches: batches)
                    _ = result
                    throw DuckDBError(.arrow, api.query_arrow_error(arrow).map { String(cString: $0) } ?? "cannot export an Arrow batch")
                }
                break
            }
            batches.append(batch)
        }
        return ArrowResult(schema: schema, batches: batches)
    }

    /// Makes an Arrow stream readable under `name` (a view DuckDB scans once).
    public func register(_ stream: UnsafeMutablePointer<ArrowArrayStream>, as name: String) throws(DuckDBError) {
        guard api.arrow_scan(handle!, name, UnsafeMutableRawPointer(stream)) == duckDBSuccess else {
            throw DuckDBError(.arrow, "DuckDB could not register the Arrow stream as \(name)")
        }
    }
}
