import ArgumentParser
import Foundation
import UDRCore
import UDRSQLite

/// `udr demo`: UDR's main job on the embedded default, end to end. Creates
/// a repository with generated data shaped like the parcel pipeline, writes
/// three nightly versions with realistic churn, and shows the log, a parcel
/// before and after, and bytes stored against what nightly copies would store.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the nightly-pipeline demo in a fresh repository.")

    @Option(help: "Where to create the demo repository (replaced if it exists).")
    var path: String = "demo-repo"

    @Option(help: "Number of parcels on night 1.")
    var parcels: Int = 120_000

    func run() async throws {
        let url = URL(fileURLWithPath: path)
        if FileManager.default.fileExists(atPath: url.appendingPathComponent(RepositoryLayout.directoryName).path) {
            try FileManager.default.removeItem(at: url)
        }
        let repo = try LocalRepository.create(at: url)
        print("UDR demo: a nightly parcel pipeline in \(repo.layout.root.path)\n")
        var copies: Int64 = 0  // what a copy of each table each night would store

        func write(_ table: String, _ sql: String, key: [String]?, night: Int) async throws {
            let result = try await repo.write(
                try TableName(table), from: .sql(sql), key: key, message: "night \(night): refresh \(table)", author: "nightly-etl")
            copies += try await repo.manifest(of: try TableName(table)).logicalBytes
            let status = result.unchanged ? "unchanged" : "v\(result.version)"
            print(
                "  \(table.padding(toLength: 17, withPad: " ", startingAt: 0)) \(status.padding(toLength: 9, withPad: " ", startingAt: 0)) \(String(result.rows).padding(toLength: 8, withPad: " ", startingAt: 0)) rows  written \(Output.bytes(result.logicalBytes).padding(toLength: 9, withPad: " ", startingAt: 0))  new bytes stored \(Output.bytes(result.bytesAdded))"
            )
        }

        let n = parcels
        print("Night 1: first load")
        try await write(
            "parcels",
            """
            SELECT 1000000000 + i * 10 AS bbl, (i % 5 + 1)::TINYINT AS borough, (i // 40)::INTEGER AS block,
                   (i % 40 + 1)::SMALLINT AS lot,
                   (i % 997 + 1)::VARCHAR || ' ' || ['Main St', 'Broadway', '5th Ave', 'Park Ave', 'Elm St'][i % 5 + 1] AS address,
                   ['R6', 'R7', 'C4', 'M1', 'R8'][(i * 7) % 5 + 1] AS zoning,
                   ((i * 37) % 1000000 / 10.0 + 50000)::DECIMAL(14,2) AS assessed_value,
                   (1900 + (i * 13) % 120)::SMALLINT AS year_built,
                   'active' AS status,
                   round(((i * 2654435761) % 1000) / 10.0, 2)::DOUBLE AS score,
                   DATE '2026-11-01' AS updated
            FROM range(\(n)) t(i)
            """, key: ["bbl"], night: 1)
        try await write(
            "zoning_districts",
            """
            SELECT code, description FROM (VALUES ('R6', 'General residence'), ('R7', 'Medium-density residence'),
              ('R8', 'High-density residence'), ('C4', 'Regional commercial'), ('M1', 'Light manufacturing')) v(code, description)
            """, key: ["code"], night: 1)
        try await write("sales", salesSQL(night: 1, existing: false), key: [], night: 1)
        try await write("permits", permitsSQL(night: 1, existing: false), key: ["permit_id"], night: 1)

        for night in 2...3 {
            print("\nNight \(night): 1,000 new parcels, status changed for 0.5%, score recomputed for all")
            try await write(
                "parcels",
                """
                SELECT bbl, borough, block, lot, address, zoning, assessed_value, year_built,
                       CASE WHEN (bbl // 10) % 200 = \(night) THEN 'under review' ELSE status END AS status,
                       round(((bbl * \(night + 3)) % 1000) / 10.0, 2)::DOUBLE AS score,
                       CASE WHEN (bbl // 10) % 200 = \(night) THEN DATE '2026-11-01' + \(night) ELSE updated END AS updated
                FROM parcels
                UNION ALL
                SELECT 1000000000 + i * 10, (i % 5 + 1)::TINYINT, (i // 40)::INTEGER, (i % 40 + 1)::SMALLINT,
                       (i % 997 + 1)::VARCHAR || ' New St', 'R6', 75000.00::DECIMAL(14,2), 2026::SMALLINT, 'new',
                       50.0::DOUBLE, DATE '2026-11-01' + \(night)
                FROM range((SELECT (max(bbl) - 1000000000) // 10 + 1 FROM parcels), (SELECT (max(bbl) - 1000000000) // 10 + 1001 FROM parcels)) t(i)
                """, key: nil, night: night)
            try await write("zoning_districts", "SELECT * FROM zoning_districts", key: nil, night: night)
            try await write("sales", salesSQL(night: night, existing: true), key: nil, night: night)
            try await write("permits", permitsSQL(night: night, existing: true), key: nil, night: night)
        }

        print("\n$ udr log parcels")
        for commit in try await repo.log(table: try TableName("parcels")) {
            let c = commit.commit
            print("  \(commit.id.short)  tx \(c.txID)  \(Timestamp.format(c.time))  \(c.author): \(c.message)")
        }

        let bbl = 1_000_000_000 + 2 * 10
        let sql = """
            SELECT 'v1 (night 1)' AS version, bbl, status, score, updated FROM night1 WHERE bbl = \(bbl)
            UNION ALL SELECT 'v2 (night 2)', bbl, status, score, updated FROM night2 WHERE bbl = \(bbl)
            UNION ALL SELECT 'head (night 3)', bbl, status, score, updated FROM parcels WHERE bbl = \(bbl)
            """
        print("\n$ udr query --at night1=parcels@1 --at night2=parcels@2 \"SELECT … WHERE bbl = \(bbl)\"")
        let pins = [try TablePin(parsing: "night1=parcels@1"), try TablePin(parsing: "night2=parcels@2")]
        print(Output.table(try await repo.query(sql, options: ReadOptions(pins: pins))))

        print("\n$ udr query \"SELECT status, count(*) … GROUP BY status\"  (head vs night 1)")
        print(
            Output.table(
                try await repo.query(
                    """
                    SELECT 'head' AS snapshot, status, count(*) AS parcels FROM parcels GROUP BY status
                    UNION ALL SELECT 'night 1', status, count(*) FROM night1 GROUP BY status ORDER BY snapshot, status
                    """, options: ReadOptions(pins: pins))))

        let stored = try await repo.storedBytes()
        print("\nStorage after 3 nights:")
        print("  bytes of the tables the 3 nights wrote (what nightly copies would store): \(Output.bytes(copies))")
        print(
            "  bytes UDR stored for all versions:                                       \(Output.bytes(stored))  (\(String(format: "%.0f", Double(stored) / Double(max(copies, 1)) * 100))%)"
        )
        let report = try await repo.verify()
        print(
            "\n$ udr verify\n  \(report.objectsChecked) objects, \(report.commitsChecked) commits: \(report.ok ? "ok" : report.problems.joined(separator: "; "))"
        )
        print("\nTry it yourself: cd \(path) && udr tables, udr log, udr info parcels, udr query \"SELECT …\"")
    }

    private func salesSQL(night: Int, existing: Bool) -> String {
        let fresh = """
            SELECT 1000000000 + ((i * 7919) % \(parcels)) * 10 AS bbl, DATE '2026-11-01' + \(night - 1) AS sale_date,
                   (100000 + (i * 104729) % 2000000)::DECIMAL(12,2) AS price
            FROM range(\(night * 5000), \(night * 5000 + 5000)) t(i)
            """
        return existing ? "SELECT * FROM sales UNION ALL " + fresh : fresh
    }

    private func permitsSQL(night: Int, existing: Bool) -> String {
        let fresh = """
            SELECT \(night) * 100000 + i AS permit_id, 1000000000 + ((i * 31) % \(parcels)) * 10 AS bbl,
                   ['alteration', 'new building', 'demolition'][i % 3 + 1] AS kind, DATE '2026-11-01' + \(night - 1) AS filed
            FROM range(2000) t(i)
            """
        return existing ? "SELECT * FROM permits UNION ALL " + fresh : fresh
    }
}
