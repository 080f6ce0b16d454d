// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-rlm",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PythonRuntime", targets: ["PythonRuntime"]),
        .library(name: "RLM", targets: ["RLM"]),
        .library(name: "RLMTesting", targets: ["RLMTesting"]),
        .executable(name: "rlm", targets: ["RLMCommand"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // The CPython C API, found through pkg-config.
        .systemLibrary(
            name: "CPython",
            path: "Modules/CPython",
            pkgConfig: "python3-embed",
            providers: [.apt(["libpython3-dev"]), .brew(["python@3.11"])]
        ),
        // Layer 1: the embedded interpreter made safe to use from Swift.
        .target(
            name: "PythonRuntime",
            dependencies: ["CPython", .product(name: "Logging", package: "swift-log")]
        ),
        // Layer 2: the Recursive Language Model engine. Its API never shows CPython types.
        .target(
            name: "RLM",
            dependencies: ["PythonRuntime", .product(name: "Logging", package: "swift-log")]
        ),
        // Scripted models for tests, examples and the offline demo.
        .target(name: "RLMTesting", dependencies: ["RLM"]),
        // Layer 4: the `rlm` command.
        .executableTarget(
            name: "RLMCommand",
            dependencies: [
                "RLM", "RLMTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "PythonRuntimeTests", dependencies: ["PythonRuntime"]),
        .testTarget(name: "RLMTests", dependencies: ["RLM", "RLMTesting", "PythonRuntime"]),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
