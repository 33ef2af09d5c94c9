import Foundation

/// Finds the first row of a delimited file whose field count differs from
/// the header's, so that a ragged file gets an error naming the line.
enum CSVDiagnosis {
    static func firstRaggedLine(path: String, delimiter: UInt8, limitBytes: Int = 64 << 20) -> (line: Int, fields: Int, expected: Int)? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: limitBytes) else { return nil }
        var expected: Int?
        var fields = 1
        var line = 1
        var inQuotes = false
        var lineHasContent = false
        for byte in data {
            if byte == UInt8(ascii: "\"") {
                inQuotes.toggle()
            } else if !inQuotes && byte == delimiter {
                fields += 1
            } else if !inQuotes && byte == UInt8(ascii: "\n") {
                if lineHasContent || fields > 1 {
                    if let expected, fields != expected { return (line, fields, expected) }
                    if expected == nil { expected = fields }
                }
                fields = 1
                line += 1
                lineHasContent = false
                continue
            }
            if byte != UInt8(ascii: "\r") { lineHasContent = true }
        }
        if lineHasContent, let expected, fields != expected { return (line, fields, expected) }
        return nil
    }
}
