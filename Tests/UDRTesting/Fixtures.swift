import DuckDB
import Foundation
import UDRCore
import UDRSQLite

/// The directory all of this test process's temporary directories live
/// in; removed when the process exits.
private let scratchRoot: URL = {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("udr-tests-\(getpid())-\(UUID().uuidString.prefix(8))")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    atexit {
        let root = FileManager.default.temporaryDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [] where name.hasPrefix("udr-tests-\(getpid())-") {
            try? FileManager.default.removeItem(at: root.appendingPathComponent(name))
        }
    }
    return url
}()

/// A temporary directory for one test, removed when the test process exits.
public struct TemporaryDirectory: Sendable {
    public let url: URL

    public init(_ label: String = "t") {
        url = scratchRoot.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// Read groups small enough that tests of a few thousand rows read through
/// them (group files of several row groups, and single segments between).
public let testReadGrouping = ReadGrouping(bits: 1, minimumRows: 256, maximumRows: 8192, rowGroupSize: 1000)

/// Segments of about 10,000 rows: tests of 60,000 to 100,000 rows that
/// need several segments (the standard policy cuts them into two to four).
public let tenThousandRowSegments = SegmentationPolicy(bits: 13, minimumRows: 2048, maximumRows: 65536)

/// A fresh local repository in a temporary directory.
public func makeRepository(
    segmentation: SegmentationPolicy = .standard, readGrouping: ReadGrouping = testReadGrouping
) throws -> (Repository, TemporaryDirectory) {
    let dir = TemporaryDirectory()
    let repo = try LocalRepository.create(
        at: dir.url.appendingPathComponent("repo"), configuration: .init(segmentation: segmentation, readGrouping: readGrouping))
    return (repo, dir)
}

/// A plain in-memory DuckDB connection, the independent side of comparisons.
public func scratchDuckDB() throws -> Connection {
    try Database().connect()
}

/// The first cell of a query's first row as an integer.
public func count(_ repo: Repository, _ sql: String, options: ReadOptions = .init()) async throws -> Int64 {
    try await repo.query(sql, options: options).scalar.int ?? -1
}

/// Result of running the `udr` executable.
public struct CommandResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// The `udr` executable built next to the tests (or `UDR_BINARY`).
public func udrExecutable() -> URL { builtExecutable("udr", override: "UDR_BINARY") }

/// The `udr-harness` executable built next to the tests.
public func harnessExecutable() -> URL { builtExecutable("udr-harness", override: "UDR_HARNESS") }

private func builtExecutable(_ name: String, override: String) -> URL {
    if let explicit = ProcessInfo.processInfo.environment[override] { return URL(fileURLWithPath: explicit) }
    var dir = Bundle.main.bundleURL
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    return cwd.appendingPathComponent(".build/debug/\(name)")
}

/// Runs `udr` with arguments in a directory and waits for it.
@discardableResult
public func udr(_ arguments: [String], in directory: URL) throws -> CommandResult {
    try run(udrExecutable(), arguments, in: directory)
}

/// Runs an executable with arguments in a directory and waits for it.
public func run(_ executable: URL, _ arguments: [String], in directory: URL) throws -> CommandResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = directory
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

/// ``run(_:_:in:)`` on a thread of its own, so that waiting for the child
/// does not hold one of the few threads Swift's concurrency runs on.
public func runAsync(_ executable: URL, _ arguments: [String], in directory: URL) async throws -> CommandResult {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try run(executable, arguments, in: directory) })
        }
    }
}

/// A keyed table of `rows` rows and 10 columns with realistic value spread
/// (integers, decimals, strings, dates, a boolean, a score), as SQL.
/// Key `k` ascends in steps of 10, leaving room for inserts between keys.
public func syntheticTableSQL(rows: Int) -> String {
    """
    SELECT i * 10 AS k,
           (hash(i) % 100000)::INTEGER AS a,
           (hash(i * 3) % 1000000) / 100.0 AS b,
           'name_' || (hash(i * 5) % 50000) AS c,
           DATE '2000-01-01' + (hash(i * 7) % 9000)::INTEGER AS d,
           ((hash(i * 11) % 10000000) / 100)::DECIMAL(12,2) AS e,
           (hash(i * 13) % 1000000000)::BIGINT AS f,
           ['active', 'inactive', 'pending', 'closed'][(hash(i * 17) % 4)::INTEGER + 1] AS g,
           hash(i * 19) % 2 = 0 AS h,
           (hash(i * 23) % 1000) / 10.0 AS s
    FROM range(\(rows)) t(i)
    """
}

/// A small deterministic random number generator (SplitMix64), so that a
/// randomized test or harness run can be replayed from its seed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Flips one bit in the middle of a loose object of a local repository
/// (a damaged disk); returns the object's bytes as they were.
@discardableResult
public func flipAByte(of id: ObjectID, in repo: Repository) throws -> Data {
    let url = try looseObject(id, in: repo)
    let original = try Data(contentsOf: url)
    var damaged = original
    damaged[damaged.count / 2] ^= 0x01
    try damaged.write(to: url)
    return original
}

/// The file of a loose object of a local repository.
public func looseObject(_ id: ObjectID, in repo: Repository) throws -> URL {
    guard let store = repo.localStore as? LocalObjectStore else { throw UDRError(.invalidArgument, "not a local object store") }
    return URL(fileURLWithPath: store.objectsDirectory.path + "/" + id.hex.prefix(2) + "/" + id.hex.dropFirst(2))
}

/// `workers` harness processes (`udr-harness worker`) making `commits`
/// commits each on `repo`, while this process keeps expiring history
/// (keeping one commit) and collecting garbage with no grace period.
/// Returns each worker's result, and the maintenance rounds and bytes freed.
public func commitBesideGC(_ repo: Repository, workers: Int, commits: Int, in directory: URL, pause: Duration = .milliseconds(20)) async throws
    -> (results: [CommandResult], rounds: Int, freed: Int64)
{
    let maintenance = Task { () throws -> (rounds: Int, freed: Int64) in
        var rounds = 0
        var freed: Int64 = 0
        while !Task.isCancelled {
            do { _ = try await repo.expire(.keepLast(1)) } catch let error as UDRError where error.code == .conflict {
                // A branch moved while expiring: nothing expired this round.
            }
            freed += try await repo.gc(grace: 0).bytesFreed
            rounds += 1
            try? await Task.sleep(for: pause)
        }
        return (rounds, freed)
    }
    let path = repo.layout.root.path
    let results = try await withThrowingTaskGroup(of: CommandResult.self) { group in
        for id in 0..<workers {
            group.addTask { try await runAsync(harnessExecutable(), ["worker", path, String(id), String(commits)], in: directory) }
        }
        var all: [CommandResult] = []
        for try await result in group { all.append(result) }
        return all
    }
    maintenance.cancel()
    let collected = try await maintenance.value
    return (results, collected.rounds, collected.freed)
}
