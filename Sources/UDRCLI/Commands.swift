import ArgumentParser
import DuckDB
import Foundation
import UDRCore
import UDRSQLite

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a repository.")

    @Argument(help: "Where to create it (default: the current directory).")
    var path: String?

    @Option(help: "Keep the objects in an object store of their own: s3://BUCKET/PREFIX, or a directory (an empty location).")
    var store: String?

    @Option(help: "The S3 endpoint of --store (http(s)://HOST:PORT; default: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).")
    var endpoint: String?

    @Option(help: "The S3 region of --store (default: AWS_REGION, the profile's, else us-east-1; `auto` for R2).")
    var region: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let url = URL(fileURLWithPath: path ?? FileManager.default.currentDirectoryPath)
        if store == nil, endpoint != nil || region != nil {
            throw UDRError(.invalidArgument, "--endpoint and --region describe --store; pass --store s3://BUCKET/PREFIX too")
        }
        let location = store.map { RemoteLocation(url: $0, endpoint: endpoint, region: region) }
        let repository = try LocalRepository.create(at: url, store: location, configuration: RepositoryOptions.configuration)
        if json {
            var fields = ["path": repository.layout.root.path, "format": String(RepositoryLayout.formatVersion)]
            if let location { fields["store"] = location.url }
            print(Output.json(fields))
        } else {
            print("Initialized an empty UDR repository in \(repository.layout.root.path)" + (location.map { ", its objects in \($0.url)" } ?? ""))
        }
    }
}

struct Write: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a table (replacing its content) from a file or a query, as one commit.")

    @OptionGroup var repo: RepositoryOptions

    @Argument(help: "The table, optionally with a namespace (org_12.parcels).")
    var table: String

    @OptionGroup var input: InputOptions

    @Option(help: "Primary key columns, comma-separated. Omit to keep the table's key; pass '' for none.")
    var key: String?

    @OptionGroup var commit: CommitOptions

    func run() async throws {
        let name = try TableName(table)
        let source = try input.source()
        let keyColumns = key.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        let repository = try repo.open()
        try await commit.perform(
            repository, table: name, staged: { (tx) throws(UDRError) in try await tx.write(name, from: source, key: keyColumns) },
            direct: { () throws(UDRError) in
                try await repository.write(
                    name, from: source, key: keyColumns, message: commit.message, author: commit.author, branch: commit.branch)
            })
    }
}

struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run SQL over the repository's tables (DuckDB SQL).")

    @OptionGroup var repo: RepositoryOptions
    @OptionGroup var versions: VersionOptions

    @Argument(help: "The SQL; every table is a view under its name.")
    var sql: String

    @Option(help: "table, csv, json or parquet (default: table, or what -o's extension says).")
    var format: String?

    @Option(name: .shortAndLong, help: "Write the result to this file.")
    var output: String?

    @Flag(help: "Same as --format json.")
    var json = false

    func run() async throws {
        let repository = try repo.open()
        let options = try versions.readOptions()
        let chosen = try Output.format(format, json: json, output: output)
        try await Output.emit(
            chosen, to: output, rows: { () throws(UDRError) in try await repository.query(sql, options: options) },
            export: { (path, format) throws(UDRError) in try await repository.export(sql, options: options, to: path, format: format) })
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a table (at any version) to a Parquet, CSV or JSON file.")

    @OptionGroup var repo: RepositoryOptions
    @OptionGroup var versions: VersionOptions

    @Argument(help: "The table.")
    var table: String

    @Option(name: .shortAndLong, help: "The file to write; its extension picks the format unless --format is given.")
    var output: String

    @Option(help: "parquet, csv or json.")
    var format: String?

    func run() async throws {
        let name = try TableName(table)
        let chosen = try format.map { try OutputFormat(parsing: $0) } ?? OutputFormat.forFile(output) ?? .parquet
        let repository = try repo.open()
        let options = try versions.readOptions()
        _ = try await repository.manifest(of: name, options: options)  // a clear error for an unknown table
        try await repository.export("SELECT * FROM \(name.sqlReference)", options: options, to: output, format: chosen)
        print("exported \(name) to \(output) (\(chosen))")
    }
}

