import InMemoryTracing
import Logging
import MetricsTestKit
import PythonRuntime
import RLM
import RLMTesting
import Synchronization
import Testing
import Tracing

@Suite("Logs, traces and metrics")
struct TelemetryTests {
    /// A depth-2 run: the root's cell starts a child RLM and calls a tool; the child's cell makes a sub-call.
    func depthTwo(tracer: InMemoryTracer? = nil, logger: Logger? = nil, metrics: TestMetrics? = nil) -> RLM {
        let child = ScriptedModel.sequence([repl("x = llm_query('hi')\nanswer['content'] = x.upper(); answer['ready'] = True")], name: "child")
        let root = ScriptedModel.sequence([
            repl("r = rlm_query('inner', model='child')\nwork()\nanswer['content'] = r; answer['ready'] = True"),
        ], name: "root")
        let sub = ScriptedModel(name: "sub") { _ in "hello" }
        let work = RLMTool(name: "work", description: "work() -> None") { _ in
            // A tool's own span nests under the cell that called it.
            if let tracer { tracer.withSpan("tool.work") { _ in } }
            return .none
        }
        var configuration = RLMConfiguration(rootModel: root, subModel: sub, models: ["child": child], maxDepth: 2, tools: [work])
        configuration.tracer = tracer
        if let logger { configuration.logger = logger }
        configuration.metricsFactory = metrics
        configuration.budget = Budget(prices: ["sub": ModelPrice(inputPerMillion: 1_000_000, outputPerMillion: 1_000_000)])
        return RLM(configuration: configuration)
    }

    @Test("the span tree of a depth-2 run nests under the caller's span, down to sub-calls and a tool's own span")
    func spans() async throws {
        let tracer = InMemoryTracer()
        let rlm = depthTwo(tracer: tracer)
        let answer = try await tracer.withSpan("caller") { _ in
            try await rlm.complete(query: "q", context: .text("c")).answer
        }
        #expect(answer == "HELLO")
        let spans = tracer.finishedSpans
        func children(of parent: FinishedInMemorySpan?) -> [FinishedInMemorySpan] {
            spans.filter { $0.parentSpanID == parent?.spanID }
        }
        func path(_ span: FinishedInMemorySpan) -> String {
            var names = [span.operationName]
            var current = span
            while let parent = spans.first(where: { $0.spanID == current.parentSpanID }) {
                names.insert(parent.operationName, at: 0)
                current = parent
            }
            return names.joined(separator: " > ")
        }
        let paths = Set(spans.map(path))
        #expect(paths == [
            "caller",
            "caller > rlm.run",
            "caller > rlm.run > rlm.node",
            "caller > rlm.run > rlm.node > rlm.iteration",
            "caller > rlm.run > rlm.node > rlm.iteration > rlm.cell",
            "caller > rlm.run > rlm.node > rlm.iteration > rlm.cell > tool.work",
            "caller > rlm.run > rlm.node > rlm.iteration > rlm.cell > rlm.node",
            "caller > rlm.run > rlm.node > rlm.iteration > rlm.cell > rlm.node > rlm.iteration",
            "caller > rlm.run > rlm.node > rlm.iteration > rlm.cell > rlm.node > rlm.iteration > rlm.cell",
            "caller > rlm.run > rlm.node > rlm.iteration > rlm.cell > rlm.node > rlm.iteration > rlm.cell > rlm.subcall",
        ], "\(paths.sorted())")
        #expect(spans.count == paths.count, "one span per path")
        let subcall = try #require(spans.first { $0.operationName == "rlm.subcall" })
        #expect(subcall.attributes.get("gen_ai.request.model") == .string("sub"))
        #expect(subcall.attributes.get("gen_ai.usage.output_tokens") == .int64(2))
        #expect(subcall.attributes.get("rlm.cost_usd") != nil)
        let nodes = spans.filter { $0.operationName == "rlm.node" }
        #expect(nodes.count == 2)
        #expect(nodes.contains { $0.attributes.get("rlm.depth") == .int64(0) } && nodes.contains { $0.attributes.get("rlm.depth") == .int64(1) })
        let run = try #require(spans.first { $0.operationName == "rlm.run" })
        #expect(run.attributes.get("rlm.outcome") == .string("answered"))
        #expect(run.attributes.get("rlm.calls") == .int64(3))
    }

    /// Keeps every log record.
    struct RecordingHandler: LogHandler {
        struct Record: Sendable {
            var level: Logger.Level
            var message: String
            var metadata: Logger.Metadata
        }
        final class Store: Sendable {
            let records = Mutex<[Record]>([])
        }
        let store: Store
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
            store.records.withLock { $0.append(Record(level: event.level, message: event.message.description, metadata: merged)) }
        }
    }

    @Test("a sub-call's log line carries the run, node, depth and iteration")
    func logMetadata() async throws {
        let store = RecordingHandler.Store()
        let logger = Logger(label: "test") { _ in RecordingHandler(store: store) }
        _ = try await depthTwo(logger: logger).complete(query: "q", context: .text("c"))
        let records = store.records.withLock { $0 }
        let subcall = try #require(records.first { $0.message == "sub-call finished" })
        #expect(subcall.metadata["rlm.node"] == "1")
        #expect(subcall.metadata["rlm.depth"] == "1")
        #expect(subcall.metadata["rlm.iteration"] == "1")
        #expect(subcall.metadata["rlm.model"] == "sub")
        let run = try #require(subcall.metadata["rlm.run"])
        let finished = try #require(records.first { $0.message == "run finished" })
        #expect(finished.metadata["rlm.run"] == run, "every line of a run has its id")
        #expect(finished.metadata["rlm.outcome"] == "answered")
        #expect(records.filter { $0.metadata["rlm.run"] != run }.isEmpty)
    }

    @Test("metrics count calls, tokens, cost, cells and runs")
    func metrics() async throws {
        let metrics = TestMetrics()
        _ = try await depthTwo(metrics: metrics).complete(query: "q", context: .text("c"))
        #expect(try metrics.expectCounter("rlm_model_calls_total", [("model", "root"), ("depth", "0")]).totalValue == 1)
        #expect(try metrics.expectCounter("rlm_model_calls_total", [("model", "child"), ("depth", "1")]).totalValue == 1)
        #expect(try metrics.expectCounter("rlm_model_calls_total", [("model", "sub"), ("depth", "2")]).totalValue == 1)
        #expect(try metrics.expectCounter("rlm_tokens_total", [("model", "sub"), ("type", "output")]).totalValue == 2)
        #expect(try metrics.expectCounter("rlm_cells_total", [("status", "completed")]).totalValue == 2)
        #expect(try metrics.expectCounter("rlm_runs_total", [("outcome", "answered")]).totalValue == 1)
        #expect(try metrics.expectTimer("rlm_model_call_duration", [("model", "sub")]).values.count == 1)
        // 1 USD per token for "sub": 1 in, 2 out. (TestMetrics keeps floating-point counters as
        // rounded integer counters.)
        #expect(try metrics.expectCounter("rlm_cost_usd_total", [("model", "sub")]).totalValue == 3)
    }
}
