import Foundation

/// Pins one table name in a query to a version of a table:
/// `parcels=3` (the name `parcels` reads version 3 of `parcels`) or
/// `old=parcels@1` (the name `old` reads version 1 of `parcels`).
public struct TablePin: Sendable, Hashable {
    public let alias: TableName
    public let table: TableName
    public let version: Int

    public init(alias: TableName, table: TableName, version: Int) {
        self.alias = alias
        self.table = table
        self.version = version
    }

    /// Parses `NAME=VERSION` or `ALIAS=TABLE@VERSION`.
    public init(parsing text: String) throws(UDRError) {
        let usage = "expected NAME=VERSION or ALIAS=TABLE@VERSION (e.g. parcels=3 or old=parcels@1), got '\(text)'"
        guard let eq = text.firstIndex(of: "=") else { throw UDRError(.invalidArgument, usage) }
        let alias = String(text[..<eq])
        let target = String(text[text.index(after: eq)...])
        let table: String
        let version: String
        if let at = target.lastIndex(of: "@") {
            table = String(target[..<at])
            version = String(target[target.index(after: at)...])
        } else {
            table = alias
            version = target
        }
        guard let number = Int(version), number >= 1 else { throw UDRError(.invalidArgument, usage) }
        self.init(alias: try TableName(alias), table: try TableName(table), version: number)
    }
}

/// Which versions a read sees: the head of a branch (default `main`), a
/// commit, or the branch as of a time; plus per-table pins.
public struct ReadOptions: Sendable {
    public var branch: String
    /// A commit id or unique prefix of one.
    public var commit: String?
    /// The latest commit of the branch at or before this time.
    public var asOf: Date?
    public var pins: [TablePin]
    /// Read inside an open transaction: its snapshot plus what it staged.
    public var transaction: String?

    public init(
        branch: String = Repository.defaultBranch, commit: String? = nil, asOf: Date? = nil, pins: [TablePin] = [],
        transaction: String? = nil
    ) {
        self.branch = branch
        self.commit = commit
        self.asOf = asOf
        self.pins = pins
        self.transaction = transaction
    }
}

/// Output formats of query results and exports.
public struct OutputFormat: Sendable, Hashable, CustomStringConvertible {
    private enum Base: String, Sendable, Hashable { case table, csv, json, parquet }
    private let base: Base
    private init(_ base: Base) { self.base = base }

    public static let table = OutputFormat(.table)
    public static let csv = OutputFormat(.csv)
    public static let json = OutputFormat(.json)
    public static let parquet = OutputFormat(.parquet)

    public init(parsing text: String) throws(UDRError) {
        guard let base = Base(rawValue: text.lowercased()) else {
            throw UDRError(.invalidArgument, "unknown format '\(text)': use table, csv, json or parquet")
        }
        self.init(base)
    }

    /// The format a file name implies, if any.
    public static func forFile(_ path: String) -> OutputFormat? {
        switch (path as NSString).pathExtension.lowercased() {
        case "parquet", "pq": return .parquet
        case "csv", "tsv": return .csv
        case "json", "ndjson", "jsonl": return .json
        default: return nil
        }
    }

    public var description: String { base.rawValue }

    /// DuckDB COPY options for this format.
    var copyOptions: String {
        switch base {
        case .parquet: return "FORMAT parquet"
        case .csv, .table: return "FORMAT csv, HEADER true"
        case .json: return "FORMAT json"
        }
    }
}
