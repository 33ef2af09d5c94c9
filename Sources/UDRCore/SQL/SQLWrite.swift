/// A statement that changes rows of one table (`INSERT`, `UPDATE`,
/// `DELETE`, `MERGE INTO`), taken apart as far as running it on UDR needs:
/// its target table, the alias the statement knows it by, and the clauses
/// that say which of its rows it can touch.
///
/// UDR runs such a statement as DuckDB would, on a real DuckDB table that
/// holds the rows it can touch (``candidates``), with the target's name in
/// the statement replaced by that table's (``rewritten(as:)``); what the
/// statement did to those rows becomes a row edit.
struct SQLWrite {
    enum Kind: Equatable {
        case insert
        /// `INSERT OR REPLACE`, `INSERT OR IGNORE`, `INSERT … ON CONFLICT`:
        /// rows whose key exists are replaced, kept or updated.
        case insertOnConflict
        case update
        case delete
        case merge
    }

    let statement: SQLStatement
    let kind: Kind
    /// The target's name as written, its parts unquoted.
    let target: [String]
    /// The tokens of the target's name.
    let targetTokens: Range<Int>
    /// The alias given after the name, if any.
    let alias: String?
    /// The text of the condition the touched rows satisfy (UPDATE and
    /// DELETE: WHERE; MERGE: ON), if any.
    let condition: String?
    /// Further tables the condition joins (UPDATE's FROM, DELETE's USING,
    /// MERGE's source).
    let joined: String?
    /// MERGE's `USING (columns)` join, in place of an ON condition.
    let joinColumns: String?
    /// Whether the statement may touch every row whatever its condition
    /// (MERGE … WHEN NOT MATCHED BY SOURCE).
    let touchesAll: Bool

    /// Whether the statement returns rows (`RETURNING`).
    var returns: Bool { statement.topLevel(["RETURNING"], from: targetTokens.upperBound, depth: statement.tokens[targetTokens.lowerBound].depth) != nil }

    /// The name the statement's clauses know the target by.
    var qualifier: String { alias ?? target.last ?? "" }

    /// Takes a statement apart; nil when it is not a row-changing one.
    init?(_ statement: SQLStatement) throws(UDRError) {
        self.statement = statement
        let tokens = statement.tokens
        let verb = statement.verbIndex
        guard verb < tokens.count else { return nil }
        let depth = tokens[verb].depth
        func word(_ i: Int, _ w: String) -> Bool { i < tokens.count && tokens[i].isWord(w) }
        func clause(_ words: Set<String>, from: Int) -> Int? { statement.topLevel(words, from: from, depth: depth) }
        func unsupported(_ what: String) -> UDRError {
            UDRError(.invalidArgument, "cannot run `\(statement.text.prefix(60))`: \(what)")
        }
        var i = verb + 1
        var kind: Kind
        switch tokens[verb].value {
        case "INSERT":
            kind = .insert
            if word(i, "OR") && (word(i + 1, "REPLACE") || word(i + 1, "IGNORE")) {
                kind = .insertOnConflict
                i += 2
            }
            guard word(i, "INTO") else { throw unsupported("INSERT needs INTO and a table") }
            i += 1
        case "UPDATE":
            kind = .update
        case "DELETE":
            kind = .delete
            guard word(i, "FROM") else { throw unsupported("DELETE needs FROM and a table") }
            i += 1
        case "MERGE":
            kind = .merge
            guard word(i, "INTO") else { throw unsupported("MERGE needs INTO and a table") }
            i += 1
        default:
            return nil
        }
        guard let name = statement.name(at: i) else { throw unsupported("no table name where one belongs") }
        target = name.parts
        targetTokens = i..<name.end
        i = name.end
        // [AS] alias: a name that is not the clause coming next.
        let clauses: Set<String> = [
            "SET", "WHERE", "USING", "RETURNING", "VALUES", "SELECT", "DEFAULT", "BY", "FROM", "WITH", "ON", "TABLE", "OR",
        ]
        var alias: String?
        if word(i, "AS"), i + 1 < tokens.count, tokens[i + 1].isName {
            alias = tokens[i + 1].kind == .word ? statement.originalText(i + 1) : tokens[i + 1].value
            i += 2
        } else if i < tokens.count, tokens[i].isName, tokens[i].kind == .quotedIdentifier || !clauses.contains(tokens[i].value) {
            alias = tokens[i].kind == .word ? statement.originalText(i) : tokens[i].value
            i += 1
        }
        self.alias = alias
        var condition: String?
        var joined: String?
        var joinColumns: String?
        var touchesAll = false
        switch kind {
        case .insert, .insertOnConflict:
            if clause(["ON"], from: i).map({ word($0 + 1, "CONFLICT") }) == true { kind = .insertOnConflict }
        case .update:
            guard let set = clause(["SET"], from: i) else { throw unsupported("UPDATE needs SET") }
            let from = clause(["FROM"], from: set)
            let whereAt = clause(["WHERE"], from: set)
            let end = clause(["RETURNING"], from: set) ?? tokens.count
            if let from { joined = statement.text(from: from + 1, to: whereAt ?? end) }
            if let whereAt { condition = statement.text(from: whereAt + 1, to: end) }
        case .delete:
            let using = clause(["USING"], from: i)
            let whereAt = clause(["WHERE"], from: i)
            let end = clause(["RETURNING"], from: i) ?? tokens.count
            if let using { joined = statement.text(from: using + 1, to: whereAt ?? end) }
            if let whereAt { condition = statement.text(from: whereAt + 1, to: end) }
        case .merge:
            guard let using = clause(["USING"], from: i) else { throw unsupported("MERGE needs USING and a source") }
            guard let when = clause(["WHEN"], from: using) else { throw unsupported("MERGE needs WHEN clauses") }
            if let on = clause(["ON"], from: using), on < when {
                joined = statement.text(from: using + 1, to: on)
                condition = statement.text(from: on + 1, to: when)
            } else if let second = clause(["USING"], from: using + 1), second < when {
                joined = statement.text(from: using + 1, to: second)
                joinColumns = statement.text(from: second + 1, to: when)
            } else {
                throw unsupported("MERGE needs ON a condition or USING (columns)")
            }
            // WHEN NOT MATCHED BY SOURCE acts on target rows no source row matches.
            var w: Int? = when
            while let at = w {
                if word(at + 1, "NOT"), word(at + 2, "MATCHED"), word(at + 3, "BY"), word(at + 4, "SOURCE") { touchesAll = true }
                w = clause(["WHEN"], from: at + 1)
            }
        }
        self.kind = kind
        self.condition = condition
        self.joined = joined
        self.joinColumns = joinColumns
        self.touchesAll = touchesAll
    }

