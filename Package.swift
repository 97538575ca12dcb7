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
    ],
    targets: [
        // The only place C headers enter (Debian's liblmdb-dev, found through pkg-config).
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        // The only module with unsafe pointers, MDB_val and return codes.
        .target(name: "LMDB", dependencies: ["CLMDB"], swiftSettings: swiftSettings),
        // Domain (pure), event log and projections, and the single-writer store.
        .target(
            name: "RegistryCore",
            dependencies: [
                "LMDB",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Inbound HTTP: the Azure-compatible registry API, SAS authentication, TLS material.
        .target(
            name: "RegistryAPI",
            dependencies: [
                "LMDB",
                "RegistryCore",
                "RegistryDelivery",
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
            swiftSettings: swiftSettings
        ),
        // Outbound side effects: lifecycle routing to files and webhooks.
        .target(
            name: "RegistryDelivery",
            dependencies: [
                "RegistryCore",
                "LMDB",
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
        .target(name: "RegistryTesting", dependencies: ["RegistryCore"], swiftSettings: swiftSettings),
        // Process wiring and the command-line tools.
        .executableTarget(
            name: "registryd",
            dependencies: [
                "LMDB",
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
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "LMDBTests", dependencies: ["LMDB", "RegistryTesting"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RegistryCoreTests",
            dependencies: ["RegistryCore", "RegistryTesting", "LMDB"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RegistryAPITests",
            dependencies: [
                "LMDB", "RegistryAPI", "RegistryCore", "RegistryTesting", "RegistryDelivery",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RegistryDeliveryTests",
            dependencies: [
                "RegistryDelivery", "RegistryCore", "RegistryTesting", "LMDB",
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
                "registryd", "RegistryCore", "RegistryAPI", "RegistryTesting", "LMDB",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
