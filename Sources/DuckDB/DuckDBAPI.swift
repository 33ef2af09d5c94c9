import CArrowABI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Opaque handle types of DuckDB's C API. `duckdb_result` is a 48-byte struct
// that callers allocate; we treat it as raw memory of `resultSize` bytes.
typealias DatabaseHandle = OpaquePointer
typealias ConnectionHandle = OpaquePointer
typealias ConfigHandle = OpaquePointer
typealias StatementHandle = OpaquePointer
typealias ResultPointer = UnsafeMutableRawPointer
typealias State = Int32
typealias Index = UInt64

let duckDBSuccess: State = 0
/// sizeof(duckdb_result): six pointer-sized fields.
let resultSize = 48

/// The C API functions UDR uses, shaped like DuckDB's `duckdb_extension.h`
/// function table. Every entry is resolved when the library loads, so a
/// missing symbol fails at load, not in the middle of a query.
struct DuckDBAPI: @unchecked Sendable {
    // @unchecked: a table of immutable C function pointers.
    let library_version: @convention(c) () -> UnsafePointer<CChar>
    let open_ext:
        @convention(c) (
            UnsafePointer<CChar>?, UnsafeMutablePointer<DatabaseHandle?>, ConfigHandle?, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        ) -> State
    let close: @convention(c) (UnsafeMutablePointer<DatabaseHandle?>) -> Void
    let connect: @convention(c) (DatabaseHandle, UnsafeMutablePointer<ConnectionHandle?>) -> State
    let disconnect: @convention(c) (UnsafeMutablePointer<ConnectionHandle?>) -> Void
    let interrupt: @convention(c) (ConnectionHandle) -> Void
    let create_config: @convention(c) (UnsafeMutablePointer<ConfigHandle?>) -> State
    let set_config: @convention(c) (ConfigHandle, UnsafePointer<CChar>, UnsafePointer<CChar>) -> State
    let destroy_config: @convention(c) (UnsafeMutablePointer<ConfigHandle?>) -> Void
    let query: @convention(c) (ConnectionHandle, UnsafePointer<CChar>, ResultPointer) -> State
    let destroy_result: @convention(c) (ResultPointer) -> Void
    let result_error: @convention(c) (ResultPointer) -> UnsafePointer<CChar>?
    let column_count: @convention(c) (ResultPointer) -> Index
    let row_count: @convention(c) (ResultPointer) -> Index
    let rows_changed: @convention(c) (ResultPointer) -> Index
    let column_name: @convention(c) (ResultPointer, Index) -> UnsafePointer<CChar>?
    let column_type: @convention(c) (ResultPointer, Index) -> Int32
    let value_is_null: @convention(c) (ResultPointer, Index, Index) -> Bool
    let value_varchar: @convention(c) (ResultPointer, Index, Index) -> UnsafeMutablePointer<CChar>?
    let value_int64: @convention(c) (ResultPointer, Index, Index) -> Int64
    let value_double: @convention(c) (ResultPointer, Index, Index) -> Double
    let value_boolean: @convention(c) (ResultPointer, Index, Index) -> Bool
    let free: @convention(c) (UnsafeMutableRawPointer?) -> Void
    let prepare: @convention(c) (ConnectionHandle, UnsafePointer<CChar>, UnsafeMutablePointer<StatementHandle?>) -> State
    let prepare_error: @convention(c) (StatementHandle?) -> UnsafePointer<CChar>?
    let destroy_prepare: @convention(c) (UnsafeMutablePointer<StatementHandle?>) -> Void
    let nparams: @convention(c) (StatementHandle) -> Index
    let bind_varchar_length: @convention(c) (StatementHandle, Index, UnsafePointer<CChar>, Index) -> State
    let bind_int64: @convention(c) (StatementHandle, Index, Int64) -> State
    let bind_double: @convention(c) (StatementHandle, Index, Double) -> State
    let bind_boolean: @convention(c) (StatementHandle, Index, Bool) -> State
    let bind_null: @convention(c) (StatementHandle, Index) -> State
    let bind_blob: @convention(c) (StatementHandle, Index, UnsafeRawPointer?, Index) -> State
    let execute_prepared: @convention(c) (StatementHandle, ResultPointer) -> State
    // Arrow: duckdb_arrow handles, and pointers to pointers to the C data interface structs.
    let query_arrow: @convention(c) (ConnectionHandle, UnsafePointer<CChar>, UnsafeMutablePointer<OpaquePointer?>) -> State
    let query_arrow_schema: @convention(c) (OpaquePointer, UnsafeMutableRawPointer) -> State
    let query_arrow_array: @convention(c) (OpaquePointer, UnsafeMutableRawPointer) -> State
    let query_arrow_error: @convention(c) (OpaquePointer) -> UnsafePointer<CChar>?
    let destroy_arrow: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Void
    let arrow_scan: @convention(c) (ConnectionHandle, UnsafePointer<CChar>, UnsafeMutableRawPointer) -> State
    // Streaming results turned into Arrow chunk by chunk (the non-deprecated Arrow API).
    let execute_prepared_streaming: @convention(c) (StatementHandle, ResultPointer) -> State
    let fetch_chunk: @convention(c) (udr_duckdb_result) -> OpaquePointer?
    let destroy_data_chunk: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Void
    let result_get_arrow_options: @convention(c) (ResultPointer) -> OpaquePointer?
    let destroy_arrow_options: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Void
    let column_logical_type: @convention(c) (ResultPointer, Index) -> OpaquePointer?
    let destroy_logical_type: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Void
    let to_arrow_schema:
        @convention(c) (
            OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>, UnsafeMutablePointer<UnsafePointer<CChar>?>, Index,
            UnsafeMutablePointer<ArrowSchema>
        ) -> OpaquePointer?
    let data_chunk_to_arrow: @convention(c) (OpaquePointer?, OpaquePointer?, UnsafeMutablePointer<ArrowArray>) -> OpaquePointer?
    let error_data_message: @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?
    let destroy_error_data: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Void

