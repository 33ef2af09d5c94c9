import DuckDB

/// Writes a query's rows to the user's file with `attempt`, which runs
/// ``copyOut(_:to:format:withoutDictionaries:on:)`` in a read session of
/// its own: a COPY that stopped at a -0.0 has aborted its session's
/// transaction, so the second attempt (without dictionaries) takes a new one.
func writeOut(_ attempt: (_ withoutDictionaries: Bool) throws(UDRError) -> Bool) throws(UDRError) {
    if try !attempt(false) { _ = try attempt(true) }
}

/// Writes the rows of `statement` (a query) to the user's file at `path`;
/// false when a Parquet file must be written again without dictionaries.
///
/// A Parquet file keeps -0.0 beside 0.0: left to itself, DuckDB's
/// dictionary writes 0.0 for both (see ``SegmentStorage``). The COPY checks
/// every FLOAT and DOUBLE value, at any depth, and stops at the first
/// -0.0. A result without one keeps DuckDB's usual encodings.
func copyOut(_ statement: String, to path: String, format: OutputFormat, withoutDictionaries: Bool, on connection: Connection)
    throws(UDRError) -> Bool
{
    func copy(_ select: String, _ extra: String = "") throws(DuckDBError) {
        try connection.execute("COPY (\(select)) TO \(quoteLiteral(path)) (\(format.copyOptions)\(extra))")
    }
    let noDictionaries = ", " + SegmentStorage.noDictionaries
    do throws(DuckDBError) {
        guard format == .parquet else {
            try copy(statement)
            return true
        }
        if withoutDictionaries {
            try copy(statement, noDictionaries)
            return true
        }
        switch negativeZeroGuard(statement, on: connection) {
        case .none: try copy(statement)
        case .unknown: try copy(statement, noDictionaries)
        case .guarded(let select):
            do throws(DuckDBError) { try copy(select) } catch where error.message.contains(SegmentStorage.negativeZeroMarker) {
                return false
            }
        }
        return true
    } catch { throw UDRError(.query, error.message, underlying: error) }
}

private enum NegativeZeroGuard {
    /// The result holds no FLOAT or DOUBLE values.
    case none
    /// The result's columns cannot be told apart or their types not read:
    /// write without dictionaries.
    case unknown
    /// The statement wrapped so that a -0.0 fails it with ``SegmentStorage/negativeZeroMarker``.
    case guarded(String)
}

/// How to check the rows of `statement` for -0.0, from its columns' types
/// (DESCRIBE binds the statement without running it).
private func negativeZeroGuard(_ statement: String, on connection: Connection) -> NegativeZeroGuard {
    guard let described = try? connection.query("SELECT column_name, column_type FROM (DESCRIBE \(statement))").rows else {
        // Not a query DESCRIBE binds: its COPY reports what is wrong.
        return .none
    }
    let names = described.map { ($0[0].string ?? "").lowercased() }
    var tests: [String] = []
    for row in described {
        guard let name = row[0].string, let text = row[1].string, let type = try? TypeNode.parse(text) else { return .unknown }
        let x = "__udr_s." + quoteIdentifier(name)
        if let test = SegmentStorage.negativeZero(in: x, of: type) {
            tests.append(SegmentStorage.failingOnNegativeZero(x, test: test) + " AS " + quoteIdentifier(name))
        }
    }
    if tests.isEmpty { return .none }
    // A name twice cannot be replaced by name.
    if Set(names).count != names.count { return .unknown }
    return .guarded("SELECT * REPLACE (\(tests.joined(separator: ", "))) FROM (\(statement)) AS __udr_s")
}
