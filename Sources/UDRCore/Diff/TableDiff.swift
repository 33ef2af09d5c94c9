import DuckDB
import Foundation

/// The rows that differ between two versions of a table, found without
/// reading what both share: segments present in both versions hold the
/// same rows, so only the segments on one side alone are loaded. For a
/// keyed table a key lives in one segment per version, so a key in a
/// shared segment is unchanged, and the rest compare by key.
struct TableDiff {
    let connection: Connection
    let materialize: (SegmentRef) throws(UDRError) -> String

    /// The columns both sides are compared on: `old`'s, then those only `new` has.
    static func columns(_ old: Manifest?, _ new: Manifest?) -> [Column] {
        var columns = old?.columns ?? []
        let known = Set(columns.map(\.name))
        columns += (new?.columns ?? []).filter { !known.contains($0.name) }
        return columns
    }

    /// The key both sides share, or nil (compare as multisets).
    static func key(_ old: Manifest?, _ new: Manifest?) -> [String]? {
        guard let old, let new else { return (old ?? new)?.key.nilIfEmpty }
        return old.key == new.key ? old.key.nilIfEmpty : nil
    }

    /// Loads `prefix_old` and `prefix_new`: the rows of the segments only
    /// `old` (only `new`) has, as `columns` (NULL where a side lacks one).
    func load(old: Manifest?, new: Manifest?, columns: [Column], prefix: String) throws(UDRError) {
        let oldIDs = Set(old?.segments.map(\.id) ?? [])
        let newIDs = Set(new?.segments.map(\.id) ?? [])
        try loadSide(old, only: { !newIDs.contains($0.id) }, columns: columns, into: "\(prefix)_old")
        try loadSide(new, only: { !oldIDs.contains($0.id) }, columns: columns, into: "\(prefix)_new")
    }

    private func loadSide(_ manifest: Manifest?, only: (SegmentRef) -> Bool, columns: [Column], into table: String) throws(UDRError) {
        let empty =
            "SELECT \(typedNulls(columns)) WHERE false"
        guard let manifest else { return try run("CREATE TABLE \(table) AS \(empty)") }
        // Read as the wider schema: the side's segments name their own columns.
        let segments = manifest.segments.filter(only).map { segment -> SegmentRef in
            var named = segment
            named.columns = manifest.columnNames(of: segment)
            return named
        }
        guard !segments.isEmpty else { return try run("CREATE TABLE \(table) AS \(empty)") }
        var files: [String] = []
        for segment in segments { files.append(try materialize(segment)) }
        let wide = Manifest(table: manifest.table, version: manifest.version, columns: columns, key: manifest.key, segments: segments)
        try run("CREATE TABLE \(table) AS \(Repository.segmentSelect(wide, segments: segments, files: files))")
    }

    /// Rows inserted, deleted and updated from `prefix_old` to `prefix_new`.
    func counts(prefix: String, columns: [Column], key: [String]?) throws(UDRError) -> RowCounts {
        let old = "\(prefix)_old"
        let new = "\(prefix)_new"
        guard let key else {
            let row = try query(
                "SELECT (SELECT count(*) FROM (SELECT * FROM \(new) EXCEPT ALL SELECT * FROM \(old))), (SELECT count(*) FROM (SELECT * FROM \(old) EXCEPT ALL SELECT * FROM \(new)))"
            ).rows[0]
            return RowCounts(inserted: row[0].int ?? 0, deleted: row[1].int ?? 0, updated: 0)
        }
        let match = key.map { "o.\(quoteIdentifier($0)) = n.\(quoteIdentifier($0))" }.joined(separator: " AND ")
        let oldRow = "row(\(columns.map { "o.\(quoteIdentifier($0.name))" }.joined(separator: ", ")))"
        let newRow = "row(\(columns.map { "n.\(quoteIdentifier($0.name))" }.joined(separator: ", ")))"
        let row = try query(
            """
            SELECT
              (SELECT count(*) FROM \(new) n WHERE NOT EXISTS (SELECT 1 FROM \(old) o WHERE \(match))),
              (SELECT count(*) FROM \(old) o WHERE NOT EXISTS (SELECT 1 FROM \(new) n WHERE \(match))),
              (SELECT count(*) FROM \(old) o JOIN \(new) n ON \(match) WHERE \(oldRow) IS DISTINCT FROM \(newRow))
            """
        ).rows[0]
        return RowCounts(inserted: row[0].int ?? 0, deleted: row[1].int ?? 0, updated: row[2].int ?? 0)
    }

    /// Creates `prefix_touched`: every key inserted, deleted or updated.
    func touchedKeys(prefix: String, columns: [Column], key: [String]) throws(UDRError) {
        let cols = key.map(quoteIdentifier).joined(separator: ", ")
        let all = columns.map { quoteIdentifier($0.name) }.joined(separator: ", ")
        try run(
            """
            CREATE TABLE \(prefix)_touched AS SELECT DISTINCT \(cols) FROM (
              (SELECT \(all) FROM \(prefix)_old EXCEPT SELECT \(all) FROM \(prefix)_new)
              UNION ALL
              (SELECT \(all) FROM \(prefix)_new EXCEPT SELECT \(all) FROM \(prefix)_old))
            """)
    }

    private func run(_ sql: String) throws(UDRError) {
        do { try connection.execute(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
    }

    private func query(_ sql: String) throws(UDRError) -> ResultSet {
        do { return try connection.query(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
    }
}

extension Array {
    var nilIfEmpty: Self? { isEmpty ? nil : self }
}
