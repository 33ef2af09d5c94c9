import CBLAKE3
import Foundation
import Testing
import UDRTesting

@testable import UDRCore

@Suite struct ModelTests {
    /// Reference vectors of the BLAKE3 specification's test input
    /// (bytes i % 251) at lengths that cross chunk and tree boundaries.
    @Test(arguments: [
        (0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
        (1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"),
        (1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"),
        (1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"),
        (1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"),
        (2049, "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030"),
        (3073, "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3"),
        (8192, "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63"),
        (31744, "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47"),
        (102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"),
    ])
    func blake3MatchesReferenceVectors(length: Int, expected: String) {
        let input = (0..<length).map { UInt8($0 % 251) }
        #expect(ObjectID.of(input).hex == expected)
        // Fed in uneven pieces, the streaming hasher gives the same digest.
        var hasher = udr_blake3_hasher()
        udr_blake3_init(&hasher)
        var offset = 0
        var step = 1
        while offset < input.count {
            let end = min(input.count, offset + step)
            input[offset..<end].withUnsafeBytes { udr_blake3_update(&hasher, $0.baseAddress, $0.count) }
            offset = end
            step = step * 3 + 1
        }
        var out = [UInt8](repeating: 0, count: 32)
        udr_blake3_finalize(&hasher, &out)
        #expect(hexString(out) == expected)
    }

    /// Whole chunks are hashed eight at a time where the CPU allows: the
    /// digest of any input equals the one computed a few bytes at a time
    /// (which never takes that path), whatever the split into updates.
    @Test(arguments: [8193, 9216, 16385, 65536 + 1024, 200_000, 1_048_577])
    func blake3SameDigestWhateverThePath(length: Int) {
        var generator = SeededGenerator(seed: UInt64(length))
        let input = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
        func digest(pieces: [Int]) -> String {
            var hasher = udr_blake3_hasher()
            udr_blake3_init(&hasher)
            var offset = 0
            var index = 0
            while offset < input.count {
                let end = min(input.count, offset + pieces[index % pieces.count])
                input[offset..<end].withUnsafeBytes { udr_blake3_update(&hasher, $0.baseAddress, $0.count) }
                offset = end
                index += 1
            }
            var out = [UInt8](repeating: 0, count: 32)
            udr_blake3_finalize(&hasher, &out)
            return hexString(out)
        }
        let small = digest(pieces: [7])
        #expect(ObjectID.of(input).hex == small)
        #expect(digest(pieces: [1024, 9 * 1024, 8 * 1024 + 1]) == small)
        #expect(digest(pieces: [3 * 1024, 8 * 1024]) == small)
    }

    @Test(arguments: ["parcels", "org_12.parcels", "_x", "layer-ab12", "a.b.c"])
    func validTableNames(name: String) throws {
        #expect(try TableName(name).rawValue == name)
    }

    @Test(arguments: [
        ("", "empty"), (String(repeating: "a", count: 256), "256 bytes"), ("a/b", "path separator"), ("a..b", "'..'"),
        ("bad\"name", "quote"), ("it's", "quote"), ("nul\u{0}", "NUL"), ("1abc", "does not start"), ("a b", "character ' '"),
        ("org.", "empty"),
    ])
    func invalidTableNamesAreRejectedWithTheReason(name: String, reason: String) {
        let error = #expect(throws: UDRError.self) { try TableName(name) }
        #expect(error?.code == .invalidName)
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
    }

    @Test func namespaceIsThePartBeforeTheLastDot() throws {
        #expect(try TableName("org_12.parcels").namespace == "org_12")
        #expect(try TableName("parcels").namespace == nil)
    }

    @Test(arguments: [
        ("INTEGER", "INTEGER"), ("HUGEINT", "VARCHAR"), ("DECIMAL(18,3)", "DECIMAL(18,3)"),
        ("TIME WITH TIME ZONE", "VARCHAR"), ("INTERVAL[]", "VARCHAR[]"), ("INTEGER[3]", "INTEGER[3]"),
        ("ENUM('a', 'b,c')", "VARCHAR"), ("MAP(VARCHAR, HUGEINT)", "MAP(VARCHAR, VARCHAR)"),
        (
            "STRUCT(a HUGEINT[], \"my field\" INTERVAL, t TIMESTAMP WITH TIME ZONE)",
            "STRUCT(\"a\" VARCHAR[], \"my field\" VARCHAR, \"t\" TIMESTAMP WITH TIME ZONE)"
        ),
    ])
    func storageTypesReplaceWhatParquetCannotHold(logical: String, storage: String) throws {
        #expect(try TypeNode.parse(logical).storage().sql == storage)
    }

    @Test func segmentationCutsAtCandidatesWithinBounds() {
        let policy = SegmentationPolicy(bits: 2, minimumRows: 3, maximumRows: 10)
        let ranges = policy.ranges(rowCount: 40, candidates: [0, 1, 5, 6, 30])
        #expect(ranges == [0..<6, 6..<16, 16..<26, 26..<31, 31..<40])
        #expect(policy.ranges(rowCount: 0, candidates: []) == [0..<0])
        for r in ranges { #expect(r.count <= 10) }
    }

    @Test func timestampsRoundTrip() throws {
        let date = try #require(Timestamp.parse("2026-11-21T21:31:00.123456Z"))
        #expect(Timestamp.format(date) == "2026-11-21T21:31:00.123456Z")
        #expect(Timestamp.parse("2026-11-21 23:31:00+02:00") == Timestamp.parse("2026-11-21T21:31:00Z"))
        #expect(Timestamp.parse("yesterday") == nil)
    }
}
