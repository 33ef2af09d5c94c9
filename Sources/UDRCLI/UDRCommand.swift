import ArgumentParser
import DuckDB
import Foundation
import UDRCore
import UDRSQLite

/// `udr`: the command-line interface, a thin layer over the `UDRCore` library.
public struct UDRCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "udr",
        abstract: "UDR: a versioned, transactional store for tables, queried with DuckDB.",
        subcommands: [
            Init.self, Write.self, Query.self, Export.self, Log.self, Show.self, Tables.self, Versions.self,
            Info.self, Verify.self, Demo.self,
        ])

    public init() {}
}

/// Options every command that works on a repository takes.
struct RepositoryOptions: ParsableArguments {
    @Option(name: .customLong("repo"), help: "The repository (default: the one containing the current directory).")
    var path: String?

    func open() throws -> Repository {
        let url = URL(fileURLWithPath: path ?? FileManager.default.currentDirectoryPath)
        return try LocalRepository.open(at: url)
    }
}

/// Options selecting the versions a read sees.
struct VersionOptions: ParsableArguments {
    @Option(
        name: .customLong("at"), help: "Pin a table: NAME=VERSION, or ALIAS=TABLE@VERSION to read a version under another name. Repeatable."
    )
    var pins: [String] = []

    @Option(help: "Read the tables as of this commit (id, unique prefix, or tx:N).")
    var commit: String?

    @Option(name: .customLong("as-of"), help: "Read the tables as of this time (ISO 8601, UTC unless an offset is given).")
    var asOf: String?

    @Option(help: "The branch to read.")
    var branch: String = Repository.defaultBranch

    func readOptions() throws -> ReadOptions {
        var options = ReadOptions(branch: branch, commit: commit)
        if let asOf {
            guard let date = Timestamp.parse(asOf) else {
                throw UDRError(.invalidArgument, "cannot read the time '\(asOf)': use e.g. 2026-11-21T21:30:00Z or '2026-11-21 21:30:00'")
            }
            if commit != nil { throw UDRError(.invalidArgument, "give --commit or --as-of, not both") }
            options.asOf = date
        }
        options.pins = try pins.map { try TablePin(parsing: $0) }
        return options
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// The `udr` executable's entry point.
public enum UDRMain {
    public static func run(_ arguments: [String]? = nil) async {
        await UDRCommand.main(arguments)
    }
}
