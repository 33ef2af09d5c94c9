import Foundation

/// A branch or tag and the commit it points at.
public struct RefInfo: Sendable, Codable, Hashable {
    public let name: String
    public let kind: RefKind
    public let commit: ObjectID
    /// Whether this is the repository's current branch.
    public let current: Bool
}

extension Repository {
    static let currentBranchSetting = "current_branch"

    /// Checks a branch or tag name: 1–200 characters of letters, digits and
    /// `-_./`, not all digits (a number is a table version), not starting
    /// with `-`, `.` or `/`, no `..` or `//`, not ending with `/` or `.`.
    static func validateRefName(_ name: String, kind: RefKind) throws(UDRError) {
        func invalid(_ why: String) -> UDRError { UDRError(.invalidArgument, "'\(name)' is not a valid \(kind.rawValue) name: \(why)") }
        guard !name.isEmpty, name.utf8.count <= 200 else { throw invalid("it needs 1 to 200 characters") }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./")
        guard name.allSatisfy(allowed.contains) else { throw invalid("use letters, digits and - _ . / only") }
        guard !name.allSatisfy(\.isNumber) else { throw invalid("a number means a table version") }
        guard let first = name.first, !"-./".contains(first), let last = name.last, !"./".contains(last) else {
            throw invalid("it may not start with - . or / nor end with . or /")
        }
        guard !name.contains(".."), !name.contains("//") else { throw invalid("it may not contain .. or //") }
        guard name != "HEAD" else { throw invalid("HEAD means the current branch's head") }
    }

    /// The branch a command works on: `branch`, or the current one.
    func branchName(_ branch: String?) throws(UDRError) -> String {
        if let branch { return branch }
        return try catalog.setting(Self.currentBranchSetting) ?? Self.defaultBranch
    }

    /// A branch (the current one when nil) and its head; nil head only
    /// for the default branch before its first commit.
    func branchHead(_ branch: String?) throws(UDRError) -> (name: String, head: ObjectID?) {
        let name = try branchName(branch)
        let head = try catalog.head(of: name)
        if head == nil, name != Self.defaultBranch { throw Self.noBranch(name) }
        return (name, head)
    }

    static func noBranch(_ name: String) -> UDRError {
        UDRError(.notFound, "there is no branch '\(name)'; `udr branch` lists them, `udr branch \(name)` creates it")
    }

    /// The branch commands use when none is given (`main` until switched).
    public func currentBranch() async throws(UDRError) -> String {
        try await blocking { () throws(UDRError) -> String in try self.branchName(nil) }
    }

    /// Makes `name` the branch commands use when none is given.
    public func switchBranch(to name: String) async throws(UDRError) {
        try await blocking { () throws(UDRError) in
            _ = try self.branchHead(name)
            try self.catalog.setSetting(Self.currentBranchSetting, to: name)
        }
    }

    /// Creates a branch at `ref` (default: the current branch's head). It
    /// costs one catalog row, whatever the size of the repository.
    @discardableResult
    public func createBranch(_ name: String, from ref: String? = nil) async throws(UDRError) -> ObjectID {
        try await createRef(name, kind: .branch, at: ref)
    }

    /// Deletes a branch (not the current one). Its commits stay readable by
    /// id until `expire` drops what no other branch or tag reaches.
    @discardableResult
    public func deleteBranch(_ name: String) async throws(UDRError) -> ObjectID {
        try await deleteRef(name, kind: .branch)
    }

    /// Tags `ref` (default: the current branch's head). Tagged commits are
    /// never expired.
    @discardableResult
    public func createTag(_ name: String, at ref: String? = nil) async throws(UDRError) -> ObjectID {
        try await createRef(name, kind: .tag, at: ref)
    }

    @discardableResult
    public func deleteTag(_ name: String) async throws(UDRError) -> ObjectID {
        try await deleteRef(name, kind: .tag)
    }

    /// Creates a branch or tag at `ref` (default: the current branch's head).
    @discardableResult
    public func createRef(_ name: String, kind: RefKind, at ref: String? = nil) async throws(UDRError) -> ObjectID {
        try await blocking { () throws(UDRError) -> ObjectID in
            try Self.validateRefName(name, kind: kind)
            let commit = try self.resolveRef(ref ?? "HEAD")
            try self.catalog.createRef(name, kind: kind, commit: commit)
            return commit
        }
    }

