// udr-harness: child-process drivers for UDR's concurrency and crash tests.
//
//   udr-harness worker REPO ID COMMITS [mixed|own|shared]
//       Makes COMMITS commits that replace the table own_ID (own), upsert
//       key ID*1000+i of the table `shared` (shared), or alternate (mixed,
//       the default). Prints "ack TX" per commit, then its retries and waits.
//   udr-harness victim REPO SEED
//       Runs random writes, transactions, row-level edits, expire and gc
//       until killed. Prints "op NAME" before each and "ack COMMIT" after
//       each acknowledged commit.
//   udr-harness crash [--kills N] [--parallel P] [--seed S]
//       Kills victims with SIGKILL at random instants and checks after each
//       kill that the repository verifies, that no acknowledged commit is
//       lost and that no commit is visible in part. Exit status 1 on any failure.
import DuckDB
import Foundation
import UDRCore
import UDRS3
import UDRSQLite
import UDRTesting

#if canImport(Glibc)
    import Glibc
#endif

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("udr-harness: " + message + "\n").utf8))
    exit(1)
}

let arguments = Array(CommandLine.arguments.dropFirst())

/// Repositories whose objects are on S3 open as `udr` opens them.
let harnessConfiguration: Repository.Configuration = {
    var configuration = Repository.Configuration()
    configuration.remoteStorage = .withS3
    return configuration
}()

// MARK: worker

func worker(repoPath: String, id: Int, commits: Int, mode: String) async throws {
    let repo = try LocalRepository.open(at: URL(fileURLWithPath: repoPath), configuration: harnessConfiguration)
    let own = try TableName("own_\(id)")
    let shared = try TableName("shared")
    for i in 0..<commits {
        let result: WriteResult
        if mode == "own" || (mode == "mixed" && i % 2 == 0) {
            result = try await repo.write(own, from: .sql("SELECT r AS k, \(i) AS gen FROM range(100) t(r)"), key: ["k"])
        } else {
            result = try await repo.apply(.upsert(.sql("SELECT \(id * 1000 + i) AS k, \(i + 1) AS v")), to: shared)
        }
        guard let commit = result.commit else { fail("worker \(id): commit \(i) changed nothing") }
        say("ack \(commit.txID)")
    }
    say("retries \(repo.commitStatistics.retries) waits \(repo.commitStatistics.lockWaits)")
}

// MARK: victim

/// The tables a victim writes and the invariants they keep at every commit.
enum Chaos {
    static let pairA = try! TableName("pair_a")
    static let pairB = try! TableName("pair_b")
    static let ledger = try! TableName("ledger")
    static let totals = try! TableName("totals")
    static let big = try! TableName("big")
    static let events = try! TableName("events")

    static func setUp(_ repo: Repository) async throws {
        try await repo.transaction(message: "set up") { tx in
            try await tx.write(pairA, from: .sql("SELECT 0 AS gen, r AS k FROM range(1000) t(r)"), key: ["k"])
            try await tx.write(pairB, from: .sql("SELECT 0 AS gen, r AS k FROM range(1000) t(r)"), key: ["k"])
            try await tx.write(ledger, from: .sql("SELECT 0 AS k, 'start' AS note"), key: ["k"])
            try await tx.write(totals, from: .sql("SELECT 1 AS id, 1 AS n"), key: ["id"])
            try await tx.write(big, from: .sql("SELECT r AS k, r % 97 AS a, 'v' || r AS b FROM range(60000) t(r)"), key: ["k"])
            try await tx.write(events, from: .sql("SELECT r AS id, 'e' AS kind FROM range(100) t(r)"), key: [])
        }
    }

    /// Rows of every invariant, true when it holds.
    static let invariants = """
        SELECT
          (SELECT min(gen) = max(gen) FROM pair_a) AND (SELECT min(gen) = max(gen) FROM pair_b)
            AND (SELECT max(gen) FROM pair_a) = (SELECT max(gen) FROM pair_b) AS pairs_agree,
          (SELECT count(*) FROM ledger) = (SELECT n FROM totals) AS ledger_matches_total,
          (SELECT count(*) FROM big) = 60000 AS big_complete
        """
}

func victim(repoPath: String, seed: UInt64) async throws {
    let repo = try LocalRepository.open(at: URL(fileURLWithPath: repoPath), configuration: harnessConfiguration)
    var rng = SeededGenerator(seed: seed)
    while true {
        let generation = Int(rng.next() % 1_000_000_000)
        var commit: CommitRecord?
        switch rng.next() % 8 {
        case 0, 1:
            say("op transaction")
            let rows = 1000 + Int(rng.next() % 20000)
            let tx = try await repo.beginTransaction()
            try await tx.write(Chaos.pairA, from: .sql("SELECT \(generation) AS gen, r AS k FROM range(\(rows)) t(r)"))
            try await tx.write(Chaos.pairB, from: .sql("SELECT \(generation) AS gen, r AS k FROM range(\(rows)) t(r)"))
            commit = try await tx.commit(message: "pair \(generation)")
        case 2:
            say("op row-level transaction")
            let tx = try await repo.beginTransaction()
            try await tx.apply(.upsert(.sql("SELECT \(generation) AS k, 'g' AS note")), to: Chaos.ledger)
            try await tx.apply(try .update(set: "n = (SELECT count(*) FROM ledger)", where: nil), to: Chaos.totals)
            commit = try await tx.commit()
        case 3:
            say("op write")
            commit = try await repo.write(
                Chaos.big, from: .sql("SELECT r AS k, (r * \(generation % 89 + 1)) % 97 AS a, 'v' || r AS b FROM range(60000) t(r)")
            ).commit
        case 4:
            say("op update")
            commit = try await repo.apply(try .update(set: "a = a + 1", where: "k % 1000 = \(generation % 1000)"), to: Chaos.big).commit
        case 5:
            say("op append")
            commit = try await repo.apply(.append(.sql("SELECT \(generation) AS id, 'x' AS kind")), to: Chaos.events).commit
        case 6:
            say("op expire")
            _ = try await repo.expire(.keepLast(4))
        default:
            say("op gc")
            _ = try await repo.gc(grace: 0)
        }
        if let commit { say("ack \(commit.id.hex)") }
    }
}

