import Foundation
import Synchronization
import Testing

@testable import PythonRuntime

/// Hammer tests for the stop machinery: each one failed (or hung) before the fix it guards.
@Suite("Stops reach the right execution, under load")
struct ExecutionControlTests {
    /// Cells that spin in C calls holding the GIL (`sum(range(work))`, milliseconds each) until
    /// stopped, so that every other thread waits for the GIL.
    struct Spinners {
        let namespaces: [PythonNamespace]
        let tasks: [Task<ExecutionResult, any Error>]

        init(count: Int, work: Int) async throws {
            var namespaces: [PythonNamespace] = []
            for _ in 0..<count { namespaces.append(try await PythonNamespace()) }
            self.namespaces = namespaces
            tasks = namespaces.map { namespace in
                Task { try await namespace.execute("while True:\n    sum(range(\(work)))", timeout: .seconds(600)) }
            }
        }

        func stop() async {
            for task in tasks { task.cancel() }
            for task in tasks { _ = try? await task.value }
            for namespace in namespaces { await namespace.close() }
        }
    }

    @Test("a stop reaches a cell that keeps starting threads: timed out, never abandoned")
    func stopReachesThreadStartingCells() async throws {
        // On CPython 3.11 a new thread's state sits at the head of the list with its parent's id
        // until the thread runs, so a stop aimed by thread id landed on the child: the child died
        // before signalling that it had started, and the parent waited for it forever. The grace
        // period only tells "forever" from "slow": beside tests that hold the GIL, a stop can take
        // a few seconds to win enough turns of it.
        try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<5 {
                group.addTask {
                    var failures: [String] = []
                    for round in 0..<10 {
                        let namespace = try await PythonNamespace(configuration: .init(stopGracePeriod: .seconds(30)))
                        let result = try await namespace.execute(
                            "import threading\nwhile True:\n    threading.Thread(target=int).start()", timeout: .milliseconds(30))
                        if result.status != .timedOut { failures.append("round \(round): \(result.status)") }
                        await namespace.close()
                    }
                    return failures
                }
            }
            var failures: [String] = []
            for try await batch in group { failures += batch }
            #expect(failures.isEmpty, "\(failures.count) of 50 cells were not stopped: \(failures)")
        }
    }

    @Test("a cell's deadline counts from its first line, not from its wait for the GIL")
    func deadlineCountsFromTheFirstLine() async throws {
        // A cell that waits 100 ms for the GIL before its first line, with a 20 ms deadline: when
        // the deadline counted from before that wait, the stop came before `n = 0` ran and the
        // next cell failed with NameError (the stubborn-loop flake under load).
        var configuration = PythonNamespace.Configuration(stopGracePeriod: .seconds(60))
        configuration.pauseBeforeFirstLine = .milliseconds(100)
        let namespace = try await PythonNamespace(configuration: configuration)
        for round in 0..<5 {
            let base = round * 1_000_000_000
            let stopped = try await namespace.execute("n = \(base)\nwhile True:\n    n += 1", timeout: .milliseconds(20))
            #expect(stopped.status == .timedOut)
            let after = try await namespace.execute("print(n > \(base))")
            #expect(after.stdout == "True\n", "round \(round): \(after.status) \(after.error?.message ?? "")")
        }
        await namespace.close()
    }

    @Test("stop rounds beside busy namespaces never deadlock", .timeLimit(.minutes(10)))
    func stopRoundsNeverDeadlock() async throws {
        // A cell that ends with a stop still pending takes it by running bytecode, which can hand
        // the GIL to the interrupter; while the ending thread held the control lock, the
        // interrupter then waited on that lock with the GIL held, and the process hung. With a
        // 10 s grace period, a stop that took longer than that shows as abandoned.
        let spinners = try await Spinners(count: 3, work: 100_000)
        // 1,000 rounds as 4 stoppers of 250: overlapping stops share the interrupter's rounds.
        let statuses = try await withThrowingTaskGroup(of: [ExecutionResult.Status: Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    let namespace = try await PythonNamespace(configuration: .init(stopGracePeriod: .seconds(10)))
                    var statuses: [ExecutionResult.Status: Int] = [:]
                    for _ in 0..<250 {
                        let result = try await namespace.execute(
                            "while True:\n    try:\n        sum(range(1000))\n    except BaseException:\n        pass",
                            timeout: .milliseconds(5))
                        statuses[result.status, default: 0] += 1
                    }
                    await namespace.close()
                    return statuses
                }
            }
            return try await group.reduce(into: [:]) { $0.merge($1, uniquingKeysWith: +) }
        }
        await spinners.stop()
        #expect(statuses == [.timedOut: 1_000])
    }
}