    /// The statement run on `table` instead of its target, under the
    /// target's alias or name.
    func rewritten(as table: String) -> String {
        statement.replacing(targetTokens, with: alias == nil ? "\(table) AS \(quoteIdentifier(qualifier))" : table)
    }

    /// A SELECT of the rows of `source` (the target's rows, under the
    /// statement's alias) an UPDATE, DELETE or MERGE can touch: every row,
    /// or those satisfying its condition.
    func candidates(from source: String) -> String {
        let a = quoteIdentifier(qualifier)
        let head = statement.withPrefix + "SELECT \(a).* FROM \(source) AS \(a)"
        if touchesAll { return head }
        if let joinColumns, let joined { return head + " SEMI JOIN \(joined) USING \(joinColumns)" }
        guard let condition else { return head }
        if let joined { return head + " WHERE EXISTS (SELECT 1 FROM \(joined) WHERE \(condition))" }
        return head + " WHERE \(condition)"
    }
}

/// `CREATE [OR REPLACE] [TEMP] TABLE [IF NOT EXISTS] name AS query` or
/// `… name (columns, constraints)`.
struct SQLCreateTable {
    enum Body {
        case query(String)
        /// The parenthesized column list, parentheses included.
        case columns(String)
    }
    let name: [String]
    let orReplace: Bool
    let temporary: Bool
    let ifNotExists: Bool
    let body: Body

