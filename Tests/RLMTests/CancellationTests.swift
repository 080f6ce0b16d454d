import Foundation
import RLM
import RLMTesting
import Synchronization
import Testing
#if RLM_TSAN_LOCKS
import PythonRuntime  // its SanitizerMutex is this module's Mutex under ThreadSanitizer
#endif

@Suite("Cancellation, events and trajectories")
struct CancellationTests {
    @Test("cancelling the task stops running Python promptly")
    func cancelDuringCode() async throws {
        let root = ScriptedModel.sequence([repl("while True:\n    try:\n        pass\n    except BaseException:\n        pass")])
        var configuration = RLMConfiguration(rootModel: root, execTimeout: .seconds(600))
        // Abandoning a REPL whose code ignores the stop would take the whole grace period; a stop
        // that lands ends far sooner even on a loaded machine, so the bound below tells them apart.
        configuration.stopGracePeriod = .seconds(120)
        let rlm = RLM(configuration: configuration)
        let task = Task { try await rlm.complete(query: "q", context: .text("c")) }
        try await Task.sleep(for: .milliseconds(300))
        let clock = ContinuousClock()
        let start = clock.now
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(clock.now - start < .seconds(60))
    }

    @Test("cancelling the task cancels model calls in flight across the tree")
    func cancelDuringSubcalls() async throws {
        let cancelled = Mutex(0)
        let sub = ScriptedModel(name: "sub") { _ in
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                cancelled.withLock { $0 += 1 }
                throw error
            }
            return "never"
        }
        let root = ScriptedModel.sequence([repl("llm_query_batched(['a', 'b', 'c', 'd'])")])
        let run = RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub)).run(query: "q", context: .text("c"))
        var started = 0
        for await event in run.events {
            if case .subcallStarted = event.kind { started += 1 }
            if started == 4 { break }
        }
        run.cancel()
        await #expect(throws: CancellationError.self) { try await run.result() }
        try await Task.sleep(for: .milliseconds(100))
        #expect(cancelled.withLock { $0 } == 4)
    }

    @Test("dropping every copy of a run cancels it; its event stream ends", .timeLimit(.minutes(1)))
    func droppedRunIsCancelled() async throws {
        let started = AsyncStream<Void>.makeStream()
        let cancelled = AsyncStream<Void>.makeStream()
        let root = ScriptedModel(name: "root") { _ in
            started.continuation.yield()
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                cancelled.continuation.yield()
                throw error
            }
            return "FINAL(never)"
        }
        let events: AsyncStream<RLMEvent>
        do {
            let run = RLM(configuration: RLMConfiguration(rootModel: root)).run(query: "q", context: .text("c"))
            events = run.events
            var iterator = started.stream.makeAsyncIterator()
            _ = await iterator.next()
        }
        // The run is gone: the model call in flight is cancelled and the stream finishes.
        var cancellations = cancelled.stream.makeAsyncIterator()
        _ = await cancellations.next()
        var kinds: [String] = []
        for await event in events { kinds.append("\(event.kind)") }
        #expect(kinds.last?.hasPrefix("runFinished") == true, "\(kinds)")
    }

    @Test("a result and its events survive a JSON round trip unchanged")
    func codable() async throws {
        let child = ScriptedModel.sequence([repl("answer['content'] = context.upper(); answer['ready'] = True")], name: "child")
        let root = ScriptedModel.sequence([
            repl("print(llm_query('x'))\nanswer['content'] = rlm_query('inner', model='child')"),
            "FINAL_VAR(answer)",
        ], name: "root")
        let sub = ScriptedModel(name: "sub") { _ in "y" }
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub, models: ["child": child], maxDepth: 2))
            .complete(query: "q", context: .text("c"))
        #expect(result.events.count > 10)
        let data = try JSONEncoder().encode(result)
        let decoded = try JSONDecoder().decode(RLMResult.self, from: data)
        #expect(decoded == result)
        let built = RLMResult(answer: "a", usage: result.usage, iterations: 1, elapsed: .seconds(1))
        #expect(built.events.isEmpty && built.answeredAfterLimit == nil)
        let event = RLMEvent(nodeID: 1, parentID: 0, depth: 1, time: .milliseconds(5), kind: .iterationStarted(iteration: 1))
        #expect(try JSONDecoder().decode(RLMEvent.self, from: JSONEncoder().encode(event)) == event)
    }

    @Test("events carry depth, node and parent ids, live")
    func eventTree() async throws {
        let child = ScriptedModel.sequence([repl("answer['content'] = context.upper(); answer['ready'] = True")], name: "child")
        let root = ScriptedModel.sequence([repl("answer['content'] = rlm_query('inner', model='child'); answer['ready'] = True")], name: "root")
        let run = RLM(configuration: RLMConfiguration(rootModel: root, models: ["child": child], maxDepth: 2))
            .run(query: "q", context: .text("c"))
        var events: [RLMEvent] = []
        for await event in run.events { events.append(event) }
        let result = try await run.result()
        #expect(result.answer == "INNER")
        let childStarted = events.first { if case .childStarted = $0.kind { true } else { false } }
        guard case .childStarted(let childID, _)? = childStarted?.kind else {
            Issue.record("no child started")
            return
        }
        let childEvents = events.filter { $0.nodeID == childID }
        #expect(childEvents.allSatisfy { $0.parentID == 0 && $0.depth == 1 })
        #expect(childEvents.contains { if case .answer(let text, _) = $0.kind { text == "INNER" } else { false } })
        #expect(events.last.map { if case .runFinished = $0.kind { true } else { false } } == true)
    }

    @Test("the JSONL trajectory has one event per line and never repeats the context")
    func trajectory() async throws {
        let context = String(repeating: "0123456789", count: 100_000)
        let root = ScriptedModel.sequence([
            repl("print(len(context))"),
            repl("x = llm_query(context[:50])"),
            repl("answer['content'] = 'done'; answer['ready'] = True"),
        ], name: "root")
        let sub = ScriptedModel(name: "sub") { _ in "fine" }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("trajectory-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        let writer = try TrajectoryWriter(url: url)
        _ = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub))
            .complete(query: "q", context: .text(context), trajectory: writer)
        writer.close()
        let data = try Data(contentsOf: url)
        #expect(data.count < 40_000)
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        let objects = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
        #expect(objects.allSatisfy { $0["type"] is String && $0["node"] is Int && $0["depth"] is Int })
        let types = objects.compactMap { $0["type"] as? String }
        #expect(types.first == "node_started")
        #expect(types.last == "run_finished")
        #expect(types.filter { $0 == "code" }.count == 3)
        #expect(types.contains("subcall_finished"))
    }
}
