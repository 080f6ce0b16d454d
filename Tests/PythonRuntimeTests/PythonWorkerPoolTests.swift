import Foundation
import PythonRuntime
import Testing

@Suite("Warm worker pools", .enabled(if: workersRun))
struct PythonWorkerPoolTests {
    /// A pool under a directory of its own, removed afterwards.
    static func withPool(size: Int, _ body: (PythonWorkerPool, URL) async throws -> Void) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-pool-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let pool = PythonWorkerPool(configuration: .init(worker: .init(scratch: root.path, memoryLimitBytes: 2 << 30), size: size))
        try await body(pool, root)
        await pool.shutdown()
    }

    /// Waits (up to a minute: starting a worker takes tens of milliseconds, more under load) until
    /// `ready` workers wait in the pool.
    static func waitUntilReady(_ pool: PythonWorkerPool, _ ready: Int) async throws {
        let clock = ContinuousClock()
        let limit = clock.now + .seconds(60)
        while pool.statistics.ready < ready {
            guard clock.now < limit else { throw PythonError(code: .initialization, message: "the pool never had \(ready) ready") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test("a ready worker is handed over confined to its own scratch directory, used once, and replaced")
    func handover() async throws {
        try await Self.withPool(size: 2) { pool, root in
            try await Self.waitUntilReady(pool, 2)
            let first = try await pool.acquire()
            let second = try await pool.acquire()
            #expect(pool.statistics.warm == 2)
            #expect(pool.statistics.cold == 0)
            #expect(first.worker.processID != second.worker.processID)
            #expect(first.scratch != second.scratch)
            #expect(first.scratch.hasPrefix(root.path + "/"))
            let own = try await first.worker.execute("""
                open('\(first.scratch)/note.txt', 'w').write('mine')
                try:
                    open('\(second.scratch)/note.txt', 'w').write('theirs')
                    print('wrote another worker\\'s directory')
                except (PermissionError, OSError) as error:
                    print('refused')
                """, timeout: .seconds(30))
            #expect(own.status == .completed, "\(own.error?.traceback ?? "")")
            #expect(own.stdout == "refused\n")
            #expect(FileManager.default.fileExists(atPath: first.scratch + "/note.txt"))
            #expect(!FileManager.default.fileExists(atPath: second.scratch + "/note.txt"))
            // The pool fills up again in the background.
            try await Self.waitUntilReady(pool, 2)
            for lease in [first, second] {
                await lease.worker.close()
                try? FileManager.default.removeItem(atPath: lease.scratch)
            }
        }
    }

    @Test("a ready worker that died while it waited is never handed over")
    func deadWorkersAreDiscarded() async throws {
        try await Self.withPool(size: 1) { pool, _ in
            try await Self.waitUntilReady(pool, 1)
            // Kill the idle worker from outside, and wait until the host has reaped it.
            let idle = try #require(pool.readyWorkers.first)
            kill(idle.processID, SIGKILL)
            while !idle.hasEnded { try await Task.sleep(for: .milliseconds(2)) }
            let fresh = try await pool.acquire()
            #expect(fresh.worker.processID != idle.processID)
            let result = try await fresh.worker.execute("print(6 * 7)", timeout: .seconds(30))
            #expect(result.stdout == "42\n")
            #expect(pool.statistics.discarded + pool.statistics.cold >= 1)
            await fresh.worker.close()
        }
    }

    @Test("after shutdown the ready workers are gone and acquire fails with a clear error")
    func shutdown() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-pool-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let pool = PythonWorkerPool(configuration: .init(worker: .init(scratch: root.path, memoryLimitBytes: 2 << 30), size: 1))
        try await Self.waitUntilReady(pool, 1)
        await pool.shutdown()
        #expect(pool.statistics.ready == 0)
        // Their scratch directories are removed with them.
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).isEmpty)
        await #expect(throws: PythonError.self) { _ = try await pool.acquire() }
    }

}
