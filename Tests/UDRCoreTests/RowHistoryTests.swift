import DuckDB
import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

@Suite struct RowHistoryTests {
    static let parcels = try! TableName("parcels")

    /// The history of one key across 30 versions — updates of it, of other
    /// rows, of other columns, a delete and a re-insert, a column added —
    /// is exactly what querying every version in turn finds.
    @Test func aKeysHistoryAcrossThirtyVersionsIsExact() async throws {
        let (repo, _) = try makeRepository(segmentation: DiffTests.small)
        _ = try await repo.write(
            Self.parcels, from: .sql("SELECT 1000000000 + r AS bbl, r % 9 AS zone, 'open' AS status, r * 1.5 AS score FROM range(3000) t(r)"),
            key: ["bbl"])
        let bbl = 1_000_001_234
        var random = SeededGenerator(seed: 7)
        var version = 1
        while version < 30 {
            switch version + 1 {
            case 10: _ = try await repo.apply(.delete(where: "bbl = \(bbl)"), to: Self.parcels)
            case 14:
                _ = try await repo.apply(
                    .upsert(.sql("SELECT \(bbl) AS bbl, 99 AS zone, 'reborn' AS status, 0.5 AS score")), to: Self.parcels)
            case 20: _ = try await repo.write(Self.parcels, from: .sql("SELECT *, bbl % 4 AS ward FROM parcels"))
            default:
                // A third of the nights change our parcel; an update of a
                // deleted one changes nothing and makes no version.
                let target = Int.random(in: 0..<3, using: &random) == 0 ? "bbl = \(bbl)" : "bbl = \(1_000_000_000 + Int.random(in: 0..<3000, using: &random))"
                let set = ["zone = zone + 1", "status = 'night \(version)'", "score = score * 2"].randomElement(using: &random)!
                _ = try await repo.apply(try .update(set: set, where: target), to: Self.parcels)
            }
            version = try await repo.manifest(of: Self.parcels).version
        }
        let history = try await repo.history(of: Self.parcels, key: ["bbl": String(bbl)])
        #expect(history.versions == 30)
        #expect(history.versionsRead < history.versions, "versions whose segment for the key did not change are skipped")
        #expect(history.columnsRead < 3 * history.versionsRead, "a segment that kept its keys is read only in its changed columns (\(history.columnsRead) columns in \(history.versionsRead) versions read)")

        // The naive way: every version in turn.
        var expected: [[String]] = []
        var previous: [String]?
        for version in 1...30 {
            let row = try await repo.query(
                "SELECT CAST(zone AS VARCHAR), status, CAST(score AS VARCHAR), \(version >= 20 ? "CAST(ward AS VARCHAR)" : "NULL") FROM parcels WHERE bbl = \(bbl)",
                options: ReadOptions(pins: [try TablePin(parsing: "parcels=\(version)")])
            ).rows.first.map { $0.map(\.description) }
            if row != previous {
                let change = previous == nil ? "insert" : row == nil ? "delete" : "update"
                expected.append([String(version), change] + (row ?? ["NULL", "NULL", "NULL", "NULL"]))
            }
            previous = row
        }
        let names = history.rows.columns.map(\.name)
        let actual = history.rows.rows.map { row -> [String] in
            func cell(_ name: String) -> String { row[names.firstIndex(of: name)!].description }
            return [cell("version"), cell("change"), cell("zone"), cell("status"), cell("score"), cell("ward")]
        }
        #expect(actual == expected)
        #expect(expected.contains { $0[1] == "delete" } && expected.filter { $0[1] == "insert" }.count == 2)
        // Updates name the columns they changed.
        let changed = history.rows.rows.compactMap { $0[names.firstIndex(of: "changed")!].string }
        #expect(changed.allSatisfy { ["zone", "status", "score", "ward"].contains($0) })

        await #expect(throws: UDRError.self) { try await repo.history(of: Self.parcels, key: ["zone": "1"]) }
        await #expect(throws: UDRError.self) { try await repo.history(of: Self.parcels, key: ["bbl": "not a number"]) }
    }
}
