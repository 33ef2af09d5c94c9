import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import UDRCore

/// Where and how to reach an S3-compatible service.
public struct S3Configuration: Sendable {
    /// `http(s)://host:port` of an S3-compatible server (SeaweedFS, MinIO,
    /// R2); nil for AWS itself (`https://s3.REGION.amazonaws.com`).
    public var endpoint: URL?
    /// The signing region; `auto` for R2.
    public var region: String
    /// Path-style addressing (`host/bucket/key`) instead of virtual hosts
    /// (`bucket.host/key`). Defaults to path style for a given endpoint.
    public var pathStyle: Bool
    public var credentials: S3Credentials
    /// Tries per request, for answers worth retrying (5xx, 429, 409
    /// ConditionalRequestConflict) and for connection errors.
    public var maxAttempts = 5
    /// Connection errors are not retried once this long has passed since
    /// the request began, so an unreachable endpoint fails within seconds.
    public var retryBudget: TimeInterval = 6
    public var connectTimeout: TimeInterval = 2.5
    public var requestTimeout: TimeInterval = 300
    /// Bodies from this size on go as a multipart upload of `partSize` parts.
    public var multipartThreshold = 32 << 20
    public var partSize = 16 << 20

    public init(endpoint: URL?, region: String, pathStyle: Bool? = nil, credentials: S3Credentials) {
        self.endpoint = endpoint
        self.region = region
        self.pathStyle = pathStyle ?? (endpoint != nil)
        self.credentials = credentials
    }
}

/// An object read from S3.
public struct S3Object: Sendable {
    public let data: Data
    public let etag: String
}

/// One entry of a listing.
public struct S3ListedObject: Sendable, Hashable {
    public let key: String
    public let size: Int64
    public let etag: String
    /// `LastModified`, by the server's clock.
    public let modified: Date
}

extension WriteCondition {
    /// Whether an answer says the condition did not hold: 412, or (AWS,
    /// moto) 404 NoSuchKey for `If-Match` on a key that does not exist.
    func failed(by response: S3Client.Response) -> Bool {
        if response.status == 412 { return true }
        if case .matching = base { return response.status == 404 && response.errorCode == "NoSuchKey" }
        return false
    }

    /// The conditional header of a PUT.
    var header: (name: String, value: String)? {
        switch base {
        case .always: return nil
        case .absent: return ("If-None-Match", "*")
        case .matching(let etag): return ("If-Match", etag)
        }
    }
}

/// Requests and request-body bytes a client has sent (retries included).
public final class S3Traffic: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var _requests = 0
    private var _bytesSent: Int64 = 0
    private var _bytesReceived: Int64 = 0

    public init() {}

    func record(sent: Int, received: Int) {
        lock.lock()
        _requests += 1
        _bytesSent += Int64(sent)
        _bytesReceived += Int64(received)
        lock.unlock()
    }

    public var requests: Int { lock.withLock { _requests } }
    public var bytesSent: Int64 { lock.withLock { _bytesSent } }
    public var bytesReceived: Int64 { lock.withLock { _bytesReceived } }
}

/// An S3 client: SigV4-signed requests with the payload's SHA-256, retries
/// with backoff, conditional writes, ranged reads, paged listings, batch
/// deletes and multipart uploads.
public final class S3Client: Sendable {
    public let configuration: S3Configuration
    public let traffic = S3Traffic()
    private let signer: SigV4

