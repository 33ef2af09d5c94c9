import DuckDB
import Foundation

/// Segment pruning for point lookups: finds `key = constant` conditions in
/// a query's syntax tree (DuckDB's own parser, via `json_serialize_sql`) and
/// keeps only the segments whose key range can hold the constant.
///
/// Conservative by construction: a table is pruned only when the query
/// names it exactly once, reads it directly in a SELECT's FROM, and the
/// equality is a top-level AND-conjunct of that SELECT's WHERE. Anything
/// else leaves every segment in place.
struct KeyPruning {
    /// Lower-cased table reference (`name` or `schema.name`) → column → values.
    private(set) var equalities: [String: [String: [Any]]] = [:]

    /// The equalities of `sql` that may prune the segments of `tables`.
    init(sql: String, connection: Connection, tables: some Sequence<Manifest>) {
        // Without an `=`, or without the name of a key column that prunes,
        // there is no equality to find: skip the parse (it cost an
        // aggregate over a small table a sixth of its time).
        let lowered = Array(sql.lowercased().utf8)
        let keys = Set(tables.compactMap { Self.prunableKey(of: $0) })
        guard lowered.contains(UInt8(ascii: "=")), keys.contains(where: { Repository.Mentions.contains(lowered, $0) }),
            let text = try? connection.query("SELECT json_serialize_sql($1::VARCHAR)", [.text(sql)]).scalar.string,
            let tree = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            (tree["error"] as? Bool) != true
        else { return }
        var references: [String: Int] = [:]
        var found: [(String, String, Any)] = []
        Self.walk(tree, references: &references, found: &found)
        for (table, column, value) in found where references[table] == 1 {
            equalities[table, default: [:]][column, default: []].append(value)
        }
    }

    private static func reference(_ node: [String: Any]) -> String {
        let schema = (node["schema_name"] as? String) ?? ""
        let table = (node["table_name"] as? String) ?? ""
        return (schema.isEmpty ? table : schema + "." + table).lowercased()
    }

    private static func walk(_ value: Any, references: inout [String: Int], found: inout [(String, String, Any)]) {
        if let list = value as? [Any] {
            for item in list { walk(item, references: &references, found: &found) }
            return
        }
        guard let node = value as? [String: Any] else { return }
        if node["type"] as? String == "BASE_TABLE" { references[reference(node), default: 0] += 1 }
        if node["type"] as? String == "SELECT_NODE", let from = node["from_table"] as? [String: Any],
            from["type"] as? String == "BASE_TABLE", let condition = node["where_clause"] as? [String: Any]
        {
            let table = reference(from)
            let alias = ((from["alias"] as? String).flatMap { $0.isEmpty ? nil : $0 } ?? (from["table_name"] as? String ?? "")).lowercased()
            for conjunct in conjuncts(condition) {
                if let (column, constant) = equality(conjunct, qualifier: alias) { found.append((table, column, constant)) }
            }
        }
        for child in node.values { walk(child, references: &references, found: &found) }
    }

    private static func conjuncts(_ node: [String: Any]) -> [[String: Any]] {
        if node["type"] as? String == "CONJUNCTION_AND", let children = node["children"] as? [[String: Any]] {
            return children.flatMap(conjuncts)
        }
        return [node]
    }

    private static func equality(_ node: [String: Any], qualifier: String) -> (String, Any)? {
        guard node["type"] as? String == "COMPARE_EQUAL",
            let left = node["left"] as? [String: Any], let right = node["right"] as? [String: Any]
        else { return nil }
        for (a, b) in [(left, right), (right, left)] {
            guard a["class"] as? String == "COLUMN_REF", b["type"] as? String == "VALUE_CONSTANT",
                let names = a["column_names"] as? [String],
                let value = b["value"] as? [String: Any], (value["is_null"] as? Bool) != true, let constant = value["value"]
            else { continue }
            if names.count == 1 { return (names[0].lowercased(), constant) }
            if names.count == 2, names[0].lowercased() == qualifier { return (names[1].lowercased(), constant) }
        }
        return nil
    }

    /// The segments of `manifest`, read under `name`, that a point lookup
    /// on its first key column can need.
    func segments(of manifest: Manifest, readAs name: TableName) -> [SegmentRef] {
        guard let keyColumn = Self.prunableKey(of: manifest), let values = equalities[name.rawValue.lowercased()]?[keyColumn.lowercased()]
        else { return manifest.segments }
        var integers: [Int64] = []
        for value in values {
            guard let v = (value as? NSNumber)?.int64Value ?? (value as? String).flatMap({ Int64($0) }) else { return manifest.segments }
            integers.append(v)
        }
        // A view needs at least one file for its schema; the query's own
        // filter drops that segment's rows.
        let kept = Self.segments(of: manifest, holding: integers, in: keyColumn)
        return kept.isEmpty ? Array(manifest.segments.prefix(1)) : kept
    }

    /// The segments of `manifest` whose range of the integer column
    /// `column` can hold one of `values` (a segment without statistics can).
    static func segments(of manifest: Manifest, holding values: [Int64], in column: String) -> [SegmentRef] {
        let sorted = values.sorted()
        return manifest.segments.filter { segment in
            guard let stats = segment.stats[column], let low = stats.min.flatMap({ Int64($0) }), let high = stats.max.flatMap({ Int64($0) })
            else { return true }
            // The first value at or above `low`.
            var a = 0
            var b = sorted.count
            while a < b {
                let m = (a + b) / 2
                if sorted[m] < low { a = m + 1 } else { b = m }
            }
            return a < sorted.count && sorted[a] <= high
        }
    }

    /// The first key column of `manifest` when an equality on it prunes
    /// segments: an integer column (whose Parquet min/max are exact; string
    /// statistics may be truncated).
    static func prunableKey(of manifest: Manifest) -> String? {
        guard let keyColumn = manifest.key.first,
            let type = manifest.columns.first(where: { $0.name == keyColumn })?.type,
            ["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"].contains(type)
        else { return nil }
        return keyColumn
    }
}
