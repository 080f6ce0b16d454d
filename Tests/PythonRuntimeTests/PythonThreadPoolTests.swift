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
            #expect(try await namespace.execute("x = \(index)\nprint(x)").stdout == "\(index)\n")
            namespaces.append(namespace)
        }
        // One thread per namespace would be 500 more. The pool grows to the most jobs that ran at
        // once in the whole process, and other tests (one holds 40 cells waiting together) run
        // beside this one.
        #expect(PythonThreadPool.shared.threadCount - before < 250)
        for (index, namespace) in namespaces.enumerated() {
            #expect(try await namespace.value(of: "x") == .int(index))
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

extension Sequence where Element: Sendable {
    fileprivate func asyncMap<T: Sendable>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var values: [T] = []
        for element in self { values.append(try await transform(element)) }
        return values
    }
}
