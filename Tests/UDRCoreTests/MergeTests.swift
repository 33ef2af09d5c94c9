import DuckDB
import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

@Suite struct MergeTests {
    static let p = try! TableName("p")

    /// Edits of one side, all on its own rows (`side` 0 or 1: keys whose
    /// hash falls in its class) or its own columns of shared rows: never
    /// the same cell, nor a row one side deletes and the other changes.
    static func script(side: Int, seed: Int, random: inout SeededGenerator) -> [RowEditStep] {
        // Rows of the base (new keys are never multiples of 10) in this side's class.
        let own = "hash(k + \(seed)) % 4 = \(side) AND k % 10 = 0"
        var steps: [RowEditStep] = []
        for _ in 0..<Int.random(in: 2...4, using: &random) {
            let rate = [3, 17, 101].randomElement(using: &random)!
            switch Int.random(in: 0..<5, using: &random) {
            case 0: steps.append(.update(side == 0 ? "a = a + 1" : "a = a * 3", "\(own) AND hash(k * 7) % \(rate) = 0"))
            // Not the rows both sides update in different columns.
            case 1: steps.append(.delete("\(own) AND hash(k * 11) % \(rate) = 1 AND k % 7 <> 3"))
            case 2:
                // New keys of its own (k + 1 or k + 2 never collide; k is a multiple of 10).
                steps.append(.upsert("SELECT k + \(side + 1) AS k, a, b, 'new\(side)' AS c, l FROM p WHERE \(own) AND hash(k * 13) % \(rate) = 2"))
            case 3:
                // The same rows on both sides, different columns.
                steps.append(.update(side == 0 ? "b = coalesce(b, 0) + 1" : "c = c || 'x'", "k % 7 = 3 AND k % 10 = 0"))
            default:
                // Filled in its own rows.
                steps.append(.addColumn(side == 0 ? "extra_ours" : "extra_theirs", "CASE WHEN \(own) THEN k % \(side + 5) END"))
            }
        }
        return steps
    }

    enum RowEditStep {
        case update(String, String)
        case delete(String)
        case upsert(String)
        case addColumn(String, String)

        func apply(_ repo: Repository, branch: String) async throws {
            switch self {
            case .update(let set, let predicate): _ = try await repo.apply(try .update(set: set, where: predicate), to: p, branch: branch)
            case .delete(let predicate): _ = try await repo.apply(.delete(where: predicate), to: p, branch: branch)
            case .upsert(let sql): _ = try await repo.apply(.upsert(.sql(sql)), to: p, branch: branch)
            case .addColumn(let name, let expression):
                let columns = try await repo.manifest(of: p, options: ReadOptions(branch: branch)).columns.map(\.name)
                guard !columns.contains(name) else { return }
                _ = try await repo.write(p, from: .sql("SELECT *, \(expression) AS \(name) FROM p"), branch: branch)
            }
        }
    }

    static func sameTable(_ repo: Repository, _ a: String, _ b: String) async throws -> Bool {
        let options = ReadOptions(pins: [try TablePin(parsing: "x=p@\(a)"), try TablePin(parsing: "y=p@\(b)")])
        let left = try await count(repo, "SELECT count(*) FROM (SELECT * FROM x EXCEPT ALL SELECT * FROM y)", options: options)
        let right = try await count(repo, "SELECT count(*) FROM (SELECT * FROM y EXCEPT ALL SELECT * FROM x)", options: options)
        let columns = try await repo.query("SELECT (SELECT list(column_name) FROM (DESCRIBE x)) = (SELECT list(column_name) FROM (DESCRIBE y))", options: options)
        return left == 0 && right == 0 && columns.scalar == .bool(true)
    }

    /// Random disjoint edits on two branches merge to the table both edit
    /// scripts give applied one after the other.
    @Test(arguments: 1...6) func disjointEditsMergeLikeBothScriptsInSequence(seed: Int) async throws {
        var random = SeededGenerator(seed: UInt64(seed) &+ 1000)
        let (repo, _) = try makeRepository(segmentation: DiffTests.small)
        _ = try await repo.write(Self.p, from: .sql(DiffTests.tableSQL(rows: Int.random(in: 800...3000, using: &random), seed: seed)), key: ["k"])
        try await repo.createBranch("exp")
        try await repo.createBranch("sequence")
        let ours = Self.script(side: 0, seed: seed, random: &random)
        let theirs = Self.script(side: 1, seed: seed, random: &random)
        for step in ours { try await step.apply(repo, branch: "main") }
        for step in theirs { try await step.apply(repo, branch: "exp") }
        for step in ours + theirs { try await step.apply(repo, branch: "sequence") }

        let result = try await repo.merge("exp", into: "main")
        #expect(result.conflicts.isEmpty, "seed \(seed): \(result.conflicts.prefix(3))")
        #expect(result.outcome == .merged)
        #expect(try await Self.sameTable(repo, "main", "sequence"), "seed \(seed): ours \(ours), theirs \(theirs)")
        let head = try await repo.log(limit: 1)[0].commit
        #expect(head.parents.count == 2)
        #expect(head.parents[1] == (try await repo.resolve("exp")))
        #expect(try await repo.verify().ok)
    }