    /// One HTTP client per process: it lives as long as the process.
    private static let http = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(3), read: .seconds(300)))
    )

    public init(_ configuration: S3Configuration) {
        self.configuration = configuration
        self.signer = SigV4(credentials: configuration.credentials, region: configuration.region)
    }

    /// `host[:port]` as the endpoint names it.
    private var endpointDescription: String {
        configuration.endpoint?.absoluteString ?? "https://s3.\(configuration.region).amazonaws.com"
    }

    // MARK: Objects

    /// An object, or a byte range of it; nil when there is no such key.
    public func get(bucket: String, key: String, range: Range<Int64>? = nil) async throws(UDRError) -> S3Object? {
        var headers: [(String, String)] = []
        if let range {
            guard !range.isEmpty else { return S3Object(data: Data(), etag: "") }
            headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
        }
        let response = try await send("GET", bucket: bucket, key: key, headers: headers)
        if response.status == 404, response.errorCode != "NoSuchBucket" { return nil }
        try response.check(self, "read \(bucket)/\(key)")
        return S3Object(data: response.body, etag: response.etag ?? "")
    }

    /// An object's size and ETag; nil when there is no such key.
    public func head(bucket: String, key: String) async throws(UDRError) -> (size: Int64, etag: String)? {
        let response = try await send("HEAD", bucket: bucket, key: key)
        if response.status == 404 { return nil }
        try response.check(self, "look up \(bucket)/\(key)")
        return (Int64(response.header("Content-Length") ?? "") ?? 0, response.etag ?? "")
    }

    /// Stores an object if `condition` holds; returns its ETag, or nil
    /// when the condition failed (412, or 404 for `If-Match` on a missing
    /// key). Large bodies go as a multipart upload.
    public func put(bucket: String, key: String, _ data: Data, if condition: WriteCondition = .always) async throws(UDRError) -> String? {
        if data.count >= configuration.multipartThreshold {
            return try await putMultipart(bucket: bucket, key: key, data, if: condition)
        }
        var headers: [(String, String)] = [("Content-Type", "application/octet-stream")]
        if let header = condition.header { headers.append(header) }
        let response = try await send("PUT", bucket: bucket, key: key, headers: headers, body: data)
        if condition.failed(by: response) { return nil }
        try response.check(self, "write \(bucket)/\(key)")
        return response.etag ?? ""
    }

    /// Every object under `prefix`, in key order (all pages of `pageSize`).
    public func list(bucket: String, prefix: String, pageSize: Int = 1000) async throws(UDRError) -> [S3ListedObject] {
        var out: [S3ListedObject] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", "\(pageSize)")]
            if let token { query.append(("continuation-token", token)) }
            let response = try await send("GET", bucket: bucket, query: query)
            try response.check(self, "list \(bucket)/\(prefix)")
            guard let root = XMLElement.parse(response.body), root.name == "ListBucketResult" else {
                throw UDRError(.io, "S3 at \(endpointDescription) answered a listing of \(bucket)/\(prefix) with something that is not a ListBucketResult")
            }
            for item in root.all("Contents") {
                guard let key = item["Key"] else { continue }
                out.append(
                    S3ListedObject(
                        key: key, size: Int64(item["Size"] ?? "") ?? 0, etag: item["ETag"] ?? "",
                        modified: item["LastModified"].flatMap(Timestamp.parse) ?? .distantPast))
            }
            token = root["IsTruncated"] == "true" ? root["NextContinuationToken"] : nil
        } while token != nil
        return out
    }

    /// Deletes objects (up to 1,000 per request); missing keys are not errors.
    public func delete(bucket: String, keys: [String]) async throws(UDRError) {
        for start in stride(from: 0, to: keys.count, by: 1000) {
            let batch = keys[start..<min(start + 1000, keys.count)]
            let xml =
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>"
                + batch.map { "<Object><Key>\($0.xmlEscaped)</Key></Object>" }.joined() + "</Delete>"
            let body = Data(xml.utf8)
            let md5 = Data(Insecure.MD5.hash(data: body)).base64EncodedString()
            let response = try await send(
                "POST", bucket: bucket, query: [("delete", "")], headers: [("Content-MD5", md5), ("Content-Type", "application/xml")], body: body)
            try response.check(self, "delete \(batch.count) objects in \(bucket)")
            if let root = XMLElement.parse(response.body), let error = root.all("Error").first {
                throw UDRError(.io, "S3 did not delete \(bucket)/\(error["Key"] ?? "?"): \(error["Code"] ?? "") \(error["Message"] ?? "")")
            }
        }
    }

    /// Whether the bucket exists (and the credentials may use it).
    public func bucketExists(_ bucket: String) async throws(UDRError) -> Bool {
        let response = try await send("HEAD", bucket: bucket)
        if response.status == 404 { return false }
        try response.check(self, "look up bucket \(bucket)")
        return true
    }

    public func createBucket(_ bucket: String) async throws(UDRError) {
        let response = try await send("PUT", bucket: bucket)
        if response.status == 409 { return }  // BucketAlreadyOwnedByYou
        try response.check(self, "create bucket \(bucket)")
    }

    // MARK: Multipart

    /// A multipart upload: start, parts, complete (conditionally); aborted
    /// on any failure so no parts are left behind.
    func putMultipart(bucket: String, key: String, _ data: Data, if condition: WriteCondition) async throws(UDRError) -> String? {
        let started = try await send("POST", bucket: bucket, key: key, query: [("uploads", "")], headers: [("Content-Type", "application/octet-stream")])
        try started.check(self, "start an upload of \(bucket)/\(key)")
        guard let upload = XMLElement.parse(started.body)?["UploadId"] else {
            throw UDRError(.io, "S3 at \(endpointDescription) started an upload of \(bucket)/\(key) without an UploadId")
        }
        do throws(UDRError) {
            var parts: [String] = []
            var offset = 0
            while offset < data.count {
                let end = min(offset + configuration.partSize, data.count)
                let part = parts.count + 1
                let response = try await send(
                    "PUT", bucket: bucket, key: key, query: [("partNumber", "\(part)"), ("uploadId", upload)], body: data.subdata(in: offset..<end))
                try response.check(self, "upload part \(part) of \(bucket)/\(key)")
                parts.append(response.etag ?? "")
                offset = end
            }
            let xml =
                "<CompleteMultipartUpload>"
                + parts.enumerated().map { "<Part><PartNumber>\($0.offset + 1)</PartNumber><ETag>\($0.element.xmlEscaped)</ETag></Part>" }.joined()
                + "</CompleteMultipartUpload>"
            var headers: [(String, String)] = [("Content-Type", "application/xml")]
            if let header = condition.header { headers.append(header) }
            let response = try await send("POST", bucket: bucket, key: key, query: [("uploadId", upload)], headers: headers, body: Data(xml.utf8))
            if condition.failed(by: response) {
                try? await abort(bucket: bucket, key: key, upload: upload)
                return nil
            }
            try response.check(self, "complete the upload of \(bucket)/\(key)")
            // S3 may answer 200 with an error in the body.
            if let root = XMLElement.parse(response.body), root.name == "Error" {
                throw UDRError(.io, "S3 did not complete the upload of \(bucket)/\(key): \(root["Code"] ?? "") \(root["Message"] ?? "")")
            }
            return XMLElement.parse(response.body)?["ETag"] ?? response.etag ?? ""
        } catch {
            try? await abort(bucket: bucket, key: key, upload: upload)
            throw error
        }
    }

    private func abort(bucket: String, key: String, upload: String) async throws(UDRError) {
        _ = try await send("DELETE", bucket: bucket, key: key, query: [("uploadId", upload)])
    }

    // MARK: Requests

    struct Response: Sendable {
        let status: Int
        let headers: [(String, String)]
        let body: Data
        let method: String
        let target: String

        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
        var etag: String? { header("ETag") }
        /// S3's error code from an XML error body.
        var errorCode: String? { XMLElement.parse(body).flatMap { $0.name == "Error" ? $0["Code"] : nil } }
        var errorMessage: String? { XMLElement.parse(body).flatMap { $0.name == "Error" ? $0["Message"] : nil } }

        /// Throws a clear error unless the answer is a success.
        func check(_ client: S3Client, _ what: String) throws(UDRError) {
            guard !(200..<300).contains(status) else { return }
            let code = errorCode ?? "HTTP \(status)"
            let detail = errorMessage.map { ": \($0)" } ?? ""
            let endpoint = client.endpointDescription
            switch (status, code) {
            case (403, _), (401, _), (_, "SignatureDoesNotMatch"), (_, "InvalidAccessKeyId"):
                throw UDRError(
                    .credentials,
                    "S3 at \(endpoint) refused the credentials (access key \(client.configuration.credentials.accessKeyID)) to \(what): \(code)\(detail). Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the profile in ~/.aws/credentials."
                )
            case (404, "NoSuchBucket"), (404, "HTTP 404"):
                throw UDRError(.notFound, "S3 at \(endpoint) has no such bucket to \(what) (\(code)\(detail)); create the bucket first or check its name")
            default:
                throw UDRError(.io, "S3 at \(endpoint) failed to \(what): \(code)\(detail) (\(method) \(target))")
            }
        }
    }

    /// Sends a signed request, retrying answers and errors worth retrying.
    func send(
        _ method: String, bucket: String?, key: String = "", query: [(String, String)] = [], headers: [(String, String)] = [], body: Data = Data()
    ) async throws(UDRError) -> Response {
        let (scheme, host, path) = address(bucket: bucket, key: key)
        let request = SignableRequest(
            method: method, host: host, path: path, query: query.map { (name: $0.0, value: $0.1) }, headers: headers.map { (name: $0.0, value: $0.1) })
        let payloadHash = body.isEmpty ? SigV4.emptyPayloadHash : SigV4.payloadHash(body)
        let began = Date()
        var attempt = 0
        while true {
            attempt += 1
            let signed = signer.sign(request, payloadHash: payloadHash)
            var http = HTTPClientRequest(url: "\(scheme)://\(host)\(request.target)")
            http.method = HTTPMethod(rawValue: method)
            for header in signed.headers { http.headers.replaceOrAdd(name: header.name, value: header.value) }
            if !body.isEmpty || method == "PUT" || method == "POST" { http.body = .bytes(ByteBuffer(data: body)) }
            let answer: Response
            do {
                let response = try await Self.http.execute(http, timeout: .seconds(Int64(configuration.requestTimeout)))
                let bytes = try await response.body.collect(upTo: Int.max)
                answer = Response(
                    status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: Data(buffer: bytes),
                    method: method, target: request.target)
                traffic.record(sent: body.count, received: answer.body.count)
            } catch {
                traffic.record(sent: body.count, received: 0)
                let elapsed = Date().timeIntervalSince(began)
                if attempt < configuration.maxAttempts, elapsed + backoff(attempt) < configuration.retryBudget {
                    try await pause(attempt)
                    continue
                }
                throw UDRError(
                    .unreachable,
                    "cannot reach S3 at \(endpointDescription) (\(method) \(bucket ?? "")/\(key)) after \(attempt) attempt(s) in \(String(format: "%.1f", elapsed)) s: \(error). Check the endpoint URL and that the server is running.",
                    underlying: error)
            }
            let retryable = answer.status >= 500 || answer.status == 429 || (answer.status == 409 && answer.errorCode == "ConditionalRequestConflict")
            if retryable, attempt < configuration.maxAttempts {
                try await pause(attempt)
                continue
            }
            return answer
        }
    }

    private func backoff(_ attempt: Int) -> TimeInterval { 0.1 * pow(2, Double(attempt - 1)) }

    private func pause(_ attempt: Int) async throws(UDRError) {
        let seconds = backoff(attempt) * Double.random(in: 0.5...1.5)
        do { try await Task.sleep(nanoseconds: UInt64(seconds * 1e9)) } catch {
            throw UDRError(.interrupted, "the S3 request was cancelled")
        }
    }

    /// The scheme, `Host` header and path of a bucket's key.
    func address(bucket: String?, key: String) -> (scheme: String, host: String, path: String) {
        let scheme = configuration.endpoint?.scheme ?? "https"
        var host = configuration.endpoint?.host ?? "s3.\(configuration.region).amazonaws.com"
        if let port = configuration.endpoint?.port { host += ":\(port)" }
        guard let bucket else { return (scheme, host, "/") }
        if configuration.pathStyle { return (scheme, host, "/\(bucket)/\(key)") }
        return (scheme, "\(bucket).\(host)", "/\(key)")
    }
}
