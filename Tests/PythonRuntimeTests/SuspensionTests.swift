import Foundation
import Synchronization
import Testing

@testable import PythonRuntime

/// Cells that give their thread back while a top-level native call waits (CellRun).
///
/// Tests that change a level's thread limit use levels 10 to 13, which nothing else uses.
@Suite("Cells that suspend on native calls")
struct SuspensionTests {
    /// A native function that waits until `release()` (or the task is cancelled).
    final class Gate: Sendable {
        private let state = Mutex((entered: 0, open: false, cancelled: 0))
        var entered: Int { state.withLock { $0.entered } }
        var cancelled: Int { state.withLock { $0.cancelled } }
        func release() { state.withLock { $0.open = true } }

        func function(_ name: String, value: PythonValue = .int(42)) -> NativeFunction {
            NativeFunction(name: name, async: { _ in
                self.state.withLock { $0.entered += 1 }
                do {
                    while !self.state.withLock({ $0.open }) { try await Task.sleep(for: .milliseconds(2)) }
                } catch {
                    self.state.withLock { $0.cancelled += 1 }
                    throw error
                }
                return value
            })
        }

        func waitUntilEntered(_ count: Int = 1) async throws {
            while entered < count { try await Task.sleep(for: .milliseconds(2)) }
        }
    }

    static func slow(_ name: String = "slow") -> NativeFunction {
        NativeFunction(name: name, async: { arguments in
            try await Task.sleep(for: .milliseconds(5))
            return arguments.positional.first ?? .none
        })
    }

    @Test("a suspended cell holds no thread: with one thread for the level, a second namespace runs while the first waits, and each keeps its own output")
    func suspendedCellFreesItsThread() async throws {
        let pool = PythonThreadPool.shared
        pool.setLimit(1, level: 10)
        defer { pool.setLimit(PythonThreads.defaultLimitPerLevel, level: 10) }
        let gate = Gate()
        let waiting = try await PythonNamespace(configuration: .init(level: 10))
        let other = try await PythonNamespace(configuration: .init(level: 10))
        try await waiting.install(gate.function("wait_for_other"))
        try await other.install(NativeFunction(name: "open_gate") { _ in gate.release(); return .none })
        let outputs = try await within(.seconds(120)) {
            async let first = waiting.execute("print('before')\nx = wait_for_other()\nprint('after', x)", timeout: .seconds(60))
            try await gate.waitUntilEntered()
            // A cell that held its thread while waiting would leave none for this one: deadlock.
            let second = try await other.execute("print('other')\nopen_gate()\nprint('opened')", timeout: .seconds(60))
            return (try await first, second)
        }
        let (first, second) = try #require(outputs, "the second namespace never got a thread")
        #expect(first.status == .completed)
        #expect(first.stdout == "before\nafter 42\n")
        #expect(second.stdout == "other\nopened\n")
        #expect(try await waiting.value(of: "x") == .int(42))
        await waiting.close()
        await other.close()
    }

    @Test("top-level calls suspend in loops, branches, comprehensions and with blocks; calls in functions, lambdas and generator expressions wait on their thread; all give the same values")
    func everyPlaceOfACallWorks() async throws {
        let namespace = try await PythonNamespace()
        try await namespace.install(Self.slow())
        let result = try await namespace.execute("""
            import io
            def f(i):
                return slow(i)
            a = [f(i) for i in range(3)]
            b = sum(slow(i) for i in range(3))
            c = (lambda: slow(5))()
            d = [slow(i) for i in range(3)]
            e = {k: slow(k) for k in 'xy'}
            total = 0
            for i in range(4):
                if i % 2:
                    total += slow(i)
            with io.StringIO() as buffer:
                buffer.write(slow('w'))
                w = buffer.getvalue()
            t = slow(*[7])
            print(a, b, c, d, e, total, w, t)
            slow('echoed')
            """, timeout: .seconds(60))
        #expect(result.status == .completed, "\(result.error.map { "\($0.typeName): \($0.message)\n\($0.traceback)" } ?? "")")
        #expect(result.stdout == "[0, 1, 2] 3 5 [0, 1, 2] {'x': 'x', 'y': 'y'} 4 w 7\n'echoed'\n")
        await namespace.close()
    }

    @Test("a rebound name is called as it is now, and code that awaits on its own keeps Python's SyntaxError")
    func reboundNamesAndOwnAwaits() async throws {
        let namespace = try await PythonNamespace()
        try await namespace.install(Self.slow())
        let rebound = try await namespace.execute("slow = lambda i: i * 2\nprint(slow(4))")
        #expect(rebound.stdout == "8\n")
        try await namespace.install(Self.slow())
        let awaiting = try await namespace.execute("x = await slow(1)")
        #expect(awaiting.status == .failed)
        #expect(awaiting.error?.typeName == "SyntaxError")
        await namespace.close()
    }

