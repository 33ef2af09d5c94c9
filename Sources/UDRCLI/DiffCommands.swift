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
        if stat || (chosen == .table && !rows && output == nil) || (chosen == .json && !rows && output == nil) {
            let summary = try await repository.diff(from, to, tables: selected, key: keyColumns)
            if chosen == .json {
                guard !stat else { return print(Output.json(summary)) }
                let cells = try await repository.diffRows(from, to, tables: selected, key: keyColumns)
                return print("{\"diff\": \(Output.json(summary)), \"cells\": \(Output.jsonRows(cells))}")
            }
            print(Self.describe(summary))
            if stat || summary.tables.allSatisfy({ $0.status == .unchanged }) { return }
            print(Output.table(try await repository.diffRows(from, to, tables: selected, key: keyColumns)))
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
