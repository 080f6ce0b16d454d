import RLM
import RLMTesting
import Synchronization
import Testing
#if RLM_TSAN_LOCKS
import PythonRuntime  // its SanitizerMutex is this module's Mutex under ThreadSanitizer
#endif

@Suite("A model-call limiter shared by runs")
struct ModelCallLimiterTests {
    final class Log: Sendable {
        private let storage = Mutex<[String]>([])
        func append(_ item: String) { storage.withLock { $0.append(item) } }
        var items: [String] { storage.withLock { $0 } }
    }

    /// Waits (without sleeping a fixed time) until `condition` holds.
    func until(_ condition: () -> Bool) async {
        while !condition() { await Task.yield() }
    }

    @Test("freed slots go to waiting clients in turn, first come first served within each", .timeLimit(.minutes(1)))
    func roundRobin() async throws {
        let limiter = ModelCallLimiter(maxConcurrentCalls: 1)
        let order = Log()
        let gate = AsyncStream<Void>.makeStream()
        // Hold the only slot while the queues fill.
        let holder = Task {
            try await limiter.withPermit(client: "X", estimatedTokens: 0) {
                for await _ in gate.stream { break }
                return ((), 0)
            }
        }
        await until { limiter.inFlight == 1 }
        var tasks: [Task<Void, any Error>] = []
        for (client, count) in [("A", 4), ("B", 2), ("C", 1)] {
            for index in 1...count {
                let name = "\(client)\(index)"
                let task = Task {
                    try await limiter.withPermit(client: client, estimatedTokens: 0) {
                        order.append(name)
                        return ((), 0)
                    }
                }
                tasks.append(task)
                let queued = tasks.count
                await until { limiter.waiting == queued }
            }
        }
        gate.continuation.yield()
        try await holder.value
        for task in tasks { try await task.value }
        // A's burst arrived first, yet B and C are served between its calls.
        #expect(order.items == ["A1", "B1", "C1", "A2", "B2", "A3", "A4"])
        #expect(limiter.inFlight == 0 && limiter.waiting == 0)
    }

    @Test("a waiter cancelled in the queue leaves it; the others still get their turn", .timeLimit(.minutes(1)))
    func cancellation() async throws {
        let limiter = ModelCallLimiter(maxConcurrentCalls: 1)
        let gate = AsyncStream<Void>.makeStream()
        let holder = Task {
            try await limiter.withPermit(client: "X", estimatedTokens: 0) {
                for await _ in gate.stream { break }
                return ((), 0)
            }
        }
        await until { limiter.inFlight == 1 }
        let doomed = Task { try await limiter.withPermit(client: "A", estimatedTokens: 0) { ((), 0) } }
        await until { limiter.waiting == 1 }
        let survivor = Task { try await limiter.withPermit(client: "B", estimatedTokens: 0) { ("ran", 0) } }
        await until { limiter.waiting == 2 }
        doomed.cancel()
        await #expect(throws: CancellationError.self) { try await doomed.value }
        #expect(limiter.waiting == 1)
        gate.continuation.yield()
        try await holder.value
        #expect(try await survivor.value == "ran")
        #expect(limiter.inFlight == 0)
    }

    @Test("runs sharing a limiter never exceed its cap together")
    func sharedCap() async throws {
        let limiter = ModelCallLimiter(maxConcurrentCalls: 3)
        let inFlight = Mutex((now: 0, peak: 0))
        let sub = ScriptedModel(name: "sub") { _ in
            inFlight.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
            defer { inFlight.withLock { $0.now -= 1 } }
            try await Task.sleep(for: .milliseconds(20))
            return "ok"
        }
        func run(_ tenant: String) async throws -> String {
            let root = ScriptedModel.sequence([
                repl("r = llm_query_batched(['p'] * 10)\nanswer['content'] = str(len(r)); answer['ready'] = True"),
            ], name: "root-\(tenant)")
            var configuration = RLMConfiguration(rootModel: root, subModel: sub, maxConcurrentSubcalls: 16)
            configuration.callLimiter = limiter
            configuration.limiterKey = tenant
            return try await RLM(configuration: configuration).complete(query: "q", context: .text("c")).answer
        }
        async let first = run("a")
        async let second = run("b")
        #expect(try await [first, second] == ["10", "10"])
        #expect(inFlight.withLock { $0.peak } == 3, "the cap is reached, never passed")
        #expect(sub.callCount == 20)
        #expect(limiter.inFlight == 0)
    }

    @Test("a token rate holds back calls once the allowance is spent")
    func tokenRate() async throws {
        let limiter = ModelCallLimiter(maxConcurrentCalls: 10, tokenRate: .init(tokens: 1_000, per: .milliseconds(500)))
        let clock = ContinuousClock()
        let start = clock.now
        // 1,000 tokens start at once; the next 1,000 need half a second of allowance.
        for _ in 0..<4 {
            try await limiter.withPermit(client: "A", estimatedTokens: 250) { ((), 250) }
        }
        for _ in 0..<4 {
            try await limiter.withPermit(client: "A", estimatedTokens: 250) { ((), 250) }
        }
        #expect(clock.now - start >= .milliseconds(400), "the second 1,000 tokens waited for the rate")
        // A call that used more than it reserved repays the difference before the next starts.
        // The allowance holds at most 1,000 tokens however long the steps above took (a busy
        // machine lets it refill between them), so after using 5,000 it is at most -4,000 and
        // the next call waits at least 2 s for it, less the moments between these lines.
        try await limiter.withPermit(client: "A", estimatedTokens: 10) { ((), 5_000) }
        let afterDebt = clock.now
        try await limiter.withPermit(client: "A", estimatedTokens: 10) { ((), 10) }
        #expect(clock.now - afterDebt >= .seconds(1))
    }
}
