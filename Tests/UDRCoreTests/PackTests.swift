import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

/// A large write's objects go into one pack: found, read, checked,
/// deduplicated and collected by id like loose objects.
@Suite struct PackTests {
    static let rows = "SELECT i AS k, 'v' || i AS v, hash(i) % 1000 AS n, i * 0.5 AS x FROM range(100000) t(i)"

    func packFiles(_ store: LocalObjectStore) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: store.objectsDirectory.path + "/pack").filter { $0.hasSuffix(".pack") }.sorted()
    }

    func looseFiles(_ store: LocalObjectStore) throws -> Int {
        let fm = FileManager.default
        return try fm.contentsOfDirectory(atPath: store.objectsDirectory.path).filter { $0.count == 2 }.reduce(0) {
            $0 + (try fm.contentsOfDirectory(atPath: store.objectsDirectory.path + "/" + $1)).filter { !$0.hasPrefix(".") }.count
        }
    }

    @Test func aLargeWriteIsOnePackAndReadsBackInAFreshProcess() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("t")
        let first = try await repo.write(t, from: .sql(Self.rows), key: ["k"])
        let store = try #require(repo.localStore as? LocalObjectStore)
        let manifest = try await repo.manifest(of: t)
        let objects = manifest.segments.count * 6  // per segment: magic, 4 chunks, footer, recipe; blobs may repeat
        #expect(objects >= LocalObjectStore.packThreshold)
        #expect(try packFiles(store).count == 1)
        #expect(try looseFiles(store) == 2, "only the manifest and the commit are loose")

        // A new process: nothing in memory, nothing materialized.
        try await repo.clearCache()
        let reopened = try LocalRepository.open(at: repo.layout.root)
        #expect(try await count(reopened, "SELECT count(*) FROM t WHERE v = 'v' || k") == 100000)
        #expect(try await reopened.verify().ok)

        // The same rows again, from another repository handle: nothing new.
        let again = try await reopened.write(try TableName("copy"), from: .sql(Self.rows), key: ["k"])
        #expect(again.bytesAdded < 10_000, "only the manifest and commit are new, not \(again.bytesAdded) bytes")
        #expect(try packFiles(store).count == 1)
        #expect(first.bytesAdded > 100 * again.bytesAdded)
    }

    @Test func aFlippedByteInAPackIsFoundByVerifyAndFailsReads() async throws {
        let (repo, _) = try makeRepository()
        _ = try await repo.write(try TableName("t"), from: .sql(Self.rows), key: ["k"])
        let store = try #require(repo.localStore as? LocalObjectStore)
        let pack = try #require(try packFiles(store).first)
        let path = store.objectsDirectory.path + "/pack/" + pack
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        let manifest = try await repo.manifest(of: try TableName("t"))
        let recipe = try JSONDecoder().decode(SegmentRecipe.self, from: try store.get(manifest.segments[1].recipe))
        let blob = recipe.parts[2].blob
        // Where the blob sits in the pack: its bytes are unique there.
        let bytes = try store.get(blob)
        let offset = try #require(original.range(of: bytes)).lowerBound

        for (kind, position, named) in [
            ("a packed blob", offset + bytes.count / 2, blob.hex), ("the pack's index", original.count - 60, String(pack.dropLast(5))),
        ] {
            var damaged = original
            damaged[position] ^= 0x01
            try damaged.write(to: URL(fileURLWithPath: path))

            let report = try await repo.verify()
            #expect(!report.ok, "verify misses a flipped byte in \(kind)")
            #expect(report.problems.contains { $0.contains(named) && $0.contains("corrupt") }, "\(kind): \(report.problems)")

            try await repo.clearCache()
            let reopened = try LocalRepository.open(at: repo.layout.root)
            let error = await #expect(throws: UDRError.self, "a read through \(kind) must fail") {
                try await reopened.query("SELECT count(*), sum(length(v)) FROM t")
            }
            #expect(error?.code == .corruptObject, "\(kind): \(String(describing: error))")
            #expect(error?.message.contains(named) == true, "\(kind): \(error?.message ?? "")")

            try original.write(to: URL(fileURLWithPath: path))
            #expect(try await LocalRepository.open(at: repo.layout.root).verify().ok)
        }
    }

    /// GC removes a pack whose objects are all garbage, and rewrites one
    /// that keeps some with just those: every version left stays readable.
    @Test func gcRewritesAPackThatKeepsSomeObjects() async throws {
        let (repo, _) = try makeRepository()
        let t = try TableName("t")
        _ = try await repo.write(t, from: .sql(Self.rows), key: ["k"])
        _ = try await repo.write(t, from: .sql("SELECT * REPLACE (n + 1 AS n) FROM t"), key: ["k"])
        _ = try await repo.write(t, from: .sql("SELECT * REPLACE (n + 1 AS n) FROM t"), key: ["k"])
        let store = try #require(repo.localStore as? LocalObjectStore)
        let packs = try packFiles(store)
        #expect(packs.count == 3)
        let before = try await repo.storedBytes()

        // Keep the last version only; every object counts as old.
        _ = try await repo.expire(.keepLast(1))
        let old = Date().addingTimeInterval(-7200)
        for case let file as URL in FileManager.default.enumerator(at: store.objectsDirectory, includingPropertiesForKeys: nil)! {
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: file.path)
        }
        let gc = try await repo.gc(grace: 0)
        let after = try await repo.storedBytes()
        print("gc of packs: \(before) → \(after) bytes stored, \(gc.objectsDeleted) objects deleted")
        #expect(gc.objectsDeleted > 0 && after < before && gc.bytesFreed == before - after)
        let left = try packFiles(store)
        // The first pack keeps the columns that never changed (rewritten),
        // the second held only the dropped `n` (gone), the third is live.
        #expect(left.count == 2 && Set(left).intersection(packs).count == 1, "one pack untouched, one rewritten, one gone: \(packs) → \(left)")

        try await repo.clearCache()
        let reopened = try LocalRepository.open(at: repo.layout.root)
        #expect(try await count(reopened, "SELECT count(*) FROM t WHERE v = 'v' || k AND n = hash(k) % 1000 + 2") == 100000)
        #expect(try await reopened.verify().ok)
        #expect(try await reopened.gc(grace: 0).objectsDeleted == 0)
    }
}
