import DuckDB
import Foundation

/// DuckDB type strings, parsed far enough to map a column's logical type to
/// the type its values are stored as in Parquet. Parquet cannot hold some of
/// DuckDB's types exactly (HUGEINT becomes DOUBLE, INTERVAL loses
/// microseconds, TIME WITH TIME ZONE loses its offset); those are stored as
/// their exact text form, wherever they occur in a nested type, and cast
/// back on read.
indirect enum TypeNode: Equatable {
    case scalar(String)
    case list(TypeNode)
    case array(TypeNode, String)
    case structure([(String, TypeNode)])
    case map(TypeNode, TypeNode)
    case enumeration(String)
    case union(String)

    static func == (a: TypeNode, b: TypeNode) -> Bool { a.sql == b.sql }

    /// Scalar types stored as text because Parquet would change them.
    static let storedAsText: Set<String> = [
        "HUGEINT", "UHUGEINT", "INTERVAL", "TIME WITH TIME ZONE", "TIMETZ", "BIT", "BITSTRING", "VARINT", "BIGNUM",
        "TIME_NS",
    ]

    /// How values of a storage type are told apart exactly.
    enum Equality {
        /// By DuckDB's equality: distinct values never compare equal.
        case values
        /// By equality and the sign: DuckDB's equality holds -0.0 = 0.0.
        case floats
    }

    /// Storage types whose values DuckDB's equality tells apart exactly
    /// (strings and blobs byte for byte; times as their stored number).
    static let comparedByValue: Set<String> = [
        "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "DECIMAL", "VARCHAR", "BLOB",
        "DATE", "TIME", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE", "UUID",
    ]

    /// How two values of this storage type are told apart exactly; nil
    /// for a type not compared here (a float inside a nested type, any
    /// type not listed): such values are never taken to be the same.
    var equality: Equality? {
        switch self {
        case .scalar(let name):
            let base = name.split(separator: "(").first.map { $0.trimmingCharacters(in: .whitespaces).uppercased() } ?? name
            if ["FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8"].contains(base) { return .floats }
            return Self.comparedByValue.contains(base) ? .values : nil
        case .list(let element), .array(let element, _): return element.equality == .values ? .values : nil
        case .structure(let fields): return fields.allSatisfy { $0.1.equality == .values } ? .values : nil
        case .map(let k, let v): return k.equality == .values && v.equality == .values ? .values : nil
        case .enumeration, .union: return nil
        }
    }

    /// SQL true where `x` and `y`, values of this storage type, differ
    /// exactly; nil when the type has no exact comparison here.
    func distinct(_ x: String, _ y: String) -> String? {
        switch equality {
        case .values: return "\(x) IS DISTINCT FROM \(y)"
        case .floats: return "(\(x) IS DISTINCT FROM \(y) OR signbit(\(x)) IS DISTINCT FROM signbit(\(y)))"
        case nil: return nil
        }
    }

    /// SQL true where `a` and `b`, values of the logical type `type`,
    /// differ exactly: compared in storage form (an INTERVAL as its exact
    /// text, so '1 month' is not '30 days'; -0.0 is not 0.0), and as text
    /// where that has no exact comparison here (a DOUBLE's text is exact).
    /// DuckDB's own equality holds both pairs equal.
    static func differ(_ a: String, _ b: String, logicalType type: String) throws(UDRError) -> String {
        let storage = try parse(type).storage()
        let (x, y) = ("CAST(\(a) AS \(storage.sql))", "CAST(\(b) AS \(storage.sql))")
        return storage.distinct(x, y) ?? "CAST(\(x) AS VARCHAR) IS DISTINCT FROM CAST(\(y) AS VARCHAR)"
    }

    /// The type written to Parquet.
    func storage() throws(UDRError) -> TypeNode {
        switch self {
        case .scalar(let name):
            let base = name.split(separator: "(").first.map { $0.trimmingCharacters(in: .whitespaces).uppercased() } ?? name
            return Self.storedAsText.contains(base) ? .scalar("VARCHAR") : self
        case .list(let element): return .list(try element.storage())
        case .array(let element, let size): return .array(try element.storage(), size)
        case .structure(let fields):
            var mapped: [(String, TypeNode)] = []
            for (name, type) in fields { mapped.append((name, try type.storage())) }
            return .structure(mapped)
        case .map(let k, let v): return .map(try k.storage(), try v.storage())
        case .enumeration: return .scalar("VARCHAR")
        case .union(let text):
            throw UDRError(
                .unsupportedType,
                "columns of type \(text) cannot be stored yet: UNION has no exact Parquet form. Cast the column to a STRUCT or VARCHAR before writing."
            )
        }
    }

    var sql: String {
        switch self {
        case .scalar(let name): return name
        case .list(let element): return element.sql + "[]"
        case .array(let element, let size): return element.sql + "[\(size)]"
        case .structure(let fields): return "STRUCT(" + fields.map { quoteIdentifier($0.0) + " " + $0.1.sql }.joined(separator: ", ") + ")"
        case .map(let k, let v): return "MAP(\(k.sql), \(v.sql))"
        case .enumeration(let text), .union(let text): return text
        }
    }

    static func parse(_ text: String) throws(UDRError) -> TypeNode {
        var parser = TypeParser(text)
        let node = try parser.parseType()
        parser.skipSpace()
        guard parser.atEnd else { throw parser.failure() }
        return node
    }
}