    @Test func conflictingCellsAreReportedAndStrategiesResolveThem() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(Self.p, from: .sql("SELECT r AS k, r * 10 AS a, 'x' AS c FROM range(100) t(r)"), key: ["k"])
        try await repo.createBranch("exp")
        _ = try await repo.apply(try .update(set: "a = -1", where: "k = 5"), to: Self.p)
        _ = try await repo.apply(try .update(set: "c = 'ours'", where: "k = 6"), to: Self.p)
        _ = try await repo.apply(.delete(where: "k = 7"), to: Self.p)
        _ = try await repo.apply(try .update(set: "a = -2", where: "k = 5"), to: Self.p, branch: "exp")
        _ = try await repo.apply(try .update(set: "a = 66", where: "k = 6"), to: Self.p, branch: "exp")
        _ = try await repo.apply(try .update(set: "c = 'theirs'", where: "k = 7"), to: Self.p, branch: "exp")
        let head = try await repo.resolve("main")

        let failed = try await repo.merge("exp")
        #expect(failed.outcome == .conflicts)
        #expect(
            failed.conflicts == [
                MergeConflict(table: Self.p, key: "k=5", column: "a", base: "50", ours: "-1", theirs: "-2", reason: "changed on both sides"),
                MergeConflict(
                    table: Self.p, key: "k=7", column: nil, base: "{'k': 7, 'a': 70, 'c': x}", ours: nil, theirs: "{'k': 7, 'a': 70, 'c': theirs}",
                    reason: "deleted by ours, changed by theirs"),
            ])
        #expect(try await repo.resolve("main") == head, "nothing is committed")

        try await repo.createBranch("copy")
        let ours = try await repo.merge("exp", strategy: .ours)
        #expect(ours.outcome == .merged && ours.conflicts.count == 2)
        let rows = try await repo.query("SELECT k, a, c FROM p WHERE k BETWEEN 5 AND 7 ORDER BY k")
        #expect(rows.rows.map { $0.map(\.description) } == [["5", "-1", "x"], ["6", "66", "ours"]])

        let theirs = try await repo.merge("exp", into: "copy", strategy: .theirs)
        #expect(theirs.outcome == .merged)
        let taken = try await repo.query("SELECT k, a, c FROM p WHERE k BETWEEN 5 AND 7 ORDER BY k", options: ReadOptions(branch: "copy"))
        #expect(taken.rows.map { $0.map(\.description) } == [["5", "-2", "x"], ["6", "66", "ours"], ["7", "70", "theirs"]])
    }

    @Test func fastForwardUpToDateAndWholeTables() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(Self.p, from: .sql("SELECT r AS k, r AS a FROM range(10) t(r)"), key: ["k"])
        try await repo.createBranch("exp")
        _ = try await repo.apply(try .update(set: "a = 0", where: "k = 1"), to: Self.p, branch: "exp")
        let commits = try await repo.log(branch: "main").count
        let forward = try await repo.merge("exp")
        #expect(forward.outcome == .fastForward)
        #expect(try await repo.resolve("main") == (try await repo.resolve("exp")))
        #expect(try await repo.log(branch: "main").count == commits + 1, "a fast-forward adds no commit")
        #expect(try await repo.merge("exp").outcome == .upToDate)

        // A keyless table changed on both sides conflicts as a whole.
        let events = try TableName("events")
        _ = try await repo.write(events, from: .sql("SELECT 1 AS n"))
        try await repo.createBranch("other")
        _ = try await repo.write(events, from: .sql("SELECT 2 AS n"))
        _ = try await repo.write(events, from: .sql("SELECT 3 AS n"), branch: "other")
        let whole = try await repo.merge("other")
        #expect(whole.outcome == .conflicts && whole.conflicts.count == 1 && whole.conflicts[0].key == nil)
        #expect(try await repo.merge("other", strategy: .theirs).outcome == .merged)
        #expect(try await repo.query("SELECT n FROM events").scalar.int == 3)
        await #expect(throws: UDRError.self) { try await repo.merge("nope") }
        await #expect(throws: UDRError.self) { try await repo.merge("exp", into: "nope") }
    }

    @Test func expireKeepsWhereBranchesMeet() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(Self.p, from: .sql("SELECT r AS k, r AS a, r AS b FROM range(100) t(r)"), key: ["k"])
        try await repo.createBranch("exp")
        for i in 0..<4 {
            _ = try await repo.apply(try .update(set: "a = a + 1", where: "k = \(i)"), to: Self.p)
            _ = try await repo.apply(try .update(set: "b = b + 1", where: "k = \(i)"), to: Self.p, branch: "exp")
        }
        _ = try await repo.expire(.keepLast(1))
        _ = try await repo.gc(grace: 0)
        let merged = try await repo.merge("exp")
        #expect(merged.outcome == .merged && merged.conflicts.isEmpty)
        #expect(try await repo.query("SELECT sum(a) + sum(b) FROM p").scalar.int == 2 * 4950 + 8)
        // The next merge starts from the last one.
        _ = try await repo.apply(try .update(set: "b = 0", where: "k = 50"), to: Self.p, branch: "exp")
        _ = try await repo.expire(.keepLast(1))
        #expect(try await repo.merge("exp").conflicts.isEmpty)
        #expect(try await repo.query("SELECT b FROM p WHERE k = 50").scalar.int == 0)
        #expect(try await repo.verify().ok)
    }
}
