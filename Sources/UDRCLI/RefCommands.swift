import ArgumentParser
import Foundation
import UDRCore

/// What `udr branch` and `udr tag` share: list, create at a ref, delete.
struct RefVerb {
    let kind: RefKind
    let repository: Repository
    let json: Bool

    func list() async throws {
        let refs = try await repository.refs().filter { $0.kind == kind }
        if json {
            print(Output.json(refs))
        } else if refs.isEmpty, kind == .branch {
            print("no branches yet: the first write creates \(try await repository.currentBranch())")
        } else {
            for ref in refs { print(kind == .branch ? "\(ref.current ? "*" : " ") \(ref.name)  \(ref.commit.short)" : "\(ref.name)  \(ref.commit.short)") }
        }
    }

    func delete(_ name: String) async throws {
        let commit = try await repository.deleteRef(name, kind: kind)
        print(json ? Output.json(["deleted": name, "commit": commit.hex]) : "deleted \(kind.rawValue) \(name) (was \(commit.short))")
    }

    func create(_ name: String, at ref: String?) async throws {
        let commit = try await repository.createRef(name, kind: kind, at: ref)
        print(json ? Output.json([kind.rawValue: name, "commit": commit.hex]) : "created \(kind.rawValue) \(name) at \(commit.short)")
    }
}

struct Branch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List branches, create one (O(1): a catalog row), or delete one.",
        discussion: "udr branch · udr branch NAME [--from REF] · udr branch -d NAME")

    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The branch to create (or, with -d, delete).") var name: String?
    @Option(help: "Where the new branch starts: any ref (default: the current branch's head).") var from: String?
    @Flag(name: .customShort("d"), help: "Delete the branch.") var delete = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let verb = RefVerb(kind: .branch, repository: try repo.open(), json: json)
        switch (name, delete) {
        case (nil, false) where from == nil: try await verb.list()
        case (let name?, true) where from == nil: try await verb.delete(name)
        case (let name?, false): try await verb.create(name, at: from)
        default: throw UDRError(.invalidArgument, "use: udr branch · udr branch NAME [--from REF] · udr branch -d NAME")
        }
    }
}

struct Tag: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List tags, tag a commit (tagged commits are never expired), or delete a tag.",
        discussion: "udr tag · udr tag NAME [REF] · udr tag -d NAME")

    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The tag to create (or, with -d, delete).") var name: String?
    @Argument(help: "What to tag: any ref (default: the current branch's head).") var ref: String?
    @Flag(name: .customShort("d"), help: "Delete the tag.") var delete = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let verb = RefVerb(kind: .tag, repository: try repo.open(), json: json)
        switch (name, delete) {
        case (nil, false): try await verb.list()
        case (let name?, true) where ref == nil: try await verb.delete(name)
        case (let name?, false): try await verb.create(name, at: ref)
        default: throw UDRError(.invalidArgument, "use: udr tag · udr tag NAME [REF] · udr tag -d NAME")
        }
    }
}

struct Switch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a branch the repository's current branch: the one commands read and write without --branch.")

    @OptionGroup var repo: RepositoryOptions
    @Argument(help: "The branch.") var name: String

    func run() async throws {
        try await repo.open().switchBranch(to: name)
        print("switched to branch \(name)")
    }
}
