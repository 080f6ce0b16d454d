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

    // The sandbox and the worker process. The worker is the root package's release build:
    // `swift build -c release --product rlm-worker` there first.

    Benchmark("Python→Swift→Python round trip, async closure, sandboxed (×1000)") { benchmark in
        let namespace = try await Fixtures.shared.sandboxed()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            _ = try await namespace.execute("for _ in range(1000):\n    echo_async('ping')")
        }
        benchmark.stopMeasurement()
    }

    Benchmark("execute an empty cell, sandboxed") { benchmark in
        let namespace = try await Fixtures.shared.sandboxed()
        for _ in benchmark.scaledIterations {
            _ = try await namespace.execute("pass")
        }
    }

    Benchmark("worker start to first cell", configuration: .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(5))) { benchmark in
        for _ in benchmark.scaledIterations {
            let worker = try await PythonWorker.start(configuration: Fixtures.workerConfiguration)
            let result = try await worker.execute("pass", timeout: .seconds(5))
            precondition(result.status == .completed)
            await worker.close()
        }
    }

    // Acquiring from a pool of started workers (Isolation.warmWorkers): only the handoff and the
    // first cell are measured; the pool refills while the sample waits for a ready worker.
    Benchmark("warm worker acquire to first cell", configuration: .init(metrics: [.wallClock], maxDuration: .seconds(5))) { benchmark in
        let pool = await Fixtures.shared.pool()
        for _ in benchmark.scaledIterations {
            while pool.statistics.ready < pool.configuration.size { try await Task.sleep(for: .milliseconds(1)) }
            benchmark.startMeasurement()
            let (worker, scratch) = try await pool.acquire()
            let result = try await worker.execute("pass", timeout: .seconds(5))
            benchmark.stopMeasurement()
            precondition(result.status == .completed)
            await worker.close()
            try? FileManager.default.removeItem(atPath: scratch)
        }
    }

    Benchmark("Python→Swift→Python round trip through a worker (×1000)") { benchmark in
        let worker = try await Fixtures.shared.worker()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            _ = try await worker.execute("for _ in range(1000):\n    echo_async('ping')", timeout: nil)
        }
        benchmark.stopMeasurement()
    }

    Benchmark("40 MB ASCII string into a worker", configuration: .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(5))) { benchmark in
        let worker = try await Fixtures.shared.worker()
        let text = Fixtures.fortyMegabytes
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await worker.set("big", to: .string(text))
        }
        benchmark.stopMeasurement()
    }

    Benchmark("execute an empty cell in a worker") { benchmark in
        let worker = try await Fixtures.shared.worker()
        for _ in benchmark.scaledIterations {
            _ = try await worker.execute("pass", timeout: nil)
        }
    }
}

actor Fixtures {
    static let shared = Fixtures()
    static let fortyMegabytes = String(repeating: "abcdefghij", count: 4_000_000)
    private var cached: PythonNamespace?
    private var cachedSandboxed: PythonNamespace?
    private var cachedWorker: PythonWorker?
    private var cachedPool: PythonWorkerPool?
    static let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-bench-scratch").path
    static var workerConfiguration: PythonWorker.Configuration {
        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        return PythonWorker.Configuration(
            scratch: scratch,
            executable: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../../.build/release/rlm-worker").standardizedFileURL.path)
    }

    func sandboxed() async throws -> PythonNamespace {
        if let cachedSandboxed { return cachedSandboxed }
        try? FileManager.default.createDirectory(atPath: Self.scratch, withIntermediateDirectories: true)
        let namespace = try await PythonNamespace(configuration: .init(sandbox: PythonSandbox(writablePaths: [Self.scratch])))
        try await namespace.install(NativeFunction(name: "echo_async", async: { arguments in arguments.positional.first ?? .none }))
        cachedSandboxed = namespace
        return namespace
    }

    func worker() async throws -> PythonWorker {
        if let cachedWorker { return cachedWorker }
        let worker = try await PythonWorker.start(configuration: Self.workerConfiguration)
        try await worker.install(NativeFunction(name: "echo_async", async: { arguments in arguments.positional.first ?? .none }))
        cachedWorker = worker
        return worker
    }

    func pool() -> PythonWorkerPool {
        if let cachedPool { return cachedPool }
        let pool = PythonWorkerPool(configuration: .init(worker: Self.workerConfiguration, size: 2))
        cachedPool = pool
        return pool
    }

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