    /// nil when the statement creates no table.
    init?(_ statement: SQLStatement) throws(UDRError) {
        let tokens = statement.tokens
        var i = statement.verbIndex
        guard i < tokens.count, tokens[i].isWord("CREATE"), statement.withPrefix.isEmpty else { return nil }
        i += 1
        func word(_ w: String) -> Bool { i < tokens.count && tokens[i].isWord(w) }
        var orReplace = false
        if word("OR") {
            i += 1
            guard word("REPLACE") else { return nil }
            orReplace = true
            i += 1
        }
        var temporary = false
        if word("TEMP") || word("TEMPORARY") {
            temporary = true
            i += 1
        }
        guard word("TABLE") else { return nil }
        i += 1
        var ifNotExists = false
        if word("IF") {
            i += 1
            guard word("NOT") else { return nil }
            i += 1
            guard word("EXISTS") else { return nil }
            i += 1
            ifNotExists = true
        }
        guard let name = statement.name(at: i) else {
            throw UDRError(.invalidArgument, "CREATE TABLE needs a table name: `\(statement.text.prefix(60))`")
        }
        self.name = name.parts
        self.orReplace = orReplace
        self.temporary = temporary
        self.ifNotExists = ifNotExists
        i = name.end
        if i < tokens.count && tokens[i].isSymbol("(") {
            let end = statement.skipGroup(i)
            if end < tokens.count, tokens[end].isWord("AS") {
                throw UDRError(
                    .invalidArgument,
                    "CREATE TABLE \(name.parts.joined(separator: ".")) (columns) AS …: name the columns in the query instead (SELECT … AS name)")
            }
            body = .columns(statement.text(from: i, to: end))
        } else if i < tokens.count && tokens[i].isWord("AS") {
            body = .query(statement.text(from: i + 1, to: tokens.count))
        } else {
            throw UDRError(
                .invalidArgument,
                "CREATE TABLE \(name.parts.joined(separator: ".")) needs AS and a query, or a column list: `\(statement.text.prefix(60))`")
        }
    }
}

/// `DROP TABLE [IF EXISTS] name [, name …] [CASCADE | RESTRICT]`.
struct SQLDropTable {
    let names: [[String]]
    let ifExists: Bool

    /// nil when the statement drops no table.
    init?(_ statement: SQLStatement) throws(UDRError) {
        let tokens = statement.tokens
        var i = statement.verbIndex
        guard i + 1 < tokens.count, tokens[i].isWord("DROP"), tokens[i + 1].isWord("TABLE") else { return nil }
        i += 2
        var ifExists = false
        if i + 1 < tokens.count, tokens[i].isWord("IF"), tokens[i + 1].isWord("EXISTS") {
            ifExists = true
            i += 2
        }
        var names: [[String]] = []
        while let name = statement.name(at: i) {
            names.append(name.parts)
            i = name.end
            guard i < tokens.count, tokens[i].isSymbol(",") else { break }
            i += 1
        }
        if i < tokens.count && (tokens[i].isWord("CASCADE") || tokens[i].isWord("RESTRICT")) { i += 1 }
        guard !names.isEmpty, i == tokens.count else {
            throw UDRError(.invalidArgument, "cannot read `\(statement.text.prefix(60))`: DROP TABLE [IF EXISTS] name [, name …]")
        }
        self.names = names
        self.ifExists = ifExists
    }
}

/// `ALTER TABLE [IF EXISTS] name` and one action: `ADD [COLUMN] [IF NOT
/// EXISTS] c TYPE [DEFAULT expr]`, `DROP [COLUMN] [IF EXISTS] c`, `RENAME
/// [COLUMN] a TO b`, `ALTER [COLUMN] c [SET DATA] TYPE t [USING expr]`, or
/// `RENAME TO new_name`.
struct SQLAlterTable {
    enum Action {
        case column(SchemaChange)
        /// A column change made moot by IF [NOT] EXISTS when the column
        /// is there (or not): applied only if `applies` holds for the table.
        case columnIf(SchemaChange, exists: Bool)
        case rename([String])
    }
    let name: [String]
    let ifExists: Bool
    let action: Action

