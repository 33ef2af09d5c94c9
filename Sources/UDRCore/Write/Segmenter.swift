/// Where to cut an ordered run of rows into segments.
///
/// A boundary falls after a row whose boundary hash has its low `bits` bits
/// zero (a candidate), provided the segment so far holds at least
/// `minimumRows`; a segment is cut at `maximumRows` regardless. Because
/// boundaries depend on row content, an insert or delete moves at most the
/// boundaries next to it, and the segments elsewhere keep their ids.
public struct SegmentationPolicy: Sendable, Hashable {
    public var bits: Int
    public var minimumRows: Int
    public var maximumRows: Int

    /// About 10,000 rows per segment.
    public static let standard = SegmentationPolicy(bits: 13, minimumRows: 2048, maximumRows: 65536)

    public init(bits: Int, minimumRows: Int, maximumRows: Int) {
        self.bits = bits
        self.minimumRows = minimumRows
        self.maximumRows = maximumRows
    }

    public var mask: UInt64 { (1 << UInt64(bits)) - 1 }

    /// Half-open row ranges covering `0..<rowCount`, given the candidate rows
    /// (ascending row indexes after which a boundary may fall).
    public func ranges(rowCount: Int, candidates: [Int]) -> [Range<Int>] {
        guard rowCount > 0 else { return [0..<0] }
        var ranges: [Range<Int>] = []
        var start = 0
        func cut(at end: Int) {
            ranges.append(start..<end)
            start = end
        }
        for candidate in candidates {
            let end = candidate + 1
            guard end > start, end < rowCount else { continue }
            while end - start > maximumRows { cut(at: start + maximumRows) }
            if end - start >= minimumRows { cut(at: end) }
        }
        while rowCount - start > maximumRows { cut(at: start + maximumRows) }
        if start < rowCount { cut(at: rowCount) }
        return ranges
    }
}
