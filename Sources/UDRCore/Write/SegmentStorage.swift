import DuckDB
import Foundation

/// How a write stores its segments' columns where DuckDB's Parquet writer,
/// left to itself, would store them badly or wrongly.
///
/// **Decimals.** DuckDB writes a DOUBLE column with BYTE_STREAM_SPLIT:
/// about 6.8 bytes a value after zstd for a score of four places,
/// recomputed every night. The same values as a scaled integer take about
/// 2.6 bytes (delta encoding). A segment stores a DOUBLE column outside the
/// key as `DECIMAL(18,k)` only when every value of the segment reads back
/// bit-exactly through `CAST(… AS DOUBLE)` (the cast every read applies);
/// NaN, ±inf, -0.0, a value of more places or one too large keep the
/// segment's column a DOUBLE. The segment records the type
/// (``SegmentRef/storedTypes``). The scale tried is chosen once per write,
/// from a sample; each segment's COPY checks every value and fails on the
/// first that would not read back, and the segment is then written again
/// with that column a DOUBLE. So what a segment stores depends only on its
/// rows and the write's scale.
///
/// **-0.0.** DuckDB's Parquet dictionary finds -0.0 equal to 0.0: a
/// dictionary-encoded FLOAT or DOUBLE (at any depth: in a LIST, STRUCT,
/// ARRAY or MAP too) holding both reads back 0.0 for -0.0. The same COPY
/// checks every floating-point value, and a segment holding -0.0 is written
/// again without dictionaries (``SegmentRef/withoutDictionaries``), as is
/// every file DuckDB writes from it later (read groups, live rows).
struct SegmentStorage: Equatable {
    /// Scale to try, by index of the column in the write's columns.
    var scales: [Int: Int] = [:]
    /// Columns holding FLOAT or DOUBLE values, by index: SQL telling whether
    /// the column `__udr_s.<name>` holds a -0.0.
    var negativeZero: [Int: String] = [:]
    /// Write without dictionaries (a value is -0.0).
    var withoutDictionaries = false

    /// The Parquet options of a segment's COPY.
    var copyOptions: String { TableWriter.parquetOptions + (withoutDictionaries ? ", " + Self.noDictionaries : "") }

    /// Parquet options that keep -0.0 (see above).
    static let noDictionaries = "DICTIONARY_SIZE_LIMIT 0"

    /// The options a file DuckDB writes from the rows of `segments` needs
    /// beyond its own: none, or (with a leading comma) no dictionaries.
    static func copyOptions(from segments: some Sequence<SegmentRef>) -> String {
        segments.contains { $0.withoutDictionaries == true } ? ", " + noDictionaries : ""
    }

    /// The most places tried.
    static let maximumScale = 9
    /// Rows sampled from each of the first, middle and last segments: a
    /// column with a few values that are not decimals is most likely seen
    /// to be one here, instead of failing the COPY of many segments.
    static let sampleRows = 16384

    /// Columns that may be stored as decimals: top-level DOUBLEs outside the key.
    static func candidates(_ columns: [Column], key: [String]) -> [Int] {
        columns.indices.filter { columns[$0].type == "DOUBLE" && !key.contains(columns[$0].name) }
    }

    /// SQL: whether DOUBLE `x` reads back as itself from `DECIMAL(18,scale)`
    /// (NULL when it cannot be cast: NaN, ±inf, too large).
    static func readsBack(_ x: String, scale: Int) -> String {
        "(CAST(TRY_CAST(\(x) AS DECIMAL(18,\(scale))) AS DOUBLE) = \(x) AND NOT \(isNegativeZero(x)))"
    }

    /// SQL: whether the FLOAT or DOUBLE `x` is -0.0 (which equals 0.0).
    static func isNegativeZero(_ x: String) -> String { "(\(x) = 0 AND signbit(\(x)))" }

    /// The scale of each candidate column for a write of `selects`: the
    /// fewest places at which every sampled value reads back. A column
    /// with a sampled value that reads back at no scale up to
    /// ``maximumScale``, or with no sampled value, is left a DOUBLE.
    static func plan(selects: [String], columns: [Column], key: [String], on connection: Connection) throws(UDRError) -> SegmentStorage {
        var plan = SegmentStorage()
        for (index, column) in columns.enumerated() {
            let stored = try TypeNode.parse(column.type).storage()
            if let test = negativeZero(in: "__udr_s." + quoteIdentifier(column.name), of: stored) { plan.negativeZero[index] = test }
        }
        let candidates = candidates(columns, key: key)
        guard !candidates.isEmpty, !selects.isEmpty else { return plan }
        let picked = Set([0, selects.count / 2, selects.count - 1]).sorted()
        let sample = picked.map { "(SELECT * FROM (\(selects[$0])) LIMIT \(sampleRows))" }.joined(separator: " UNION ALL ")
        let places = candidates.map { index in
            let x = quoteIdentifier(columns[index].name)
            let ladder = (0...maximumScale).map { "WHEN \(readsBack(x, scale: $0)) THEN \($0)" }.joined(separator: " ")
            return "max(CASE WHEN \(x) IS NULL THEN NULL \(ladder) ELSE \(maximumScale + 1) END)"
        }
        let row: [Cell]
        do throws(DuckDBError) {
            row = try connection.query("SELECT \(places.joined(separator: ", ")) FROM (\(sample))").rows.first ?? []
        } catch { throw UDRError(.query, "sampling the rows to write failed: \(error.message)", underlying: error) }
        for (position, index) in candidates.enumerated() where position < row.count {
            if let scale = row[position].int, scale <= maximumScale { plan.scales[index] = Int(scale) }
        }
        return plan
    }

