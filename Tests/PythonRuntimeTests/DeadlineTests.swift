import Foundation
import PythonRuntime
import Testing

@Suite("Deadlines and cancellation")
struct DeadlineTests {
    /// Stopping is prompt (benchmarks measure how prompt); this bound only tells a stop from
    /// the 5-second abandonment path, with room for a loaded 2-core machine.
    static let stopBound: Duration = .seconds(4)

    @Test(
        "runaway loops are stopped by their deadline",
        arguments: [
            "while True: pass",
            "while True:\n    try:\n        pass\n    except Exception:\n        pass",
            "while True:\n    try:\n        x = sum(range(100))\n    except BaseException:\n        pass",
            "import time\ntime.sleep(60)",
            "def f(n):\n    return f(n + 1) if n < 500 else f(0)\nwhile True:\n    try:\n        f(0)\n    except BaseException:\n        continue",
        ])
    func runawayLoop(code: String) async throws {
        let namespace = try await PythonNamespace()
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await namespace.execute(code, timeout: .milliseconds(200))
        let elapsed = clock.now - start
        #expect(result.status == .timedOut)
        #expect(result.error?.code == .timedOut)
        #expect(elapsed < .milliseconds(200) + Self.stopBound)
        // The namespace is still usable afterwards.
        let after = try await namespace.execute("print('alive')")
        #expect(after.stdout == "alive\n")
        #expect(after.status == .completed)
        await namespace.close()
    }

    @Test("code that finishes in time is not affected by its deadline")
    func withinDeadline() async throws {
        let namespace = try await PythonNamespace()
        let result = try await namespace.execute("print(sum(range(1000)))", timeout: .seconds(5))
        #expect(result.status == .completed)
        #expect(result.stdout == "499500\n")
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await namespace.execute("'ok'").stdout == "'ok'\n")
        await namespace.close()
    }

    @Test("task cancellation stops running code")
    func cancellation() async throws {
        let namespace = try await PythonNamespace()
        let task = Task { try await namespace.execute("while True:\n    try: pass\n    except BaseException: pass") }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(try await namespace.execute("'after'").stdout == "'after'\n")
        await namespace.close()
    }

    @Test("cancellation wakes a native call that is waiting")
    func cancellationWakesCallback() async throws {
        let namespace = try await PythonNamespace()
        let started = AsyncStream<Void>.makeStream()
        try await namespace.install(NativeFunction(name: "wait_forever", async: { _ in
            started.continuation.yield()
            try await Task.sleep(for: .seconds(3600))
            return .none
        }))
        let task = Task { try await namespace.execute("wait_forever()") }
        var iterator = started.stream.makeAsyncIterator()
        _ = await iterator.next()
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        await namespace.close()
    }

    @Test("a deadline also ends a waiting native call")
    func deadlineWakesCallback() async throws {
        let namespace = try await PythonNamespace()
        try await namespace.install(NativeFunction(name: "slow", async: { _ in
            try await Task.sleep(for: .seconds(3600))
            return .none
        }))
        let result = try await namespace.execute("try:\n    slow()\nexcept Exception:\n    print('swallowed')", timeout: .milliseconds(200))
        #expect(result.status == .timedOut)
        #expect(!result.stdout.contains("swallowed"))
        await namespace.close()
    }
}

@Suite("Threads and the GIL")
struct GILWaitTests {
    @Test("creating namespaces while another thread holds the GIL never blocks Swift's cooperative threads", .timeLimit(.minutes(1)))
    func creationDoesNotBlockCooperativeThreads() async throws {
        try Python.start()
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let holder = Thread {
            _ = try? Python.withGIL { _ in
                held.signal()
                release.wait()
            }
        }
        holder.start()
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                held.wait()
                continuation.resume()
            }
        }
        // More creations than the cooperative pool has threads: if each blocked its thread until
        // it got the GIL, nothing else could run and the task below would never finish, so the
        // GIL would never be released (the time limit would end the test).
        let count = ProcessInfo.processInfo.activeProcessorCount * 2 + 2
        let creations = (0..<count).map { _ in Task { try await PythonNamespace() } }
        let other = await Task { 42 }.value
        #expect(other == 42)
        release.signal()
        for creation in creations {
            let namespace = try await creation.value
            #expect(try await namespace.execute("print('ok')").stdout == "ok\n")
            await namespace.close()
        }
    }
}