private struct TypeParser {
    let chars: [Character]
    let text: String
    var i = 0

    init(_ text: String) {
        self.text = text
        self.chars = Array(text)
    }

    var atEnd: Bool { i >= chars.count }
    func failure() -> UDRError { UDRError(.unsupportedType, "cannot parse the DuckDB type '\(text)'") }

    mutating func skipSpace() { while i < chars.count, chars[i] == " " { i += 1 } }

    mutating func word() -> String {
        skipSpace()
        let start = i
        while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" { i += 1 }
        return String(chars[start..<i])
    }

    /// Text of a balanced parenthesized group starting at `(`, quotes respected.
    mutating func balanced() throws(UDRError) -> String {
        let start = i
        var depth = 0
        var quote: Character?
        while i < chars.count {
            let c = chars[i]
            i += 1
            if let q = quote {
                if c == q { quote = nil }
                continue
            }
            if c == "'" || c == "\"" {
                quote = c
            } else if c == "(" {
                depth += 1
            } else if c == ")" {
                depth -= 1
                if depth == 0 { return String(chars[start..<i]) }
            }
        }
        throw failure()
    }

    mutating func expect(_ c: Character) throws(UDRError) {
        skipSpace()
        guard i < chars.count, chars[i] == c else { throw failure() }
        i += 1
    }

    mutating func fieldName() throws(UDRError) -> String {
        skipSpace()
        if i < chars.count, chars[i] == "\"" {
            i += 1
            var name = ""
            while i < chars.count {
                if chars[i] == "\"" {
                    if i + 1 < chars.count, chars[i + 1] == "\"" { name.append("\""); i += 2; continue }
                    i += 1
                    return name
                }
                name.append(chars[i])
                i += 1
            }
            throw failure()
        }
        let w = word()
        guard !w.isEmpty else { throw failure() }
        return w
    }

    mutating func parseType() throws(UDRError) -> TypeNode {
        skipSpace()
        var words: [String] = []
        while true {
            let save = i
            let w = word()
            if w.isEmpty { i = save; break }
            words.append(w)
            skipSpace()
            if i >= chars.count || chars[i] == "(" || chars[i] == "[" || chars[i] == "," || chars[i] == ")" { break }
        }
        guard !words.isEmpty else { throw failure() }
        let name = words.joined(separator: " ")
        var node: TypeNode
        switch name.uppercased() {
        case "STRUCT":
            try expect("(")
            var fields: [(String, TypeNode)] = []
            while true {
                let field = try fieldName()
                fields.append((field, try parseType()))
                skipSpace()
                if i < chars.count, chars[i] == "," { i += 1; continue }
                try expect(")")
                break
            }
            node = .structure(fields)
        case "MAP":
            try expect("(")
            let k = try parseType()
            try expect(",")
            let v = try parseType()
            try expect(")")
            node = .map(k, v)
        case "ENUM":
            skipSpace()
            node = .enumeration(name + (try balanced()))
        case "UNION":
            skipSpace()
            node = .union(name + (try balanced()))
        default:
            skipSpace()
            if i < chars.count, chars[i] == "(" {
                node = .scalar(name + (try balanced()))
            } else {
                node = .scalar(name)
            }
        }
        while true {
            skipSpace()
            guard i < chars.count, chars[i] == "[" else { break }
            i += 1
            let start = i
            while i < chars.count, chars[i] != "]" { i += 1 }
            guard i < chars.count else { throw failure() }
            let size = String(chars[start..<i]).trimmingCharacters(in: .whitespaces)
            i += 1
            node = size.isEmpty ? .list(node) : .array(node, size)
        }
        return node
    }
}

/// `"name"` with embedded quotes doubled: safe for any identifier.
/// A select list of typed NULLs named like `columns`: with `WHERE false`,
/// an empty relation of that schema.
func typedNulls(_ columns: [Column]) -> String {
    columns.map { "CAST(NULL AS \($0.type)) AS \(quoteIdentifier($0.name))" }.joined(separator: ", ")
}

/// Creates table `name` of `columns` (a column definition list) holding
/// `rows` (each a parenthesized tuple of SQL literals), inserted 10,000
/// at a time so that no statement grows without bound.
func createTable(_ name: String, columns: String, rows: [String], temporary: Bool = false, on connection: Connection) throws(UDRError) {
    do throws(DuckDBError) {
        try connection.execute("CREATE \(temporary ? "TEMP " : "")TABLE \(name) (\(columns))")
        for start in stride(from: 0, to: rows.count, by: 10_000) {
            try connection.execute("INSERT INTO \(name) VALUES \(rows[start..<min(start + 10_000, rows.count)].joined(separator: ", "))")
        }
    } catch { throw UDRError(.query, error.message, underlying: error) }
}

public func quoteIdentifier(_ name: String) -> String {
    "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

/// `'text'` with embedded quotes doubled, for the few places DuckDB takes
/// only a literal (file paths in COPY and read_* table functions).
public func quoteLiteral(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
}
