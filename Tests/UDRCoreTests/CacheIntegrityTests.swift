import DuckDB
import Foundation
import Testing
import UDRSQLite
import UDRTesting

@testable import UDRCore

/// The local segment cache is a copy, and a damaged copy must never
/// answer: reads rebuild it from the objects, `verify` names it.
@Suite struct CacheIntegrityTests {
    static let small = SegmentationPolicy(bits: 6, minimumRows: 512, maximumRows: 4096)
    static let queries = [
        "SELECT count(*), sum(a), sum(hash(k, a, note)) FROM t",
        "SELECT a, note FROM t WHERE k = 12340",
        "SELECT count(*), min(note), max(note) FROM t WHERE k BETWEEN 1000 AND 9000",
    ]

    /// A table whose reads use every kind of cached file: segments, a
    /// segment's live rows after deletions, and read groups.
    static func repository() async throws -> (Repository, TemporaryDirectory, [[[Cell]]]) {
        let (repo, dir) = try makeRepository(segmentation: small)
        let t = try TableName("t")
        _ = try await repo.write(t, from: .sql("SELECT i * 10 AS k, i % 97 AS a, 'n' || i AS note FROM range(30000) t(i)"), key: ["k"])
        _ = try await repo.apply(.delete(where: "k % 70 = 0 AND k < 50000"), to: t)
        var answers: [[[Cell]]] = []
        for sql in queries { answers.append(try await repo.query(sql).rows) }
        return (repo, dir, answers)
    }

    static func cachedFiles(_ repo: Repository) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: repo.cache.directory.path).filter { $0.hasSuffix(".parquet") }.sorted()
            .map { repo.cache.directory.path + "/" + $0 }
    }

    static func isDerived(_ path: String) -> Bool { URL(fileURLWithPath: path).lastPathComponent.contains("-") }

    /// Flips bits of `mask` at `fraction` of each file's length (clamped inside it).
    static func flip(_ files: [String], at fraction: Double, mask: UInt8 = 0x10) throws {
        for file in files {
            var data = try Data(contentsOf: URL(fileURLWithPath: file))
            let offset = min(data.count - 1, max(0, Int(Double(data.count) * fraction)))
            data[offset] ^= mask
            try data.write(to: URL(fileURLWithPath: file))
        }
    }

    @Test(arguments: [0.0, 0.1, 0.5, 0.9, 0.999])
    func damagedCacheFilesAreFoundAndNeverAnswer(at fraction: Double) async throws {
        let (repo, _, answers) = try await Self.repository()
        let files = try Self.cachedFiles(repo)
        let kinds = Set(files.map { URL(fileURLWithPath: $0).lastPathComponent.hasPrefix("group-") ? "group" : (Self.isDerived($0) ? "live" : "segment") })
        #expect(kinds == ["group", "live", "segment"])
        #expect(try await repo.verify().ok)

        try Self.flip(files, at: fraction)
        let report = try await repo.verify()
        #expect(!report.ok)
        for file in files { #expect(report.problems.contains { $0.contains(file) && $0.contains("damaged") }, "\(file) not named") }
        #expect(report.problems.allSatisfy { $0.contains("udr verify --repair") })

        // Reads check what they read and rebuild what is damaged: the same answers.
        for (sql, expected) in zip(Self.queries, answers) { #expect(try await repo.query(sql).rows == expected, "\(sql)") }
        #expect(try await repo.verify().ok)

        // A fresh process sees the same.
        try Self.flip(try Self.cachedFiles(repo), at: fraction, mask: 0x20)
        let reopened = try LocalRepository.open(at: repo.layout.root)
        for (sql, expected) in zip(Self.queries, answers) { #expect(try await reopened.query(sql).rows == expected, "\(sql)") }

        // --repair removes damaged files; the next reads rebuild them.
        let damaged = try Self.cachedFiles(repo)
        try Self.flip(damaged, at: fraction, mask: 0x40)
        let repaired = try await repo.verify(repair: true)
        #expect(repaired.ok)
        #expect(Set(repaired.cacheFilesRemoved) == Set(damaged), "\(Set(damaged).subtracting(repaired.cacheFilesRemoved).count) not removed")
        #expect(try Self.cachedFiles(repo).count == 0)
        for (sql, expected) in zip(Self.queries, answers) { #expect(try await repo.query(sql).rows == expected, "\(sql)") }
        #expect(try await repo.verify().ok)
    }

    /// A derived file without the record of its hash (one an older UDR
    /// wrote, or a crash left) is not trusted: reads rebuild it.
    @Test func aDerivedFileWithoutItsHashIsRebuilt() async throws {
        let (repo, _, answers) = try await Self.repository()
        let sidecars = try FileManager.default.contentsOfDirectory(atPath: repo.cache.directory.path).filter { $0.hasSuffix(".b3") }
        #expect(!sidecars.isEmpty)
        for name in sidecars { try FileManager.default.removeItem(atPath: repo.cache.directory.path + "/" + name) }
        let derived = try Self.cachedFiles(repo).filter(Self.isDerived)
        try Self.flip(derived, at: 0.5)
        #expect(try await repo.verify().ok, "a file without a recorded hash is not damage")
        let reopened = try LocalRepository.open(at: repo.layout.root)
        for (sql, expected) in zip(Self.queries, answers) { #expect(try await reopened.query(sql).rows == expected, "\(sql)") }
        let rebuilt = try FileManager.default.contentsOfDirectory(atPath: repo.cache.directory.path).filter { $0.hasSuffix(".b3") }
        // What the reads used was rebuilt, its hash recorded.
        #expect(!rebuilt.isEmpty)
        #expect(try await reopened.verify().cacheFilesChecked >= rebuilt.count)
    }
}
