import ArgumentParser
import Foundation
import UDRCore

/// Runs a row-level edit: staged in `--tx`, or committed at once.
private func perform(_ edit: RowEdit, table: String, repo: RepositoryOptions, commit: CommitOptions) async throws {
    let name = try TableName(table)
    let repository = try repo.open()
    try await commit.perform(
        repository, table: name, staged: { (tx) throws(UDRError) in try await tx.apply(edit, to: name) },
        direct: { () throws(UDRError) in
            try await repository.apply(edit, to: name, message: commit.message, author: commit.author, branch: commit.branch)
        })
}

struct Append: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add rows to a table; new columns are added (NULL in older rows). Keys that exist already are an error.")

    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The table.") var table: String
    @OptionGroup var input: InputOptions
    @OptionGroup var commit: CommitOptions

    func run() async throws { try await perform(.append(try input.source()), table: table, repo: repo, commit: commit) }
}

struct Upsert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Insert rows with new keys and replace rows whose key exists, in a keyed table.")

    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The table.") var table: String
    @OptionGroup var input: InputOptions
    @OptionGroup var commit: CommitOptions

    func run() async throws { try await perform(.upsert(try input.source()), table: table, repo: repo, commit: commit) }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete rows: those matching --where, or those whose key is in a file or query.")

    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The table.") var table: String
    @OptionGroup var input: InputOptions
    @Option(name: .customLong("where"), help: "A SQL predicate over the table's columns.") var predicate: String?
    @OptionGroup var commit: CommitOptions

    func run() async throws {
        let edit: RowEdit
        switch (predicate, input.isGiven) {
        case (let predicate?, false): edit = .delete(where: predicate)
        case (nil, true): edit = .delete(keysFrom: try input.source())
        default:
            throw UDRError(.invalidArgument, "give either --where PREDICATE or the keys to delete (FILE or --sql), not both or neither")
        }
        try await perform(edit, table: table, repo: repo, commit: commit)
    }
}

struct Update: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set columns to SQL expressions in the rows matching --where.")

    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The table.") var table: String
    @Option(help: "Assignments: \"col = expr[, col2 = expr2]\". Repeatable.") var set: [String]
    @Option(name: .customLong("where"), help: "A SQL predicate; omit to update every row.") var predicate: String?
    @OptionGroup var commit: CommitOptions

    func run() async throws {
        guard !set.isEmpty else { throw UDRError(.invalidArgument, "give at least one --set \"column = expression\"") }
        try await perform(try .update(set: set.joined(separator: ", "), where: predicate), table: table, repo: repo, commit: commit)
    }
}

struct Tx: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tx", abstract: "Transactions across processes: begin, stage writes with --tx, then commit or abort.",
        subcommands: [Begin.self, Commit.self, Abort.self, List.self])

    struct Begin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Begin a transaction and print its id.")
        @OptionGroup var repo: RepositoryOptions
        @Option(help: "The branch it commits to.") var branch: String?
        @Option(help: "How long it may stay without activity before it expires (e.g. 30m, 24h).") var ttl: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let tx = try await repo.open().beginTransaction(on: branch, timeToLive: try ttl.map { try DurationText.parse($0) })
            if json {
                print(Output.json(["id": tx.id, "branch": tx.branch, "base": tx.base?.hex ?? ""]))
            } else {
                print(tx.id)
            }
        }
    }

    struct Commit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Commit what a transaction staged, as one commit.")
        @OptionGroup var repo: RepositoryOptions
        @Argument(help: "The transaction id.") var id: String
        @Option(name: .shortAndLong, help: "Commit message.") var message: String?
        @Option(help: "Commit author (default: $UDR_AUTHOR or $USER).") var author: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let tx = try await repo.open().openTransaction(id)
            let record = try await tx.commit(message: message, author: author)
            if json {
                print(Output.json(record))
            } else if let record {
                print("committed \(id) as \(record.id.short) (tx \(record.txID)) on \(record.branch)")
            } else {
                print("\(id) staged no change: nothing committed")
            }
        }
    }

    struct Abort: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Discard what a transaction staged.")
        @OptionGroup var repo: RepositoryOptions
        @Argument(help: "The transaction id.") var id: String

        func run() async throws {
            let repository = try repo.open()
            let tx = try await repository.openTransaction(id)
            try await tx.abort()
            print("aborted \(id)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List open transactions and what they staged.")
        @OptionGroup var repo: RepositoryOptions
        @Flag(help: "Print JSON.") var json = false

        struct Entry: Encodable {
            let transaction: TransactionRecord
            let expired: Bool
            let staged: [StagedTable]
        }

        func run() async throws {
            let now = Date()
            let open = try await repo.open().openTransactions().map {
                Entry(transaction: $0.0, expired: !$0.0.isLive(at: now), staged: $0.1)
            }
            if json {
                print(Output.json(open))
                return
            }
            print(
                Output.table(
                    headers: ["id", "branch", "began", "expires", "state", "staged"],
                    rows: open.map {
                        [
                            $0.transaction.id, $0.transaction.branch, Timestamp.format($0.transaction.began),
                            Timestamp.format($0.transaction.expires), $0.expired ? "expired" : "open",
                            $0.staged.map(\.table.rawValue).joined(separator: ", "),
                        ]
                    }))
        }
    }
}
