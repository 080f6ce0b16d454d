import Benchmark
import Foundation
import PythonRuntime

/// The bridge's hot paths. Each Python-side benchmark runs a loop of 1,000 calls per measured
/// iteration, so the reported time is per 1,000 calls.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal, .peakMemoryResident], maxDuration: .seconds(5))

    Benchmark("Python→Swift→Python round trip, sync closure (×1000)") { benchmark in
        let namespace = try await Fixtures.shared.namespace()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            _ = try await namespace.execute("for _ in range(1000):\n    echo('ping')")
        }
        benchmark.stopMeasurement()
    }

    Benchmark("Python→Swift→Python round trip, async closure (×1000)") { benchmark in
        let namespace = try await Fixtures.shared.namespace()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            _ = try await namespace.execute("for _ in range(1000):\n    echo_async('ping')")
        }
        benchmark.stopMeasurement()
    }

    Benchmark("Swift→Python call with GIL held (×1000)") { benchmark in
        let namespace = try await Fixtures.shared.namespace()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await namespace.withGIL { gil, globals in
                let function = try globals.attribute("get", gil).call([try "add".makePythonObject(gil)], gil)
                let one = try 1.makePythonObject(gil)
                for _ in 0..<1000 { _ = try function.call([one, one], gil) }
            }
        }
        benchmark.stopMeasurement()
    }

    Benchmark("40 MB ASCII string into Python", configuration: .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(5))) { benchmark in
        let namespace = try await Fixtures.shared.namespace()
        let text = Fixtures.fortyMegabytes
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await namespace.set("big", to: text)
        }
        benchmark.stopMeasurement()
    }

    Benchmark("40 MB memcpy (baseline)", configuration: .init(metrics: [.wallClock], maxDuration: .seconds(5))) { benchmark in
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: 40_000_000, alignment: 64)
        source.initializeMemory(as: UInt8.self, repeating: 0x61)
        defer { source.deallocate() }
        for _ in benchmark.scaledIterations {
            let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: 40_000_000, alignment: 64)
            destination.copyMemory(from: UnsafeRawBufferPointer(source))
            blackHole(destination[39_999_999])
            destination.deallocate()
        }
    }

    Benchmark("stop a runaway loop (deadline 20 ms, except BaseException)", configuration: .init(metrics: [.wallClock], maxDuration: .seconds(5))) { benchmark in
        let namespace = try await Fixtures.shared.namespace()
        for _ in benchmark.scaledIterations {
            let result = try await namespace.execute(
                "while True:\n    try:\n        pass\n    except BaseException:\n        pass", timeout: .milliseconds(20))
            precondition(result.status == .timedOut)
        }
    }

    Benchmark("execute an empty cell") { benchmark in
        let namespace = try await Fixtures.shared.namespace()
        for _ in benchmark.scaledIterations {
            _ = try await namespace.execute("pass")
        }
    }
}

actor Fixtures {
    static let shared = Fixtures()
    static let fortyMegabytes = String(repeating: "abcdefghij", count: 4_000_000)
    private var cached: PythonNamespace?

    func namespace() async throws -> PythonNamespace {
        if let cached { return cached }
        let namespace = try await PythonNamespace()
        try await namespace.install(NativeFunction(name: "echo") { arguments in arguments.positional.first ?? .none })
        try await namespace.install(NativeFunction(name: "echo_async", async: { arguments in arguments.positional.first ?? .none }))
        _ = try await namespace.execute("def add(a, b):\n    return a + b")
        cached = namespace
        return namespace
    }
}
