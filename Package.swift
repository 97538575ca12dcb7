// swift-tools-version:6.1
import PackageDescription

// Strictness as a feature (shared/style.md §6): Swift 6 mode plus these upcoming features.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "registryd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "registryd", targets: ["registryd"]),
        .executable(name: "registryd-bench", targets: ["registryd-bench"]),
        .library(name: "RegistryCore", targets: ["RegistryCore"]),
        .library(name: "RegistryTesting", targets: ["RegistryTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
    ],
    targets: [
        // Where LMDB's C headers enter (Debian's liblmdb-dev, found through pkg-config).
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        // The C library calls Swift's Glibc module does not export (memmem, mallopt, getrandom).
        .target(name: "CSystemCalls"),
        // The two low-level modules hold every unsafe line: LMDB's C API (MDB_val, return codes)...
        .target(name: "LMDB", dependencies: ["CLMDB"], swiftSettings: swiftSettings),
        // ...and byte search, the kernel's CSPRNG and allocator settings over raw buffers.
        .target(name: "SystemBytes", dependencies: ["CSystemCalls"], swiftSettings: swiftSettings),
        // Domain (pure), the event log and its records, the query language, authentication, and
        // the store interface every backend implements. No storage engine here.
        .target(
            name: "RegistryCore",
            dependencies: [
                "SystemBytes",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The LMDB backend of the store interface: the single writer with group commit, the
        // projections as named databases, replay, log verification, backup. The only module
        // besides `LMDB` that imports it.
        .target(
            name: "RegistryLMDB",
            dependencies: [
                "LMDB",
                "SystemBytes",
                "RegistryCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The PostgreSQL backend of the store interface (DESIGN §10): several nodes on one
        // database, each with its group-commit writer serialised on the hub's log head row, a
        // node-local credentials projection fed by the log, LISTEN/NOTIFY commit signals.
        .target(
            name: "RegistryPostgres",
            dependencies: [
                "RegistryCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Import and export of ExportImportDevice JSON Lines (import modes, the line decoder, the
        // engine): shared by bulk routes, jobs and the CLI, over the store interface.
        .target(
            name: "RegistryTransfer",
            dependencies: ["RegistryCore"],
            swiftSettings: swiftSettings
        ),
        // Inbound HTTP: the Azure-compatible registry API, SAS authentication, TLS material. It
        // speaks to storage only through the store interface and to the lifecycle router only
        // through `RouteAdministration`.
        .target(
            name: "RegistryAPI",
            dependencies: [
                "RegistryCore",
                "RegistryTransfer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The console's sources; built in through the generated Console/ConsoleAssets.swift.
            exclude: ["Console/assets"],
            swiftSettings: swiftSettings
        ),
        // Outbound side effects: lifecycle routing to files and webhooks.
        .target(
            name: "RegistryDelivery",
            dependencies: [
                "RegistryCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Shared test kit: temporary directories, fixture loading, deterministic clocks and randomness.
        .target(name: "RegistryTesting", dependencies: ["RegistryCore", "RegistryLMDB"], swiftSettings: swiftSettings),
        // Process wiring and the command-line tools.
        .executableTarget(
            name: "registryd",
            dependencies: [
                "SystemBytes",
                "RegistryLMDB",
                "RegistryPostgres",
                "RegistryTransfer",
                "RegistryCore",
                "RegistryAPI",
                "RegistryDelivery",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The benchmarks, run by hand (tools/bench-*.sh): their own binary, not the daemon's.
        .executableTarget(
            name: "registryd-bench",
            dependencies: [
                "SystemBytes",
                "RegistryCore",
                "RegistryLMDB",
                "RegistryPostgres",
                "RegistryTransfer",
                "RegistryDelivery",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The store interface's conformance suite: one set of tests, run once per backend.
        .testTarget(
            name: "StoreConformanceTests",
            dependencies: ["RegistryCore", "RegistryLMDB", "RegistryPostgres", "RegistryTesting"],
            swiftSettings: swiftSettings
        ),
        // Several nodes on one PostgreSQL database (the cluster tools/test.sh starts).
        .testTarget(
            name: "PostgresTests",
            dependencies: ["RegistryAPI", "RegistryCore", "RegistryLMDB", "RegistryPostgres", "RegistryTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "LMDBTests", dependencies: ["LMDB", "SystemBytes", "RegistryTesting"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RegistryCoreTests",
            dependencies: ["RegistryCore", "RegistryLMDB", "RegistryTesting", "LMDB", "SystemBytes"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RegistryAPITests",
            dependencies: [
                "RegistryLMDB", "RegistryTransfer", "RegistryAPI", "RegistryCore", "RegistryTesting", "RegistryDelivery",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RegistryDeliveryTests",
            dependencies: [
                "RegistryDelivery", "RegistryCore", "RegistryLMDB", "RegistryTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "registrydTests",
            dependencies: [
                "registryd", "RegistryCore", "RegistryLMDB", "LMDB", "RegistryTransfer", "RegistryAPI", "RegistryTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