extension ExecutionControlTests {
    @Test("trivial cells beside cells being stopped keep their own values and output")
    func trivialCellsBesideStops() async throws {
        // What a server sees: most runs do ordinary work while some are stopped (deadlines,
        // cancellations, code that starts threads). A stop that lands on the wrong execution shows
        // up here as a trivial cell that was interrupted, printed nothing or lost its value.
        let stopping = Task {
            for round in 0..<60 {
                // A fresh namespace each round: an abandoned one refuses further work.
                let namespace = try await PythonNamespace(configuration: .init(stopGracePeriod: .seconds(3)))
                let code = round.isMultiple(of: 2)
                    ? "import threading\nwhile True:\n    threading.Thread(target=int).start()"
                    : "n = 0\nwhile True:\n    try:\n        n += 1\n    except BaseException:\n        pass"
                _ = try await namespace.execute(code, timeout: .milliseconds(3))
                await namespace.close()
            }
        }
        let failures = try await withThrowingTaskGroup(of: [String].self) { group in
            for worker in 0..<6 {
                group.addTask {
                    var failures: [String] = []
                    for round in 0..<150 {
                        let index = worker * 1_000 + round
                        let namespace = try await PythonNamespace()
                        let result = try await namespace.execute("x = \(index)\nprint(x)")
                        let value = try await namespace.value(of: "x")
                        if result.stdout != "\(index)\n" || value != .int(index) {
                            failures.append(
                                "cell \(index): \(result.status), stdout \(result.stdout.debugDescription), x \(value.map { "\($0)" } ?? "unbound"), "
                                    + "error \(result.error.map { "\($0.typeName): \($0.message)\n\($0.traceback)" } ?? "none")")
                        }
                        await namespace.close()
                    }
                    return failures
                }
            }
            var failures: [String] = []
            for try await batch in group { failures += batch }
            return failures
        }
        try await stopping.value
        #expect(failures.isEmpty, "\(failures.count) of 900 cells went wrong: \(failures.prefix(5))")
    }
}

extension ExecutionControlTests {
    @Test("cells compile while finalizers elsewhere hand the GIL over in the middle of other compilations")
    func compilationBesideYieldingFinalizers() async throws {
        // CPython 3.11 keeps the AST converter's recursion depth per interpreter: a conversion
        // interleaved with another thread's failed with "AST constructor recursion depth
        // mismatch", and the cell with it.
        try await CollectorTurns.exclusively { try await compilesBesideYieldingFinalizers() }
    }

    private func compilesBesideYieldingFinalizers() async throws {
        let collector = try await PythonNamespace()
        let collecting = Task {
            try await collector.execute("""
                import gc, time
                class Yielding:
                    # Counted while alive, for CollectorTurns. The sleep is bound now: cycles still
                    # waiting when the namespace is closed are finalized after its globals are gone.
                    def __init__(self, live=__import__('sys').modules.setdefault('rlm_test_yielding', [0])):
                        live[0] += 1
                    def __del__(self, sleep=time.sleep, live=__import__('sys').modules.setdefault('rlm_test_yielding', [0])):
                        sleep(0)
                        live[0] -= 1
                # Cycles left for the automatic collector, which other threads' allocations (the
                # AST converter's among them) trigger.
                while True:
                    a, b = Yielding(), Yielding()
                    a.other, b.other = b, a
                    del a, b
                    time.sleep(0.0005)
                """, timeout: .seconds(600))
        }
        let body = (0..<40).map { "v\($0) = [i * \($0) for i in range(3) if i % 2 == 0] or {'k': (\($0), [\($0)])}" }.joined(separator: "\n")
        let failures = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    let namespace = try await PythonNamespace()
                    var failures: [String] = []
                    for round in 0..<150 {
                        let result = try await namespace.execute(body + "\nprint(\(round))")
                        if result.stdout != "\(round)\n" { failures.append("\(result.status): \(result.error?.message ?? "")") }
                    }
                    await namespace.close()
                    return failures
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        collecting.cancel()
        _ = try? await collecting.value
        await collector.close()
        #expect(failures.isEmpty, "\(failures.count) of 600 cells failed: \(failures.prefix(3))")
    }
}

/// The interpreter has one cyclic collector, and `gc.collect()` does nothing while a collection
/// is under way on another thread. A test that keeps collections open (finalizers that hand the
/// GIL over) and a test that needs `gc.collect()` to collect take turns through this.
enum CollectorTurns {
    private static let state = Mutex((busy: false, waiters: [CheckedContinuation<Void, Never>]()))

    static func exclusively<T>(_ body: () async throws -> T) async rethrows -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state -> Bool in
                guard state.busy else { state.busy = true; return true }
                state.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
        defer {
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard !state.waiters.isEmpty else { state.busy = false; return nil }
                return state.waiters.removeFirst()
            }
            next?.resume()
        }
        let result: T
        do {
            result = try await body()
        } catch {
            await collectYieldingGarbage()
            throw error
        }
        await collectYieldingGarbage()
        return result
    }

    /// Collects the cycles a turn's test left behind whose finalizers hand the GIL over (its
    /// `Yielding` objects, which count themselves while alive: scanning `gc.get_objects()`
    /// instead referenced every object for a moment, and a concurrent test's refcount moved by
    /// one) before the next test runs. Left to the next automatic collection, a
    /// hundred of them held the collector (one for the whole interpreter) for seconds beside
    /// CPU hogs, and a test that needed its own garbage collected meanwhile saw none of it
    /// finalized (`StopLifetimeTests`, in stress runs).
    private static func collectYieldingGarbage() async {
        guard let namespace = try? await PythonNamespace() else { return }
        _ = try? await namespace.execute("""
            import gc, sys, time
            live = sys.modules.setdefault('rlm_test_yielding', [0])
            for _ in range(1000):
                gc.collect()
                if live[0] <= 0:
                    break
                time.sleep(0.01)
            """)
        await namespace.close()
    }
}
