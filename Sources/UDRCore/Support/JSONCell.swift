import DuckDB

/// A result cell as JSON: numbers and booleans keep their type; a float
/// that JSON cannot hold (NaN, infinity) is its text.
public struct JSONCell: Encodable, Sendable {
    public let cell: Cell
    public init(_ cell: Cell) { self.cell = cell }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch cell {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): if d.isFinite { try c.encode(d) } else { try c.encode(String(d)) }
        case .text(let s): try c.encode(s)
        }
    }
}
