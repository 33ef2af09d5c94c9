import Foundation

/// Pins one table name in a query to a version of a table, or to the table
/// as a ref has it: `parcels=3` (the name `parcels` reads version 3),
/// `master=experiment` (the name `master` reads master as branch
/// `experiment` has it), `old=parcels@1` or `old=master@main~2` (the name
/// `old` reads another table's version, or a table at a ref).
public struct TablePin: Sendable, Hashable {
    /// A table version number, or a ref (branch, tag, commit, `main~3`, time).
    public enum Target: Sendable, Hashable {
        case version(Int)
        case ref(String)
    }

    public let alias: TableName
    public let table: TableName
    public let target: Target

    public init(alias: TableName, table: TableName, target: Target) {
        self.alias = alias
        self.table = table
        self.target = target
    }

    /// Parses `NAME=VERSION|REF` or `ALIAS=TABLE@VERSION|REF`.
    public init(parsing text: String) throws(UDRError) {
        let usage =
            "expected NAME=VERSION, NAME=REF, ALIAS=TABLE@VERSION or ALIAS=TABLE@REF (e.g. parcels=3, master=experiment, old=parcels@1), got '\(text)'"
        guard let eq = text.firstIndex(of: "=") else { throw UDRError(.invalidArgument, usage) }
        let alias = String(text[..<eq])
        let value = String(text[text.index(after: eq)...])
        let table: String
        let target: String
        if let at = value.firstIndex(of: "@") {
            table = String(value[..<at])
            target = String(value[value.index(after: at)...])
        } else {
            table = alias
            target = value
        }
        guard !target.isEmpty else { throw UDRError(.invalidArgument, usage) }
        if let number = Int(target) {
            guard number >= 1 else { throw UDRError(.invalidArgument, usage) }
            self.init(alias: try TableName(alias), table: try TableName(table), target: .version(number))
        } else {
            self.init(alias: try TableName(alias), table: try TableName(table), target: .ref(target))
        }
    }
}

/// Which versions a read sees: the head of a branch (default: the current
/// branch), a ref, or the branch as of a time; plus per-table pins.
public struct ReadOptions: Sendable {
    /// nil: the repository's current branch.
    public var branch: String?
    /// Any ref: a commit id or unique prefix, `tx:N`, a branch, a tag,
    /// `main~3`, a time.
    public var commit: String?
    /// The latest commit of the branch at or before this time.
    public var asOf: Date?
    public var pins: [TablePin]
    /// Read inside an open transaction: its snapshot plus what it staged.
    public var transaction: String?

    public init(
        branch: String? = nil, commit: String? = nil, asOf: Date? = nil, pins: [TablePin] = [],
        transaction: String? = nil
    ) {
        self.branch = branch
        self.commit = commit
        self.asOf = asOf
        self.pins = pins
        self.transaction = transaction
    }

    /// The options as given in text (by the CLI, by the Python package):
    /// `asOf` a time, each pin `NAME=VERSION`, `NAME=REF` or `ALIAS=TABLE@VERSION|REF`.
    public init(branch: String?, commit: String?, asOf: String?, pins: [String], transaction: String?) throws(UDRError) {
        self.init(branch: branch, commit: commit, transaction: transaction)
        if let asOf {
            guard let date = Timestamp.parse(asOf) else {
                throw UDRError(.invalidArgument, "cannot read the time '\(asOf)': use e.g. 2026-11-21T21:30:00Z or '2026-11-21 21:30:00'")
            }
            self.asOf = date
        }
        var parsed: [TablePin] = []
        for pin in pins { parsed.append(try TablePin(parsing: pin)) }
        self.pins = parsed
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
