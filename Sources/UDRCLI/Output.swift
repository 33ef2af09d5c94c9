import DuckDB
import Foundation
import UDRCore

/// Printing for the CLI: aligned text tables and JSON.
enum Output {
    /// A table's version before and after a commit: `v3`, or `new` / `dropped`.
    static func versions(_ old: Int?, _ new: Int?) -> (from: String, to: String) {
        (old.map { "v\($0)" } ?? "new", new.map { "v\($0)" } ?? "dropped")
    }

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(Timestamp.format(date))
        }
        guard let data = try? encoder.encode(value) else { return "null" }
        return String(decoding: data, as: UTF8.self)
    }

    /// "1000 rows (10 inserted, 2 updated, 0 deleted)"; the counts when known.
    static func describe(_ counts: RowCounts?, rows: Int64) -> String {
        guard let counts else { return "\(rows) rows" }
        return "\(rows) rows (\(counts.inserted) inserted, \(counts.updated) updated, \(counts.deleted) deleted)"
    }

    /// "2 rows inserted, 1 updated, 0 deleted".
    static func changes(_ counts: RowCounts) -> String {
        let parts = [("inserted", counts.inserted), ("updated", counts.updated), ("deleted", counts.deleted)].filter { $0.1 > 0 }
        guard !parts.isEmpty else { return "no rows changed" }
        let first = "\(parts[0].1) row\(parts[0].1 == 1 ? "" : "s") \(parts[0].0)"
        return ([first] + parts.dropFirst().map { "\($0.1) \($0.0)" }).joined(separator: ", ")
    }

    /// Rows as CSV with a header, fields quoted where they need it.
    static func csv(_ result: ResultSet) -> String {
        func field(_ text: String) -> String {
            guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var out = result.columns.map { field($0.name) }.joined(separator: ",") + "\n"
        for row in result.rows { out += row.map { $0.isNull ? "" : field($0.string ?? "") }.joined(separator: ",") + "\n" }
        return out
    }

    /// A box-drawn table of strings, columns sized to fit.
    static func table(headers: [String], rows: [[String]]) -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            "│ " + cells.enumerated().map { i, c in c + String(repeating: " ", count: widths[i] - c.count) }.joined(separator: " │ ") + " │"
        }
        func rule(_ l: String, _ m: String, _ r: String) -> String {
            l + widths.map { String(repeating: "─", count: $0 + 2) }.joined(separator: m) + r
        }
        var out = [rule("┌", "┬", "┐"), line(headers), rule("├", "┼", "┤")]
        out += rows.map(line)
        out.append(rule("└", "┴", "┘"))
        return out.joined(separator: "\n")
    }

    static func table(_ result: ResultSet) -> String {
        let rows = result.rows.map { $0.map { $0.string ?? "NULL" } }
        return table(headers: result.columns.map(\.name), rows: rows) + "\n\(result.count) row\(result.count == 1 ? "" : "s")"
    }

    static func jsonRows(_ result: ResultSet) -> String {
        let objects: [[String: JSONCell]] = result.rows.map { row in
            Dictionary(uniqueKeysWithValues: zip(result.columns.map(\.name), row.map(JSONCell.init)))
        }
        return json(objects)
    }

    /// The format asked for: `--format`, else `--json`, else what the
    /// output file's extension says, else a table.
    static func format(_ text: String?, json: Bool, output: String?) throws(UDRError) -> OutputFormat {
        if let text { return try OutputFormat(parsing: text) }
        if json { return .json }
        return output.flatMap { OutputFormat.forFile($0) } ?? .table
    }

    /// Prints rows in `format`, or writes them to `output` (`export` writes
    /// a file in a format DuckDB's COPY knows).
    static func emit(
        _ format: OutputFormat, to output: String?, rows: () async throws(UDRError) -> ResultSet,
        export: (String, OutputFormat) async throws(UDRError) -> Void
    ) async throws(UDRError) {
        if let output { return try await export(output, format == .table ? .csv : format) }
        switch format {
        case .table: print(table(try await rows()))
        case .json: print(jsonRows(try await rows()))
        case .csv:
            // DuckDB's COPY opens its target with truncation, which would clobber
            // a redirected stdout; go through a temporary file.
            let temp = FileManager.default.temporaryDirectory.appendingPathComponent("udr-\(UUID().uuidString).csv")
            defer { try? FileManager.default.removeItem(at: temp) }
            try await export(temp.path, .csv)
            guard let data = FileManager.default.contents(atPath: temp.path) else {
                throw UDRError(.io, "cannot read back the CSV written to \(temp.path)")
            }
            FileHandle.standardOutput.write(data)
        default: throw UDRError(.invalidArgument, "--format \(format) needs -o FILE")
        }
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }
}
