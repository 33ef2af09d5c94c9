import ArgumentParser
import Foundation
import UDRCore

struct Diff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what changed between two refs: tables, rows, and for updated rows the cells with old and new values.",
        discussion: """
            udr diff main experiment · udr diff main~3 main parcels --stat · udr diff v1 v2 parcels --rows -o changes.parquet
            Segments both refs share are skipped unread; of segments holding the same keys only the changed columns are read.
            """)

    @OptionGroup var repo: RepositoryOptions

    @Argument(help: "The ref to compare from (branch, tag, commit, main~3, tx:N, a time).") var from: String
    @Argument(help: "The ref to compare to.") var to: String
    @Argument(help: "Only these tables.") var tables: [String] = []

    @Option(help: "Match rows by these columns (comma-separated) instead of the table's key; one table only.") var key: String?
    @Flag(help: "Only the tables and their row counts.") var stat = false
    @Flag(help: "The change feed of one table: its changed rows, with _change = insert, delete, update_preimage or update_postimage.")
    var rows = false
    @Option(help: "table, csv, json or parquet (default: table, or what -o's extension says).") var format: String?
    @Option(name: .shortAndLong, help: "Write the rows to this file.") var output: String?
    @Flag(help: "Same as --format json.") var json = false

    func run() async throws {
        let repository = try repo.open()
        let names = try tables.map { try TableName($0) }
        let keyColumns = key.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        let chosen = try Output.format(format, json: json, output: output)
        let selected = names.isEmpty ? nil : names
        if stat {
            let summary = try await repository.diff(from, to, tables: selected, key: keyColumns)
            return print(chosen == .json ? Output.json(summary) : Self.describe(summary))
        }
        if !rows && output == nil && (chosen == .table || chosen == .json) {
            // The summary, then every changed cell, from one comparison.
            let (summary, cells) = try await repository.diff(from, to, tables: selected, key: keyColumns, rows: .cells)
            if chosen == .json { return print("{\"diff\": \(Output.json(summary)), \"cells\": \(Output.jsonRows(cells))}") }
            print(Self.describe(summary))
            if !summary.tables.allSatisfy({ $0.status == .unchanged }) { print(Output.table(cells)) }
            return
        }
        let kind: DiffRows = rows ? .feed : .cells
        try await Output.emit(
            chosen, to: output,
            rows: { () throws(UDRError) in try await repository.diffRows(from, to, tables: selected, key: keyColumns, as: kind) },
            export: { (path, format) throws(UDRError) in
                try await repository.exportDiffRows(from, to, tables: selected, key: keyColumns, as: kind, to: path, format: format)
            })
        if let output { print("wrote the \(rows ? "change feed" : "changed cells") to \(output)") }
    }

    static func describe(_ diff: RepositoryDiff) -> String {
        guard !diff.tables.isEmpty else { return "no differences" }
        let rows = diff.tables.map { t -> [String] in
            let (from, to) = Output.versions(t.oldVersion, t.newVersion)
            var columns: [String] = []
            if !t.columnsAdded.isEmpty { columns.append("+" + t.columnsAdded.joined(separator: ",+")) }
            if !t.columnsDropped.isEmpty { columns.append("-" + t.columnsDropped.joined(separator: ",-")) }
            if !t.columnsRetyped.isEmpty { columns.append("~" + t.columnsRetyped.joined(separator: ",~")) }
            return [
                t.table.rawValue, t.status.rawValue, "\(t.oldVersion == nil ? "-" : from) → \(t.newVersion == nil ? "-" : to)",
                String(t.rows.inserted), String(t.rows.updated), String(t.rows.deleted), columns.joined(separator: " "),
            ]
        }
        return Output.table(headers: ["table", "status", "versions", "inserted", "updated", "deleted", "columns"], rows: rows)
    }
}

struct Merge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge a ref into a branch: fast-forward, or three-way row by row and cell by cell.",
        discussion: """
            udr merge experiment · udr merge experiment --into main --strategy theirs -m "new scoring"
            Conflicting cells (table, key, column, base / ours / theirs) are listed and nothing is committed (exit 1),
            unless --strategy ours or theirs resolves them.
            """)

    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "What to merge: a branch, tag, commit, main~3 …") var source: String
    @Option(help: "The branch to merge into (default: the current branch).") var into: String?
    @Option(help: "fail (default), ours or theirs: how conflicting cells are resolved.") var strategy: String = "fail"
    @Option(name: .shortAndLong, help: "The merge commit's message.") var message: String?
    @Option(help: "The merge commit's author.") var author: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        guard let chosen = MergeStrategy(rawValue: strategy) else {
            throw UDRError(.invalidArgument, "unknown strategy '\(strategy)': use fail, ours or theirs")
        }
        let result = try await repo.open().merge(source, into: into, strategy: chosen, message: message, author: author)
        try Merge.report(result, source: source, strategy: strategy, json: json)
    }

    /// Prints a merge's outcome (and conflicts); exits 1 when conflicts stopped it.
    static func report(_ result: MergeResult, source: String, strategy: String, json: Bool) throws {
        if json {
            print(Output.json(result))
        } else {
            switch result.outcome {
            case .upToDate: print("\(result.target) is up to date with \(source)")
            case .fastForward: print("fast-forwarded \(result.target) to \(result.source.short)")
            case .merged: print("merged \(source) into \(result.target): commit \(result.head?.short ?? "-")")
            case .conflicts:
                print("merge of \(source) into \(result.target) stopped: \(result.conflicts.count) conflict(s); nothing was committed")
            }
            if !result.tables.isEmpty { print("tables: \(result.tables.map(\.rawValue).joined(separator: ", "))") }
            if !result.conflicts.isEmpty {
                if result.outcome != .conflicts { print("\(result.conflicts.count) conflict(s) resolved by --strategy \(strategy):") }
                let rows = result.conflicts.map { c in
                    // A missing cell is NULL; a missing row or table version, absent.
                    let missing = c.column == nil ? "(none)" : "NULL"
                    return [
                        c.table.rawValue, c.key ?? "(table)", c.column ?? "(row)", c.base ?? missing, c.ours ?? missing, c.theirs ?? missing, c.reason,
                    ]
                }
                print(Output.table(headers: ["table", "key", "column", "base", "ours", "theirs", "conflict"], rows: rows))
                if result.outcome == .conflicts { print("Resolve them with --strategy ours or --strategy theirs, or edit a side and merge again.") }
            }
        }
        if result.outcome == .conflicts { throw ExitCode(1) }
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The history of one row: each commit where it appeared, changed or disappeared, with its values then.",
        discussion: "udr history parcels --key bbl=1000010001 · udr history t --key a=1,b=x --branch experiment --json")

    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The table.") var table: String
    @Option(help: "The row's key: COLUMN=VALUE, comma-separated for a key of several columns.") var key: String
    @Option(help: "The branch (default: the current one).") var branch: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var values: [String: String] = [:]
        for part in key.split(separator: ",") {
            guard let eq = part.firstIndex(of: "=") else {
                throw UDRError(.invalidArgument, "'\(part)' is not COLUMN=VALUE; give --key bbl=1000010001")
            }
            values[part[..<eq].trimmingCharacters(in: .whitespaces)] = String(part[part.index(after: eq)...])
        }
        let history = try await repo.open().history(of: try TableName(table), key: values, branch: branch)
        if json { return print(Output.jsonRows(history.rows)) }
        print(Output.table(history.rows))
        print("\(history.versions) versions of \(table); \(history.versionsRead) read, the rest skipped (the key's segment was unchanged)")
    }
}
