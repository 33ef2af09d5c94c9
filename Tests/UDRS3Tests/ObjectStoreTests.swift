import DuckDB
import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

@testable import UDRS3

/// Runs blocking store calls on a thread of their own (never on the
/// cooperative pool, which the store's own S3 requests need).
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// A repository whose objects live in an object store of `kind`.
func makeStoreRepository(_ kind: RemoteKind, _ dir: TemporaryDirectory) async throws -> (Repository, RemoteLocation) {
    let location = try await makeRemote(kind, dir)
    let repo = try LocalRepository.create(at: dir.url.appendingPathComponent("repo"), store: location, configuration: s3Configuration)
    return (repo, location)
}

func storeKeys(_ location: RemoteLocation, _ prefix: String) async throws -> [String] {
    try await s3Configuration.remoteStorage(location).list(prefix)
}

/// A repository's objects in an S3 bucket (or a directory store): written
/// once under their id, in packs, read back checked, and collected by a
/// GC that never needs to touch an object.
@Suite(.serialized) struct ObjectStoreTests {
    @Test(arguments: RemoteKind.allCases)
    func aRepositoryKeepsItsObjectsInTheStoreInPacks(_ kind: RemoteKind) async throws {
        let dir = TemporaryDirectory()
        let (repo, location) = try await makeStoreRepository(kind, dir)
        var written: [WriteResult] = []
        for night in 1...3 { written.append(try await writeNight(repo, night)) }
        try await repo.createBranch("scoring", from: "main")
        _ = try await repo.write(scores, from: .sql("SELECT i AS bbl, i % 7 AS score FROM range(5000) t(i)"), key: ["bbl"], branch: "scoring")
        _ = try await repo.merge("scoring", into: "main")
        #expect(!FileManager.default.fileExists(atPath: repo.layout.metadata.appendingPathComponent("objects").path), "no local objects")

        // One write sends a few packs, not one request per object.
        let objects = try await offPool { try repo.store.list().count }
        let packs = try await storeKeys(location, "packs/").filter { $0.hasSuffix(".pack") }.count
        let commits = try await repo.log().count
        print("object store (\(kind)): \(objects) objects in \(packs) packs over \(commits) commits")
        #expect(packs <= commits * 5)
        #expect(objects >= packs * 4)

        // Another process opening the repository reads the same, at every version.
        let again = try LocalRepository.open(at: repo.layout.root, configuration: s3Configuration)
        #expect(try await count(again, "SELECT count(*) FROM scores") == 5000)
        let first = try await count(again, "SELECT sum(value)::BIGINT FROM parcels", options: ReadOptions(commit: written[0].commit!.id.hex))
        let expected = try await count(repo, "SELECT sum(value)::BIGINT FROM parcels", options: ReadOptions(commit: written[0].commit!.id.hex))
        #expect(first == expected)
        #expect(try await again.verify().problems == [])

        // A store belongs to one repository; a location that is none is refused.
        let taken = Result { try LocalRepository.create(at: dir.url.appendingPathComponent("second"), store: location, configuration: s3Configuration) }
        #expect((taken.error as? UDRError)?.code == .alreadyExists)
        #expect(!FileManager.default.fileExists(atPath: dir.path("second/.udr")), "a refused create leaves nothing")
        let other = try await makeRemote(kind, TemporaryDirectory())
        _ = try await s3Configuration.remoteStorage(other).write("unrelated.txt", Data("x".utf8), if: .always)
        let refused = Result { try LocalRepository.create(at: dir.url.appendingPathComponent("third"), store: other, configuration: s3Configuration) }
        #expect((refused.error as? UDRError)?.code == .alreadyExists)
        #expect((refused.error as? UDRError)?.message.contains("unrelated.txt") == true)
    }

