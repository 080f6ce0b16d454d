import CPython
import Foundation
import Synchronization
import Testing

@testable import PythonRuntime

@Suite("References")
struct ReferenceTests {
    @Test("reference counts stay flat over 100k conversions")
    func conversionsDoNotLeak() async throws {
        let namespace = try await PythonNamespace()
        _ = try await namespace.execute("import sys\nprobe = 'a probe string ' * 3\nitems = [probe, 1, 2.5, None, b'x']")
        let counts: (Int, Int, Int, Int) = try await namespace.withGIL { gil, globals in
            let probe = PythonObject(borrowing: PyDict_GetItemString(globals.pointer, "probe")!)
            let items = PythonObject(borrowing: PyDict_GetItemString(globals.pointer, "items")!)
            let sys = try checked(PyImport_ImportModule("sys"), gil)
            let allocated = try sys.attribute("getallocatedblocks", gil)
            let before = probe.referenceCount(gil)
            // Blocks are counted process-wide, so only count them while this thread holds the GIL
            // (no other thread can allocate then), and let other threads run between segments.
            // The cyclic collector is off within a segment: a collection started by these
            // allocations would run finalizers left by other threads, and one that sleeps or does
            // I/O hands the GIL over in the middle of the count. It is back on before the GIL is
            // let go, so no other thread ever sees it off.
            var growth = 0
            for segment in 0..<100 {
                let collectorWasOn = PyGC_Disable() != 0
                do {
                    defer { if collectorWasOn { PyGC_Enable() } }
                    let blocksBefore = try Int(try allocated.call([], gil), gil)
                    for index in 0..<1_000 {
                        let text = try String(probe, gil)
                        let back = try text.makePythonObject(gil)
                        let value = try PythonValue(items, gil)
                        let object = try value.makePythonObject(gil)
                        let number = try (segment * 1_000 + index).makePythonObject(gil)
                        _ = (back, object, number)
                    }
                    growth += try Int(try allocated.call([], gil), gil) - blocksBefore
                }
                _ = gil.allowThreads { usleep(500) }
            }
            return (before, probe.referenceCount(gil), 0, growth)
        }
        #expect(counts.0 == counts.1)
        // Allowing for interpreter caches; a leak of one block per iteration would be 100k or more.
        #expect(abs(counts.3 - counts.2) < 1_000, "blocks grew by \(counts.3) over 100k conversions")
        await namespace.close()
    }

    @Test("reference counts stay flat over 100k native calls")
    func callsDoNotLeak() async throws {
        let namespace = try await PythonNamespace()
        try await namespace.install(NativeFunction(name: "echo") { arguments in
            .list(arguments.positional + arguments.keywords.map(\.value))
        })
        let result = try await namespace.execute("""
            import sys
            arg = ['payload', 1, {'k': 'v'}]
            def loop(n):
                for i in range(n):
                    out = echo(arg, i, key='word')
                    assert out[0] == arg and out[1] == i and out[2] == 'word'
            loop(1000)
            before_ref = sys.getrefcount(arg)
            loop(100_000)
            deltas = []
            for _ in range(4):
                before_blocks = sys.getallocatedblocks()
                loop(100_000)
                deltas.append(sys.getallocatedblocks() - before_blocks)
            print(sys.getrefcount(arg) - before_ref, *deltas)
            """)
        #expect(result.status == .completed, "\(result.error?.traceback ?? "")")
        let numbers = result.stdout.split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .max }
        #expect(numbers.count == 5)
        #expect(numbers.first == 0)
        print("allocated-block deltas per 100k calls:", numbers.dropFirst())
        // Blocks are counted process-wide, and other tests' threads allocate and free while this
        // loop runs: in full runs the smallest of the four windows has been seen from -512 to
        // +2,649, so a bound of 1,000 failed full runs now and then. A leaked object leaks at
        // least one block, so a leak on the call path adds at least 100k to every window; a
        // quarter of that tells it from the noise with room on both sides. The reference count
        // of `arg` above is the exact check.
        #expect((numbers.dropFirst().min() ?? .max) < 25_000)
        await namespace.close()
    }

    @Test("an object dropped without the GIL is released at the next acquisition")
    func deferredRelease() async throws {
        let namespace = try await PythonNamespace()
        _ = try await namespace.execute("import sys\nprobe = object()")
        let before: Int = try await namespace.withGIL { gil, globals in
            PythonObject(borrowing: PyDict_GetItemString(globals.pointer, "probe")!).referenceCount(gil)
        }
        // Take a reference with the GIL, then drop it on a thread that does not hold it.
        final class Holder: @unchecked Sendable { var object: PythonObject? }
        let holder = Holder()
        try await namespace.withGIL { _, globals in
            holder.object = PythonObject(borrowing: PyDict_GetItemString(globals.pointer, "probe")!)
        }
        let dropped = Thread { holder.object = nil }
        dropped.start()
        while !dropped.isFinished { try await Task.sleep(for: .milliseconds(5)) }
        let after: Int = try await namespace.withGIL { gil, globals in
            PythonObject(borrowing: PyDict_GetItemString(globals.pointer, "probe")!).referenceCount(gil)
        }
        #expect(after == before)
        await namespace.close()
    }

    @Test("whether a thread holds the GIL is told by its own thread state, on every kind of thread")
    func holdsGIL() async throws {
        // PythonObject's release relies on it: PyGILState_Check() answers yes on every thread
        // once any sub-interpreter exists, and a release without the GIL then races.
        let namespace = try await PythonNamespace()
        let (held, released) = try await namespace.withGIL { gil, _ in
            (rlm_holds_gil(), gil.allowThreads { rlm_holds_gil() })
        }
        #expect(held == 1)
        #expect(released == 0)
        let elsewhere = Mutex<Int32>(-1)
        let thread = Thread { elsewhere.withLock { $0 = rlm_holds_gil() } }
        thread.start()
        while !thread.isFinished { try await Task.sleep(for: .milliseconds(5)) }
        #expect(elsewhere.withLock { $0 } == 0)
        await namespace.close()
    }
}
