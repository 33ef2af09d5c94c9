import Foundation

/// A row-level change to a table: it rewrites only the segments holding
/// the rows it touches (plus new segments for new rows), and of those only
/// the column chunks whose values changed are stored anew.
public struct RowEdit: Sendable {
    enum Base: Sendable {
        case append(WriteSource)
        case upsert(WriteSource)
        case deleteKeys(WriteSource)
        case deleteWhere(String)
        case update(assignments: [Assignment], predicate: String?)
    }
    let base: Base

    /// Adds rows. On a keyed table, keys that already exist are an error.
    public static func append(_ source: WriteSource) -> RowEdit { RowEdit(base: .append(source)) }
    /// Inserts rows whose key is new and replaces rows whose key exists.
    public static func upsert(_ source: WriteSource) -> RowEdit { RowEdit(base: .upsert(source)) }
    /// Deletes the rows whose key occurs in `source` (its key columns).
    public static func delete(keysFrom source: WriteSource) -> RowEdit { RowEdit(base: .deleteKeys(source)) }
    /// Deletes the rows for which the SQL predicate is true.
    public static func delete(where predicate: String) -> RowEdit { RowEdit(base: .deleteWhere(predicate)) }
    /// Sets columns to SQL expressions (`"status = 'closed', score = score * 2"`)
    /// in the rows for which `predicate` is true (all rows when nil).
    public static func update(set assignments: String, where predicate: String?) throws(UDRError) -> RowEdit {
        RowEdit(base: .update(assignments: try Assignment.parse(assignments), predicate: predicate))
    }

    /// The input the edit reads, if any.
    var source: WriteSource? {
        switch base {
        case .append(let s), .upsert(let s), .deleteKeys(let s): return s
        case .deleteWhere, .update: return nil
        }
    }

    /// The predicate of a delete or update: the rows it keeps to (`true`
    /// for an update of every row); nil for edits that read an input.
    var predicate: String? {
        switch base {
        case .deleteWhere(let p): return p
        case .update(_, let p): return p ?? "true"
        case .append, .upsert, .deleteKeys: return nil
        }
    }

    /// The SQL the edit evaluates over the repository's tables.
    var sqlText: String? {
        switch base {
        case .deleteWhere(let p): return p
        case .update(let assignments, let p): return (assignments.map(\.expression) + [p ?? ""]).joined(separator: " ")
        case .append(let s), .upsert(let s), .deleteKeys(let s):
            if case .sql(let q) = s.base { return q }
            return nil
        }
    }

    var verb: String {
        switch base {
        case .append: return "append to"
        case .upsert: return "upsert into"
        case .deleteKeys, .deleteWhere: return "delete from"
        case .update: return "update"
        }
    }
}

/// One `column = expression` of an update.
struct Assignment: Sendable, Hashable {
    let column: String
    let expression: String

    /// Splits `a = 1, b = lower(c)` at top-level commas (outside quotes and
    /// parentheses), each at its first `=`.
    static func parse(_ text: String) throws(UDRError) -> [Assignment] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        var quote: Character?
        for character in text {
            if let q = quote {
                if character == q { quote = nil }
            } else if character == "'" || character == "\"" {
                quote = character
            } else if character == "(" || character == "[" || character == "{" {
                depth += 1
            } else if character == ")" || character == "]" || character == "}" {
                depth -= 1
            } else if character == "," && depth == 0 {
                parts.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        parts.append(current)
        var out: [Assignment] = []
        for part in parts {
            guard let eq = part.firstIndex(of: "=") else {
                throw UDRError(
                    .invalidArgument, "'\(part.trimmingCharacters(in: .whitespaces))' is not an assignment: use COLUMN = EXPRESSION")
            }
            var column = part[..<eq].trimmingCharacters(in: .whitespaces)
            if column.count >= 2, column.hasPrefix("\""), column.hasSuffix("\"") {
                column = String(column.dropFirst().dropLast()).replacingOccurrences(of: "\"\"", with: "\"")
            }
            let expression = part[part.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !column.isEmpty, !expression.isEmpty else {
                throw UDRError(
                    .invalidArgument, "'\(part.trimmingCharacters(in: .whitespaces))' is not an assignment: use COLUMN = EXPRESSION")
            }
            out.append(Assignment(column: column, expression: expression))
        }
        return out
    }
}
