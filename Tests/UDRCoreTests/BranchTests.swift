import DuckDB
import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

@Suite struct BranchTests {
    static let master = try! TableName("master")
    static let sources = try! TableName("sources")

    /// A repository with a 2,000-parcel master table and a source table, and
    /// one more commit so that `main~1` exists.
    static func pipeline() async throws -> (Repository, TemporaryDirectory) {
        let (repo, dir) = try makeRepository()
        _ = try await repo.write(sources, from: .sql("SELECT r AS bbl, r % 7 AS zone FROM range(2000) t(r)"), key: ["bbl"])
        _ = try await repo.write(
            master, from: .sql("SELECT r AS bbl, r % 7 AS zone, (r % 100) * 1.0 AS score FROM range(2000) t(r)"), key: ["bbl"])
        return (repo, dir)
    }

    /// Phase E of the migration plan, up to the comparison: a branch costs
    /// nothing, a transaction on it rebuilds the master table, `main` does
    /// not see it, one query compares both.
    @Test func anExperimentBranchRebuildsTheMasterWithoutTouchingMain() async throws {
        let (repo, _) = try await Self.pipeline()
        let bytes = try await repo.storedBytes()
        let mainHead = try await repo.resolve("main")
        let branch = "experiment/new-scoring-weights"
        let created = try await repo.createBranch(branch)
        #expect(created == mainHead)
        #expect(try await repo.storedBytes() == bytes, "creating a branch stores nothing")

        _ = try await repo.transaction(on: branch, message: "new scoring weights") { tx in
            try await tx.write(
                Self.master, from: .sql("SELECT bbl, zone, score * 1.5 + zone AS score FROM master"))
        }
        #expect(try await repo.resolve("main") == mainHead)
        #expect(try await repo.log(branch: "main").count == 2)
        #expect(try await repo.log(branch: branch).count == 3)
        let onMain = try await repo.query("SELECT avg(score) FROM master").scalar.double
        let onBranch = try await repo.query("SELECT avg(score) FROM master", options: ReadOptions(branch: branch)).scalar.double
        #expect(onMain == 49.5)
        let expected = try scratchDuckDB().query("SELECT avg((r % 100) * 1.5 + r % 7) FROM range(2000) t(r)").scalar.double
        #expect(onBranch == expected)
        // Both sides in one query: the branch's master beside main's.
        let compared = try await repo.query(
            "SELECT (SELECT avg(score) FROM master) AS experiment, (SELECT avg(score) FROM prod) AS production",
            options: ReadOptions(pins: [try TablePin(parsing: "master=\(branch)"), try TablePin(parsing: "prod=master@main")]))
        #expect(compared.rows.first?.map(\.double) == [onBranch, onMain])

        // Production moves on meanwhile (a nightly refresh of a source table);
        // the experiment wins and is merged: main gets its master, keeps its
        // own source refresh, and both histories stay.
        _ = try await repo.apply(try .update(set: "zone = zone + 1", where: "bbl < 10"), to: Self.sources)
        let experimentLog = try await repo.log(branch: branch).map(\.id)
        let merged = try await repo.merge(branch, into: "main", message: "adopt new scoring weights")
        #expect(merged.outcome == .merged && merged.conflicts.isEmpty)
        #expect(merged.tables == [Self.master])
        #expect(try await repo.query("SELECT avg(score) FROM master").scalar.double == onBranch)
        #expect(try await repo.query("SELECT sum(zone) FROM sources WHERE bbl < 10").scalar.int == 24 + 10, "main keeps its own refresh")
        #expect(try await repo.log(branch: branch).map(\.id) == experimentLog)
        let history = try await repo.log(branch: "main", allParents: true)
        #expect(history.first?.commit.parents.count == 2)
        #expect(Set(experimentLog).isSubset(of: history.map(\.id)))
        #expect(try await repo.diff(branch, "main", tables: [Self.master]).tables.map(\.status) == [.unchanged])
        #expect(try await repo.verify().ok)
    }

