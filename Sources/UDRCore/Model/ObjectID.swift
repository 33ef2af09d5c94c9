import CBLAKE3
import Foundation

/// The id of an object in the object store: BLAKE3-256 of its bytes, written
/// as 64 lowercase hex digits.
public struct ObjectID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let hex: String

    /// Validates a 64-digit lowercase hex id.
    public init(hex: String) throws(UDRError) {
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw UDRError(.invalidArgument, "'\(hex)' is not an object id (64 lowercase hex digits)")
        }
        self.hex = hex
    }

    init(uncheckedHex: String) { self.hex = uncheckedHex }

    /// The id of `bytes`.
    public static func of<Bytes: ContiguousBytes>(_ bytes: Bytes) -> ObjectID {
        var digest = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeBytes { buffer in
            digest.withUnsafeMutableBufferPointer { out in
                udr_blake3_hash(buffer.baseAddress, buffer.count, out.baseAddress)
            }
        }
        return ObjectID(uncheckedHex: hexString(digest))
    }

    /// The id of a file's bytes, read in pieces; nil when it cannot be read.
    static func ofFile(_ path: String) -> ObjectID? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var hasher = udr_blake3_hasher()
        udr_blake3_init(&hasher)
        let size = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer, size)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            udr_blake3_update(&hasher, buffer, n)
        }
        var digest = [UInt8](repeating: 0, count: 32)
        digest.withUnsafeMutableBufferPointer { udr_blake3_finalize(&hasher, $0.baseAddress) }
        return ObjectID(uncheckedHex: hexString(digest))
    }

    public var description: String { hex }
    /// The first 12 digits, for display.
    public var short: String { String(hex.prefix(12)) }

    public static func < (a: ObjectID, b: ObjectID) -> Bool { a.hex < b.hex }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do { self = try ObjectID(hex: text) } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}