    @Test("an error from a suspended call is raised at the cell's line, and the traceback shows no bridge frames")
    func errorsPointAtTheCell() async throws {
        let namespace = try await PythonNamespace()
        try await namespace.install(NativeFunction(name: "fail", async: { _ in
            try await Task.sleep(for: .milliseconds(5))
            throw PythonError(code: .exception, typeName: "ValueError", message: "no such chunk")
        }))
        let result = try await namespace.execute("x = 1\ny = fail()\n", timeout: .seconds(60))
        #expect(result.status == .failed)
        let error = try #require(result.error)
        #expect(error.typeName == "ValueError")
        #expect(error.message.contains("no such chunk"))
        #expect(error.traceback.contains("line 2"))
        #expect(error.traceback.contains("y = fail()"))
        #expect(!error.traceback.contains("swift-rlm"))
        #expect(!error.traceback.contains("call_native"))
        // Caught in the cell, it is an ordinary exception.
        let caught = try await namespace.execute("try:\n    fail()\nexcept ValueError as e:\n    print('caught', e)\n")
        #expect(caught.stdout == "caught no such chunk\n")
        await namespace.close()
    }

    @Test("a deadline stops a suspended cell: its call is cancelled, and code that swallows the interruption is stopped on whatever thread it resumed on")
    func deadlineReachesASuspendedCell() async throws {
        let gate = Gate()
        let namespace = try await PythonNamespace()
        try await namespace.install(gate.function("forever"))
        let result = try await namespace.execute("""
            try:
                forever()
            except BaseException:
                print('swallowed')
            while True:
                pass
            """, timeout: .milliseconds(200))
        #expect(result.status == .timedOut)
        #expect(result.stdout == "swallowed\n")
        // The call's task sees its cancellation on its own schedule.
        for _ in 0..<2_500 where gate.cancelled == 0 { try await Task.sleep(for: .milliseconds(2)) }
        #expect(gate.cancelled == 1)
        // The namespace is intact afterwards.
        #expect(try await namespace.execute("print('next')").stdout == "next\n")
        await namespace.close()
    }

    @Test("cancelling the caller of a suspended cell cancels its call and leaves the namespace usable")
    func cancellationReachesASuspendedCell() async throws {
        let gate = Gate()
        let namespace = try await PythonNamespace()
        try await namespace.install(gate.function("forever"))
        let task = Task { try await namespace.execute("forever()\nprint('not reached')", timeout: .seconds(60)) }
        try await gate.waitUntilEntered()
        try await Task.sleep(for: .milliseconds(20))  // well past the suspension delay
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        for _ in 0..<2_500 where gate.cancelled == 0 { try await Task.sleep(for: .milliseconds(2)) }
        #expect(gate.cancelled == 1)
        #expect(try await namespace.execute("print('next')").stdout == "next\n")
        await namespace.close()
    }

    @Test("a namespace's later jobs wait for its suspended cell, as they wait for any cell")
    func laterJobsWaitForTheSuspendedCell() async throws {
        let gate = Gate()
        let namespace = try await PythonNamespace()
        try await namespace.install(gate.function("wait"))
        async let cell = namespace.execute("x = wait()", timeout: .seconds(60))
        try await gate.waitUntilEntered()
        try await Task.sleep(for: .milliseconds(20))
        async let read = namespace.value(of: "x")
        try await Task.sleep(for: .milliseconds(20))
        gate.release()
        // Read before the cell ended, `x` would be unbound.
        #expect(try await read == .int(42))
        #expect(try await cell.status == .completed)
        await namespace.close()
    }

    @Test("a thousand cells at one level with a limit of two threads all wait on their calls at once")
    func manySuspendedCells() async throws {
        let pool = PythonThreadPool.shared
        pool.setLimit(2, level: 11)
        defer { pool.setLimit(PythonThreads.defaultLimitPerLevel, level: 11) }
        let count = 1_000
        let arrived = Atomic<Int>(0)
        let rendezvous = NativeFunction(name: "rendezvous", async: { _ in
            arrived.add(1, ordering: .relaxed)
            while arrived.load(ordering: .relaxed) < count { try await Task.sleep(for: .milliseconds(5)) }
            return .bool(true)
        })
        let results = try await within(.seconds(300)) {
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<count {
                    group.addTask {
                        let namespace = try await PythonNamespace(configuration: .init(level: 11))
                        try await namespace.install(rendezvous)
                        let output = try await namespace.execute("print(rendezvous())", timeout: .seconds(240)).stdout
                        await namespace.close()
                        return output
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        let outputs = try #require(results, "the cells never all waited at once")
        #expect(outputs.count == count)
        let wrong = outputs.filter { $0 != "True\n" }
        #expect(wrong.isEmpty, "\(wrong.count) cells printed something else, such as \(wrong.first.map { $0.debugDescription } ?? "")")
    }
}
