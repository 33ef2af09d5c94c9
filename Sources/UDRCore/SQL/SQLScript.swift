import Foundation

/// A script of DuckDB SQL cut into statements, each into tokens: enough
/// of SQL's lexical structure (strings, quoted identifiers, dollar quotes,
/// comments, parentheses) to split a script at its top-level semicolons,
/// tell a statement that reads from one that writes, and find the parts
/// of a write (its target table, its clauses) at the top level. The
/// statements themselves are run by DuckDB, which parses them fully.
struct SQLScript {
    let statements: [SQLStatement]

    init(_ text: String) throws(UDRError) {
        let bytes = Array(text.utf8)
        let tokens = try SQLLexer.tokens(bytes)
        var statements: [SQLStatement] = []
        var current: [SQLToken] = []
        for token in tokens {
            if token.isSymbol(";") && token.depth == 0 {
                if !current.isEmpty { statements.append(SQLStatement(bytes: bytes, tokens: current)) }
                current = []
            } else {
                current.append(token)
            }
        }
        if !current.isEmpty { statements.append(SQLStatement(bytes: bytes, tokens: current)) }
        self.statements = statements
    }
}

struct SQLToken: Sendable {
    enum Kind: Sendable { case word, quotedIdentifier, string, number, symbol, parameter }
    let kind: Kind
    /// Byte offsets in the script.
    let start: Int
    let end: Int
    /// A word upper-cased, a quoted identifier unquoted, a symbol as is.
    let value: String
    /// Parenthesis depth at the token (an opening parenthesis is at the depth outside it).
    let depth: Int

    func isWord(_ word: String) -> Bool { kind == .word && value == word }
    func isSymbol(_ symbol: String) -> Bool { kind == .symbol && value == symbol }
    /// A name: a bare word or a quoted identifier.
    var isName: Bool { kind == .word || kind == .quotedIdentifier }
}

