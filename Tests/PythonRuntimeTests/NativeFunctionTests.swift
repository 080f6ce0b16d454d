import Foundation
import PythonRuntime
import Synchronization
import Testing

@Suite("Native functions")
struct NativeFunctionTests {
    struct Refusal: PythonExceptionConvertible {
        var pythonExceptionTypeName: String { "KeyError" }
        var pythonExceptionMessage: String { "no such key" }
    }

    struct Opaque: Error, CustomStringConvertible {
        var description: String { "opaque failure" }
    }

    @Test("positional and keyword arguments arrive in Swift; results come back")
    func arguments() async throws {
        let namespace = try await PythonNamespace()
        try await namespace.install(NativeFunction(name: "describe", documentation: "Describes its arguments.") { arguments in
            ["positional": .list(arguments.positional), "model": arguments.value(at: 1, named: "model") ?? nil]
        })
        let result = try await namespace.execute("""
            print(describe('p', model='m'))
            print(describe('p', 'q'))
            print(describe.__name__, describe.__doc__)
            """)
        #expect(result.stdout == "{'positional': ['p'], 'model': 'm'}\n{'positional': ['p', 'q'], 'model': 'q'}\ndescribe Describes its arguments.\n")
        await namespace.close()
    }

    @Test("Swift errors become Python exceptions, catchable by type")
    func swiftErrors() async throws {
        let namespace = try await PythonNamespace()
        try await namespace.install(NativeFunction(name: "refuse") { _ in throw Refusal() })
        try await namespace.install(NativeFunction(name: "opaque") { _ in throw Opaque() })
        try await namespace.install(NativeFunction(name: "invalid") { _ in
            throw PythonError(code: .exception, typeName: "ValueError", message: "bad value")
        })
        let result = try await namespace.execute("""
            try:
                refuse()
            except KeyError as e:
                print('KeyError', e)
            try:
                opaque()
            except RuntimeError as e:
                print('RuntimeError', e)
            try:
                invalid()
            except ValueError as e:
                print('ValueError', e)
            opaque()
            """)
        #expect(result.stdout == "KeyError 'no such key'\nRuntimeError opaque failure\nValueError bad value\n")
        #expect(result.status == .failed)
        #expect(result.error?.typeName == "RuntimeError")
        #expect(result.error?.traceback.contains("line 13") == true)
        await namespace.close()
    }

    @Test("arguments without a Swift value get a clear TypeError")
    func unconvertibleArgument() async throws {
        let namespace = try await PythonNamespace()
        try await namespace.install(NativeFunction(name: "take") { _ in .none })
        let result = try await namespace.execute("take(1, object())")
        #expect(result.error?.typeName == "TypeError")
        #expect(result.error?.message.contains("take() argument 2") == true)
        await namespace.close()
    }

    @Test("an async native call releases the GIL while it waits")
    func asyncReleasesGIL() async throws {
        let waiting = try await PythonNamespace()
        let other = try await PythonNamespace()
        let entered = AsyncStream<Void>.makeStream()
        let release = AsyncStream<Void>.makeStream()
        try await waiting.install(NativeFunction(name: "block", async: { _ in
            entered.continuation.yield()
            for await _ in release.stream { break }
            return "released"
        }))
        let blocked = Task { try await waiting.execute("print(block())") }
        var iterator = entered.stream.makeAsyncIterator()
        _ = await iterator.next()
        // The other namespace runs Python while the first one waits inside `block()`.
        let work = try await other.execute("print(sum(range(100000)))", timeout: .seconds(60))
        #expect(work.stdout == "4999950000\n")
        release.continuation.yield()
        #expect(try await blocked.value.stdout == "released\n")
        await waiting.close()
        await other.close()
    }

    /// `pthread_self()` as a Python int.
    static func threadID() -> PythonValue { .int(Int(bitPattern: UInt(pthread_self()))) }

