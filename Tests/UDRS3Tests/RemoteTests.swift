import DuckDB
import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

@testable import UDRS3

/// The two kinds of remote every sync test runs against.
enum RemoteKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case directory, s3
    var testDescription: String { rawValue }
}

/// S3 credentials of the test server, as a user would give them.
func useTestServerCredentials() async throws -> S3TestServer {
    let server = try await S3TestServer.shared()
    setenv("AWS_ACCESS_KEY_ID", server.accessKey, 1)
    setenv("AWS_SECRET_ACCESS_KEY", server.secretKey, 1)
    return server
}

/// A new, empty remote location of `kind`.
func makeRemote(_ kind: RemoteKind, _ dir: TemporaryDirectory) async throws -> RemoteLocation {
    switch kind {
    case .directory:
        let path = dir.path("remote")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return RemoteLocation(url: path)
    case .s3:
        let server = try await useTestServerCredentials()
        return RemoteLocation(url: "s3://\(try await testBucket())/\(uniquePrefix())parcels", endpoint: server.endpoint.absoluteString)
    }
}

let s3Configuration: Repository.Configuration = {
    var configuration = Repository.Configuration(readGrouping: testReadGrouping)
    configuration.remoteStorage = .withS3
    return configuration
}()

func makeSyncRepository(_ dir: TemporaryDirectory, _ name: String) throws -> Repository {
    try LocalRepository.create(at: dir.url.appendingPathComponent(name), configuration: s3Configuration)
}

func clone(_ location: RemoteLocation, _ dir: TemporaryDirectory, _ name: String, depth: Int? = nil) async throws -> Repository {
    try await LocalRepository.clone(location, into: dir.url.appendingPathComponent(name), depth: depth, configuration: s3Configuration).0
}

let parcels = try! TableName("parcels")
let scores = try! TableName("scores")

/// Parcels with a value that night `night` changed for about 1 in 50 rows.
func writeNight(_ repo: Repository, _ night: Int, rows: Int = 20_000) async throws -> WriteResult {
    try await repo.write(
        parcels,
        from: .sql(
            "SELECT i AS bbl, 'owner ' || (i % 977) AS owner, (i * 7 % 1000)::DOUBLE + CASE WHEN hash(i) % 50 = \(night % 50) THEN \(night) ELSE 0 END AS value FROM range(\(rows)) t(i)"
        ), key: ["bbl"], message: "night \(night)")
}

/// Both repositories hold the same commit at `branch` and the same rows in every table.
func expectSame(_ a: Repository, _ b: Repository, branch: String = "main", sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let left = try await a.resolve(branch)
    let right = try await b.resolve(branch)
    #expect(left == right, sourceLocation: sourceLocation)
    for table in try await a.tables() {
        let sql = "SELECT count(*), sum(hash(t)) FROM (SELECT * FROM \(table.name)) t"
        let x = try await a.query(sql).rows.first
        let y = try await b.query(sql).rows.first
        #expect(x == y, "\(table.name)", sourceLocation: sourceLocation)
    }
    #expect(try await a.verify().problems == [], sourceLocation: sourceLocation)
    #expect(try await b.verify().problems == [], sourceLocation: sourceLocation)
}

func attempt<T>(_ work: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await work()) } catch { return .failure(error) }
}

