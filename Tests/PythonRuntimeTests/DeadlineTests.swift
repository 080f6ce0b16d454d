import Foundation
import PythonRuntime
import Testing

@Suite("Deadlines and cancellation")
struct DeadlineTests {
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
        // How promptly is for the stop-latency benchmark. With a grace period far longer than any
        // stop takes on a loaded machine, a timed-out status (not abandoned) says the stop reached
        // the loop.
        let namespace = try await PythonNamespace(configuration: .init(stopGracePeriod: .seconds(120)))
        let result = try await namespace.execute(code, timeout: .milliseconds(200))
        #expect(result.status == .timedOut)
        #expect(result.error?.code == .timedOut)
        // The namespace is still usable afterwards.
        let after = try await namespace.execute("print('alive')")
        #expect(after.stdout == "alive\n")
        #expect(after.status == .completed)
        await namespace.close()
    }

    /// A loop that spends nearly all its time inside importlib, so that stops land there. Tests
    /// run at once, so each re-imports a module of its own that nothing else uses.
    static func importLoop(_ module: String) -> String {
        """
        import sys, importlib
        while True:
            try:
                sys.modules.pop('\(module)', None)
                importlib.import_module('\(module)')
            except BaseException:
                pass
        """
    }

    @Test("a cell stopped in the middle of imports leaves the import machinery working for every thread")
    func stopDuringImports() async throws {
        let configuration = PythonNamespace.Configuration(stopGracePeriod: .seconds(120))
        let importer = try await PythonNamespace(configuration: configuration)
        let other = try await PythonNamespace(configuration: configuration)
        for round in 1...20 {
            let stopped = try await importer.execute(Self.importLoop("colorsys"), timeout: .milliseconds(100))
            #expect(stopped.status == .timedOut, "round \(round)")
            // Other tests import too (the interpreter is shared), so the lock must be seen free once.
            let free = try await importer.execute("""
                import _imp, time
                free = False
                for _ in range(250):
                    if not _imp.lock_held():
                        free = True
                        break
                    time.sleep(0.02)
                print(free)
                """, timeout: .seconds(60))
            #expect(free.stdout == "True\n", "round \(round): the import lock stays held")
            // An import lock left held by the stopped thread would make this wait forever (it
            // would be abandoned after its deadline and grace period instead of completing).
            let fresh = try await other.execute(
                "import sys\nsys.modules.pop('colorsys', None)\nimport colorsys\nprint('imported')", timeout: .seconds(60))
            #expect(fresh.status == .completed && fresh.stdout == "imported\n", "round \(round): \(fresh.status) \(fresh.error?.message ?? "")")
            if fresh.status != .completed { break }
        }
        await importer.close()
        await other.close()
    }

    @Test("a thread blocked for good while being stopped does not keep later stops from landing")
    func blockedThreadDoesNotStallStops() async throws {
        // The stop's exception cannot reach a thread blocked on a lock; left pending, it kept
        // CPython's pending flag raised, and a traced thread then spun at each function entry.
        let blocked = try await PythonNamespace(configuration: .init(stopGracePeriod: .milliseconds(300)))
        let stuck = try await blocked.execute(
            "import threading\nlock = threading.Lock()\nlock.acquire()\nlock.acquire()", timeout: .milliseconds(100))
        // Timed out without starting, if a loaded machine took longer than that to start it.
        #expect(stuck.status == .abandoned || stuck.status == .timedOut)
        let other = try await PythonNamespace(configuration: .init(stopGracePeriod: .seconds(120)))
        let stopped = try await other.execute(Self.importLoop("netrc"), timeout: .milliseconds(100))
        #expect(stopped.status == .timedOut)
        await other.close()
    }

    @Test("code that finishes in time is not affected by its deadline")
    func withinDeadline() async throws {
        let namespace = try await PythonNamespace()
        let result = try await namespace.execute("print(sum(range(1000)))", timeout: .seconds(60))
        #expect(result.status == .completed)
        #expect(result.stdout == "499500\n")
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await namespace.execute("'ok'").stdout == "'ok'\n")
        await namespace.close()
    }

    @Test("task cancellation stops running code")
    func cancellation() async throws {
        let namespace = try await PythonNamespace(configuration: .init(stopGracePeriod: .seconds(120)))
        let task = Task { try await namespace.execute("while True:\n    try: pass\n    except BaseException: pass") }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(try await namespace.execute("'after'").stdout == "'after'\n")
        await namespace.close()
    }

    @Test("cancellation wakes a native call that is waiting")
    func cancellationWakesCallback() async throws {
        // A grace period no loaded machine outlasts: a cancelled, not an abandoned, execution.
        let namespace = try await PythonNamespace(configuration: .init(stopGracePeriod: .seconds(120)))
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
        let namespace = try await PythonNamespace(configuration: .init(stopGracePeriod: .seconds(120)))
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
                // Bounded, so that a failure here cannot stall every other test's Python for good.
                _ = release.wait(timeout: .now() + .seconds(30))
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