    @Test(arguments: RemoteKind.allCases)
    func gcDeletesInTwoStepsAndWaitsForWritersThatMayCountOnAPack(_ kind: RemoteKind) async throws {
        let dir = TemporaryDirectory()
        let (repo, location) = try await makeStoreRepository(kind, dir)
        for night in 1...3 { _ = try await writeNight(repo, night) }
        _ = try await repo.expire(.keepLast(1))
        // No writer is running: the garbage goes in one run.
        let quiet = try await repo.gc(grace: 0)
        #expect(quiet.objectsDeleted > 0)
        #expect(quiet.bytesFreed > 0)
        #expect(try await storeKeys(location, "gc/") == [], "nothing left doomed")
        #expect(try await repo.verify().problems == [])
        #expect(try await count(repo, "SELECT count(*) FROM parcels") == 20_000)

        // Garbage made before a transaction began waits while it is open:
        // the transaction may count on any pack it saw.
        _ = try await writeNight(repo, 4)
        _ = try await repo.expire(.keepLast(1))
        let tx = try await repo.beginTransaction()
        let held = try await repo.gc(grace: 0)
        #expect(held.objectsDeleted == 0)
        #expect(held.objectsWaiting > 0)
        let marked = try await storeKeys(location, "gc/")
        #expect(marked.contains { $0.hasPrefix("gc/runs/") })
        #expect(marked.contains { $0.hasPrefix("gc/doomed/") })
        _ = try await tx.write(scores, from: .sql("SELECT i AS bbl, 1 AS score FROM range(100) t(i)"), key: ["bbl"])
        _ = try await tx.commit()
        let freed = try await repo.gc(grace: 0)
        #expect(freed.objectsDeleted > 0)
        #expect(try await storeKeys(location, "gc/") == [])
        #expect(try await repo.verify().problems == [])
        #expect(try await count(repo, "SELECT count(*) FROM scores") == 100)
        #expect(try await count(repo, "SELECT count(*) FROM parcels") == 20_000)
    }

    /// The protocol step by step, with the roots and writers given: an
    /// object a writer counted on before its pack was doomed survives; a
    /// writer that begins after does not count on it and stores it again.
    @Test(arguments: RemoteKind.allCases)
    func aWriterNeverLosesAnObjectItCountedOn(_ kind: RemoteKind) async throws {
        let dir = TemporaryDirectory()
        let location = try await makeRemote(kind, dir)
        let storage = try s3Configuration.remoteStorage(location)
        let store = try PackedObjectStore.open(storage, cache: dir.url.appendingPathComponent("cache-a"), creating: true)
        // Another process's view of the same store.
        @Sendable func otherProcess() throws -> PackedObjectStore {
            try PackedObjectStore.open(storage, cache: TemporaryDirectory().url, creating: false)
        }
        let (x, y, z) = (Data("object x".utf8), Data("object y".utf8), Data("object z".utf8))
        let ids = try await offPool { () -> [ObjectID] in
            _ = try store.put([x])
            return try store.put([y, z]).ids
        }
        let (idX, idY, idZ) = (ObjectID.of(x), ids[0], ids[1])
        func collect(keeping kept: Set<ObjectID>, writers: Set<String>) async throws -> CollectedGarbage {
            try await offPool {
                try store.collect(
                    roots: { GarbageRoots(reachable: kept, spared: [], cutoff: Date().addingTimeInterval(60)) }, liveWriters: { writers },
                    dryRun: false)
            }
        }
        // A process that read the index before any of what follows.
        let stale = try otherProcess()
        _ = try await offPool { try stale.list() }
        // Writer w1 counts on x and y; then GC finds them garbage and dooms their packs.
        #expect(try await offPool { try store.reusable([idX, idY]) } == [idX, idY])
        let doomed = try await collect(keeping: [], writers: ["w1"])
        #expect(doomed.deleted == 0)
        #expect(doomed.waiting == 3)
        // A writer beginning now does not count on them: it stores x again.
        let later = try otherProcess()
        #expect(try await offPool { try later.reusable([idX, idY, idZ]) } == [])
        #expect(try await offPool { try later.put(hashed: [(idX, x)]) } == Int64(x.count))
        // While w1 runs, nothing goes.
        let waiting = try await collect(keeping: [], writers: ["w1", "w2"])
        #expect(waiting.deleted == 0)
        // w1 committed (y is reachable now) and ended; x was stored again by the later writer.
        let swept = try await collect(keeping: [idX, idY], writers: [])
        #expect(swept.deleted == 1, "z, the only garbage")
        #expect(try await storeKeys(location, "gc/") == [])
        let fresh = try otherProcess()
        #expect(try await offPool { try fresh.get(idX) } == x)
        #expect(try await offPool { try fresh.get(idY) } == y)
        #expect(try await offPool { try fresh.contains(idZ) } == false)
        #expect(try await offPool { try fresh.problems() } == [])
        // The stale process does not count on the swept pack: it stores z again.
        #expect(try await offPool { try stale.put(hashed: [(idZ, z)]) } == Int64(z.count))
        #expect(try await offPool { try otherProcess().get(idZ) } == z)
    }