@Suite(.serialized) struct RemoteTests {
    @Test(arguments: RemoteKind.allCases) func cloneFetchPullAndPushKeepBothSidesTheSame(_ kind: RemoteKind) async throws {
        let dir = TemporaryDirectory()
        let location = try await makeRemote(kind, dir)
        let a = try makeSyncRepository(dir, "a")
        _ = try await writeNight(a, 1)
        _ = try await a.write(scores, from: .sql("SELECT i AS bbl, i % 7 AS score FROM range(500) t(i)"), key: ["bbl"])
        try await a.createTag("v1")
        try await a.addRemote("origin", location)
        let first = try await a.push(tags: true)
        #expect(first.objects > 0)
        #expect(first.refs.map(\.name).sorted() == ["main", "tag v1"])

        let b = try await clone(location, dir, "b")
        try await expectSame(a, b)
        #expect(try await b.resolve("v1") == a.resolve("v1"))
        #expect(try await b.resolve("origin/main") == a.resolve("main"))
        #expect(try await b.log().map(\.id) == a.log().map(\.id))

        // b pushes; a fast-forwards.
        _ = try await writeNight(b, 2)
        _ = try await b.push()
        let (fetched, merged) = try await a.pull()
        #expect(merged.outcome == .fastForward)
        #expect(fetched.objects > 0)
        try await expectSame(a, b)

        // Both commit; the second push is not a fast-forward and is refused.
        _ = try await a.apply(try .update(set: "score = score + 1", where: "bbl < 10"), to: scores)
        _ = try await writeNight(b, 3)
        _ = try await a.push()
        let refused = await #expect(throws: UDRError.self) { _ = try await b.push() }
        #expect(refused?.code == .conflict)
        #expect(refused?.message.contains("not a fast-forward") == true)
        #expect(try await b.resolve("origin/main") != a.resolve("main"))
        // Pull merges (the tables differ), then the push lands.
        let (_, merge) = try await b.pull()
        #expect(merge.outcome == .merged)
        _ = try await b.push()
        let (_, forward) = try await a.pull()
        #expect(forward.outcome == .fastForward)
        try await expectSame(a, b)
        // History came along: the log, diffs and old versions read the same.
        #expect(Set(try await a.log(allParents: true).map(\.id)) == Set(try await b.log(allParents: true).map(\.id)))
        #expect(try await a.log().map(\.id) == b.log().map(\.id))
        let old = ReadOptions(commit: "main~2")
        #expect(try await count(a, "SELECT sum(value)::BIGINT FROM parcels", options: old) == count(b, "SELECT sum(value)::BIGINT FROM parcels", options: old))

        // A third clone of what was pushed is the same again.
        let c = try await clone(location, dir, "c")
        try await expectSame(a, c)
        // Nothing new: a push sends no object, a fetch receives none.
        let idle = try await a.push()
        #expect(idle.objects == 0 && idle.refs.isEmpty)
        #expect(try await c.fetch().objects == 0)
    }

    @Test(arguments: RemoteKind.allCases) func nightlyPushesSendOnlyWhatTheNightAdded(_ kind: RemoteKind) async throws {
        let dir = TemporaryDirectory()
        let location = try await makeRemote(kind, dir)
        let repo = try makeSyncRepository(dir, "a")
        try await repo.addRemote("origin", location)
        _ = try await writeNight(repo, 0)
        _ = try await repo.push()
        var added: Int64 = 0
        var sent: Int64 = 0
        for night in 1...10 {
            let write = try await writeNight(repo, night)
            let push = try await repo.push()
            added += write.bytesAdded
            sent += push.bytesSent
            #expect(push.objectBytes <= write.bytesAdded)
        }
        #expect(sent <= added * 11 / 10, "pushes sent \(sent) bytes for \(added) bytes the nights added")
        let idle = try await repo.push()
        #expect(idle.objects == 0 && idle.bytesSent == 0)
        let copy = try await clone(location, dir, "b")
        try await expectSame(repo, copy)
    }