    /// nil when the statement alters no table.
    init?(_ statement: SQLStatement) throws(UDRError) {
        let tokens = statement.tokens
        var i = statement.verbIndex
        guard i + 1 < tokens.count, tokens[i].isWord("ALTER"), tokens[i + 1].isWord("TABLE") else { return nil }
        let depth = tokens[i].depth
        func word(_ w: String) -> Bool { i < tokens.count && tokens[i].isWord(w) }
        func skip(_ w: String) -> Bool {
            guard word(w) else { return false }
            i += 1
            return true
        }
        func bad(_ what: String) -> UDRError {
            UDRError(
                .invalidArgument,
                "cannot run `\(statement.text.prefix(70))`: \(what). UDR takes ALTER TABLE t ADD/DROP/RENAME COLUMN, ALTER COLUMN c TYPE t [USING e], and RENAME TO")
        }
        func column() throws(UDRError) -> String {
            guard i < tokens.count, tokens[i].isName else { throw bad("a column name is missing") }
            defer { i += 1 }
            return tokens[i].kind == .word ? statement.originalText(i) : tokens[i].value
        }
        /// The text from `i` to the first of `stops` at the top level (or the end).
        func text(until stops: Set<String>) -> String {
            let end = statement.topLevel(stops, from: i, depth: depth) ?? tokens.count
            defer { i = end }
            return statement.text(from: i, to: end)
        }
        i += 2
        ifExists = skip("IF") && skip("EXISTS")
        guard let table = statement.name(at: i) else { throw bad("the table name is missing") }
        name = table.parts
        i = table.end
        if skip("ADD") {
            _ = skip("COLUMN")
            let guarded = skip("IF")
            if guarded { guard skip("NOT"), skip("EXISTS") else { throw bad("IF NOT EXISTS is incomplete") } }
            let name = try column()
            let type = text(until: ["DEFAULT", "NOT", "NULL", "PRIMARY", "UNIQUE", "CHECK", "REFERENCES", "COLLATE"])
            guard !type.isEmpty else { throw bad("the new column needs a type") }
            var value: String?
            if skip("DEFAULT") { value = text(until: ["NOT", "CHECK", "PRIMARY", "UNIQUE"]) }
            guard i == tokens.count else { throw bad("UDR keeps columns without constraints") }
            let change = SchemaChange.addColumn(name: name, type: type, defaultValue: value)
            action = guarded ? .columnIf(change, exists: false) : .column(change)
        } else if skip("DROP") {
            _ = skip("COLUMN")
            let guarded = skip("IF")
            if guarded { guard skip("EXISTS") else { throw bad("IF EXISTS is incomplete") } }
            let change = SchemaChange.dropColumn(try column())
            _ = skip("CASCADE") || skip("RESTRICT")
            guard i == tokens.count else { throw bad("one column at a time") }
            action = guarded ? .columnIf(change, exists: true) : .column(change)
        } else if skip("RENAME") {
            if skip("TO") {
                guard let target = statement.name(at: i), target.end == tokens.count else { throw bad("RENAME TO needs a new name") }
                action = .rename(target.parts)
            } else {
                _ = skip("COLUMN")
                let old = try column()
                guard skip("TO") else { throw bad("RENAME COLUMN needs TO and a new name") }
                let new = try column()
                guard i == tokens.count else { throw bad("one rename at a time") }
                action = .column(.renameColumn(old, to: new))
            }
        } else if skip("ALTER") {
            _ = skip("COLUMN")
            let name = try column()
            if skip("SET") { _ = skip("DATA") }
            guard skip("TYPE") else { throw bad("of ALTER COLUMN, UDR takes only TYPE (not defaults or NOT NULL)") }
            let type = text(until: ["USING"])
            guard !type.isEmpty else { throw bad("TYPE needs a type") }
            var using: String?
            if skip("USING") { using = text(until: []) }
            action = .column(.changeType(name, to: type, using: using))
        } else {
            throw bad("an action is missing")
        }
    }
}

/// `CREATE SCHEMA [IF NOT EXISTS] s` and `DROP SCHEMA [IF EXISTS] s
/// [CASCADE | RESTRICT]`: a schema is a namespace of tables (`s.t`).
struct SQLSchema {
    let create: Bool
    let name: String
    let guarded: Bool
    let cascade: Bool

    init?(_ statement: SQLStatement) throws(UDRError) {
        let tokens = statement.tokens
        var i = statement.verbIndex
        guard i + 1 < tokens.count, tokens[i].isWord("CREATE") || tokens[i].isWord("DROP"), tokens[i + 1].isWord("SCHEMA") else {
            return nil
        }
        create = tokens[i].isWord("CREATE")
        i += 2
        var guarded = false
        if create, i + 2 < tokens.count, tokens[i].isWord("IF"), tokens[i + 1].isWord("NOT"), tokens[i + 2].isWord("EXISTS") {
            guarded = true
            i += 3
        } else if !create, i + 1 < tokens.count, tokens[i].isWord("IF"), tokens[i + 1].isWord("EXISTS") {
            guarded = true
            i += 2
        }
        guard let name = statement.name(at: i) else {
            throw UDRError(.invalidArgument, "`\(statement.text.prefix(60))` needs a schema name")
        }
        self.name = name.parts.joined(separator: ".")
        self.guarded = guarded
        i = name.end
        cascade = i < tokens.count && tokens[i].isWord("CASCADE")
        if i < tokens.count && (tokens[i].isWord("CASCADE") || tokens[i].isWord("RESTRICT")) { i += 1 }
        guard i == tokens.count else {
            throw UDRError(.invalidArgument, "cannot read `\(statement.text.prefix(60))`: \(create ? "CREATE SCHEMA [IF NOT EXISTS] name" : "DROP SCHEMA [IF EXISTS] name [CASCADE]")")
        }
    }
}
