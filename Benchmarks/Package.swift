// swift-tools-version:6.1
import PackageDescription

// Benchmarks live in their own package so that users of swift-rlm never build the benchmark
// dependency. Run them from this directory with `swift package benchmark`.
let package = Package(
    name: "swift-rlm-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-rlm", path: "../"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "BridgeBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "PythonRuntime", package: "swift-rlm"),
            ],
            path: "Benchmarks/BridgeBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SideBySide",
            dependencies: [
                .product(name: "RLM", package: "swift-rlm"),
                .product(name: "RLMProviders", package: "swift-rlm"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Benchmarks/SideBySide"
        ),
        .executableTarget(
            name: "ServerScale",
            dependencies: [
                .product(name: "PythonRuntime", package: "swift-rlm"),
                .product(name: "RLM", package: "swift-rlm"),
                .product(name: "RLMProviders", package: "swift-rlm"),
                .product(name: "RLMTestServers", package: "swift-rlm"),
                .product(name: "RLMTesting", package: "swift-rlm"),
            ],
            path: "Benchmarks/ServerScale"
        ),
        .executableTarget(
            name: "RecursionStrategies",
            dependencies: [
                .product(name: "RLM", package: "swift-rlm"),
                .product(name: "RLMTesting", package: "swift-rlm"),
            ],
            path: "Benchmarks/RecursionStrategies"
        ),
        .executableTarget(
            name: "HugeContext",
            dependencies: [
                .product(name: "RLM", package: "swift-rlm"),
                .product(name: "RLMTesting", package: "swift-rlm"),
            ],
            path: "Benchmarks/HugeContext"
        ),
        .executableTarget(
            name: "ScriptedModelServer",
            dependencies: [.product(name: "RLMTestServers", package: "swift-rlm")],
            path: "Benchmarks/ScriptedModelServer"
        ),
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "RLM", package: "swift-rlm"),
                .product(name: "RLMTesting", package: "swift-rlm"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
