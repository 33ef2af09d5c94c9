import DuckDB
import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

struct InjectedFailure: Error {}

@Suite struct TransactionTests {
    @Test func aThreeTableTransactionIsOneCommitAndAnErrorLeavesAllAsTheyWere() async throws {
        let (repo, _) = try makeRepository()
        let names = try ["sales", "permits", "zoning"].map { try TableName($0) }
        for (i, name) in names.enumerated() {
            _ = try await repo.write(name, from: .sql("SELECT i AS id, \(i) AS v FROM range(100) t(i)"), key: ["id"])
        }
        let before = try await repo.log()
        let digest = "SELECT (SELECT sum(v)::BIGINT FROM sales), (SELECT sum(v)::BIGINT FROM permits), (SELECT sum(v)::BIGINT FROM zoning)"
        let original = try await repo.query(digest).rows

        try await repo.transaction(message: "nightly refresh") { tx in
            for name in names {
                try await tx.write(name, from: .sql("SELECT i AS id, 7 AS v FROM range(100) t(i)"))
            }
        }
        let after = try await repo.log()
        #expect(after.count == before.count + 1)
        #expect(after[0].commit.message == "nightly refresh")
        #expect(Set(after[0].commit.changes.map(\.table)) == Set(names))
        #expect(try await repo.query(digest).rows == [[.int(700), .int(700), .int(700)]])

        // An error after two of three writes: nothing of it is visible.
        let failed = await #expect(throws: InjectedFailure.self) {
            try await repo.transaction { tx in
                try await tx.write(names[0], from: .sql("SELECT i AS id, 1 AS v FROM range(100) t(i)"))
                try await tx.apply(try .update(set: "v = 2", where: nil), to: names[1])
                throw InjectedFailure()
            }
        }
        #expect(failed != nil)
        #expect(try await repo.log().map(\.id) == after.map(\.id))
        #expect(try await repo.query(digest).rows == [[.int(700), .int(700), .int(700)]])
        #expect(original != [[.int(700), .int(700), .int(700)]])
        #expect(try await repo.openTransactions().isEmpty)
    }

    /// Sources → derived → master: a failure in phase 2 leaves phase 1
    /// committed and nothing of phase 2; rerunning phase 2 succeeds.
    /// A multi-table write (two tables at a time) stages every table as
    /// its own write would, and commits them as one; a table that cannot
    /// be read fails the whole refresh, naming it, and commits nothing.
    @Test func aMultiTableWriteStagesEveryTableAndFailsAsAWhole() async throws {
        let (repo, dir) = try makeRepository()
        let names = try (1...7).map { try TableName("src_\($0)") }
        let files = try names.indices.map { i in
            let file = dir.path("src_\(i).parquet")
            try scratchDuckDB().execute("COPY (SELECT i AS id, i * \(i) AS v FROM range(\(1000 * (i + 1))) t(i)) TO '\(file)' (FORMAT parquet)")
            return file
        }
        let staged = try await repo.transaction(message: "night 1") { tx in
            try await tx.write(zip(names, files).map { TableWrite($0, from: .file($1), key: ["id"]) })
        }
        #expect(staged.map(\.table) == names)
        #expect(staged.map(\.rows) == names.indices.map { Int64(1000 * ($0 + 1)) })
        let log = try await repo.log()
        #expect(log.count == 1 && Set(log[0].commit.changes.map(\.table)) == Set(names))
        for (i, name) in names.enumerated() {
            let sums = try await repo.query("SELECT count(*), sum(v)::BIGINT FROM \(name.rawValue)").rows
            let n = Int64(1000 * (i + 1))
            #expect(sums == [[.int(n), .int(Int64(i) * n * (n - 1) / 2)]])
        }

        // Night 2: one input is missing; nothing of the night is committed,
        // and no table after it is written.
        var night2 = zip(names, files).map { TableWrite($0, from: .sql("SELECT id, v + 1 AS v FROM read_parquet('\($1)')")) }
        night2[2] = TableWrite(names[2], from: .file(dir.path("missing.parquet")))
        let tx = try await repo.beginTransaction()
        let error = await #expect(throws: UDRError.self) { try await tx.write(night2) }
        #expect(error?.message.contains("missing.parquet") == true, "\(String(describing: error?.message))")
        let stagedTables = try await repo.openTransactions().first { $0.0.id == tx.id }?.1.map(\.table) ?? []
        #expect(!stagedTables.isEmpty && !stagedTables.contains(names[2]) && !stagedTables.contains(names[6]), "\(stagedTables)")
        try await tx.abort()
        #expect(try await repo.log().count == 1)
        #expect(try await repo.query("SELECT sum(v)::BIGINT FROM src_1").rows == [[.int(0)]])

        let twice = await #expect(throws: UDRError.self) {
            try await repo.transaction { tx in try await tx.write([night2[0], night2[0]]) }
        }
        #expect(twice?.message.contains("written twice") == true)
        #expect(try await repo.verify().problems.isEmpty)
    }

    @Test func aPhasedPipelineKeepsTheLastGoodState() async throws {
        let (repo, _) = try makeRepository()
        let sources = try (1...4).map { try TableName("src.s\($0)") }
        func phase1() async throws {
            try await repo.transaction(message: "phase 1: sources") { tx in
                for (i, name) in sources.enumerated() {
                    try await tx.write(name, from: .sql("SELECT i AS bbl, i * \(i + 1) AS v FROM range(1000) t(i)"), key: ["bbl"])
                }
            }
        }
        func phase2(failing: Bool) async throws {
            try await repo.transaction(message: "phase 2: derived") { tx in
                try await tx.write(
                    try TableName("derived.totals"),
                    from: .sql("SELECT s1.bbl, s1.v + s2.v AS total FROM src.s1 JOIN src.s2 USING (bbl)"), key: ["bbl"])
                // Reads its own write.
                let n = try await tx.query("SELECT count(*) FROM derived.totals").scalar.int
                #expect(n == 1000)
                if failing { throw InjectedFailure() }
                try await tx.write(
                    try TableName("derived.maxima"),
                    from: .sql("SELECT s3.bbl, greatest(s3.v, s4.v) AS m FROM src.s3 JOIN src.s4 USING (bbl)"), key: ["bbl"])
            }
        }
        try await phase1()
        let afterPhase1 = try await repo.tables()
        await #expect(throws: InjectedFailure.self) { try await phase2(failing: true) }
        #expect(try await repo.tables().map(\.name) == afterPhase1.map(\.name))
        await #expect(throws: UDRError.self) { try await repo.query("SELECT * FROM derived.totals") }
        try await phase2(failing: false)
        _ = try await repo.transaction(message: "phase 3: master") { tx in
            try await tx.write(
                try TableName("master"),
                from: .sql("SELECT t.bbl, t.total, m.m FROM derived.totals t JOIN derived.maxima m USING (bbl)"), key: ["bbl"])
        }
        #expect(try await repo.log().map(\.commit.message) == ["phase 3: master", "phase 2: derived", "phase 1: sources"])
        let expected: Int64 = (0..<1000).reduce(0) { sum, i in sum + Int64(i * 3 + i * 4) }
        #expect(try await count(repo, "SELECT sum(total) + sum(m) FROM master") == expected)
    }

    @Test func snapshotIsolation() async throws {
        let (repo, _) = try makeRepository()
        let a = try TableName("a")
        let b = try TableName("b")
        _ = try await repo.write(a, from: .sql("SELECT 1 AS x"))
        _ = try await repo.write(b, from: .sql("SELECT 1 AS y"))
        let tx = try await repo.beginTransaction()
        // A commit lands after the transaction began: it does not see it.
        _ = try await repo.write(a, from: .sql("SELECT 2 AS x"))
        #expect(try await tx.query("SELECT x FROM a").scalar == .int(1))
        // It reads its own writes.
        try await tx.write(b, from: .sql("SELECT 5 AS y"))
        #expect(try await tx.query("SELECT y FROM b").scalar == .int(5))
        #expect(try await count(repo, "SELECT y FROM b") == 1)
        // It touched another table than the commit that landed: it rebases.
        let record = try #require(try await tx.commit())
        #expect(try await repo.query("SELECT (SELECT x FROM a), (SELECT y FROM b)").rows == [[.int(2), .int(5)]])
        #expect(record.parents.count == 1)

        // Two transactions writing the same table in sequence both succeed.
        for value in [10, 11] {
            _ = try await repo.transaction { tx in try await tx.write(a, from: .sql("SELECT \(value) AS x")) }
        }
        #expect(try await count(repo, "SELECT x FROM a") == 11)

        // The same table replaced by two overlapping transactions: the second is a conflict naming it.
        let first = try await repo.beginTransaction()
        let second = try await repo.beginTransaction()
        try await first.write(a, from: .sql("SELECT 20 AS x"))
        try await second.write(a, from: .sql("SELECT 21 AS x"))
        try await first.commit()
        let conflict = await #expect(throws: UDRError.self) { try await second.commit() }
        #expect(conflict?.code == .conflict)
        #expect(conflict?.message.contains("a changed on main") == true)
        #expect(try await count(repo, "SELECT x FROM a") == 20)
    }

    @Test func rowLevelWritesOnDifferentKeysRebaseAndTheSameKeyConflicts() async throws {
        let (repo, _) = try makeRepository(segmentation: SegmentationPolicy(bits: 4, minimumRows: 8, maximumRows: 64))
        let t = try TableName("accounts")
        _ = try await repo.write(t, from: .sql("SELECT r AS id, 100 AS balance FROM range(500) t(r)"), key: ["id"])
        // Different keys, even in the same segment: both commit.
        let a = try await repo.beginTransaction()
        let b = try await repo.beginTransaction()
        try await a.apply(try .update(set: "balance = balance - 10", where: "id = 7"), to: t)
        try await b.apply(try .update(set: "balance = balance + 10", where: "id = 8"), to: t)
        try await b.apply(.upsert(.sql("SELECT 1000 AS id, 1 AS balance")), to: t)
        try await a.commit()
        try await b.commit()
        let rows = try await repo.query("SELECT id, balance FROM accounts WHERE id IN (7, 8, 1000) ORDER BY id").rows
        #expect(rows == [[.int(7), .int(90)], [.int(8), .int(110)], [.int(1000), .int(1)]])
        #expect(try await count(repo, "SELECT count(*) FROM accounts") == 501)
        let changes = try await repo.changes(table: t, limit: 1)
        #expect(changes.first?.tables.first.map { [$0.inserted, $0.updated, $0.deleted] } == [1, 1, 0])

        // The same key: the first commits, the second is a conflict naming the key; no update is lost.
        let c = try await repo.beginTransaction()
        let d = try await repo.beginTransaction()
        try await c.apply(try .update(set: "balance = balance - 1", where: "id = 42"), to: t)
        try await d.apply(try .update(set: "balance = balance - 2", where: "id = 42"), to: t)
        try await c.commit()
        let conflict = await #expect(throws: UDRError.self) { try await d.commit() }
        #expect(conflict?.code == .conflict)
        #expect(conflict?.message.contains("accounts key (id) = (42)") == true)
        _ = try await repo.apply(try .update(set: "balance = balance - 2", where: "id = 42"), to: t)
        #expect(try await count(repo, "SELECT balance FROM accounts WHERE id = 42") == 97)

        // A whole-table replacement meanwhile: no row-level rebase.
        let e = try await repo.beginTransaction()
        try await e.apply(try .update(set: "balance = 0", where: "id = 1"), to: t)
        _ = try await repo.write(t, from: .sql("SELECT id, balance + 1 AS balance FROM accounts"))
        let replaced = await #expect(throws: UDRError.self) { try await e.commit() }
        #expect(replaced?.message.contains("accounts changed on main") == true)

        // The same row, different columns (one of them new): both commit, cell by cell.
        let x = try await repo.beginTransaction()
        let y = try await repo.beginTransaction()
        try await x.apply(try .update(set: "balance = 6", where: "id = 9"), to: t)
        try await y.apply(.upsert(.sql("SELECT id, balance, 'gold' AS tier FROM accounts WHERE id = 9")), to: t)
        try await x.commit()
        try await y.commit()
        #expect(try await repo.query("SELECT balance, tier FROM accounts WHERE id = 9").rows == [[.int(6), .text("gold")]])
        #expect(try await repo.verify().ok)
    }

    @Test func transactionsDoNotNest() async throws {
        let (repo, _) = try makeRepository()
        let error = await #expect(throws: UDRError.self) {
            try await repo.transaction { _ in
                try await repo.transaction { _ in }
            }
        }
        #expect(error?.code == .transaction)
        #expect(error?.message.contains("cannot be nested") == true)
    }

    @Test func closedAndUnknownTransactionsAreClearErrorsThatChangeNothing() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("t")
        _ = try await repo.write(t, from: .sql("SELECT i AS k, 0 AS v FROM range(10) t(i)"), key: ["k"])
        let head = try await repo.log().first?.id

        let aborted = try await repo.beginTransaction()
        try await aborted.write(t, from: .sql("SELECT 1 AS k, 1 AS v"))
        try await aborted.abort()
        let e1 = await #expect(throws: UDRError.self) { try await aborted.commit() }
        #expect(e1?.code == .transaction)
        #expect(e1?.message.contains("was aborted") == true)

        // Time to live is counted from the last staged write. A machine busy
        // with the other tests may resume this test more than 6 s after the
        // transaction began: the write is then refused as expired, which is
        // right only if that much time has passed.
        let started = Date()
        let expiring = try await repo.beginTransaction(timeToLive: 6)
        do throws(UDRError) {
            try await expiring.write(t, from: .sql("SELECT 1 AS k, 1 AS v"))
        } catch {
            guard error.message.contains("expired") else { throw error }
            #expect(Date().timeIntervalSince(started) > 6, "refused as expired too early: \(error.message)")
        }
        try await Task.sleep(for: .milliseconds(6500))
        let e2 = await #expect(throws: UDRError.self) { try await expiring.commit() }
        #expect(e2?.message.contains("expired") == true)
        let e3 = await #expect(throws: UDRError.self) { try await expiring.write(t, from: .sql("SELECT 2 AS k, 1 AS v")) }
        #expect(e3?.message.contains("expired") == true)
        // GC closes it; its staged writes become garbage.
        let gc = try await repo.gc()
        #expect(gc.transactionsClosed == 1)
        #expect(try await repo.openTransactions().isEmpty)

        let e4 = await #expect(throws: UDRError.self) { try await repo.openTransaction("tx-000000000000") }
        #expect(e4?.message.contains("there is no transaction tx-000000000000") == true)

        let e5 = await #expect(throws: UDRError.self) { try await repo.apply(try .update(set: "v = v +", where: "k = 1"), to: t) }
        #expect(e5?.message.contains("cannot evaluate the update's SET clause") == true)
        let e6 = await #expect(throws: UDRError.self) { try await repo.apply(try .update(set: "nope = 1", where: nil), to: t) }
        #expect(e6?.message.contains("has no column 'nope'") == true)
        #expect(try await repo.log().first?.id == head)
        #expect(try await count(repo, "SELECT sum(v) FROM t") == 0)
    }
}
