import Foundation
import Testing
import UDRCore

@testable import UDRS3

/// The header-based examples of the S3 API reference ("Signature
/// Calculations for the Authorization Header: Transferring Payload in a
/// Single Chunk"), with AWS's example credentials and date.
@Suite struct SigV4Tests {
    let signer = SigV4(
        credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1")
    let date = Date(timeIntervalSince1970: 1_369_353_600)  // 20130524T000000Z
    let host = "examplebucket.s3.amazonaws.com"

    @Test func getObjectWithRange() {
        let request = SignableRequest(method: "GET", host: host, path: "/test.txt", headers: [("Range", "bytes=0-9")])
        let signed = signer.sign(request, payloadHash: SigV4.emptyPayloadHash, date: date)
        #expect(
            signed.canonicalRequest == """
                GET
                /test.txt

                host:examplebucket.s3.amazonaws.com
                range:bytes=0-9
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;range;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """)
        #expect(signed.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        let authorization = signed.headers.first { $0.name == "authorization" }?.value
        #expect(
            authorization
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
    }

    @Test func putObjectWithPayloadAndEncodedPath() {
        let body = Data("Welcome to Amazon S3.".utf8)
        let hash = SigV4.payloadHash(body)
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let request = SignableRequest(
            method: "PUT", host: host, path: "/test$file.text",
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")])
        let signed = signer.sign(request, payloadHash: hash, date: date)
        #expect(signed.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[1] == "/test%24file.text")
        #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
        #expect(request.target == "/test%24file.text")
    }

    @Test func subresourceWithoutValue() {
        let request = SignableRequest(method: "GET", host: host, path: "/", query: [("lifecycle", "")])
        let signed = signer.sign(request, payloadHash: SigV4.emptyPayloadHash, date: date)
        #expect(signed.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2] == "lifecycle=")
        #expect(signed.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test func listWithSortedQuery() {
        // Given out of order: the canonical query sorts by name.
        let request = SignableRequest(method: "GET", host: host, path: "/", query: [("prefix", "J"), ("max-keys", "2")])
        let signed = signer.sign(request, payloadHash: SigV4.emptyPayloadHash, date: date)
        #expect(signed.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2] == "max-keys=2&prefix=J")
        #expect(signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func aWrongSecretGivesAnotherSignature() {
        let wrong = SigV4(credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "not the key"), region: "us-east-1")
        let request = SignableRequest(method: "GET", host: host, path: "/test.txt", headers: [("Range", "bytes=0-9")])
        #expect(wrong.sign(request, payloadHash: SigV4.emptyPayloadHash, date: date).signature != signer.sign(request, payloadHash: SigV4.emptyPayloadHash, date: date).signature)
    }

    @Test func encodingIsS3s() {
        #expect(SigV4.encode("a b/c+d=é~_.-", keepSlash: true) == "a%20b/c%2Bd%3D%C3%A9~_.-")
        #expect(SigV4.encode("a/b") == "a%2Fb")
        #expect(SigV4.trim("  a   b  ") == "a b")
    }

    @Test func credentialsComeFromTheEnvironmentOrAProfile() throws {
        let env = try S3Credentials.resolve(environment: ["AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": "T"])
        #expect(env == S3Credentials(accessKeyID: "K", secretAccessKey: "S", sessionToken: "T"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("udr-cred-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("credentials")
        try "# comment\n[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n[work]\naws_access_key_id=W\naws_secret_access_key=WS\n"
            .write(to: file, atomically: true, encoding: .utf8)
        let base = ["AWS_SHARED_CREDENTIALS_FILE": file.path]
        #expect(try S3Credentials.resolve(environment: base).accessKeyID == "D")
        #expect(try S3Credentials.resolve(environment: base.merging(["AWS_PROFILE": "work"]) { $1 }).secretAccessKey == "WS")
        #expect(try S3Credentials.resolve(profile: "work", environment: base).accessKeyID == "W")
        let missing = #expect(throws: UDRError.self) { try S3Credentials.resolve(profile: "nope", environment: base) }
        #expect(missing?.code == .credentials)
        #expect(missing?.message.contains("[nope]") == true)
        let half = #expect(throws: UDRError.self) { try S3Credentials.resolve(environment: ["AWS_ACCESS_KEY_ID": "K"]) }
        #expect(half?.message.contains("AWS_SECRET_ACCESS_KEY") == true)
    }
}
