import DuckDB
import Foundation
import Testing
import UDRSQLite
import UDRTesting

@testable import UDRCore

/// A renamed table keeps its history under its new name.
@Suite struct RenameTableTests {
    @Test func aRenamedTableKeepsItsHistory() async throws {
        let (repo, _) = try makeRepository()
        let old = try TableName("parcels")
        let new = try TableName("lots")
        _ = try await repo.write(old, from: .sql("SELECT range AS bbl, 'active' AS status FROM range(1000)"), key: ["bbl"])
        _ = try await repo.sql("UPDATE parcels SET status = 'sold' WHERE bbl = 7")
        let renamed = try await repo.sql("ALTER TABLE parcels RENAME TO lots")
        #expect(renamed.commits.count == 1)
        _ = try await repo.sql("UPDATE lots SET status = 'demolished' WHERE bbl = 7")
        #expect(try await repo.tables().map(\.name) == [new])
        #expect(try await repo.query("SELECT status FROM lots WHERE bbl = 7").scalar.string == "demolished")

        // One change, a rename; versions go on from the old name's.
        let change = try #require(try await repo.log(limit: 2).last?.commit.changes.first)
        #expect(change.table == new && change.renamedFrom == old && change.kind == .rename)
        #expect(change.oldVersion == 2 && change.newVersion == 3)
        let changes = try await repo.changes(table: new)
        #expect(changes.map { $0.tables[0].renamedFrom } == [nil, nil, old, nil])
        #expect(changes.map { $0.tables[0].table } == [old, old, new, new])
        #expect(try await repo.versions(new).map(\.version) == [3, 4])

        // Log and history follow the table back through the rename.
        #expect(try await repo.log(table: new).count == 4)
        let history = try await repo.history(of: new, key: ["bbl": "7"])
        let status = try #require(history.rows.columns.firstIndex { $0.name == "status" })
        #expect(history.rows.rows.map { $0[status].string } == ["active", "sold", "demolished"])

        // Diff pairs the two names: a rename with one row updated, not a drop and an add.
        let diff = try await repo.diff("main~2", "main")
        #expect(diff.tables.count == 1)
        #expect(diff.tables[0].status == .renamed && diff.tables[0].renamedFrom == old && diff.tables[0].table == new)
        #expect(diff.tables[0].rows == RowCounts(updated: 1))
        // The old name's versions stay readable by number.
        #expect(try await repo.query("SELECT status FROM parcels WHERE bbl = 7", options: ReadOptions(pins: [try TablePin(parsing: "parcels=2")])).scalar.string == "sold")

        // Bad input: the old name again, a name in use, a table that is not there.
        _ = try await repo.write(try TableName("other"), from: .sql("SELECT 1 AS bbl"), key: ["bbl"])
        let log = try await repo.log().map(\.id)
        for (sql, expected) in [
            ("ALTER TABLE parcels RENAME TO x", "no such table"), ("ALTER TABLE lots RENAME TO other", "already"),
            ("ALTER TABLE lots RENAME TO lots", "already"),
        ] {
            let error = await #expect(throws: UDRError.self) { _ = try await repo.sql(sql) }
            #expect(error?.message.contains(expected) == true, "\(sql): \(error?.message ?? "")")
        }
        #expect(try await repo.log().map(\.id) == log)
        #expect(try await repo.verify().ok)
    }

    @Test func mergeCarriesARenameWithTheOtherSidesChanges() async throws {
        let (repo, _) = try makeRepository()
        let a = try TableName("a")
        _ = try await repo.write(a, from: .sql("SELECT range AS k, 0 AS v FROM range(100)"), key: ["k"])
        _ = try await repo.createBranch("tidy")
        // The branch renames a and changes a row; main changes another row of a.
        _ = try await repo.rename(a, to: try TableName("b"), branch: "tidy")
        _ = try await repo.apply(try .update(set: "v = 1", where: "k = 1"), to: try TableName("b"), branch: "tidy")
        _ = try await repo.sql("UPDATE a SET v = 2 WHERE k = 2")
        let merged = try await repo.merge("tidy")
        #expect(merged.outcome == .merged, "\(merged.conflicts)")
        #expect(try await repo.tables().map(\.name.rawValue) == ["b"])
        #expect(try await repo.query("SELECT string_agg(k || '=' || v, ',' ORDER BY k) FROM b WHERE v <> 0").scalar.string == "1=1,2=2")
        let change = try #require(try await repo.log(limit: 1).first?.commit.changes.first)
        #expect(change.kind == .rename && change.renamedFrom == a)

        // The other way: main renames, the branch changes the old name.
        _ = try await repo.createBranch("fix")
        _ = try await repo.sql("UPDATE b SET v = 3 WHERE k = 3", branch: "fix")
        _ = try await repo.rename(try TableName("b"), to: try TableName("c"))
        let back = try await repo.merge("fix")
        #expect(back.outcome == .merged, "\(back.conflicts)")
        #expect(try await repo.tables().map(\.name.rawValue) == ["c"])
        #expect(try await repo.query("SELECT string_agg(k || '=' || v, ',' ORDER BY k) FROM c WHERE v <> 0").scalar.string == "1=1,2=2,3=3")
        #expect(try await repo.verify().ok)
    }
}
