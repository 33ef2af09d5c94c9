import ArgumentParser
import DuckDB
import Foundation
import UDRCore

struct SQL: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sql",
        abstract: "Run DuckDB SQL that writes (INSERT, UPDATE, DELETE, MERGE INTO, CREATE TABLE) and queries; each write is a commit.",
        discussion: """
            Each statement that writes commits on its own, on the current branch (or --branch); BEGIN; …; COMMIT; \
            makes the statements between one commit, and --atomic makes the whole script one. --tx stages every write in \
            an open transaction instead. A statement that fails commits nothing of its own transaction.
            """)

    @OptionGroup var repo: RepositoryOptions

    @Argument(help: "The SQL: one statement or several separated by ';'.")
    var sql: String

    @Flag(help: "Commit the whole script as one commit, or nothing when any statement fails.")
    var atomic = false

    @OptionGroup var commits: CommitOptions

    @Option(name: .customLong("at"), parsing: .unconditionalSingleValue, help: .hidden)
    var pins: [String] = []

    @Option(help: .hidden)
    var commit: String?

    @Option(name: .customLong("as-of"), help: .hidden)
    var asOf: String?

    @Option(help: "table, csv or json for the rows of queries and RETURNING (default: table; --json: json).")
    var format: String?

    func run() async throws {
        if !pins.isEmpty || commit != nil || asOf != nil {
            throw UDRError(
                .readOnly,
                "a write goes to the head of a branch: --at, --commit and --as-of pin versions, and pinned versions are read-only. Drop them; read old versions with `udr query --at`, or branch from one with `udr branch NAME --from REF`"
            )
        }
        let chosen = try Output.format(format, json: commits.json, output: nil)
        let repository = try repo.open()
        let result: SQLResult
        let transaction = try commits.staging()
        if let transaction {
            if atomic { throw UDRError(.invalidArgument, "--atomic is for a script committed on its own; with --tx, `udr tx commit` commits it") }
            result = try await repository.openTransaction(transaction).sql(sql)
        } else {
            result = try await repository.sql(
                sql, branch: commits.branch, atomic: atomic, message: commits.message, author: commits.author)
        }
        for statement in result.statements {
            if let rows = statement.rows {
                switch chosen {
                case .json: print(Output.jsonRows(rows))
                case .csv: print(Output.csv(rows), terminator: "")
                default: print(Output.table(rows))
                }
            }
            if let table = statement.table, let write = statement.write {
                let done: String
                switch statement.kind {
                case .drop: done = "dropped"
                case .create: done = "created, \(write.rows) row\(write.rows == 1 ? "" : "s")"
                case .alter: done = "altered"
                default: done = write.counts.map(Output.changes) ?? "\(write.rows) rows written"
                }
                if !write.changed {
                    print("\(table): nothing changed")
                } else if let commit = statement.commit {
                    print("\(table): \(done) (commit \(commit.id.short), tx \(commit.txID))")
                } else {
                    print("\(table): \(done)\(transaction.map { ", staged in \($0)" } ?? "")")
                }
            } else if let commit = statement.commit {
                print("committed \(commit.id.short) (tx \(commit.txID))")
            } else if [.drop, .create, .alter].contains(statement.kind) {
                // IF EXISTS / IF NOT EXISTS found nothing to do, or a schema, which only its tables record.
                print("nothing changed: \(statement.statement.prefix(60))")
            }
        }
    }
}

struct Drop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop a table as one commit. Its versions stay readable (--at, history, log) while retained commits hold them.")

    @OptionGroup var repo: RepositoryOptions

    @Argument(help: "The table.")
    var table: String

    @Flag(name: .customLong("if-exists"), help: "Do nothing when there is no such table.")
    var ifExists = false

    @OptionGroup var commit: CommitOptions

    func run() async throws {
        let name = try TableName(table)
        let repository = try repo.open()
        if let transaction = try commit.staging() {
            let staged = try await repository.openTransaction(transaction).drop(name, ifExists: ifExists)
            print(staged == nil ? "there is no table \(name): nothing staged" : "\(name): drop staged in \(transaction)")
            return
        }
        guard
            let record = try await repository.drop(
                name, ifExists: ifExists, message: commit.message, author: commit.author, branch: commit.branch)
        else {
            print("there is no table \(name): nothing committed")
            return
        }
        if commit.json { print(Output.json(record)) } else { print("\(name): dropped (commit \(record.id.short), tx \(record.txID))") }
    }
}

