import DuckDB
import Foundation

/// DOUBLE columns whose values are decimals of a few places (prices,
/// scores rounded to four places) stored as `DECIMAL(18,k)`.
///
/// DuckDB writes a DOUBLE column with BYTE_STREAM_SPLIT: about 6.8 bytes a
/// value after zstd for a score of four places, recomputed every night.
/// The same values as a scaled integer take about 2.6 bytes (delta
/// encoding). A segment stores such a column as `DECIMAL(18,k)` only when
/// every value of the segment reads back bit-exactly through
/// `CAST(… AS DOUBLE)` (the cast every read applies); NaN, ±inf, -0.0, a
/// value of more places or one too large keep the segment's column a
/// DOUBLE. The segment records the type (``SegmentRef/storedTypes``).
///
/// The scale tried is chosen once per write, from a sample; each segment's
/// COPY checks every value and fails on the first that would not read
/// back, and the segment is then written again with that column a DOUBLE.
/// So what a segment stores depends only on its rows and the write's scale.
///
/// The same COPY also guards floating-point columns against a DuckDB
/// Parquet writer flaw: a dictionary-encoded FLOAT or DOUBLE column stores
/// -0.0 as 0.0 when both occur (its dictionary finds them equal). A
/// segment whose column holds -0.0 stores that column as text instead
/// (exact: the shortest form that reads back as the same value).
struct DecimalStorage: Equatable {
    /// Scale to try, by index of the column in the write's columns.
    var scales: [Int: Int] = [:]
    /// FLOAT and DOUBLE columns outside the key, by index: checked for -0.0.
    var floats: Set<Int> = []
    /// Columns stored as text in this segment, by index.
    var text: Set<Int> = []

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
        "(CAST(TRY_CAST(\(x) AS DECIMAL(18,\(scale))) AS DOUBLE) = \(x) AND NOT (\(x) = 0 AND signbit(\(x))))"
    }

    /// The scale of each candidate column for a write of `selects`: the
    /// fewest places at which every sampled value reads back. A column
    /// with a sampled value that reads back at no scale up to
    /// ``maximumScale``, or with no sampled value, is left a DOUBLE.
    static func plan(selects: [String], columns: [Column], key: [String], on connection: Connection) throws(UDRError) -> DecimalStorage {
        var plan = DecimalStorage()
        plan.floats = Set(columns.indices.filter { ["FLOAT", "DOUBLE"].contains(columns[$0].type) && !key.contains(columns[$0].name) })
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

    /// `select` (the write's `columns` in their storage types) with the
    /// planned columns cast to their decimal type; a value that would not
    /// read back fails the statement with ``inexactMarker`` and the
    /// column's index.
    func storing(_ select: String, columns: [Column]) -> String {
        guard !scales.isEmpty || !floats.isEmpty else { return select }
        let list = columns.indices.map { index in
            let name = quoteIdentifier(columns[index].name)
            let x = "__udr_s." + name
            if text.contains(index) { return "CAST(\(x) AS VARCHAR) AS \(name)" }
            if let scale = scales[index] {
                return """
                    CASE WHEN \(x) IS NULL OR \(Self.readsBack(x, scale: scale)) THEN CAST(\(x) AS DECIMAL(18,\(scale))) \
                    ELSE error('\(Self.inexactMarker)\(index):') END AS \(name)
                    """
            }
            guard floats.contains(index) else { return name }
            return "CASE WHEN \(x) = 0 AND signbit(\(x)) THEN error('\(Self.negativeZeroMarker)\(index):') ELSE \(x) END AS \(name)"
        }
        return "SELECT \(list.joined(separator: ", ")) FROM (\(select)) AS __udr_s"
    }

    /// The stored types this plan gives, by column name (nil: none).
    func storedTypes(_ columns: [Column]) -> [String: String]? {
        var types: [String: String] = [:]
        for (index, scale) in scales { types[columns[index].name] = "DECIMAL(18,\(scale))" }
        for index in text { types[columns[index].name] = "VARCHAR" }
        return types.isEmpty ? nil : types
    }

    static let inexactMarker = "udr-inexact-decimal-column:"
    static let negativeZeroMarker = "udr-negative-zero-column:"

    /// The plan to write the segment again with after `storing` failed
    /// with `message`: the column it names a DOUBLE, or text. nil: it
    /// failed for another reason.
    func retrying(after message: String) -> DecimalStorage? {
        func column(_ marker: String) -> Int? {
            guard let start = message.range(of: marker)?.upperBound else { return nil }
            return Int(message[start...].prefix { $0.isNumber })
        }
        var next = self
        if let index = column(Self.inexactMarker), scales[index] != nil {
            next.scales[index] = nil
        } else if let index = column(Self.negativeZeroMarker), floats.contains(index), !text.contains(index) {
            next.text.insert(index)
        } else {
            return nil
        }
        return next
    }
}
