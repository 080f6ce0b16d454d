// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-rlm",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PythonRuntime", targets: ["PythonRuntime"]),
        .library(name: "RLM", targets: ["RLM"]),
        .library(name: "RLMTesting", targets: ["RLMTesting"]),
        .library(name: "RLMProviders", targets: ["RLMProviders"]),
        .library(name: "RLMTestServers", targets: ["RLMTestServers"]),
        .library(name: "RLMBench", targets: ["RLMBench"]),
        .library(name: "RLMServer", targets: ["RLMServer"]),
        .library(name: "RLMCache", targets: ["RLMCache"]),
        .executable(name: "rlm", targets: ["RLMCommand"]),
        .executable(name: "rlm-worker", targets: ["RLMWorker"]),
        .executable(name: "rlm-demo", targets: ["RLMDemo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.21.0"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.0"),
    ],
    targets: [
        // The CPython C API, found through pkg-config.
        .systemLibrary(
            name: "CPython",
            path: "Modules/CPython",
            pkgConfig: "python3-embed",
            providers: [.apt(["libpython3-dev"]), .brew(["python@3.11"])]
        ),
        // The in-process sandbox in C: the audit hook, per-thread policies, guards, the stop trace.
        .target(name: "CRLMSandbox", dependencies: ["CPython"], path: "Modules/CRLMSandbox"),
        // Process isolation in C: namespaces, Landlock, seccomp, limits, spawning, descriptor passing.
        .target(name: "CRLMProcess", path: "Modules/CRLMProcess"),
        // Layer 1: the embedded interpreter made safe to use from Swift.
        .target(
            name: "PythonRuntime",
            dependencies: ["CPython", "CRLMSandbox", "CRLMProcess", .product(name: "Logging", package: "swift-log")],
            resources: [.embedInCode("Python/support.py"), .embedInCode("Python/sandbox.py")]
        ),
        // Layer 2: the Recursive Language Model engine. Its API never shows CPython types.
        .target(
            name: "RLM",
            dependencies: [
                "PythonRuntime",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            resources: [.embedInCode("Python/repl_support.py"), .embedInCode("Python/mapped_text.py")]
        ),
        // Scripted models for tests, examples and the offline demo.
        .target(name: "RLMTesting", dependencies: ["RLM"]),
        // Layer 3: language models over HTTP (OpenAI-compatible servers, Anthropic).
        .target(
            name: "RLMProviders",
            dependencies: [
                "RLM",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Real HTTP servers on 127.0.0.1 that play model APIs, for tests and benchmarks.
        .target(
            name: "RLMTestServers",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The confined worker process that runs one REPL for `Isolation.Level.process`.
        .executableTarget(name: "RLMWorker", dependencies: ["PythonRuntime", "CRLMProcess"]),
        // Model replies kept across runs: a ModelCacheStorage in SQLite.
        .target(
            name: "RLMCache",
            dependencies: [
                "RLM",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Long-context tasks from a seed, their scores and reports (`rlm bench`).
        .target(name: "RLMBench", dependencies: ["RLM"]),
        // RLMs as a service: an OpenAI-compatible HTTP server with sessions, tenants and a live
        // page (`rlm serve`), and an MCP server over stdio (`rlm mcp`). Takes models from its
        // caller, so it never imports the providers.
        .target(
            name: "RLMServer",
            dependencies: [
                "RLM", "RLMCache",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Layer 4: the `rlm` command. Its offline parts (the demo, the viewer, output and
        // progress) are a target of their own, so that `rlm-demo` builds without HTTP or servers.
        .target(
            name: "RLMCommandCore",
            dependencies: ["RLM", "RLMTesting", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "RLMCommand",
            dependencies: [
                "RLM", "RLMTesting", "RLMProviders", "PythonRuntime", "RLMBench", "RLMServer", "RLMCommandCore", "RLMCache",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `rlm-demo`: the README's first command builds only this (and what it needs).
        .executableTarget(
            name: "RLMDemo",
            dependencies: ["RLMCommandCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "PythonRuntimeTests", dependencies: ["PythonRuntime"]),
        .testTarget(
            name: "RLMTests",
            dependencies: [
                "RLM", "RLMTesting", "PythonRuntime",
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            exclude: ["Fixtures"]),
        .testTarget(name: "RLMCommandTests", dependencies: ["RLMTestServers"]),
        .testTarget(name: "RLMBenchTests", dependencies: ["RLMBench", "RLM", "RLMTesting"]),
        .testTarget(
            name: "RLMServerTests",
            dependencies: [
                "RLMServer", "RLM", "RLMTesting", "RLMTestServers", "RLMProviders",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .testTarget(name: "RLMProvidersTests", dependencies: ["RLMProviders", "RLMTestServers", "RLM", "RLMTesting"]),
    ]
)

for target in package.targets where target.type != .system && !target.name.hasPrefix("CRLM") {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
