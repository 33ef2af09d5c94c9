import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

@testable import UDRS3

/// Against moto, whose answers follow AWS where SeaweedFS differs (a
/// compare-and-swap on a missing key is 404 NoSuchKey, not 412), with
/// authentication on.
@Suite(.serialized) struct MotoTests {
    func client(secret: String? = nil) async throws -> S3Client {
        let server = try await S3TestServer.moto()
        return S3Client(
            S3Configuration(
                endpoint: server.endpoint, region: "us-east-1",
                credentials: S3Credentials(accessKeyID: server.accessKey, secretAccessKey: secret ?? server.secretKey)))
    }

    @Test func conditionalWritesFollowAWS() async throws {
        let s3 = try await client()
        let bucket = "udr-moto-\(UUID().uuidString.prefix(6).lowercased())"
        try await s3.createBucket(bucket)
        // If-Match on a key that does not exist: AWS (and moto) answer 404; the write did not happen.
        #expect(try await s3.put(bucket: bucket, key: "ref", Data("x".utf8), if: .matching("\"abc\"")) == nil)
        #expect(try await s3.head(bucket: bucket, key: "ref") == nil)
        let etag = try #require(try await s3.put(bucket: bucket, key: "ref", Data("1".utf8), if: .absent))
        #expect(try await s3.put(bucket: bucket, key: "ref", Data("2".utf8), if: .absent) == nil)
        #expect(try await s3.put(bucket: bucket, key: "ref", Data("3".utf8), if: .matching(etag)) != nil)
        #expect(try await s3.put(bucket: bucket, key: "ref", Data("4".utf8), if: .matching(etag)) == nil)
        #expect(try await s3.get(bucket: bucket, key: "ref")?.data == Data("3".utf8))
        let refused = await #expect(throws: UDRError.self) { _ = try await self.client(secret: "wrong").get(bucket: bucket, key: "ref") }
        #expect(refused?.code == .credentials)
    }

    @Test func pushCloneAndPullThroughMoto() async throws {
        let server = try await S3TestServer.moto()
        let s3 = try await client()
        let bucket = "udr-moto-\(UUID().uuidString.prefix(6).lowercased())"
        try await s3.createBucket(bucket)
        let dir = TemporaryDirectory()
        let storage = S3Storage(client: s3, bucket: bucket, prefix: "parcels")
        var configuration = Repository.Configuration(readGrouping: testReadGrouping)
        configuration.remoteStorage = RemoteStorageOpener { (location) throws(UDRError) -> any RemoteStorage in
            guard location.url == "s3://\(bucket)/parcels" else { return try RemoteStorageOpener.directories(location) }
            return storage
        }
        let location = RemoteLocation(url: "s3://\(bucket)/parcels", endpoint: server.endpoint.absoluteString)
        let a = try LocalRepository.create(at: dir.url.appendingPathComponent("a"), configuration: configuration)
        try await a.addRemote("origin", location)
        _ = try await writeNight(a, 0, rows: 2000)
        _ = try await a.push()
        let (b, _) = try await LocalRepository.clone(location, into: dir.url.appendingPathComponent("b"), configuration: configuration)
        _ = try await writeNight(b, 1, rows: 2000)
        _ = try await b.push()
        // a's next push is refused until it pulls.
        _ = try await a.write(scores, from: .sql("SELECT i AS bbl, i % 3 AS score FROM range(10) t(i)"), key: ["bbl"])
        let refused = await #expect(throws: UDRError.self) { _ = try await a.push() }
        #expect(refused?.code == .conflict)
        #expect(try await a.pull().merge.outcome == .merged)
        _ = try await a.push()
        #expect(try await b.pull().merge.outcome == .fastForward)
        try await expectSame(a, b)
    }
}
