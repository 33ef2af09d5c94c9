import Foundation

/// UTC timestamps with microseconds, as stored in commits and shown to users:
/// `2026-11-21T21:31:00.123456Z`.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let seconds = micros.quotientAndRemainder(dividingBy: 1_000_000)
        var whole = seconds.quotient
        var fraction = seconds.remainder
        if fraction < 0 { whole -= 1; fraction += 1_000_000 }
        var t = time_t(whole)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(fraction))
    }

    /// Parses ISO 8601 (`2026-11-21T21:31:00Z`, with optional fraction and
    /// offset) and `2026-11-21 21:31:00` (taken as UTC), or a date alone.
    public static func parse(_ text: String) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let pattern = #"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"#
        guard let regex = try? NSRegularExpression(pattern: pattern),
            let m = regex.firstMatch(in: trimmed, range: NSRange(trimmed.startIndex..., in: trimmed))
        else { return nil }
        func group(_ i: Int) -> String? {
            guard let r = Range(m.range(at: i), in: trimmed) else { return nil }
            return String(trimmed[r])
        }
        var parts = tm()
        parts.tm_year = Int32(group(1)!)! - 1900
        parts.tm_mon = Int32(group(2)!)! - 1
        parts.tm_mday = Int32(group(3)!)!
        parts.tm_hour = Int32(group(4) ?? "0")!
        parts.tm_min = Int32(group(5) ?? "0")!
        parts.tm_sec = Int32(group(6) ?? "0")!
        var seconds = Double(timegm(&parts))
        if let fraction = group(7) { seconds += Double("0." + fraction)! }
        if let zone = group(8), zone != "Z" {
            let digits = zone.dropFirst().replacingOccurrences(of: ":", with: "")
            let offset = Double(Int(digits.prefix(2))! * 3600 + Int(digits.suffix(2))! * 60)
            seconds -= zone.hasPrefix("-") ? -offset : offset
        }
        return Date(timeIntervalSince1970: seconds)
    }
}

/// Durations as users write them: `90s`, `15m`, `2h`, `7d`, `1w` (or a
/// plain number of seconds).
public enum DurationText {
    public static func parse(_ text: String) throws(UDRError) -> TimeInterval {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800)]
        for (suffix, factor) in units.sorted(by: { $0.0.count > $1.0.count }) where trimmed.hasSuffix(suffix) {
            if let value = Double(trimmed.dropLast(suffix.count)), value >= 0 { return value * factor }
        }
        if let value = Double(trimmed), value >= 0 { return value }
        throw UDRError(.invalidArgument, "cannot read the duration '\(text)': use e.g. 90s, 15m, 2h, 7d or 2w")
    }
}