struct Alter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Change a table's columns as one commit: add, drop, rename, or change a type.",
        discussion: """
            Adding a column (NULL in every row) and dropping one rewrite nothing; renaming a column, changing its type \
            or adding one with a default write the segments again, storing only the column chunks that changed.
            """)

    @OptionGroup var repo: RepositoryOptions

    @Argument(help: "The table.")
    var table: String

    @Option(help: "Add a column: \"NAME TYPE\" or \"NAME TYPE DEFAULT expression\".")
    var add: String?

    @Option(help: "Drop a column.")
    var drop: String?

    @Option(help: "Rename a column: OLD=NEW.")
    var rename: String?

    @Option(help: "Change a column's type: NAME=TYPE (a value that does not cast is an error naming its row).")
    var type: String?

    @OptionGroup var commit: CommitOptions

    func change() throws -> SchemaChange {
        let given = [add, drop, rename, type].compactMap { $0 }
        guard given.count == 1 else { throw UDRError(.invalidArgument, "give one of --add, --drop, --rename and --type") }
        if let add {
            let parts = add.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw UDRError(.invalidArgument, "--add takes \"NAME TYPE\", e.g. --add \"flag BOOLEAN\"") }
            let rest = parts[1]
            if let range = rest.range(of: " DEFAULT ", options: .caseInsensitive) {
                return .addColumn(
                    name: parts[0], type: String(rest[..<range.lowerBound]), defaultValue: String(rest[range.upperBound...]))
            }
            return .addColumn(name: parts[0], type: rest)
        }
        if let drop { return .dropColumn(drop) }
        func pair(_ text: String, _ flag: String) throws -> (String, String) {
            let parts = text.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw UDRError(.invalidArgument, "\(flag) takes \(flag == "--rename" ? "OLD=NEW" : "NAME=TYPE"), not '\(text)'")
            }
            return (parts[0], parts[1])
        }
        if let rename {
            let (old, new) = try pair(rename, "--rename")
            return .renameColumn(old, to: new)
        }
        let (name, newType) = try pair(type!, "--type")
        return .changeType(name, to: newType)
    }

    func run() async throws {
        let name = try TableName(table)
        let change = try change()
        let repository = try repo.open()
        try await commit.perform(
            repository, table: name, staged: { (tx) throws(UDRError) in try await tx.alter(name, change) },
            direct: { () throws(UDRError) in
                try await repository.alter(name, change, message: commit.message, author: commit.author, branch: commit.branch)
            })
    }
}

struct Rename: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rename a table as one commit; it keeps its history (log, history, diff and merge follow the rename).")

    @OptionGroup var repo: RepositoryOptions

    @Argument(help: "The table.")
    var table: String

    @Argument(help: "Its new name.")
    var name: String

    @OptionGroup var commit: CommitOptions

    func run() async throws {
        let old = try TableName(table)
        let new = try TableName(name)
        let repository = try repo.open()
        if let transaction = try commit.staging() {
            try await repository.openTransaction(transaction).rename(old, to: new)
            print("\(old) → \(new): rename staged in \(transaction)")
            return
        }
        let record = try await repository.rename(old, to: new, message: commit.message, author: commit.author, branch: commit.branch)
        if commit.json {
            print(Output.json(record))
        } else {
            print("\(old) → \(new): renamed\(record.map { " (commit \($0.id.short), tx \($0.txID))" } ?? "")")
        }
    }
}