    /// 6 processes × 20 commits on a repository whose objects are on S3,
    /// while this process expires history and collects garbage with no
    /// grace period: every commit lands, nothing a writer counted on goes.
    @Test func sixProcessesCommitBesideGCOnS3() async throws {
        let dir = TemporaryDirectory()
        let (repo, _) = try await makeStoreRepository(.s3, dir)
        let shared = try TableName("shared")
        _ = try await repo.write(shared, from: .sql("SELECT r AS k, 0 AS v FROM range(10000) t(r)"), key: ["k"])
        let (results, rounds, freed) = try await commitBesideGC(repo, workers: 6, commits: 20, in: dir.url, pause: .milliseconds(50))
        let collected = (rounds: rounds, freed: freed)
        for result in results { #expect(result.status == 0, "\(result.stderr)") }
        let acks = results.flatMap { $0.stdout.split(separator: "\n").filter { $0.hasPrefix("ack ") } }
        #expect(Set(acks).count == 120)
        print("object store on S3: 6 processes committed 120 times beside \(collected.rounds) rounds of expire + gc, which freed \(collected.freed) bytes")
        #expect(collected.rounds >= 2)
        var expected: [[Cell]] = []
        for id in 0..<6 {
            for i in stride(from: 1, to: 20, by: 2) { expected.append([.int(Int64(id * 1000 + i)), .int(Int64(i + 1))]) }
        }
        #expect(try await repo.query("SELECT k, v FROM shared WHERE v <> 0 ORDER BY k").rows == expected)
        for id in 0..<6 { #expect(try await count(repo, "SELECT max(gen) FROM own_\(id)") == 18) }
        _ = try await repo.gc(grace: 0)
        let problems = try await repo.verify().problems
        #expect(problems == [], "\(problems)")
    }
}

extension ObjectStoreTests {
    @Test func initStoreFromTheCommandLine() async throws {
        let dir = TemporaryDirectory()
        let location = try await makeRemote(.s3, dir)
        let endpoint = location.endpoint!
        let made = try udr(["init", "r", "--store", location.url, "--endpoint", endpoint, "--json"], in: dir.url)
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.contains(location.url))
        let repo = dir.url.appendingPathComponent("r")
        for night in 1...2 {
            let wrote = try udr(
                ["write", "parcels", "--sql", "SELECT i AS bbl, i * \(night) AS value FROM range(1000) t(i)", "--key", "bbl"], in: repo)
            #expect(wrote.status == 0, "\(wrote.stderr)")
        }
        let read = try udr(["query", "SELECT sum(value) FROM parcels", "--json"], in: repo)
        #expect(read.stdout.contains("999000"), "\(read.stdout) \(read.stderr)")
        #expect(try udr(["expire", "--keep-last", "1"], in: repo).status == 0)
        let collected = try udr(["gc", "--grace", "0s"], in: repo)
        #expect(collected.status == 0, "\(collected.stderr)")
        #expect(collected.stdout.contains("freed") && !collected.stdout.contains("in 0 objects"), "\(collected.stdout)")
        let verified = try udr(["verify"], in: repo)
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
        #expect(!FileManager.default.fileExists(atPath: repo.appendingPathComponent(".udr/objects").path))

        // Bad input: an endpoint without a store; a store location that is taken.
        let stray = try udr(["init", "s", "--endpoint", endpoint], in: dir.url)
        #expect(stray.status != 0)
        #expect(stray.stderr.contains("--store"))
        let taken = try udr(["init", "t", "--store", location.url, "--endpoint", endpoint], in: dir.url)
        #expect(taken.status != 0)
        #expect(taken.stderr.contains("not empty"))
        #expect(!FileManager.default.fileExists(atPath: dir.path("t/.udr")))
    }
}

extension Result {
    var error: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
