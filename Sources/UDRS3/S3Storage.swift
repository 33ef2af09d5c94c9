import Foundation
import UDRCore

/// Remote storage under a prefix of an S3 bucket: create-only writes with
/// `If-None-Match: *`, compare-and-swap with `If-Match` on the ETag.
public final class S3Storage: RemoteStorage {
    public let client: S3Client
    public let bucket: String
    /// Ends with `/` unless empty.
    public let prefix: String
    public let location: String

    public init(client: S3Client, bucket: String, prefix: String, location: String? = nil) {
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
        self.location = location ?? "s3://\(bucket)/\(prefix)"
    }

    public var bytesSent: Int64 { client.traffic.bytesSent }

    public func read(_ key: String) async throws(UDRError) -> StoredValue? {
        guard let object = try await client.get(bucket: bucket, key: prefix + key) else { return nil }
        return StoredValue(data: object.data, version: object.etag)
    }

    public func read(_ key: String, range: Range<Int64>) async throws(UDRError) -> Data {
        guard let object = try await client.get(bucket: bucket, key: prefix + key, range: range) else {
            throw UDRError(.missingObject, "\(location) has no \(key)")
        }
        return object.data
    }

    public func write(_ key: String, _ data: Data, if condition: WriteCondition) async throws(UDRError) -> Bool {
        try await client.put(bucket: bucket, key: prefix + key, data, if: condition) != nil
    }

    public func exists(_ key: String) async throws(UDRError) -> Bool {
        try await client.head(bucket: bucket, key: prefix + key) != nil
    }

    public func listKeys(_ prefix: String) async throws(UDRError) -> [StoredKey] {
        try await client.list(bucket: bucket, prefix: self.prefix + prefix).map {
            StoredKey(key: String($0.key.dropFirst(self.prefix.count)), size: $0.size, modified: $0.modified)
        }
    }

    public func delete(_ keys: [String]) async throws(UDRError) {
        try await client.delete(bucket: bucket, keys: keys.map { prefix + $0 })
    }
}

extension RemoteStorageOpener {
    /// Directories, and S3 with credentials from `AWS_*` or `~/.aws`
    /// (region from the location, `AWS_REGION`, the profile, else `us-east-1`).
    public static let withS3 = RemoteStorageOpener { (location) throws(UDRError) -> any RemoteStorage in
        switch try location.kind() {
        case .directory:
            return try RemoteStorageOpener.directories(location)
        case .s3(let bucket, let prefix):
            let environment = ProcessInfo.processInfo.environment
            var endpoint: URL?
            if let given = location.endpoint ?? environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"], !given.isEmpty {
                guard let url = URL(string: given), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                    throw UDRError(.invalidArgument, "the S3 endpoint '\(given)' is not an http(s)://HOST[:PORT] URL")
                }
                endpoint = url
            }
            let region = location.region ?? S3Credentials.region() ?? "us-east-1"
            let configuration = S3Configuration(endpoint: endpoint, region: region, credentials: try S3Credentials.resolve())
            return S3Storage(client: S3Client(configuration), bucket: bucket, prefix: prefix, location: location.url)
        }
    }
}
