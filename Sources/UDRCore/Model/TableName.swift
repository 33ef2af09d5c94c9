/// A table's name, optionally with namespaces: `parcels`, `org_12.parcels`.
/// Validated on construction: each dot-separated part starts with a letter
/// or `_` and holds only ASCII letters, digits, `_` and `-`; at most 255
/// bytes in all.
public struct TableName: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public static let maximumLength = 255
    public let rawValue: String

    public init(_ text: String) throws(UDRError) {
        func invalid(_ why: String) -> UDRError {
            let shown = text.unicodeScalars.map { $0.value < 32 ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
            return UDRError(
                .invalidName,
                "invalid table name '\(shown)': \(why). Names are letters, digits, '_' and '-', starting with a letter or '_', with '.' between a namespace and a name (e.g. org_12.parcels)."
            )
        }
        if text.isEmpty { throw invalid("it is empty") }
        if text.utf8.count > Self.maximumLength { throw invalid("it is \(text.utf8.count) bytes long, the limit is \(Self.maximumLength)") }
        if text.contains("\u{0}") { throw invalid("it contains a NUL character") }
        if text.contains("/") || text.contains("\\") { throw invalid("it contains a path separator") }
        if text.contains("..") { throw invalid("it contains '..'") }
        if text.contains("\"") || text.contains("'") || text.contains("`") { throw invalid("it contains a quote") }
        for part in text.split(separator: ".", omittingEmptySubsequences: false) {
            guard let first = part.unicodeScalars.first else { throw invalid("a part between dots is empty") }
            guard first == "_" || (first.isASCII && first.properties.isAlphabetic) else {
                throw invalid("'\(part)' does not start with a letter or '_'")
            }
            for scalar in part.unicodeScalars
            where !(scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-")) {
                throw invalid("it contains the character '\(scalar)'")
            }
        }
        rawValue = text
    }

    /// The namespace part (`org_12` of `org_12.parcels`), if any.
    public var namespace: String? {
        guard let dot = rawValue.lastIndex(of: ".") else { return nil }
        return String(rawValue[..<dot])
    }

    /// The name without its namespace (`parcels` of `org_12.parcels`).
    public var localName: String {
        guard let dot = rawValue.lastIndex(of: ".") else { return rawValue }
        return String(rawValue[rawValue.index(after: dot)...])
    }

    /// How SQL refers to the table's view: `"org_12"."parcels"`, or `"parcels"`.
    public var sqlReference: String {
        (namespace.map { quoteIdentifier($0) + "." } ?? "") + quoteIdentifier(localName)
    }

    public var description: String { rawValue }
    public static func < (a: TableName, b: TableName) -> Bool { a.rawValue < b.rawValue }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do { self = try TableName(text) } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
