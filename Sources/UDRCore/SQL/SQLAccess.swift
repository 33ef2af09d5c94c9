/// Whether a statement only reads: what `query` runs. Everything else
/// (DDL, DML, `COPY`, `ATTACH`, `INSTALL`, `LOAD`, `SET`, transaction
/// control …) is refused before anything runs; a read in UDR never
/// changes the repository, the files around it or the session later
/// reads share, and never seems to succeed at a write it dropped.
extension SQLStatement {
    /// Why the statement is not a read (a phrase: "INSERT changes a
    /// table"), or nil for a read.
    var notAReadBecause: String? { notAReadBecause(at: verbIndex) }

    private func notAReadBecause(at index: Int) -> String? {
        guard index < tokens.count, tokens[index].kind == .word else {
            return index < tokens.count ? "`\(originalText(index))` does not begin a query" : nil
        }
        let verb = tokens[index].value
        switch verb {
        case "SELECT", "FROM", "VALUES", "TABLE", "SHOW", "DESCRIBE", "DESC", "SUMMARIZE", "PIVOT", "UNPIVOT", "PIVOT_WIDER",
            "PIVOT_LONGER":
            return nil
        case "EXPLAIN":
            // EXPLAIN [ANALYZE] [(options)] statement: ANALYZE runs it.
            var i = index + 1
            if i < tokens.count && tokens[i].isWord("ANALYZE") { i += 1 }
            if i < tokens.count && tokens[i].isSymbol("(") && !startsQuery(at: i + 1) { i = skipGroup(i) }
            while i < tokens.count && tokens[i].isSymbol("(") { i += 1 }
            return notAReadBecause(at: i)
        case "PRAGMA", "CALL":
            guard index + 1 < tokens.count, tokens[index + 1].isName else { return "\(verb) without a function is not a read" }
            let function = tokens[index + 1].value.lowercased()
            let assigns = tokens[(index + 1)...].contains { $0.isSymbol("=") && $0.depth == tokens[index].depth }
            if Self.readingFunctions.contains(function) || (verb == "CALL" && function.hasPrefix("duckdb_")) || function.hasPrefix("pragma_"),
                !assigns
            {
                return nil
            }
            return "\(verb) \(function) may change the session, not only read"
        case "COPY":
            if topLevel(["TO"], from: index + 1) != nil {
                return "COPY … TO writes a file (give the query with -o FILE to write its result)"
            }
            return "COPY … FROM changes a table"
        case "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "TRUNCATE":
            return "\(verb) changes a table"
        case "CREATE", "DROP", "ALTER", "COMMENT":
            let object = words(after: index, count: 4).first { !["OR", "REPLACE", "TEMP", "TEMPORARY", "UNIQUE", "IF", "NOT", "EXISTS"].contains($0) }
            return "\(verb)\(object.map { " " + $0 } ?? "") changes the repository's tables"
        case "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT":
            return "\(verb) controls a transaction, and a read runs in its own"
        case "ATTACH", "DETACH", "INSTALL", "LOAD", "FORCE", "SET", "RESET", "USE", "CHECKPOINT", "VACUUM", "ANALYZE", "ANALYSE", "EXPORT",
            "IMPORT", "PREPARE", "EXECUTE", "DEALLOCATE":
            return "\(verb) changes the session or the files around it"
        default:
            return nil
        }
    }

    /// Whether the statement begins with a word DuckDB takes for no
    /// statement (a typo: `SELEC 1`), which DuckDB's parser reports.
    var verbIsUnknown: Bool {
        let i = verbIndex
        guard i < tokens.count, tokens[i].kind == .word else { return false }
        return !Self.knownVerbs.contains(tokens[i].value)
    }

    private static let knownVerbs: Set<String> = [
        "SELECT", "FROM", "VALUES", "TABLE", "SHOW", "DESCRIBE", "DESC", "SUMMARIZE", "PIVOT", "UNPIVOT", "PIVOT_WIDER", "PIVOT_LONGER",
        "EXPLAIN", "PRAGMA", "CALL", "COPY", "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "TRUNCATE", "CREATE", "DROP", "ALTER",
        "COMMENT", "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "ATTACH", "DETACH", "INSTALL", "LOAD", "FORCE", "SET", "RESET",
        "USE", "CHECKPOINT", "VACUUM", "ANALYZE", "ANALYSE", "EXPORT", "IMPORT", "PREPARE", "EXECUTE", "DEALLOCATE",
    ]

    /// Whether a query (SELECT, FROM, VALUES, WITH, a parenthesis) begins at `index`.
    private func startsQuery(at index: Int) -> Bool {
        guard index < tokens.count else { return false }
        return tokens[index].isSymbol("(") || ["SELECT", "FROM", "VALUES", "WITH", "TABLE"].contains(tokens[index].kind == .word ? tokens[index].value : "")
    }

    /// PRAGMA and CALL functions that only report.
    private static let readingFunctions: Set<String> = [
        "show_tables", "show_tables_expanded", "show_databases", "table_info", "show", "database_list", "database_size",
        "storage_info", "version", "platform", "functions", "collations", "metadata_info", "user_agent", "summarize",
    ]
}

extension SQLScript {
    /// Throws unless every statement of `sql` only reads, naming the first
    /// that does not and saying to run it with `udr sql`. A statement that
    /// begins with no verb DuckDB knows is left to DuckDB's parser, whose
    /// syntax error says where it went wrong. Returns the script.
    @discardableResult
    static func requireReads(_ sql: String) throws(UDRError) -> SQLScript {
        let script = try SQLScript(sql)
        for statement in script.statements where !statement.verbIsUnknown {
            guard let reason = statement.notAReadBecause else { continue }
            let text = statement.text
            let shown = text.count > 60 ? String(text.prefix(57)) + "…" : text
            throw UDRError(
                .readOnly,
                "a query only reads, and \(reason): `\(shown)`. Run writes with `udr sql` (Repository.sql), which commits them; nothing was run"
            )
        }
        return script
    }
}