// MARK: crash driver

struct CrashStats {
    var kills = 0
    var acked = 0
    var lost = 0
    var partial = 0
    var unverified = 0
    var opsAtKill: [String: Int] = [:]
}

/// One repository's rounds: victim, random sleep, SIGKILL, checks.
func crashRounds(rounds: Int, seed: UInt64, directory: URL) async throws -> CrashStats {
    var stats = CrashStats()
    var rng = SeededGenerator(seed: seed)
    let path = directory.appendingPathComponent("repo")
    _ = try LocalRepository.create(at: path)
    try await Chaos.setUp(try LocalRepository.open(at: path, configuration: harnessConfiguration))
    for round in 0..<rounds {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["victim", path.path, String(seed &* 1000 &+ UInt64(round))]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Victims spend their first ~150 ms starting; kill anywhere after.
        usleep(UInt32(100_000 + rng.next() % 700_000))
        kill(process.processIdentifier, SIGKILL)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        stats.kills += 1
        let lines = text.split(separator: "\n")
        if let last = lines.last(where: { $0.hasPrefix("op ") }) { stats.opsAtKill[String(last.dropFirst(3)), default: 0] += 1 }

        let repo = try LocalRepository.open(at: path, configuration: harnessConfiguration)
        let report = try await repo.verify()
        if !report.ok {
            stats.unverified += 1
            say("round \(round): verify failed: \(report.problems.prefix(3).joined(separator: "; "))")
        }
        for line in lines where line.hasPrefix("ack ") {
            stats.acked += 1
            let id = try ObjectID(hex: String(line.dropFirst(4)))
            if try repo.catalog.commitRecord(id) == nil, try !repo.catalog.isExpired(id) {
                stats.lost += 1
                say("round \(round): acknowledged commit \(id.short) is lost")
            }
        }
        let checks = try await repo.query(Chaos.invariants)
        if checks.rows.first?.contains(where: { $0 != .bool(true) }) != false {
            stats.partial += 1
            say("round \(round): an invariant fails at the head: \(checks.rows)")
        }
    }
    return stats
}

func crash(_ options: [String]) async throws {
    func value(_ name: String, _ fallback: Int) -> Int {
        guard let i = options.firstIndex(of: name), i + 1 < options.count, let v = Int(options[i + 1]) else { return fallback }
        return v
    }
    let kills = value("--kills", 200)
    let parallel = max(1, value("--parallel", 2))
    let seed = UInt64(value("--seed", Int(Date().timeIntervalSince1970) % 100_000))
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("udr-crash-\(getpid())")
    defer { try? FileManager.default.removeItem(at: root) }
    let started = Date()
    let results = try await withThrowingTaskGroup(of: CrashStats.self) { group in
        for lane in 0..<parallel {
            let rounds = kills / parallel + (lane < kills % parallel ? 1 : 0)
            let directory = root.appendingPathComponent("lane-\(lane)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            group.addTask { try await crashRounds(rounds: rounds, seed: seed &+ UInt64(lane), directory: directory) }
        }
        var all: [CrashStats] = []
        for try await stats in group { all.append(stats) }
        return all
    }
    var total = CrashStats()
    for s in results {
        total.kills += s.kills
        total.acked += s.acked
        total.lost += s.lost
        total.partial += s.partial
        total.unverified += s.unverified
        for (op, n) in s.opsAtKill { total.opsAtKill[op, default: 0] += n }
    }
    let ops = total.opsAtKill.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    say(
        "crash: seed \(seed): \(total.kills) kills (during: \(ops)); \(total.acked) acknowledged commits, \(total.lost) lost; \(total.partial) partial states visible; \(total.unverified) repositories failing verify; \(Int(Date().timeIntervalSince(started))) s"
    )
    if total.lost + total.partial + total.unverified > 0 { exit(1) }
}

do {
    switch arguments.first {
    case "worker":
        guard arguments.count >= 4, let id = Int(arguments[2]), let n = Int(arguments[3]) else {
            fail("usage: worker REPO ID COMMITS [mixed|own|shared]")
        }
        try await worker(repoPath: arguments[1], id: id, commits: n, mode: arguments.count > 4 ? arguments[4] : "mixed")
    case "victim":
        guard arguments.count == 3, let seed = UInt64(arguments[2]) else { fail("usage: victim REPO SEED") }
        try await victim(repoPath: arguments[1], seed: seed)
    case "crash":
        try await crash(Array(arguments.dropFirst()))
    default:
        fail("usage: udr-harness worker|victim|crash …")
    }
} catch let error as UDRError {
    fail(error.message)
} catch {
    fail("\(error)")
}
