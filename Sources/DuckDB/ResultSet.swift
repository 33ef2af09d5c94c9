/// A materialized query result: column names and types, and every cell
/// copied into Swift values. Meant for metadata and moderate results; bulk
/// data stays inside DuckDB (COPY, views).
public struct ResultSet: Sendable {
    public struct Column: Sendable, Hashable {
        public let name: String
        /// DuckDB's `duckdb_type` code of the column.
        public let typeCode: Int32
    }

    public let columns: [Column]
    public let rows: [[Cell]]
    /// Rows inserted, updated or deleted by the statement.
    public let rowsChanged: Int

    init(api: DuckDBAPI, result: ResultPointer) {
        let columnCount = Int(api.column_count(result))
        let rowCount = Int(api.row_count(result))
        var columns: [Column] = []
        for c in 0..<columnCount {
            let name = api.column_name(result, Index(c)).map { String(cString: $0) } ?? ""
            columns.append(Column(name: name, typeCode: api.column_type(result, Index(c))))
        }
        var rows: [[Cell]] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var row: [Cell] = []
            row.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                let (col, idx) = (Index(c), Index(r))
                if api.value_is_null(result, col, idx) {
                    row.append(.null)
                    continue
                }
                switch columns[c].typeCode {
                case 1: row.append(.bool(api.value_boolean(result, col, idx)))
                case 2, 3, 4, 5, 6, 7, 8: row.append(.int(api.value_int64(result, col, idx)))
                case 10, 11: row.append(.double(api.value_double(result, col, idx)))
                default:
                    let pointer = api.value_varchar(result, col, idx)
                    row.append(.text(pointer.map { String(cString: $0) } ?? ""))
                    api.free(pointer)
                }
            }
            rows.append(row)
        }
        self.columns = columns
        self.rows = rows
        self.rowsChanged = Int(api.rows_changed(result))
    }

    public var count: Int { rows.count }

    /// The cell at `row` in the column named `name`.
    public subscript(row: Int, name: String) -> Cell {
        guard let c = columns.firstIndex(where: { $0.name == name }) else { return .null }
        return rows[row][c]
    }

    /// The first column of the first row, if any.
    public var scalar: Cell { rows.first?.first ?? .null }
}

/// One value of a result, typed by its column: booleans, integers that fit
/// 64 bits and floating-point numbers keep their type; everything else is
/// DuckDB's text form.
public enum Cell: Sendable, Hashable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case text(String)

    public var isNull: Bool { self == .null }

    public var int: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d): return Int64(exactly: d)
        case .text(let s): return Int64(s)
        case .bool(let b): return b ? 1 : 0
        case .null: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .text(let s): return Double(s)
        default: return nil
        }
    }

    public var string: String? {
        switch self {
        case .null: return nil
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .text(let s): return s
        }
    }

    public var description: String { string ?? "NULL" }
}
