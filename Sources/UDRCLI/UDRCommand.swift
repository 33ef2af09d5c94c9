import ArgumentParser
import DuckDB
import Foundation
import UDRCore
import UDRS3
import UDRSQLite

/// `udr`: the command-line interface, a thin layer over the `UDRCore` library.
public struct UDRCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "udr",
        abstract: "UDR: a versioned, transactional store for tables, queried with DuckDB.",
        subcommands: [
            Init.self, Write.self, Append.self, Upsert.self, Delete.self, Update.self, Tx.self, Query.self, SQL.self, Drop.self, Alter.self, Rename.self, Export.self, Log.self,
            Changes.self, GC.self, Expire.self, Branch.self, Tag.self, Switch.self,
            Show.self, Diff.self, Merge.self, History.self, Tables.self, Versions.self, Info.self, Verify.self, Demo.self,
            Remote.self, Clone.self, Fetch.self, Pull.self, Push.self,
        ])

    public init() {}
}

/// Options every command that works on a repository takes.
struct RepositoryOptions: ParsableArguments {
    @Option(name: .customLong("repo"), help: "The repository (default: the one containing the current directory).")
    var path: String?

    func open() throws -> Repository {
        let url = URL(fileURLWithPath: path ?? FileManager.default.currentDirectoryPath)
        return try LocalRepository.open(at: url, configuration: Self.configuration)
    }

    /// What every command opens repositories with: remotes on S3 too.
    static var configuration: Repository.Configuration {
        var configuration = Repository.Configuration()
        configuration.remoteStorage = .withS3
        return configuration
    }
}

/// Options selecting the versions a read sees.
struct VersionOptions: ParsableArguments {
    @Option(
        name: .customLong("at"), help: "Pin a table: NAME=VERSION or NAME=REF, or ALIAS=TABLE@VERSION|REF to read it under another name (e.g. master=experiment, old=master@main). Repeatable."
    )
    var pins: [String] = []

    @Option(help: "Read the tables at this ref: commit id or unique prefix, tx:N, branch, tag, main~3, or a time.")
    var commit: String?

    @Option(name: .customLong("as-of"), help: "Read the tables as of this time (ISO 8601, UTC unless an offset is given).")
    var asOf: String?

    @Option(help: "The branch to read.")
    var branch: String?

    @Option(name: .customLong("tx"), help: "Read inside this open transaction: its snapshot and its own writes.")
    var transaction: String?

    func readOptions() throws -> ReadOptions {
        try ReadOptions(branch: branch, commit: commit, asOf: asOf, pins: pins, transaction: transaction)
    }
}

/// Options of every command that writes: where the commit goes and what it says.
struct CommitOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Commit message.")
    var message: String?

    @Option(help: "Commit author (default: $UDR_AUTHOR or $USER).")
    var author: String?

    @Option(help: "The branch to commit to.")
    var branch: String?

    @Option(name: .customLong("tx"), help: "Stage the write in this open transaction (`udr tx begin`) instead of committing it.")
    var transaction: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    /// The open transaction to stage in (`--tx`), checked against the
    /// options that belong to its own begin and commit.
    func staging() throws(UDRError) -> String? {
        guard let transaction else { return nil }
        if branch != nil || message != nil || author != nil {
            throw UDRError(.invalidArgument, "--branch, --message and --author belong to `udr tx begin` and `udr tx commit` when --tx is given")
        }
        return transaction
    }

    /// Runs a write: staged in `--tx`, or committed at once.
    func perform(
        _ repository: Repository, table: TableName, staged: (Transaction) async throws(UDRError) -> StagedWrite,
        direct: () async throws(UDRError) -> WriteResult
    ) async throws {
        if let transaction = try staging() {
            let result = try await staged(try await repository.openTransaction(transaction))
            if json {
                print(Output.json(result))
            } else if result.changed {
                print(
                    "\(table): staged in \(transaction): \(Output.describe(result.counts, rows: result.rows)), \(Output.bytes(result.bytesAdded)) new"
                )
            } else {
                print("\(table) is unchanged: nothing staged")
            }
            return
        }
        let result = try await direct()
        if json {
            print(Output.json(result))
        } else if let commit = result.commit {
            print(
                "\(table) v\(result.version): \(Output.describe(result.counts, rows: result.rows)) in \(result.segments) segments, \(Output.bytes(result.logicalBytes)) written, \(Output.bytes(result.bytesAdded)) new (commit \(commit.id.short), tx \(commit.txID))"
            )
        } else {
            print("\(table) is unchanged at v\(result.version): nothing committed")
        }
    }
}

/// Where the rows of a write come from: a file or a query.
struct InputOptions: ParsableArguments {
    @Argument(help: "A Parquet, CSV or JSON/NDJSON file.")
    var file: String?

    @Option(help: "A SELECT over the repository's tables, instead of a file.")
    var sql: String?

    @Option(help: "The input file's format (parquet, csv, json), when its extension does not say.")
    var format: String?

    func source() throws -> WriteSource {
        switch (file, sql) {
        case (let file?, nil): return .file(file, format: try format.map { try FileFormat(parsing: $0) })
        case (nil, let sql?): return .sql(sql)
        default: throw UDRError(.invalidArgument, "give either a FILE or --sql \"SELECT …\", not both or neither")
        }
    }

    var isGiven: Bool { file != nil || sql != nil }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// The `udr` executable's entry point.
public enum UDRMain {
    public static func run(_ arguments: [String]? = nil) async {
        do {
            var command = try UDRCommand.parseAsRoot(arguments)
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            UDRCommand.exit(withError: explained(error))
        }
    }

    /// The error, with what to do about a full disk said once for every
    /// place that can meet one (a write's files, the object store, the catalog).
    static func explained(_ error: any Error) -> any Error {
        guard let error = error as? UDRError else { return error }
        let text = error.message.lowercased()
        guard text.contains("no space left on device") || text.contains("disk is full") || text.contains("disk quota exceeded") else {
            return error
        }
        return UDRError(
            .io,
            "\(error.message)\nThe disk is full: nothing was committed, and the repository is as it was. Free space (`udr gc` frees what no retained commit reaches; the segment cache in .udr/cache can be removed) and run it again.",
            underlying: error)
    }
}
