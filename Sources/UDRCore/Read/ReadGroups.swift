import DuckDB
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a table's segments are joined into larger local read files.
///
/// Segments stay small so that a change stores few bytes, but DuckDB pays
/// per file and per row group: a full scan over thousands of segments
/// (of about 10,000 rows, when that was measured) ran about 1.6× slower than over one file of 122,880-row row
/// groups. So a scan reads *read groups*: runs of consecutive segments
/// re-encoded into one local Parquet file with large row groups, cached
/// beside the segments and named by the ids of the segments they hold.
///
/// Groups are cut like segments, by content: after a segment whose id has
/// its low `bits` bits zero once the group holds `minimumRows`, or at
/// `maximumRows`. A change to one segment therefore rebuilds one group,
/// and versions that share runs of segments share their groups.
///
/// A scan of fewer than `minimumSegments` segments reads them as they are.
/// Few files cost DuckDB nothing a group would save, and each one's row
/// group is a unit of parallel work; a group would only cost its build,
/// which the first query after every write pays. Measured with DuckDB
/// 1.5.5 on 2 cores, an aggregate over the peer benchmark's master (16,384
/// rows a file, 42 columns): 256,000 rows in 16 files ran 9.0 ms against
/// 8.3–9.3 ms grouped, 512,000 in 32 files 14.7 ms against 13.6–16.3 ms,
/// 770,000 in 47 files 27.7 ms against 20.0–21.7 ms, 1M in 63 files 26.4
/// ms against 20.0–24.0 ms.
public struct ReadGrouping: Sendable, Hashable {
    public var bits: Int
    public var minimumRows: Int64
    public var maximumRows: Int64
    /// Rows per row group in a group file.
    public var rowGroupSize: Int
    /// The fewest segments a scan reads through groups (2, the default:
    /// every run of segments a group cuts).
    public var minimumSegments: Int

    /// About 100,000 rows per group, in row groups of DuckDB's default
    /// size, for scans of 32 segments or more (about 500,000 rows).
    public static let standard = ReadGrouping(
        bits: 2, minimumRows: 65_536, maximumRows: 524_288, rowGroupSize: 122_880, minimumSegments: 32)
    /// Every segment read as its own file.
    public static let off = ReadGrouping(bits: 0, minimumRows: .max, maximumRows: .max, rowGroupSize: 122_880)

    public init(bits: Int, minimumRows: Int64, maximumRows: Int64, rowGroupSize: Int, minimumSegments: Int = 2) {
        self.bits = bits
        self.minimumRows = minimumRows
        self.maximumRows = maximumRows
        self.rowGroupSize = rowGroupSize
        self.minimumSegments = minimumSegments
    }

    /// Consecutive index ranges of `segments`, one per group.
    func groups(_ segments: [SegmentRef]) -> [Range<Int>] {
        guard minimumRows != .max, segments.count >= minimumSegments else { return segments.indices.map { $0..<($0 + 1) } }
        var groups: [Range<Int>] = []
        var start = 0
        var rows: Int64 = 0
        let mask = (1 << bits) - 1
        for (index, segment) in segments.enumerated() {
            rows += segment.rows
            let candidate = Int(segment.id.hex.prefix(4), radix: 16)! & mask == 0
            if rows >= maximumRows || (rows >= minimumRows && candidate) {
                groups.append(start..<(index + 1))
                start = index + 1
                rows = 0
            }
        }
        if start < segments.count { groups.append(start..<segments.count) }
        return groups
    }
}

extension SegmentCache {
    func groupPath(_ group: ObjectID) -> String { directory.path + "/group-" + group.hex + ".parquet" }

    /// The files a full scan of `segments` reads: a group file for each run
    /// of two or more segments, the segment's own file for a run of one.
    /// A missing group file is built from its segments' files
    /// (`materialize` gives them), in their order; a present one needs
    /// none of them. A group that cannot be built (a full disk) is read as
    /// its segments, and `warn` says why. `built` tells whether a group
    /// file was added to the cache.
    func readFiles(
        _ segments: [SegmentRef], grouping: ReadGrouping, connection: Connection,
        materialize: (SegmentRef) throws(UDRError) -> String, warn: (String) -> Void
    ) throws(UDRError) -> (files: [String], built: Bool) {
        var files: [String] = []
        var built = false
        for range in grouping.groups(segments) {
            let members = segments[range]
            guard members.count > 1 else {
                files.append(try materialize(members[range.lowerBound]))
                continue
            }
            let id = ObjectID.of(Data(members.map(\.content.name).joined(separator: ",").utf8))
            let target = groupPath(id)
            if intact(target) {
                files.append(target)
                continue
            }
            var sources: [String] = []
            for member in members { sources.append(try materialize(member)) }
            let list = "[" + sources.map(quoteLiteral).joined(separator: ", ") + "]"
            // A column some members store as a decimal is read back into its
            // DOUBLE here, once, instead of by every scan.
            let decimals = members.columnsStoredOtherwise.sorted()
            let options = SegmentStorage.copyOptions(from: members)
            let replace =
                decimals.isEmpty ? "" : " REPLACE (" + decimals.map { "CAST(\(quoteIdentifier($0)) AS DOUBLE) AS \(quoteIdentifier($0))" }.joined(separator: ", ") + ")"
            let unionByName = members.contains(where: \.readsByName) ? ", union_by_name = true" : ""
            let temp = target + "." + UUID().uuidString + ".tmp"
            do {
                try connection.execute(
                    """
                    COPY (SELECT *\(replace) FROM read_parquet(\(list)\(unionByName))) TO \(quoteLiteral(temp))
                    (FORMAT parquet, COMPRESSION lz4_raw, ROW_GROUP_SIZE \(grouping.rowGroupSize)\(options))
                    """)
            } catch {
                unlink(temp)
                warn("cannot build the read file of \(members.count) segments, reading them one by one: \(error.message)")
                files += sources
                continue
            }
            do throws(UDRError) { try seal(temp, as: target) } catch {
                warn("cannot keep the read file of \(members.count) segments, reading them one by one: \(error.message)")
                files += sources
                continue
            }
            files.append(target)
            built = true
        }
        return (files, built)
    }
}
