import Foundation
import Synchronization
import Testing

@testable import PythonRuntime

/// Every suite shares the one interpreter and the one thread pool of the test process.
@Suite("The Python thread pool")
struct PythonThreadPoolTests {
    @Test("idle namespaces hold no thread: 500 live namespaces that have each run a cell")
    func idleNamespacesHoldNoThread() async throws {
        let before = PythonThreadPool.shared.threadCount
        var namespaces: [PythonNamespace] = []
        for index in 0..<500 {
            let namespace = try await PythonNamespace()
            let result = try await namespace.execute("x = \(index)\nprint(x)")
            #expect(result.stdout == "\(index)\n", "cell \(index): \(result.status), stdout \(result.stdout.debugDescription), stderr \(result.stderr.debugDescription), error \(result.error.map { "\($0.typeName): \($0.message)\n\($0.traceback)" } ?? "none")")
            namespaces.append(namespace)
        }
        // One thread per namespace would be 500 more. The pool grows to the most jobs that ran at
        // once in the whole process, and other tests (one holds 40 cells waiting together) run
        // beside this one.
        #expect(PythonThreadPool.shared.threadCount - before < 250)
        for (index, namespace) in namespaces.enumerated() {
            let value = try await namespace.value(of: "x")
            #expect(value == .int(index), "namespace \(index): x is \(value.map { "\($0)" } ?? "unbound")")
            await namespace.close()
        }
    }

    @Test("context variables are the namespace's own: decimal's context stays with the code that set it")
    func contextVariablesStayWithTheirNamespace() async throws {
        let first = try await PythonNamespace()
        let second = try await PythonNamespace()
        _ = try await first.execute("import decimal\ndecimal.getcontext().prec = 3")
        for _ in 0..<20 {
            #expect(try await second.execute("import decimal\nprint(decimal.getcontext().prec)").stdout == "28\n")
            #expect(try await first.execute("print(decimal.getcontext().prec)").stdout == "3\n")
        }
        await first.close()
        await second.close()
    }

    @Test("many namespaces waiting in native calls at once each get a thread; none waits for another")
    func waitingJobsDoNotStarveOthers() async throws {
        // Each cell waits until all have started: a pool that did not grow for waiting jobs
        // would never start the last ones.
        let count = 40
        let arrived = Mutex(0)
        let namespaces = try await (0..<count).asyncMap { _ in try await PythonNamespace() }
        for namespace in namespaces {
            try await namespace.install(NativeFunction(name: "rendezvous", async: { _ in
                arrived.withLock { $0 += 1 }
                while arrived.withLock({ $0 }) < count { try await Task.sleep(for: .milliseconds(5)) }
                return .bool(true)
            }))
        }
        let results = try await withThrowingTaskGroup(of: String.self) { group in
            for namespace in namespaces {
                group.addTask { try await namespace.execute("print(rendezvous())").stdout }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results == Array(repeating: "True\n", count: count))
        for namespace in namespaces { await namespace.close() }
    }
}

/// The most of something at once.
private final class Peak: Sendable {
    private let state = Mutex((now: 0, most: 0))
    func enter() { state.withLock { $0.now += 1; $0.most = max($0.most, $0.now) } }
    func leave() { state.withLock { $0.now -= 1 } }
    var most: Int { state.withLock { $0.most } }
}

/// Runs `body`, or fails after `limit` (a pool that deadlocks must fail the test, not hang it).
private func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask { try await Task.sleep(for: limit); return nil }
        let first = try await group.next()!
        group.cancelAll()
        return first
    }
}