    /// Deletes a branch (not the current one) or tag; returns the commit it pointed at.
    @discardableResult
    public func deleteRef(_ name: String, kind: RefKind) async throws(UDRError) -> ObjectID {
        try await blocking { () throws(UDRError) -> ObjectID in
            if kind == .branch, name == (try self.branchName(nil)) {
                throw UDRError(.invalidArgument, "cannot delete the current branch \(name); `udr switch` to another branch first")
            }
            guard let commit = try self.catalog.deleteRef(name, kind: kind) else {
                throw kind == .branch ? Self.noBranch(name) : UDRError(.notFound, "there is no tag '\(name)'; `udr tag` lists them")
            }
            return commit
        }
    }

    /// Every branch and tag, branches first, each by name.
    public func refs() async throws(UDRError) -> [RefInfo] {
        try await blocking { () throws(UDRError) -> [RefInfo] in
            let current = try self.branchName(nil)
            let branches = try self.catalog.branches().map { RefInfo(name: $0.key, kind: .branch, commit: $0.value, current: $0.key == current) }
            let tags = try self.catalog.tags().map { RefInfo(name: $0.key, kind: .tag, commit: $0.value, current: false) }
            return branches.sorted { $0.name < $1.name } + tags.sorted { $0.name < $1.name }
        }
    }

    /// The commit a ref names; see ``resolveRef(_:)``.
    public func resolve(_ ref: String) async throws(UDRError) -> ObjectID {
        try await blocking { () throws(UDRError) -> ObjectID in try self.resolveRef(ref) }
    }

    /// Resolves a ref to a commit: a branch (its head), a tag, `HEAD` (the
    /// current branch's head), a commit id or unique prefix of one, `tx:N`,
    /// or a time (the current branch as of then); any of them followed by
    /// `~N` goes N first parents back. Names win over id prefixes.
    func resolveRef(_ ref: String) throws(UDRError) -> ObjectID {
        var name = ref
        var back = 0
        if let tilde = ref.lastIndex(of: "~") {
            let digits = ref[ref.index(after: tilde)...]
            guard let n = digits.isEmpty ? 1 : Int(digits), n >= 0 else {
                throw UDRError(.invalidArgument, "cannot read '\(ref)': after ~ give how many commits back, e.g. main~3")
            }
            name = String(ref[..<tilde])
            back = n
        }
        var id = try resolveName(name)
        for step in 0..<back {
            guard let parent = try firstParent(try commit(id)) else {
                throw UDRError(.notFound, "\(ref) goes \(back) commits back, but \(name) has \(step) before it (or older history was expired)")
            }
            id = parent
        }
        return id
    }

    private func resolveName(_ name: String) throws(UDRError) -> ObjectID {
        if name == "HEAD" {
            let (branch, head) = try branchHead(nil)
            guard let head else { throw UDRError(.notFound, "branch \(branch) has no commits yet: write a table first") }
            return head
        }
        if let head = try catalog.head(of: name) { return head }
        if let tag = try catalog.tag(name) { return tag }
        if name.contains("/"), let tracking = try catalog.remoteRefs()[name] { return tracking }
        if name == Self.defaultBranch { throw UDRError(.notFound, "branch \(name) has no commits yet: write a table first") }
        if name.hasPrefix("tx:") || (name.count >= 4 && name.allSatisfy(\.isHexDigit)) { return try resolveCommitReference(name) }
        if let time = Timestamp.parse(name) { return try commit(on: nil, asOf: time) }
        throw UDRError(
            .notFound, "'\(name)' is not a branch, tag, commit id, tx:N or time; `udr branch` and `udr tag` list the refs")
    }

    /// The latest commit of `branch` (the current one when nil) at or before `time`.
    func commit(on branch: String?, asOf time: Date) throws(UDRError) -> ObjectID {
        let (name, head) = try branchHead(branch)
        var current = head
        while let id = current {
            guard let record = try catalog.commitRecord(id) else { break }
            if record.time <= time { return id }
            current = record.parents.first
        }
        throw UDRError(.notFound, "branch \(name) has no commit at or before \(Timestamp.format(time))")
    }
}