    @Test func refsNameCommitsEveryWay() async throws {
        let (repo, _) = try await Self.pipeline()
        let log = try await repo.log()
        let (head, first) = (log[0].id, log[1].id)
        try await repo.createTag("night-1", at: "main~1")
        #expect(try await repo.resolve("main~1") == first)
        #expect(try await repo.resolve("main~") == first)
        #expect(try await repo.resolve("main~0") == head)
        #expect(try await repo.resolve("HEAD") == head)
        #expect(try await repo.resolve("night-1") == first)
        #expect(try await repo.resolve("night-1~0") == first)
        #expect(try await repo.resolve(String(head.hex.prefix(10))) == head)
        #expect(try await repo.resolve("tx:\(log[1].commit.txID)") == first)
        #expect(try await repo.resolve(Timestamp.format(log[1].commit.time)) == first)
        #expect(try await repo.resolve(Timestamp.format(Date())) == head)
        // The tables at a tag, and a table pinned to a tag's version.
        let tablesAtTag = try await repo.tables(options: ReadOptions(commit: "night-1")).map(\.name)
        #expect(tablesAtTag == [Self.sources])
        let pinned = try await count(repo, "SELECT count(*) FROM old", options: ReadOptions(pins: [try TablePin(parsing: "old=sources@night-1")]))
        #expect(pinned == 2000)

        for (ref, fragment) in [
            ("main~5", "goes 5 commits back"), ("nope", "not a branch, tag"), ("main~x", "how many commits back"),
            ("ffff", "no commit id starts with"),
        ] {
            let error = await #expect(throws: UDRError.self) { try await repo.resolve(ref) }
            #expect(error?.message.contains(fragment) == true, "\(ref): \(error?.message ?? "")")
        }
        let missing = await #expect(throws: UDRError.self) {
            try await repo.query("SELECT 1 FROM old", options: ReadOptions(pins: [try TablePin(parsing: "old=master@night-1")]))
        }
        #expect(missing?.message.contains("no table 'master' at night-1") == true)
    }

    @Test func badRefNamesAndMisuseAreClearErrorsThatChangeNothing() async throws {
        let (repo, _) = try await Self.pipeline()
        try await repo.createBranch("dev")
        let before = try await repo.refs()
        for name in ["", "../x", "a..b", "-x", "x/", "a b", "2024", "HEAD", "a@b", "a~1", "x:y", String(repeating: "b", count: 201)] {
            let error = await #expect(throws: UDRError.self) { try await repo.createBranch(name) }
            #expect(error?.code == .invalidArgument, "\(name)")
            await #expect(throws: UDRError.self) { try await repo.createTag(name) }
        }
        let taken = await #expect(throws: UDRError.self) { try await repo.createTag("dev") }
        #expect(taken?.message.contains("a branch named 'dev' already exists") == true)
        let current = await #expect(throws: UDRError.self) { try await repo.deleteBranch("main") }
        #expect(current?.message.contains("cannot delete the current branch") == true)
        await #expect(throws: UDRError.self) { try await repo.deleteBranch("nope") }
        await #expect(throws: UDRError.self) { try await repo.switchBranch(to: "nope") }
        // A write to a branch that does not exist does not create it.
        let unknown = await #expect(throws: UDRError.self) {
            try await repo.write(Self.master, from: .sql("SELECT 1 AS bbl"), branch: "typo")
        }
        #expect(unknown?.code == .notFound)
        await #expect(throws: UDRError.self) { try await repo.beginTransaction(on: "typo") }
        #expect(try await repo.refs() == before)
        #expect(try await repo.verify().ok)
    }

    @Test func switchMovesTheDefaultBranchOfEveryCommand() async throws {
        let (repo, _) = try await Self.pipeline()
        try await repo.createBranch("dev")
        try await repo.switchBranch(to: "dev")
        #expect(try await repo.currentBranch() == "dev")
        _ = try await repo.apply(.delete(where: "bbl >= 1000"), to: Self.master)
        #expect(try await count(repo, "SELECT count(*) FROM master") == 1000)
        #expect(try await count(repo, "SELECT count(*) FROM master", options: ReadOptions(branch: "main")) == 2000)
        #expect(try await repo.log().first?.commit.branch == "dev")
        #expect(try await repo.refs().first { $0.current }?.name == "dev")
        try await repo.switchBranch(to: "main")
        #expect(try await count(repo, "SELECT count(*) FROM master") == 2000)
        try await repo.deleteBranch("dev")
        #expect(try await repo.refs().map(\.name) == ["main"])
    }

    /// Writers on two branches at once: each branch sees its own commits only.
    @Test func concurrentWritersOnTwoBranchesStayIsolated() async throws {
        let (repo, _) = try await Self.pipeline()
        try await repo.createBranch("b")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (branch, value) in [("main", 1), ("b", 2)] {
                group.addTask {
                    for i in 0..<10 {
                        _ = try await repo.apply(
                            .upsert(.sql("SELECT \(i * 10) AS bbl, \(value) AS zone, \(value * 1000 + i).0 AS score")), to: Self.master,
                            branch: branch)
                    }
                }
            }
            try await group.waitForAll()
        }
        for (branch, value) in [("main", 1), ("b", 2)] {
            let options = ReadOptions(branch: branch)
            #expect(try await count(repo, "SELECT count(*) FROM master WHERE score >= 1000", options: options) == 10)
            #expect(try await count(repo, "SELECT min(zone) FROM master WHERE score >= 1000", options: options) == Int64(value))
            #expect(try await count(repo, "SELECT max(zone) FROM master WHERE score >= 1000", options: options) == Int64(value))
            #expect(try await repo.log(branch: branch).count == 12)
        }
        #expect(try await repo.verify().ok)
    }

    /// A deleted branch's own commits become history `expire` drops and
    /// `gc` frees; what `main` shares with it stays.
    @Test func aDeletedBranchsCommitsExpire() async throws {
        let (repo, _) = try await Self.pipeline()
        try await repo.createBranch("scratch")
        _ = try await repo.write(
            Self.master, from: .sql("SELECT r AS bbl, 0 AS zone, 0.0 AS score FROM range(3000) t(r)"), branch: "scratch")
        let kept = try await repo.expire(.keepLast(10))
        #expect(kept.commitsExpired == 0)
        try await repo.deleteBranch("scratch")
        let expired = try await repo.expire(.keepLast(10))
        #expect(expired.commitsExpired == 1)
        let gc = try await repo.gc(grace: 0)
        #expect(gc.bytesFreed > 0)
        #expect(try await count(repo, "SELECT count(*) FROM master") == 2000)
        #expect(try await repo.verify().ok)
    }
}
