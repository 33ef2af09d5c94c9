// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "udr",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "UDR", targets: ["UDRCore", "UDRSQLite"]),
        .library(name: "DuckDB", targets: ["DuckDB"]),
        .executable(name: "udr", targets: ["udr"]),
        // The library the Python package loads (python/udr).
        .library(name: "udr_python", type: .dynamic, targets: ["UDRPython"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // BLAKE3 (object ids), always optimized: it hashes every byte UDR stores.
        .target(name: "CBLAKE3", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "CArrowABI"),
        .target(
            name: "DuckDB",
            dependencies: ["CArrowABI"],
            linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]
        ),
        .target(
            name: "UDRCore",
            dependencies: [
                "DuckDB", "CBLAKE3",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "UDRSQLite",
            dependencies: ["UDRCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // S3 (and R2, SeaweedFS, MinIO): the client, and remotes on it.
        .target(
            name: "UDRS3",
            dependencies: [
                "UDRCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]
        ),
        .target(
            name: "UDRCLI",
            dependencies: [
                "UDRCore", "UDRSQLite", "UDRS3",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "udr", dependencies: ["UDRCLI"]),
        .target(name: "UDRPython", dependencies: ["UDRCore", "UDRSQLite", "UDRS3", "DuckDB"]),
        .executableTarget(name: "udr-harness", dependencies: ["UDRCore", "UDRSQLite", "UDRS3", "UDRTesting", "DuckDB"]),
        .executableTarget(name: "udr-bench", dependencies: ["UDRCore", "UDRSQLite", "UDRS3", "UDRTesting"]),
        .target(name: "UDRTesting", dependencies: ["UDRCore", "UDRSQLite", "DuckDB"], path: "Tests/UDRTesting"),
        .testTarget(name: "DuckDBTests", dependencies: ["DuckDB"]),
        .testTarget(name: "UDRCoreTests", dependencies: ["UDRCore", "UDRSQLite", "UDRTesting", "CBLAKE3"]),
        .testTarget(name: "UDRCLITests", dependencies: ["UDRCLI", "UDRTesting", "DuckDB"]),
        .testTarget(name: "UDRS3Tests", dependencies: ["UDRS3", "UDRCore", "UDRSQLite", "UDRTesting", "DuckDB"]),
    ]
)

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
for target in package.targets where target.type != .system && !target.name.hasPrefix("C") {
    target.swiftSettings = (target.swiftSettings ?? []) + swiftSettings
}
