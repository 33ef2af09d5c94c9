import DuckDB
import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

/// Many processes writing one repository, and writers killed mid-flight.
@Suite struct ConcurrencyTests {
    /// 8 processes × 50 commits: half replace each process's own table, half
    /// upsert disjoint keys of one shared table (rebased row by row), while
    /// this process keeps expiring history and collecting garbage with no
    /// grace period: what the writers stage is never collected from under them.
    @Test func eightProcessesCommitFourHundredTimesBesideGC() async throws {
        let dir = TemporaryDirectory()
        let path = dir.url.appendingPathComponent("repo")
        let repo = try LocalRepository.create(at: path)
        let shared = try TableName("shared")
        _ = try await repo.write(shared, from: .sql("SELECT r AS k, 0 AS v FROM range(10000) t(r)"), key: ["k"])
        let started = Date()
        let (results, rounds, freed) = try await commitBesideGC(repo, workers: 8, commits: 50, in: dir.url)
        let collected = (rounds: rounds, freed: freed)
        for result in results { #expect(result.status == 0, "\(result.stderr)") }
        let acks = results.flatMap { $0.stdout.split(separator: "\n").filter { $0.hasPrefix("ack ") } }
        #expect(acks.count == 400)
        #expect(Set(acks).count == 400)
        print(
            "concurrency: 8 processes committed 400 times in \(String(format: "%.1f", Date().timeIntervalSince(started))) s beside \(collected.rounds) rounds of expire + gc (grace 0), which freed \(collected.freed) bytes"
        )
        #expect(collected.rounds >= 2)
        #expect(collected.freed > 0)
        // Every worker's upserts are there, nothing else changed.
        var expected: [[Cell]] = []
        for id in 0..<8 {
            for i in stride(from: 1, to: 50, by: 2) { expected.append([.int(Int64(id * 1000 + i)), .int(Int64(i + 1))]) }
        }
        let rows = try await repo.query("SELECT k, v FROM shared WHERE v <> 0 ORDER BY k").rows
        #expect(rows == expected)
        #expect(try await count(repo, "SELECT count(*) FROM shared") == 10000)
        for id in 0..<8 {
            #expect(try await count(repo, "SELECT max(gen) FROM own_\(id)") == 48)
        }
        #expect(try await repo.verify().ok)
        #expect(try repo.catalog.leases().isEmpty, "every write ended its lease")
    }

    /// Writers killed with SIGKILL at random instants during writes,
    /// commits, row-level edits, expire and GC: the repository always
    /// verifies, no acknowledged commit is lost, no commit is half visible.
    @Test func killedWritersNeverLeaveAHalfCommit() throws {
        let dir = TemporaryDirectory()
        let result = try run(harnessExecutable(), ["crash", "--kills", "200", "--parallel", "2"], in: dir.url)
        print(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("200 kills"))
        #expect(result.stdout.contains(" 0 lost; 0 partial states visible; 0 repositories failing verify"))
    }
}
