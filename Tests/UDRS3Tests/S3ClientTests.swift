import Foundation
import Testing
import UDRCore
import UDRTesting

@testable import UDRS3

/// A client of the test process's SeaweedFS server.
func testClient(secret: String? = nil, configure: (inout S3Configuration) -> Void = { _ in }) async throws -> S3Client {
    let server = try await S3TestServer.shared()
    var configuration = S3Configuration(
        endpoint: server.endpoint, region: "us-east-1",
        credentials: S3Credentials(accessKeyID: server.accessKey, secretAccessKey: secret ?? server.secretKey))
    configure(&configuration)
    return S3Client(configuration)
}

/// The test process's bucket on the test server, made on first use (SeaweedFS
/// gives every bucket volumes of its own, so tests share one and keep to
/// prefixes of their own). Its first write is retried until it reads back:
/// SeaweedFS answers reads a few seconds after it starts.
func testBucket() async throws -> String { try await sharedBucket.value }

private let sharedBucket = Task<String, any Error> {
    let client = try await testClient()
    let bucket = "udr-\(UUID().uuidString.prefix(8).lowercased())"
    let deadline = Date().addingTimeInterval(60)
    while true {
        if await bucketWorks(client, bucket) { return bucket }
        if Date() > deadline { throw TestServerError("the S3 test server does not take writes") }
        try await Task.sleep(nanoseconds: 200_000_000)
    }
}

/// A key prefix no other test uses.
func uniquePrefix() -> String { "t-\(UUID().uuidString.prefix(8).lowercased())/" }

private func bucketWorks(_ client: S3Client, _ bucket: String) async -> Bool {
    do {
        try await client.createBucket(bucket)
        _ = try await client.put(bucket: bucket, key: "ready", Data("ok".utf8))
        guard try await client.get(bucket: bucket, key: "ready")?.data == Data("ok".utf8) else { return false }
        try await client.delete(bucket: bucket, keys: ["ready"])
        return true
    } catch {
        return false
    }
}

@Suite(.serialized) struct S3ClientTests {
    @Test func conditionalWritesRangesListingAndDeletes() async throws {
        let client = try await testClient()
        let bucket = try await testBucket()
        let t = uniquePrefix()
        let first = try await client.put(bucket: bucket, key: t + "a/one", Data("0123456789".utf8), if: .absent)
        #expect(first != nil)
        // Written once: a second create-only write fails and changes nothing.
        #expect(try await client.put(bucket: bucket, key: t + "a/one", Data("other".utf8), if: .absent) == nil)
        #expect(try await client.get(bucket: bucket, key: t + "a/one")?.data == Data("0123456789".utf8))
        #expect(try await client.get(bucket: bucket, key: t + "a/one", range: 2..<5)?.data == Data("234".utf8))
        // Compare-and-swap on the ETag.
        let second = try await client.put(bucket: bucket, key: t + "a/one", Data("v2".utf8), if: .matching(first!))
        #expect(second != nil && second != first)
        #expect(try await client.put(bucket: bucket, key: t + "a/one", Data("v3".utf8), if: .matching(first!)) == nil)
        #expect(try await client.get(bucket: bucket, key: t + "a/one")?.data == Data("v2".utf8))
        #expect(try await client.head(bucket: bucket, key: t + "a/one")?.size == 2)
        #expect(try await client.head(bucket: bucket, key: t + "a/none") == nil)
        #expect(try await client.get(bucket: bucket, key: t + "a/none") == nil)

        for i in 0..<25 { _ = try await client.put(bucket: bucket, key: t + "p/\(i < 10 ? "0" : "")\(i)", Data("\(i)".utf8)) }
        let listed = try await client.list(bucket: bucket, prefix: t + "p/", pageSize: 7)
        #expect(listed.map(\.key) == (0..<25).map { t + "p/\($0 < 10 ? "0" : "")\($0)" })
        #expect(listed.first?.size == 1)
        try await client.delete(bucket: bucket, keys: listed.map(\.key) + [t + "p/missing"])
        #expect(try await client.list(bucket: bucket, prefix: t + "p/").isEmpty)
    }

    @Test func largeBodiesGoAsMultipartUploads() async throws {
        let client = try await testClient { $0.multipartThreshold = 5 << 20; $0.partSize = 5 << 20 }
        let bucket = try await testBucket()
        let big = uniquePrefix() + "big"
        var data = Data(count: (12 << 20) + 123)
        data.withUnsafeMutableBytes { raw in for i in stride(from: 0, to: raw.count, by: 4096) { raw[i] = UInt8(i / 4096 & 0xff) } }
        let before = client.traffic.requests
        #expect(try await client.put(bucket: bucket, key: big, data, if: .absent) != nil)
        // Start, three parts, complete.
        #expect(client.traffic.requests - before == 5)
        #expect(try await client.get(bucket: bucket, key: big)?.data == data)
        // A create-only multipart upload over an existing key fails at completion.
        #expect(try await client.put(bucket: bucket, key: big, Data(count: 6 << 20), if: .absent) == nil)
        #expect(try await client.head(bucket: bucket, key: big)?.size == Int64(data.count))
    }

    @Test func aWrongSecretKeyIsRefusedAsCredentials() async throws {
        let bucket = try await testBucket()
        let client = try await testClient(secret: "wrong-secret")
        let error = await #expect(throws: UDRError.self) { _ = try await client.get(bucket: bucket, key: "x") }
        #expect(error?.code == .credentials)
        #expect(error?.message.contains("refused the credentials") == true)
    }

    @Test func aMissingBucketIsNotFound() async throws {
        let client = try await testClient()
        let error = await #expect(throws: UDRError.self) { _ = try await client.list(bucket: "no-such-bucket-udr", prefix: "") }
        #expect(error?.code == .notFound, "\(String(describing: error))")
        #expect(try await client.bucketExists("no-such-bucket-udr") == false)
    }

    @Test func anUnreachableEndpointFailsWithinSeconds() async throws {
        let port = S3TestServer.freePortBlock(1)
        let client = S3Client(
            S3Configuration(endpoint: URL(string: "http://127.0.0.1:\(port)")!, region: "us-east-1", credentials: S3Credentials(accessKeyID: "k", secretAccessKey: "s")))
        let began = Date()
        let error = await #expect(throws: UDRError.self) { _ = try await client.get(bucket: "b", key: "k") }
        #expect(error?.code == .unreachable)
        #expect(error?.message.contains("127.0.0.1:\(port)") == true)
        #expect(Date().timeIntervalSince(began) < 10)
    }
}