    init(handle: UnsafeMutableRawPointer, path: String) throws(DuckDBError) {
        func sym<T>(_ name: String) throws(DuckDBError) -> T {
            guard let pointer = dlsym(handle, name) else {
                throw DuckDBError(
                    .symbolMissing,
                    "\(path) does not export \(name): \(lastDLError()). UDR needs DuckDB \(DuckDBLibrary.pinnedVersion); run `make setup`.")
            }
            return unsafeBitCast(pointer, to: T.self)
        }
        library_version = try sym("duckdb_library_version")
        open_ext = try sym("duckdb_open_ext")
        close = try sym("duckdb_close")
        connect = try sym("duckdb_connect")
        disconnect = try sym("duckdb_disconnect")
        interrupt = try sym("duckdb_interrupt")
        create_config = try sym("duckdb_create_config")
        set_config = try sym("duckdb_set_config")
        destroy_config = try sym("duckdb_destroy_config")
        query = try sym("duckdb_query")
        destroy_result = try sym("duckdb_destroy_result")
        result_error = try sym("duckdb_result_error")
        column_count = try sym("duckdb_column_count")
        row_count = try sym("duckdb_row_count")
        rows_changed = try sym("duckdb_rows_changed")
        column_name = try sym("duckdb_column_name")
        column_type = try sym("duckdb_column_type")
        value_is_null = try sym("duckdb_value_is_null")
        value_varchar = try sym("duckdb_value_varchar")
        value_int64 = try sym("duckdb_value_int64")
        value_double = try sym("duckdb_value_double")
        value_boolean = try sym("duckdb_value_boolean")
        free = try sym("duckdb_free")
        prepare = try sym("duckdb_prepare")
        prepare_error = try sym("duckdb_prepare_error")
        destroy_prepare = try sym("duckdb_destroy_prepare")
        nparams = try sym("duckdb_nparams")
        bind_varchar_length = try sym("duckdb_bind_varchar_length")
        bind_int64 = try sym("duckdb_bind_int64")
        bind_double = try sym("duckdb_bind_double")
        bind_boolean = try sym("duckdb_bind_boolean")
        bind_null = try sym("duckdb_bind_null")
        bind_blob = try sym("duckdb_bind_blob")
        execute_prepared = try sym("duckdb_execute_prepared")
        query_arrow = try sym("duckdb_query_arrow")
        query_arrow_schema = try sym("duckdb_query_arrow_schema")
        query_arrow_array = try sym("duckdb_query_arrow_array")
        query_arrow_error = try sym("duckdb_query_arrow_error")
        destroy_arrow = try sym("duckdb_destroy_arrow")
        arrow_scan = try sym("duckdb_arrow_scan")
        execute_prepared_streaming = try sym("duckdb_execute_prepared_streaming")
        fetch_chunk = try sym("duckdb_fetch_chunk")
        destroy_data_chunk = try sym("duckdb_destroy_data_chunk")
        result_get_arrow_options = try sym("duckdb_result_get_arrow_options")
        destroy_arrow_options = try sym("duckdb_destroy_arrow_options")
        column_logical_type = try sym("duckdb_column_logical_type")
        destroy_logical_type = try sym("duckdb_destroy_logical_type")
        to_arrow_schema = try sym("duckdb_to_arrow_schema")
        data_chunk_to_arrow = try sym("duckdb_data_chunk_to_arrow")
        error_data_message = try sym("duckdb_error_data_message")
        destroy_error_data = try sym("duckdb_destroy_error_data")
    }
}