struct Log: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the commits of a branch, newest first.")

    @OptionGroup var repo: RepositoryOptions

    @Argument(help: "Only commits that changed this table.")
    var table: String?

    @Option(help: "The branch.")
    var branch: String?

    @Option(name: .shortAndLong, help: "At most this many commits.")
    var limit: Int?

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "Every ancestor, merged branches' commits included, one line each with the branch graph.")
    var graph = false

    func run() async throws {
        let repository = try repo.open()
        let commits = try await repository.log(
            table: try table.map { try TableName($0) }, branch: branch, limit: limit, allParents: graph)
        if json {
            print(Output.json(commits))
            return
        }
        if commits.isEmpty { print("no commits yet") }
        if graph {
            for line in Self.graph(commits) { print(line) }
            return
        }
        for info in commits {
            let c = info.commit
            print("commit \(info.id.hex)  tx \(c.txID)")
            if c.parents.count > 1 { print("Merge:  \(c.parents.map(\.short).joined(separator: " "))") }
            print("Author: \(c.author)")
            print("Date:   \(Timestamp.format(c.time))")
            print("\n    \(c.message)\n")
            for change in c.changes {
                let (from, to) = Output.versions(change.oldVersion, change.newVersion)
                print("    \(change.table): \(from) → \(to)")
            }
            print("")
        }
    }

    /// One line per commit (newest first) with lanes: `*` the commit, `|`
    /// a line of descent passing by, `\` a merged parent's line starting,
    /// `/` a line joining the one to its left.
    static func graph(_ commits: [CommitInfo]) -> [String] {
        let listed = Set(commits.map(\.id))
        var lanes: [ObjectID?] = []
        var lines: [String] = []
        /// Lane i at column 2i; `between` marks column 2i - 1 (left of lane i).
        func render(commit: Int? = nil, between: [Int: Character] = [:]) -> String {
            var chars = [Character](repeating: " ", count: max(2 * lanes.count, 1))
            for (i, lane) in lanes.enumerated() where lane != nil { chars[2 * i] = i == commit ? "*" : "|" }
            for (i, mark) in between where i > 0 && 2 * i - 1 < chars.count {
                chars[2 * i - 1] = mark
                chars[2 * i] = " "
            }
            return String(chars).replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        for info in commits {
            let column = lanes.firstIndex(of: info.id) ?? {
                lanes.append(info.id)
                return lanes.count - 1
            }()
            // Other lines waiting for this commit join it first.
            let joining = lanes.indices.filter { $0 > column && lanes[$0] == info.id }
            if !joining.isEmpty {
                lines.append(render(between: Dictionary(uniqueKeysWithValues: joining.map { ($0, "/") })))
                for lane in joining { lanes[lane] = nil }
            }
            let c = info.commit
            let text = render(commit: column)
            lines.append(text.padding(toLength: max(text.count, 2 * lanes.count - 1), withPad: " ", startingAt: 0) + "  \(info.id.short) \(c.message)  [\(c.branch), tx \(c.txID)]")
            let parents = c.parents.filter(listed.contains)
            lanes[column] = parents.first
            for parent in parents.dropFirst() {
                if !lanes.contains(parent) {
                    if let free = lanes.indices.first(where: { $0 > column && lanes[$0] == nil }) { lanes[free] = parent } else { lanes.append(parent) }
                }
                let target = lanes.firstIndex(of: parent)!
                lines.append(render(between: [target: "\\"]))
            }
            while let last = lanes.last, last == nil { lanes.removeLast() }
        }
        return lines
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one commit: its metadata, changes and tables.")

    @OptionGroup var repo: RepositoryOptions

    @Argument(help: "A ref: commit id or unique prefix, tx:N, branch, tag, main~3.")
    var commit: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let shown = try await repo.open().show(commit)
        if json {
            print(Output.json(shown))
            return
        }
        let info = shown.commit
        print("commit \(shown.id.hex)  tx \(info.txID)")
        if !info.parents.isEmpty { print("Parents: \(info.parents.map(\.short).joined(separator: " "))") }
        print("Author: \(info.author)\nDate:   \(Timestamp.format(info.time))\nBranch: \(info.branch)\n\n    \(info.message)\n")
        for change in info.changes {
            let (from, to) = Output.versions(change.oldVersion, change.newVersion)
            print("    changed \(change.table): \(from) → \(to)")
        }
        print("\nTables:")
        for (name, entry) in info.tables.sorted(by: { $0.key < $1.key }) { print("    \(name) v\(entry.version)") }
    }
}

struct Tables: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the tables of a snapshot.")

    @OptionGroup var repo: RepositoryOptions
    @OptionGroup var versions: VersionOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let tables = try await repo.open().tables(options: try versions.readOptions())
        if json {
            print(Output.json(tables))
        } else {
            print(
                Output.table(
                    headers: ["table", "version", "rows"], rows: tables.map { [$0.name.rawValue, String($0.version), String($0.rows)] }))
        }
    }
}

struct Versions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List every version of a table.")

    @OptionGroup var repo: RepositoryOptions

    @Argument(help: "The table.")
    var table: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let versions = try await repo.open().versions(try TableName(table))
        if json {
            print(Output.json(versions))
        } else {
            print(
                Output.table(
                    headers: ["version", "rows", "tx", "commit", "time"],
                    rows: versions.map {
                        [String($0.version), String($0.rows), String($0.txID), $0.commit.short, Timestamp.format($0.time)]
                    }))
        }
    }
}

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a table version's size, schema and key.")

    @OptionGroup var repo: RepositoryOptions
    @OptionGroup var versions: VersionOptions

    @Argument(help: "The table.")
    var table: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let info = try await repo.open().info(try TableName(table), options: try versions.readOptions())
        if json {
            print(Output.json(info))
            return
        }
        print(
            """
            table:          \(info.table) v\(info.version)
            rows:           \(info.rows)
            segments:       \(info.segments)
            key:            \(info.key.isEmpty ? "(none)" : info.key.joined(separator: ", "))
            logical bytes:  \(Output.bytes(info.logicalBytes)) (\(info.logicalBytes))
            bytes stored:   \(Output.bytes(info.storedBytes)) (\(info.storedBytes))
            bytes shared:   \(Output.bytes(info.sharedBytes)) with other versions
            """)
        print(Output.table(headers: ["column", "type"], rows: info.columns.map { [$0.name, $0.type] }))
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-hash every object and cached file, and check every commit, manifest and segment resolves.")

    @OptionGroup var repo: RepositoryOptions

    @Flag(help: "Remove damaged files of the local segment cache (reads rebuild them from the objects).")
    var repair = false

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let report = try await repo.open().verify(repair: repair)
        if json {
            print(Output.json(report))
        } else {
            for path in report.cacheFilesRemoved { print("removed the damaged cached file \(path)") }
            for problem in report.problems { print("PROBLEM: \(problem)") }
            print(
                "\(report.objectsChecked) objects, \(report.commitsChecked) commits and \(report.cacheFilesChecked) cached files checked: \(report.ok ? "ok" : "\(report.problems.count) problem(s)")"
            )
        }
        if !report.ok { throw ExitCode(2) }
    }
}