enum SQLLexer {
    static func tokens(_ s: [UInt8]) throws(UDRError) -> [SQLToken] {
        var tokens: [SQLToken] = []
        var i = 0
        var depth = 0
        func text(_ a: Int, _ b: Int) -> String { String(decoding: s[a..<b], as: UTF8.self) }
        func isWordStart(_ c: UInt8) -> Bool { c == UInt8(ascii: "_") || (c | 0x20) >= 97 && (c | 0x20) <= 122 || c >= 0x80 }
        func isWordByte(_ c: UInt8) -> Bool { isWordStart(c) || (c >= 48 && c <= 57) || c == UInt8(ascii: "$") }
        func unterminated(_ what: String, _ at: Int) -> UDRError {
            UDRError(.invalidArgument, "the SQL has an unterminated \(what) starting at character \(at + 1); close it")
        }
        while i < s.count {
            let c = s[i]
            if c == 32 || c == 9 || c == 10 || c == 13 || c == 12 {
                i += 1
                continue
            }
            // Comments: -- to the end of the line, /* */ (nested).
            if c == UInt8(ascii: "-"), i + 1 < s.count, s[i + 1] == UInt8(ascii: "-") {
                while i < s.count && s[i] != 10 { i += 1 }
                continue
            }
            if c == UInt8(ascii: "/"), i + 1 < s.count, s[i + 1] == UInt8(ascii: "*") {
                let start = i
                var nesting = 0
                repeat {
                    if i + 1 < s.count && s[i] == UInt8(ascii: "/") && s[i + 1] == UInt8(ascii: "*") {
                        nesting += 1
                        i += 2
                    } else if i + 1 < s.count && s[i] == UInt8(ascii: "*") && s[i + 1] == UInt8(ascii: "/") {
                        nesting -= 1
                        i += 2
                    } else if i < s.count {
                        i += 1
                    } else {
                        throw unterminated("comment", start)
                    }
                } while nesting > 0
                continue
            }
            let start = i
            // Strings: '…' ('' escapes a quote), E'…' (backslash escapes).
            if c == UInt8(ascii: "'") || ((c | 0x20) == UInt8(ascii: "e") && i + 1 < s.count && s[i + 1] == UInt8(ascii: "'")) {
                let escapes = c != UInt8(ascii: "'")
                i += escapes ? 2 : 1
                while true {
                    guard i < s.count else { throw unterminated("string", start) }
                    if escapes && s[i] == UInt8(ascii: "\\") {
                        i += 2
                        continue
                    }
                    if s[i] == UInt8(ascii: "'") {
                        if i + 1 < s.count && s[i + 1] == UInt8(ascii: "'") {
                            i += 2
                            continue
                        }
                        i += 1
                        break
                    }
                    i += 1
                }
                tokens.append(SQLToken(kind: .string, start: start, end: i, value: text(start, i), depth: depth))
                continue
            }
            if c == UInt8(ascii: "\"") {
                i += 1
                var name: [UInt8] = []
                while true {
                    guard i < s.count else { throw unterminated("quoted identifier", start) }
                    if s[i] == UInt8(ascii: "\"") {
                        if i + 1 < s.count && s[i + 1] == UInt8(ascii: "\"") {
                            name.append(s[i])
                            i += 2
                            continue
                        }
                        i += 1
                        break
                    }
                    name.append(s[i])
                    i += 1
                }
                tokens.append(
                    SQLToken(kind: .quotedIdentifier, start: start, end: i, value: String(decoding: name, as: UTF8.self), depth: depth))
                continue
            }
            // Dollar quotes: $tag$…$tag$ ($$…$$); a $ followed by digits or a name otherwise is a parameter.
            if c == UInt8(ascii: "$") {
                var j = i + 1
                while j < s.count && isWordByte(s[j]) && s[j] != UInt8(ascii: "$") { j += 1 }
                let tagIsName = j == i + 1 || isWordStart(s[i + 1])
                if j < s.count && s[j] == UInt8(ascii: "$") && tagIsName {
                    let tag = Array(s[i...j])
                    var k = j + 1
                    while true {
                        guard k + tag.count <= s.count else { throw unterminated("dollar-quoted string", start) }
                        if s[k] == UInt8(ascii: "$") && Array(s[k..<(k + tag.count)]) == tag { break }
                        k += 1
                    }
                    i = k + tag.count
                    tokens.append(SQLToken(kind: .string, start: start, end: i, value: text(start, i), depth: depth))
                    continue
                }
                i = j
                tokens.append(SQLToken(kind: .parameter, start: start, end: i, value: text(start, i), depth: depth))
                continue
            }
            if isWordStart(c) {
                while i < s.count && isWordByte(s[i]) { i += 1 }
                tokens.append(SQLToken(kind: .word, start: start, end: i, value: text(start, i).uppercased(), depth: depth))
                continue
            }
            if c >= 48 && c <= 57 || (c == UInt8(ascii: ".") && i + 1 < s.count && s[i + 1] >= 48 && s[i + 1] <= 57) {
                while i < s.count && (isWordByte(s[i]) || s[i] == UInt8(ascii: ".")) { i += 1 }
                tokens.append(SQLToken(kind: .number, start: start, end: i, value: text(start, i), depth: depth))
                continue
            }
            if c == UInt8(ascii: "?") {
                i += 1
                tokens.append(SQLToken(kind: .parameter, start: start, end: i, value: "?", depth: depth))
                continue
            }
            i += 1
            if c == UInt8(ascii: ")") || c == UInt8(ascii: "]") || c == UInt8(ascii: "}") { depth -= 1 }
            tokens.append(SQLToken(kind: .symbol, start: start, end: i, value: text(start, i), depth: depth))
            if c == UInt8(ascii: "(") || c == UInt8(ascii: "[") || c == UInt8(ascii: "{") { depth += 1 }
        }
        return tokens
    }
}

/// One statement of a script.
struct SQLStatement: Sendable {
    /// The script's bytes (shared by its statements).
    let bytes: [UInt8]
    let tokens: [SQLToken]

    /// The statement's text, without its semicolon.
    var text: String { text(from: 0, to: tokens.count) }

    /// The text of tokens `from..<to`, with what lies between them.
    func text(from: Int, to: Int) -> String {
        guard from < to else { return "" }
        return String(decoding: bytes[tokens[from].start..<tokens[to - 1].end], as: UTF8.self)
    }