/// Tests that change a level's thread limit use levels 10 to 13, which nothing else uses.
@Suite("Thread limits per level")
struct ThreadLimitTests {
    @Test("a level's limit bounds its jobs, and parents waiting on children at the next level never take the children's threads")
    func limitsPerLevelDoNotDeadlock() async throws {
        let pool = PythonThreadPool.shared
        pool.setLimit(2, level: 12)
        pool.setLimit(2, level: 13)
        defer {
            pool.setLimit(PythonThreads.defaultLimitPerLevel, level: 12)
            pool.setLimit(PythonThreads.defaultLimitPerLevel, level: 13)
        }
        let parents = Peak()
        let children = Peak()
        let count = 6
        let results = try await within(.seconds(120)) {
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<count {
                    group.addTask {
                        let parent = try await PythonNamespace(configuration: .init(level: 12))
                        let child = try await PythonNamespace(configuration: .init(level: 13))
                        try await child.install(NativeFunction(name: "hold", async: { _ in
                            children.enter()
                            try await Task.sleep(for: .milliseconds(20))
                            children.leave()
                            return .int(index)
                        }))
                        // The parent's cell waits, holding its thread, on a cell of the child's.
                        try await parent.install(NativeFunction(name: "ask_child", async: { _ in
                            parents.enter()
                            defer { parents.leave() }
                            let answer = try await child.execute("print(hold() * 10)", timeout: .seconds(60))
                            return .string(answer.stdout)
                        }))
                        let result = try await parent.execute("print(ask_child().strip())", timeout: .seconds(60))
                        await parent.close()
                        await child.close()
                        return result.stdout
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        let answers = try #require(results, "the parents and children deadlocked")
        #expect(answers.sorted() == (0..<count).map { "\($0 * 10)\n" }.sorted())
        #expect(parents.most <= 2 && parents.most >= 1)
        #expect(children.most <= 2 && children.most >= 1)
    }

    @Test("a lane that gets a job while its last one ends is never counted twice: 16 namespaces, 400 tiny jobs each")
    func busyCountsDoNotCreep() async throws {
        // A lane rescheduled between its job's end and the pool taking back that job's thread
        // was once taken by a second thread while still counted for the first, and one of the two
        // counts was never given back: the level's count crept up until it ran out of threads.
        let pool = PythonThreadPool.shared
        pool.setLimit(8, level: 10)
        defer { pool.setLimit(PythonThreads.defaultLimitPerLevel, level: 10) }
        let namespaces = try await (0..<16).asyncMap { _ in try await PythonNamespace(configuration: .init(level: 10)) }
        let sums = try await within(.seconds(60)) {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for namespace in namespaces {
                    group.addTask {
                        var sum = 0
                        for index in 0..<400 { sum += try await namespace.evaluate("\(index) + 1").intValue ?? 0 }
                        return sum
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        #expect(try #require(sums, "the level ran out of threads") == Array(repeating: 80_200, count: 16))
        // Every job has ended, so none may still hold a thread of level 10 (a moment for the
        // last thread to take its job's thread back after resuming the caller).
        var held = pool.heldThreads(level: 10)
        for _ in 0..<100 where held != 0 {
            try await Task.sleep(for: .milliseconds(10))
            held = pool.heldThreads(level: 10)
        }
        #expect(held == 0)
        for namespace in namespaces { await namespace.close() }
    }

    @Test("jobs that block without a native call (sleeps, locks) do not hold back the others: 3 × activeLimit sleeping cells run together")
    func blockedJobsDoNotStarveOthers() async throws {
        // Only activeLimit jobs run Python at once, but a job that has held its thread for a
        // moment without waiting in a native call counts as stuck, and another may start.
        // Each cell sleeps (no native call) until all have arrived: run in turns of
        // activeLimit, the first ones would wait for the last for good (here: give up after
        // 60 s, a bound for a hang, not a timing).
        let count = 3 * PythonThreads.activeLimit
        let barrier = "rlm_barrier_\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
        let namespaces = try await (0..<count).asyncMap { _ in try await PythonNamespace() }
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for namespace in namespaces {
                group.addTask {
                    try await namespace.execute("""
                        import sys, time
                        arrived = sys.modules.setdefault('\(barrier)', [])
                        arrived.append(1)
                        end = time.monotonic() + 60
                        while len(arrived) < \(count) and time.monotonic() < end:
                            time.sleep(0.01)
                        print(len(arrived))
                        """, timeout: .seconds(120)).stdout
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outputs == Array(repeating: "\(count)\n", count: count))
        for namespace in namespaces { await namespace.close() }
    }

    @Test("a job stuck in code that cannot be stopped no longer counts against its level")
    func abandonedJobFreesItsSlot() async throws {
        let pool = PythonThreadPool.shared
        pool.setLimit(1, level: 11)
        defer { pool.setLimit(PythonThreads.defaultLimitPerLevel, level: 11) }
        let stuck = try await PythonNamespace(configuration: .init(stopGracePeriod: .milliseconds(300), level: 11))
        let result = try await stuck.execute(
            "import threading\nlock = threading.Lock()\nlock.acquire()\nlock.acquire()", timeout: .milliseconds(100))
        #expect(result.status == .abandoned)
        // With the stuck job still counted, level 11's only slot would be taken for good.
        let output = try await within(.seconds(120)) {
            let next = try await PythonNamespace(configuration: .init(level: 11))
            let output = try await next.execute("print('ran')", timeout: .seconds(60)).stdout
            await next.close()
            return output
        }
        #expect(output == "ran\n")
    }
}

extension Sequence where Element: Sendable {
    fileprivate func asyncMap<T: Sendable>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var values: [T] = []
        for element in self { values.append(try await transform(element)) }
        return values
    }
}