    @Test("an async native call runs on the calling Python thread, child tasks included")
    func asyncRunsOnCallingThread() async throws {
        let namespace = try await PythonNamespace()
        try await namespace.install(NativeFunction(name: "thread_id", { _ in Self.threadID() }))
        try await namespace.install(NativeFunction(name: "where", async: { _ in
            let first = Self.threadID()
            try await Task.sleep(for: .milliseconds(10))
            let afterSleep = Self.threadID()
            let children = await withTaskGroup(of: PythonValue.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        await Task.yield()
                        return Self.threadID()
                    }
                }
                return await group.reduce(into: [PythonValue]()) { $0.append($1) }
            }
            return .list([first, afterSleep] + children)
        }))
        let result = try await namespace.execute("""
            me = thread_id()
            print([t == me for t in where()])
            """, timeout: .seconds(60))
        #expect(result.stdout == "[True, True, True, True, True, True]\n", "\(result.error?.traceback ?? "")")
        await namespace.close()
    }

    @Test("work left over when a waiting call is stopped still runs, elsewhere", .timeLimit(.minutes(1)))
    func stoppedCallFinishesElsewhere() async throws {
        let namespace = try await PythonNamespace(configuration: .init(stopGracePeriod: .seconds(120)))
        let entered = AsyncStream<Void>.makeStream()
        let finished = AsyncStream<Bool>.makeStream()
        let released = Mutex(false)
        // A sync function runs on the namespace's thread: its answer is that thread's id.
        try await namespace.install(NativeFunction(name: "thread_id", { _ in Self.threadID() }))
        try await namespace.install(NativeFunction(name: "stubborn", async: { arguments in
            let pythonThread = arguments.positional.first ?? .none
            entered.continuation.yield()
            // Ignores cancellation: waits in slices that cannot be cancelled until the test has
            // seen the cell stopped, then reports.
            while !released.withLock({ $0 }) {
                await withUnsafeContinuation { continuation in
                    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(10)) { continuation.resume() }
                }
            }
            finished.continuation.yield(Self.threadID() != pythonThread)
            return .none
        }))
        // Stopped by cancellation once the call is under way (a deadline could pass before a
        // loaded machine even starts the cell, and then there would be no call to finish).
        let execution = Task { try await namespace.execute("stubborn(thread_id())") }
        var enteredIterator = entered.stream.makeAsyncIterator()
        _ = await enteredIterator.next()
        execution.cancel()
        await #expect(throws: CancellationError.self) { try await execution.value }
        released.withLock { $0 = true }
        var iterator = finished.stream.makeAsyncIterator()
        // The rest of the call ran, and not on the namespace's thread, which has moved on.
        #expect(await iterator.next() == true)
        #expect(try await namespace.execute("print('still usable')").stdout == "still usable\n")
        await namespace.close()
    }

    @Test("Python threads can call async native functions concurrently")
    func concurrentCallsFromThreads() async throws {
        let namespace = try await PythonNamespace()
        // Each call waits until four calls are inside Swift at once: only concurrent callers,
        // each waiting with the GIL released, can get there.
        let entered = Mutex(0)
        try await namespace.install(NativeFunction(name: "slow_upper", async: { arguments in
            entered.withLock { $0 += 1 }
            let clock = ContinuousClock()
            let giveUp = clock.now + .seconds(20)
            while entered.withLock({ $0 }) < 4 && clock.now < giveUp {
                try await Task.sleep(for: .milliseconds(5))
            }
            guard entered.withLock({ $0 }) >= 4 else { throw PythonError(code: .exception, typeName: "TimeoutError", message: "calls did not overlap") }
            return .string((arguments.positional.first?.stringValue ?? "").uppercased())
        }))
        let result = try await namespace.execute("""
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(8) as pool:
                print(list(pool.map(slow_upper, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'])))
            """, timeout: .seconds(60))
        #expect(result.stdout == "['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H']\n", "\(result.error?.traceback ?? "")")
        await namespace.close()
    }
}
