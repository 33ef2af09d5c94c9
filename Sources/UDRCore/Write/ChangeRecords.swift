import DuckDB
import Foundation

/// Writes, combines and reads ``ChangeRecord`` files: Parquet files of
/// changed rows, each row an old image (`__udr_new` false) or a new one
/// (true) in the table's columns, stored in their storage types.
struct ChangeRecords {
    let connection: Connection
    /// Where the files are written before they are stored.
    let scratch: URL

    /// The rows of `select` (the table's `columns` in their logical types,
    /// then `__udr_new`) as the bytes of a record file, in key order.
    /// Written without dictionaries, which would turn -0.0 into 0.0
    /// (``SegmentStorage``); records are small.
    func file(of select: String, columns: [Column], key: [String]) throws(UDRError) -> Data {
        var stored: [String] = []
        for column in columns {
            stored.append("CAST(\(quoteIdentifier(column.name)) AS \(try TypeNode.parse(column.type).storage().sql)) AS \(quoteIdentifier(column.name))")
        }
        let order = (["__udr_new"] + key.map(quoteIdentifier)).joined(separator: ", ")
        let path = scratch.appendingPathComponent("changes-\(UUID().uuidString).parquet").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        } catch {
            throw UDRError(.io, "cannot create \(scratch.path): \(error.localizedDescription)")
        }
        try run(
            "COPY (SELECT \(stored.joined(separator: ", ")), __udr_new FROM (\(select)) ORDER BY \(order)) TO \(quoteLiteral(path)) (\(TableWriter.parquetOptions), \(SegmentStorage.noDictionaries))"
        )
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw UDRError(.io, "cannot read back the change record \(path)")
        }
        return bytes
    }

    /// A SELECT of a record file's rows in `columns` (logical types; NULL
    /// for the columns the file lacks, which it names in `held`), and
    /// `__udr_new`.
    static func read(_ path: String, columns: [Column], held: [Column]) -> String {
        let present = Set(held.map(\.name))
        let select = columns.map { column in
            let name = quoteIdentifier(column.name)
            guard present.contains(column.name) else { return "CAST(NULL AS \(column.type)) AS \(name)" }
            return Repository.readsBackExactly(column.type) ? name : "CAST(\(name) AS \(column.type)) AS \(name)"
        }
        return "SELECT \(select.joined(separator: ", ")), __udr_new FROM read_parquet(\(quoteLiteral(path)))"
    }

    /// The net change of a record file (`first`, in `firstColumns`) and
    /// then the changed rows in the table `then` (in `columns`, logical
    /// types, and `__udr_new`): for each key, the old image of the first
    /// that has one and the new image of the last; keys whose two images
    /// are the same row are dropped. The bytes of the combined record and
    /// its counts; nil past `limit` row images.
    func combine(first: String, firstColumns: [Column], then second: String, columns: [Column], key: [String], limit: Int64)
        throws(UDRError) -> (file: Data, rows: RowCounts)?
    {
        let helpers = ["__udr_cr1", "__udr_crs", "__udr_crx"]
        defer { for table in helpers { try? connection.execute("DROP TABLE IF EXISTS \(table)") } }
        let match = TableDiff.match(key, "a", "b")
        let list = columns.map { quoteIdentifier($0.name) }.joined(separator: ", ")
        try run("CREATE TEMP TABLE __udr_cr1 AS \(Self.read(first, columns: columns, held: firstColumns))")
        let net = TableDiff.netChange(
            [
                ("(SELECT \(list) FROM __udr_cr1 WHERE NOT __udr_new)", "(SELECT \(list) FROM __udr_cr1 WHERE __udr_new)"),
                ("(SELECT \(list) FROM \(second) WHERE NOT __udr_new)", "(SELECT \(list) FROM \(second) WHERE __udr_new)"),
            ], columns: columns, key: key, into: "__udr_crs", temporary: true)
        try run(net.steps)
        try run("CREATE TEMP TABLE __udr_crx AS SELECT *, false AS __udr_new FROM (\(net.old)) UNION ALL SELECT *, true FROM (\(net.new))")
        let counted = try query(
            """
            SELECT
              (SELECT count(*) FROM __udr_crx b WHERE b.__udr_new AND NOT EXISTS (SELECT 1 FROM __udr_crx a WHERE NOT a.__udr_new AND \(match))),
              (SELECT count(*) FROM __udr_crx a WHERE NOT a.__udr_new AND NOT EXISTS (SELECT 1 FROM __udr_crx b WHERE b.__udr_new AND \(match))),
              (SELECT count(*) FROM __udr_crx a WHERE NOT a.__udr_new AND EXISTS (SELECT 1 FROM __udr_crx b WHERE b.__udr_new AND \(match)))
            """
        ).rows[0]
        let rows = RowCounts(inserted: counted[0].int ?? 0, deleted: counted[1].int ?? 0, updated: counted[2].int ?? 0)
        guard rows.inserted + rows.deleted + 2 * rows.updated <= limit else { return nil }
        return (try file(of: "SELECT * FROM __udr_crx", columns: columns, key: key), rows)
    }

    private func run(_ sql: String) throws(UDRError) {
        do { try connection.execute(sql) } catch { throw UDRError(.query, "recording the changed rows failed: \(error.message)", underlying: error) }
    }

    private func query(_ sql: String) throws(UDRError) -> ResultSet {
        do { return try connection.query(sql) } catch {
            throw UDRError(.query, "recording the changed rows failed: \(error.message)", underlying: error)
        }
    }
}