    /// The statement with tokens `range` replaced by `replacement`.
    func replacing(_ range: Range<Int>, with replacement: String) -> String {
        let start = range.isEmpty ? (range.lowerBound < tokens.count ? tokens[range.lowerBound].start : bytes.count) : tokens[range.lowerBound].start
        let end = range.isEmpty ? start : tokens[range.upperBound - 1].end
        let first = tokens.first?.start ?? 0
        let last = tokens.last?.end ?? first
        return String(decoding: bytes[first..<start], as: UTF8.self) + replacement + String(decoding: bytes[end..<last], as: UTF8.self)
    }

    /// Index of the first top-level token at or after `from` that is one of `words`.
    func topLevel(_ words: Set<String>, from: Int, depth: Int? = nil) -> Int? {
        let level = depth ?? (tokens.first?.depth ?? 0)
        var i = from
        while i < tokens.count {
            if tokens[i].depth == level && tokens[i].kind == .word && words.contains(tokens[i].value) { return i }
            i += 1
        }
        return nil
    }

    /// The index after a parenthesized group that opens at `index`.
    func skipGroup(_ index: Int) -> Int {
        let depth = tokens[index].depth
        var i = index + 1
        while i < tokens.count && !(tokens[i].depth == depth && tokens[i].isSymbol(")")) { i += 1 }
        return min(i + 1, tokens.count)
    }

    /// Where the statement's verb is: after a leading `WITH` list of common
    /// table expressions and any opening parentheses.
    var verbIndex: Int {
        var i = 0
        while i < tokens.count && tokens[i].isSymbol("(") { i += 1 }
        guard i < tokens.count, tokens[i].isWord("WITH") else { return i }
        i += 1
        if i < tokens.count && tokens[i].isWord("RECURSIVE") { i += 1 }
        // name [(columns)] AS [NOT] [MATERIALIZED] (query) [, …]
        while i < tokens.count {
            while i < tokens.count && !tokens[i].isSymbol("(") && !tokens[i].isWord("AS") { i += 1 }
            if i < tokens.count && tokens[i].isSymbol("(") { i = skipGroup(i) }
            while i < tokens.count && !tokens[i].isSymbol("(") { i += 1 }
            guard i < tokens.count else { return i }
            i = skipGroup(i)
            // USING KEY (…) of recursive CTEs.
            if i + 2 < tokens.count && tokens[i].isWord("USING") && tokens[i + 1].isWord("KEY") { i = skipGroup(i + 2) }
            guard i < tokens.count, tokens[i].isSymbol(",") else { return i }
            i += 1
        }
        return i
    }

    /// The statement's verb (`SELECT`, `INSERT`, …), upper-cased; "" for none.
    var verb: String {
        let i = verbIndex
        guard i < tokens.count, tokens[i].kind == .word else { return "" }
        return tokens[i].value
    }

    /// The `WITH …` prefix before the verb ("" for none).
    var withPrefix: String {
        let i = verbIndex
        guard i > 0, tokens[0].isWord("WITH") else { return "" }
        return text(from: 0, to: i) + " "
    }

    /// The words after the verb, up to `count` of them.
    func words(after index: Int, count: Int) -> [String] {
        var out: [String] = []
        var i = index + 1
        while i < tokens.count && out.count < count {
            guard tokens[i].kind == .word else { break }
            out.append(tokens[i].value)
            i += 1
        }
        return out
    }

    /// A table name starting at `index` (`name`, `schema.name`, quoted or
    /// not): its parts and the index after it.
    func name(at index: Int) -> (parts: [String], end: Int)? {
        guard index < tokens.count, tokens[index].isName else { return nil }
        var parts = [tokens[index].kind == .word ? originalText(index) : tokens[index].value]
        var i = index + 1
        while i + 1 < tokens.count && tokens[i].isSymbol(".") && tokens[i + 1].isName {
            parts.append(tokens[i + 1].kind == .word ? originalText(i + 1) : tokens[i + 1].value)
            i += 2
        }
        return (parts, i)
    }

    /// A token's text as written.
    func originalText(_ index: Int) -> String { String(decoding: bytes[tokens[index].start..<tokens[index].end], as: UTF8.self) }
}