    /// SQL telling whether `x` (of storage type `type`) holds -0.0 at any
    /// depth; nil when the type holds no FLOAT or DOUBLE.
    static func negativeZero(in x: String, of type: TypeNode, depth: Int = 1) -> String? {
        let element = "__udr_e\(depth)"
        func anyElement(_ list: String, _ type: TypeNode) -> String? {
            negativeZero(in: element, of: type, depth: depth + 1).map { "list_bool_or(list_transform(\(list), lambda \(element): \($0)))" }
        }
        switch type {
        case .scalar(let name):
            return ["FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8"].contains(name.uppercased()) ? isNegativeZero(x) : nil
        case .list(let inner), .array(let inner, _):
            return anyElement(x, inner)
        case .structure(let fields):
            let tests = fields.compactMap { negativeZero(in: "struct_extract(\(x), \(quoteLiteral($0.0)))", of: $0.1, depth: depth) }
            return tests.isEmpty ? nil : "(" + tests.map { "coalesce(\($0), false)" }.joined(separator: " OR ") + ")"
        case .map(let k, let v):
            let tests = [anyElement("map_keys(\(x))", k), anyElement("map_values(\(x))", v)].compactMap { $0 }
            return tests.isEmpty ? nil : "(" + tests.map { "coalesce(\($0), false)" }.joined(separator: " OR ") + ")"
        case .enumeration, .union:
            return nil
        }
    }

    /// `select` (the write's `columns` in their storage types) with the
    /// planned columns cast to their decimal type; a value that would not
    /// read back fails the statement with ``inexactMarker`` and the
    /// column's index, and one that is -0.0 (unless the plan writes without
    /// dictionaries) with ``negativeZeroMarker``.
    func storing(_ select: String, columns: [Column]) -> String {
        guard !scales.isEmpty || (!negativeZero.isEmpty && !withoutDictionaries) else { return select }
        let list = columns.indices.map { index in
            let name = quoteIdentifier(columns[index].name)
            let x = "__udr_s." + name
            if let scale = scales[index] {
                return """
                    CASE WHEN \(x) IS NULL OR \(Self.readsBack(x, scale: scale)) THEN CAST(\(x) AS DECIMAL(18,\(scale))) \
                    ELSE error('\(Self.inexactMarker)\(index):') END AS \(name)
                    """
            }
            guard let test = negativeZero[index], !withoutDictionaries else { return name }
            return Self.failingOnNegativeZero(x, test: test) + " AS \(name)"
        }
        return "SELECT \(list.joined(separator: ", ")) FROM (\(select)) AS __udr_s"
    }

    /// The stored types this plan gives, by column name (nil: none).
    func storedTypes(_ columns: [Column]) -> [String: String]? {
        var types: [String: String] = [:]
        for (index, scale) in scales { types[columns[index].name] = "DECIMAL(18,\(scale))" }
        return types.isEmpty ? nil : types
    }

    /// SQL: `x`, failing the statement with ``negativeZeroMarker`` where
    /// `test` (from ``negativeZero(in:of:depth:)``) finds a -0.0 in it.
    static func failingOnNegativeZero(_ x: String, test: String) -> String {
        "CASE WHEN coalesce(\(test), false) THEN error('\(negativeZeroMarker)') ELSE \(x) END"
    }

    static let inexactMarker = "udr-inexact-decimal-column:"
    static let negativeZeroMarker = "udr-negative-zero"

    /// The plan to write the segment again with after `storing` failed
    /// with `message`: the column it names a DOUBLE, or no dictionaries.
    /// nil: it failed for another reason.
    func retrying(after message: String) -> SegmentStorage? {
        func column(_ marker: String) -> Int? {
            guard let start = message.range(of: marker)?.upperBound else { return nil }
            return Int(message[start...].prefix { $0.isNumber })
        }
        var next = self
        if let index = column(Self.inexactMarker), scales[index] != nil {
            next.scales[index] = nil
        } else if message.contains(Self.negativeZeroMarker), !withoutDictionaries {
            next.withoutDictionaries = true
        } else {
            return nil
        }
        return next
    }
}
