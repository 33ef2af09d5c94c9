import ArgumentParser
import Foundation
import UDRCore
import UDRSQLite

/// Where an S3 remote is served from, for the commands that name a URL.
struct EndpointOptions: ParsableArguments {
    @Option(help: "The S3-compatible server (http(s)://HOST:PORT) for an s3:// URL; default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, or AWS.")
    var endpoint: String?
    @Option(help: "The S3 region (R2: auto); default $AWS_REGION, the profile's, or us-east-1.") var region: String?

    func location(_ url: String) -> RemoteLocation { RemoteLocation(url: url, endpoint: endpoint, region: region) }
}

/// A progress bar on standard error, when it is a terminal.
func progressBar() -> SyncProgress? {
    guard isatty(2) == 1 else { return nil }
    return { phase, done, total in
        let width = 30
        let filled = total > 0 ? Int(Double(width) * Double(done) / Double(total)) : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r\(phase) [\(bar)] \(Output.bytes(done)) of \(Output.bytes(total))\(done >= total ? "\n" : "")".utf8))
    }
}

/// Prints what a fetch or push moved.
func printSync(_ report: SyncReport, verb: String, json: Bool) {
    if json {
        print(Output.json(report))
        return
    }
    print("\(verb) \(report.objects) object(s), \(Output.bytes(report.objectBytes))\(verb == "sent" ? " (\(Output.bytes(report.bytesSent)) uploaded, \(report.packs) pack(s))" : "")")
    for ref in report.refs {
        print("  \(ref.name): \(ref.old?.short ?? "(new)") -> \(ref.new?.short ?? "(deleted)")")
    }
    if report.refs.isEmpty { print("  everything up to date") }
    for skipped in report.skipped { print("  skipped \(skipped)") }
}

struct Remote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, add or remove remotes: a directory (a path or file://) or S3 (s3://BUCKET/PREFIX).",
        discussion: "udr remote · udr remote add NAME URL [--endpoint URL] · udr remote remove NAME · udr remote verify [NAME]",
        subcommands: [List.self, Add.self, RemoveRemote.self, VerifyRemote.self], defaultSubcommand: List.self)

    struct VerifyRemote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify", abstract: "Read every object the remote's branches and tags reach and check it against its id.")
        @OptionGroup var repo: RepositoryOptions
        @Argument(help: "The remote's name (default: origin, or the only one).") var name: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let report = try await repo.open().verifyRemote(name)
            if json {
                print(Output.json(report))
            } else {
                for problem in report.problems { print("PROBLEM: \(problem)") }
                print(
                    "\(report.ok ? "ok" : "\(report.problems.count) problem(s)"): \(report.objectsChecked) objects (\(Output.bytes(report.bytesChecked))) of \(report.refsChecked) refs on \(report.remote) checked"
                )
            }
            if !report.ok { throw ExitCode(2) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the remotes.")
        @OptionGroup var repo: RepositoryOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let remotes = try await repo.open().remotes()
            if json { print(Output.json(remotes)) } else if remotes.isEmpty { print("no remotes; `udr remote add origin URL` adds one") } else {
                for remote in remotes { print("\(remote.name)  \(remote.location.url)\(remote.location.endpoint.map { "  (\($0))" } ?? "")") }
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a remote (nothing is sent until a push).")
        @OptionGroup var repo: RepositoryOptions
        @Argument(help: "Its name, e.g. origin.") var name: String
        @Argument(help: "A directory, file:// URL or s3://BUCKET/PREFIX.") var url: String
        @OptionGroup var endpoint: EndpointOptions

        func run() async throws {
            try await repo.open().addRemote(name, endpoint.location(url))
            print("added remote \(name) (\(url))")
        }
    }

    struct RemoveRemote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a remote and its remote-tracking refs.")
        @OptionGroup var repo: RepositoryOptions
        @Argument(help: "The remote's name.") var name: String

        func run() async throws {
            try await repo.open().removeRemote(name)
            print("removed remote \(name)")
        }
    }
}

struct Clone: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a remote into a new repository: its branches, tags and history.",
        discussion: "udr clone s3://bucket/parcels parcels --endpoint http://127.0.0.1:8333 · udr clone /backups/parcels copy --depth 1")
    @Argument(help: "The remote: a directory, file:// URL or s3://BUCKET/PREFIX.") var url: String
    @Argument(help: "The new repository's directory.") var directory: String
    @Option(help: "The branch to check out (default: main).") var branch: String?
    @Option(help: "Fetch the segments of only the newest N commits; older versions' segments are read from the remote when needed.")
    var depth: Int?
    @OptionGroup var endpoint: EndpointOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let (repo, report) = try await LocalRepository.clone(
            endpoint.location(url), into: URL(fileURLWithPath: directory), branch: branch, depth: depth, configuration: RepositoryOptions.configuration,
            progress: json ? nil : progressBar())
        if !json { print("cloned \(url) into \(directory), on branch \(try await repo.currentBranch())") }
        printSync(report, verb: "received", json: json)
    }
}

struct Fetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring a remote's branches (as REMOTE/BRANCH) and tags here, with the objects that are not here yet.")
    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The remote (default: origin).") var remote: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        printSync(try await repo.open().fetch(remote, progress: json ? nil : progressBar()), verb: "received", json: json)
    }
}

struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch, then merge the remote's copy of the branch into it (a fast-forward when it has no commits of its own).")
    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The remote (default: origin).") var remote: String?
    @Option(help: "The branch (default: the current one).") var branch: String?
    @Option(help: "fail (default), ours or theirs: how conflicting cells are resolved.") var strategy: String = "fail"
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        guard let chosen = MergeStrategy(rawValue: strategy) else {
            throw UDRError(.invalidArgument, "unknown strategy '\(strategy)': use fail, ours or theirs")
        }
        let (fetch, merge) = try await repo.open().pull(remote, branch: branch, strategy: chosen, progress: json ? nil : progressBar())
        if json {
            print(Output.json(["fetch": AnyEncodable(fetch), "merge": AnyEncodable(merge)]))
            if merge.outcome == .conflicts { throw ExitCode(1) }
            return
        }
        printSync(fetch, verb: "received", json: false)
        try Merge.report(merge, source: "\(fetch.remote)/\(merge.target)", strategy: strategy, json: false)
    }
}

struct Push: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a branch (and with --tags, the tags) to a remote: only the objects it lacks, then its ref by compare-and-swap.")
    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The remote (default: origin).") var remote: String?
    @Argument(help: "The branch (default: the current one).") var branch: String?
    @Flag(help: "Overwrite the remote's branch even when it is not an ancestor of yours.") var force = false
    @Flag(help: "Push the tags too.") var tags = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let report = try await repo.open().push(remote, branch: branch, force: force, tags: tags, progress: json ? nil : progressBar())
        printSync(report, verb: "sent", json: json)
    }
}

/// Any encodable value, for JSON made of several results.
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}