    @Test(arguments: RemoteKind.allCases) func ofTwoConcurrentPushesOneWinsAndNothingIsLost(_ kind: RemoteKind) async throws {
        let dir = TemporaryDirectory()
        let location = try await makeRemote(kind, dir)
        let origin = try makeSyncRepository(dir, "origin")
        _ = try await writeNight(origin, 0, rows: 1000)
        try await origin.addRemote("origin", location)
        _ = try await origin.push()
        let x = try await clone(location, dir, "x")
        let y = try await clone(location, dir, "y")
        var made: [ObjectID] = []
        for round in 0..<20 {
            for (repo, name) in [(x, "x"), (y, "y")] {
                let table = try TableName("t_\(name)")
                made.append(try #require(try await repo.write(table, from: .sql("SELECT \(round) AS r, i FROM range(10) t(i)")).commit?.id))
            }
            async let px = attempt { try await x.push() }
            async let py = attempt { try await y.push() }
            let results = await [px, py]
            let winners = results.filter { if case .success = $0 { return true } else { return false } }
            #expect(winners.count == 1, "round \(round)")
            for (repo, result) in zip([x, y], results) {
                guard case .failure(let error) = result else { continue }
                #expect((error as? UDRError)?.code == .conflict)
                let (_, merge) = try await repo.pull()
                #expect(merge.outcome == MergeResult.Outcome.merged)
                _ = try await repo.push()
            }
            _ = try await x.pull()
            _ = try await y.pull()
        }
        let final = try await clone(location, dir, "final")
        let history = Set(try await final.log(allParents: true).map(\.id))
        #expect(made.allSatisfy(history.contains))
        #expect(try await count(final, "SELECT count(*) FROM t_x") == 10)
        #expect(try await count(final, "SELECT max(r) FROM t_y") == 19)
        try await expectSame(final, x)
    }

    @Test(arguments: RemoteKind.allCases) func aDamagedObjectOnTheRemoteFailsTheFetchAndKeepsNothing(_ kind: RemoteKind) async throws {
        let dir = TemporaryDirectory()
        let location = try await makeRemote(kind, dir)
        let a = try makeSyncRepository(dir, "a")
        try await a.addRemote("origin", location)
        _ = try await writeNight(a, 0)
        _ = try await a.push()
        let b = try await clone(location, dir, "b")
        let storage = try s3Configuration.remoteStorage(location)
        let before = Set(try await storage.list("packs/"))
        _ = try await writeNight(a, 1)
        _ = try await a.push()
        let healthy = try await a.verifyRemote()
        #expect(healthy.ok, "\(healthy.problems)")
        #expect(healthy.objectsChecked == (try a.store.list().count))
        // Flip a byte in the pack the second push sent (its objects come first, its index last).
        let new = Set(try await storage.list("packs/")).subtracting(before)
        let key = try #require(new.first { $0.hasSuffix(".pack") })
        var body = try #require(try await storage.read(key)).data
        body[body.count / 4] ^= 0xff
        #expect(try await storage.write(key, body, if: .always))
        // `udr remote verify` names the damaged object.
        let damaged = try await a.verifyRemote("origin")
        #expect(!damaged.ok)
        #expect(damaged.problems.contains { $0.contains("is damaged: its bytes hash to") }, "\(damaged.problems)")

        let objectsBefore = try b.store.list().count
        let headBefore = try await b.resolve("origin/main")
        let error = await #expect(throws: UDRError.self) { _ = try await b.fetch() }
        #expect(error?.code == .corruptObject)
        #expect(error?.message.contains("is damaged: its bytes hash to") == true)
        #expect(try b.store.list().count == objectsBefore)
        #expect(try await b.resolve("origin/main") == headBefore)
        #expect(try await b.verify().ok)
    }

    @Test(arguments: RemoteKind.allCases) func aShallowCloneReadsOlderSegmentsFromTheRemoteWhenAQueryNeedsThem(_ kind: RemoteKind) async throws {
        let dir = TemporaryDirectory()
        let location = try await makeRemote(kind, dir)
        let a = try makeSyncRepository(dir, "a")
        try await a.addRemote("origin", location)
        for night in 0..<5 { _ = try await writeNight(a, night) }
        _ = try await a.push()
        let full = try await LocalRepository.clone(location, into: dir.url.appendingPathComponent("full"), configuration: s3Configuration)
        let (shallow, report) = try await LocalRepository.clone(
            location, into: dir.url.appendingPathComponent("shallow"), depth: 1, configuration: s3Configuration)
        #expect(report.objectBytes < full.1.objectBytes)
        // All history is known; only the newest commit's segments are here.
        #expect(try await shallow.log().map(\.id) == a.log().map(\.id))
        #expect(try await shallow.verify().problems == [])
        let before = try shallow.store.list().count
        let sql = "SELECT count(*), sum(value)::BIGINT FROM parcels"
        for back in 0..<5 {
            let options = ReadOptions(commit: "main~\(back)")
            #expect(try await shallow.query(sql, options: options).rows == a.query(sql, options: options).rows, "main~\(back)")
        }
        #expect(try shallow.store.list().count > before)
        #expect(try await shallow.verify().problems == [])
        try await expectSame(a, shallow)
    }

    @Test func badInputGetsClearErrorsAndChangesNothing() async throws {
        let dir = TemporaryDirectory()
        let server = try await useTestServerCredentials()
        let repo = try makeSyncRepository(dir, "a")
        _ = try await writeNight(repo, 0, rows: 100)

        let unknown = await #expect(throws: UDRError.self) { _ = try await repo.push("nope") }
        #expect(unknown?.code == .notFound)
        #expect(unknown?.message.contains("no remote 'nope'") == true)
        let badName = await #expect(throws: UDRError.self) { try await repo.addRemote("a/b", RemoteLocation(url: dir.path("x"))) }
        #expect(badName?.code == .invalidArgument)
        let badScheme = await #expect(throws: UDRError.self) { try await repo.addRemote("h", RemoteLocation(url: "http://example.com/x")) }
        #expect(badScheme?.message.contains("s3://BUCKET/PREFIX") == true)

        // A directory that holds other files is not a remote; nothing is written to it.
        let other = dir.path("other")
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try Data("hello".utf8).write(to: URL(fileURLWithPath: other + "/notes.txt"))
        try await repo.addRemote("other", RemoteLocation(url: other))
        let notRemote = await #expect(throws: UDRError.self) { _ = try await repo.push("other") }
        #expect(notRemote?.code == .notARepository)
        #expect(try FileManager.default.contentsOfDirectory(atPath: other) == ["notes.txt"])
        let notClone = await #expect(throws: UDRError.self) { _ = try await clone(RemoteLocation(url: other), dir, "c1") }
        #expect(notClone?.code == .notARepository)
        #expect(!FileManager.default.fileExists(atPath: dir.path("c1")))

        // The same on S3, a bucket that does not exist, and an endpoint nobody answers.
        let bucket = try await testBucket()
        let client = try await testClient()
        let data = uniquePrefix()
        _ = try await client.put(bucket: bucket, key: data + "file.csv", Data("a,b\n".utf8))
        let s3Other = await #expect(throws: UDRError.self) {
            _ = try await clone(RemoteLocation(url: "s3://\(bucket)/\(data)", endpoint: server.endpoint.absoluteString), dir, "c2")
        }
        #expect(s3Other?.code == .notARepository)
        let noBucket = await #expect(throws: UDRError.self) {
            _ = try await clone(RemoteLocation(url: "s3://no-such-bucket-\(UUID().uuidString.prefix(6).lowercased())/x", endpoint: server.endpoint.absoluteString), dir, "c3")
        }
        #expect(noBucket?.code == .notFound)
        let port = S3TestServer.freePortBlock(1)
        try await repo.addRemote("down", RemoteLocation(url: "s3://b/x", endpoint: "http://127.0.0.1:\(port)"))
        let began = Date()
        let down = await #expect(throws: UDRError.self) { _ = try await repo.push("down") }
        #expect(down?.code == .unreachable)
        #expect(Date().timeIntervalSince(began) < 10)
        #expect(try await repo.remoteRefs().isEmpty)
        #expect(try await repo.verify().ok)
    }
}
