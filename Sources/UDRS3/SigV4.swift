import Crypto
import Foundation

/// An HTTP request as AWS Signature Version 4 sees it: the method, the
/// host, the path (not yet encoded), the query parameters (not yet
/// encoded) and the headers to sign.
public struct SignableRequest: Sendable {
    public var method: String
    public var host: String
    public var path: String
    public var query: [(name: String, value: String)]
    public var headers: [(name: String, value: String)]

    public init(method: String, host: String, path: String, query: [(name: String, value: String)] = [], headers: [(name: String, value: String)] = []) {
        self.method = method
        self.host = host
        self.path = path
        self.query = query
        self.headers = headers
    }

    /// The path and query as they go on the wire (encoded as signed).
    public var target: String {
        let path = SigV4.encode(path, keepSlash: true)
        let query = SigV4.canonicalQuery(query)
        return query.isEmpty ? path : path + "?" + query
    }
}

/// AWS Signature Version 4 for S3 (`AWS4-HMAC-SHA256`, header-based, with
/// the payload's SHA-256 signed). S3 encodes the path once and does not
/// normalize it, unlike the other AWS services.
public struct SigV4: Sendable {
    public struct Signed: Sendable {
        /// Every header to send: the request's, plus `host`,
        /// `x-amz-date`, `x-amz-content-sha256`, a session token if any,
        /// and `authorization`.
        public let headers: [(name: String, value: String)]
        public let canonicalRequest: String
        public let stringToSign: String
        public let signature: String
    }

    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public let credentials: S3Credentials
    public let region: String
    public let service: String

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The lowercase hex SHA-256 of a payload.
    public static func payloadHash(_ data: Data) -> String {
        SHA256.hash(data: data).hex
    }

    public func sign(_ request: SignableRequest, payloadHash: String, date: Date = Date()) -> Signed {
        let amzDate = Self.amzDate(date)
        let day = String(amzDate.prefix(8))
        var headers = request.headers.filter { $0.name.lowercased() != "authorization" }
        func has(_ name: String) -> Bool { headers.contains { $0.name.lowercased() == name } }
        if !has("host") { headers.append(("host", request.host)) }
        if !has("x-amz-date") { headers.append(("x-amz-date", amzDate)) }
        if !has("x-amz-content-sha256") { headers.append(("x-amz-content-sha256", payloadHash)) }
        if let token = credentials.sessionToken, !has("x-amz-security-token") { headers.append(("x-amz-security-token", token)) }

        let canonical = headers.map { (name: $0.name.lowercased(), value: Self.trim($0.value)) }.sorted { $0.name < $1.name }
        let signedHeaders = canonical.map(\.name).joined(separator: ";")
        let canonicalRequest = [
            request.method,
            Self.encode(request.path, keepSlash: true),
            Self.canonicalQuery(request.query),
            canonical.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, SHA256.hash(data: Data(canonicalRequest.utf8)).hex].joined(separator: "\n")

        var key = SymmetricKey(data: Data("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = Data(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key)).hex
        headers.append((
            "authorization",
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        ))
        return Signed(headers: headers, canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature)
    }

    /// `YYYYMMDDTHHMMSSZ` in UTC.
    static func amzDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ v: Int?) -> String { v.map { $0 < 10 ? "0\($0)" : "\($0)" } ?? "00" }
        return "\(c.year ?? 1970)\(two(c.month))\(two(c.day))T\(two(c.hour))\(two(c.minute))\(two(c.second))Z"
    }

    /// URI-encodes every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`),
    /// and `/` too when `keepSlash`.
    public static func encode(_ value: String, keepSlash: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                let hex = Array("0123456789ABCDEF")
                out.append("%")
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0f)])
            }
        }
        return out
    }

    static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        let encoded: [(String, String)] = query.map { (encode($0.name), encode($0.value)) }
        let sorted = encoded.sorted { (a: (String, String), b: (String, String)) -> Bool in a.0 == b.0 ? a.1 < b.1 : a.0 < b.0 }
        return sorted.map { (pair: (String, String)) -> String in pair.0 + "=" + pair.1 }.joined(separator: "&")
    }

    /// A header value trimmed, its runs of spaces made one.
    static func trim(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ").trimmingCharacters(in: .whitespaces)
    }
}

extension Sequence where Element == UInt8 {
    var hex: String {
        let digits = Array("0123456789abcdef")
        var out = ""
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return out
    }
}

extension Digest {
    var hex: String { Array(self).hex }
}
