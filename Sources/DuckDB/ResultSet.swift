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

    /// What reading a result gives: its rows, or the columns it has that
    /// DuckDB's value API cannot return (see ``needsText(_:)``), to be
    /// read again as text.
    enum Reading {
        case rows(ResultSet)
        case needsText(columns: [Column])
    }

    /// Type codes DuckDB's C value API reads rightly: booleans, integers
    /// (HUGEINT and UHUGEINT too), FLOAT, DOUBLE, DECIMAL, DATE, TIME,
    /// TIMESTAMP, INTERVAL, VARCHAR and BLOB. It reads the others wrongly:
    /// ENUM, LIST, STRUCT, MAP, ARRAY, UNION, TIMESTAMP_S/MS/NS, TIMESTAMPTZ
    /// and TIMETZ as empty strings, and a UUID fails the whole result's
    /// conversion (later columns read as null pointers). A column of any
    /// other type is read as its text form instead (``textSelect(_:columns:)``).
    static let valueTypes: Set<Int32> = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 32]

    static func needsText(_ column: Column) -> Bool { !valueTypes.contains(column.typeCode) }

    static func read(api: DuckDBAPI, result: ResultPointer) -> Reading {
        let columnCount = Int(api.column_count(result))
        var columns: [Column] = []
        for c in 0..<columnCount {
            let name = api.column_name(result, Index(c)).map { String(cString: $0) } ?? ""
            columns.append(Column(name: name, typeCode: api.column_type(result, Index(c))))
        }
        if columns.contains(where: needsText) { return .needsText(columns: columns) }
        return .rows(ResultSet(api: api, result: result, columns: columns))
    }

    /// `sql` (one query) as a query of its result with the columns
    /// ``needsText(_:)`` names cast to text, by position (names may repeat).
    static func textSelect(_ sql: String, columns: [Column]) -> String {
        var query = Substring(sql)
        while let last = query.last, last == ";" || last.isWhitespace { query = query.dropLast() }
        let select = columns.enumerated().map { offset, column in
            let name = "\"" + column.name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
            return needsText(column) ? "CAST(#\(offset + 1) AS VARCHAR) AS \(name)" : "#\(offset + 1) AS \(name)"
        }
        return "SELECT \(select.joined(separator: ", ")) FROM (\(query)) AS __q"
    }

    /// The error when a result with such a column cannot be read again as a subquery.
    static func unreadable(_ columns: [Column], _ error: DuckDBError) -> DuckDBError {
        let names = columns.filter(needsText).map(\.name).joined(separator: ", ")
        return DuckDBError(
            .query,
            "the result's column \(names) is of a type DuckDB's C API cannot return as a value (such as UUID, LIST, STRUCT, ENUM or TIMESTAMPTZ), and the statement cannot be read as a subquery to cast it (\(error.message)); select it CAST AS VARCHAR"
        )
    }

    /// The rows of a result read again by ``textSelect(_:columns:)``: the
    /// same columns, each one ``needsText(_:)`` names now text. Anything else
    /// means the statement was not one query.
    static func checked(_ reading: Reading, _ columns: [Column]) throws(DuckDBError) -> ResultSet {
        guard case .rows(let rows) = reading, rows.columns.map(\.name) == columns.map(\.name) else {
            throw unreadable(columns, DuckDBError(.query, "it is not one query"))
        }
        return rows
    }

    private init(api: DuckDBAPI, result: ResultPointer, columns: [Column]) {
        let columnCount = columns.count
        let rowCount = Int(api.row_count(result))
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
