import Benchmark
import Foundation
import RLM
import RLMTesting

/// One run of a scripted root model (sub-calls answered by `sub`) under `isolation`.
func scriptedRun(_ replies: [String], sub: @escaping @Sendable (ScriptedModel.Request) -> String, isolation: Isolation = .inProcess, maxConcurrentSubcalls: Int = 16) async throws {
    var configuration = RLMConfiguration(
        rootModel: ScriptedModel.sequence(replies), subModel: ScriptedModel { sub($0) }, maxConcurrentSubcalls: maxConcurrentSubcalls)
    configuration.isolation = isolation
    let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("context"))
    blackHole(result.answer)
}

/// A sub-model that answers instantly and keeps nothing (unlike `ScriptedModel`, which logs every
/// request), so peak memory is the engine's own.
struct ForgetfulModel: LanguageModel {
    var modelName: String { "forgetful" }
    func complete(_ messages: [ChatMessage]) async throws -> ModelResponse {
        ModelResponse(text: "\(messages.last?.content.utf8.count ?? 0)", usage: TokenUsage(inputTokens: 1, outputTokens: 1))
    }
}

/// A 40 MB ASCII log file, made once per process.
let fortyMegabyteFile: URL = {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-bench-40mb-\(getpid()).txt")
    let line = Array("2026-11-25 10:00:00 INFO request served in 12 ms by worker 7 of pool alpha\n".utf8)
    var data = Data(capacity: 40_000_000 + line.count)
    while data.count < 40_000_000 { data.append(contentsOf: line) }
    try? data.write(to: url)
    return url
}()

/// The engine's orchestration overhead with models that answer instantly.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal, .peakMemoryResident], maxDuration: .seconds(5))

    // The same runs under each isolation level: what the sandbox and the worker process cost.
    // Process isolation needs the worker: `swift build -c release --product rlm-worker` at the root.
    var process = Isolation.process
    process.workerExecutable = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../.build/release/rlm-worker").standardizedFileURL.path
    let scripts: [(String, [String])] = [
        ("3-turn RLM run, zero model latency", [
            "```repl\nprint(len(context))\n```",
            "```repl\nx = llm_query('hello')\n```",
            "```repl\nanswer['content'] = x; answer['ready'] = True\n```",
        ]),
        ("1,000 sequential llm_query calls", [
            "```repl\nfor i in range(1000):\n    last = llm_query('q')\nanswer['content'] = last; answer['ready'] = True\n```",
        ]),
        ("16 llm_query_batched calls at 0 latency", [
            "```repl\nr = llm_query_batched(['p'] * 16)\nanswer['content'] = str(len(r)); answer['ready'] = True\n```",
        ]),
    ]
    for (label, isolation) in [("unrestricted", Isolation.unrestricted), ("in-process", .inProcess), ("process", process)] {
        for (name, replies) in scripts {
            Benchmark("\(name) [\(label)]") { benchmark in
                for _ in benchmark.scaledIterations {
                    try await scriptedRun(replies, sub: { $0.prompt }, isolation: isolation)
                }
            }
        }
    }

    // Peak memory when a 40 MB context fans out: the goal is a peak RSS under 3x the context
    // (120 MB) for the whole process. The context comes from a file, as `rlm run` loads it.
    Benchmark(
        "40 MB file context split into 100 llm_query_batched calls",
        configuration: .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(10), maxIterations: 3)
    ) { benchmark in
        let code = "```repl\nsize = len(context) // 100 + 1\nr = llm_query_batched([context[i:i + size] for i in range(0, len(context), size)])\n"
            + "answer['content'] = str(sum(int(x) for x in r)); answer['ready'] = True\n```"
        let file = fortyMegabyteFile
        for _ in benchmark.scaledIterations {
            let root = ScriptedModel.sequence([code])
            let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: ForgetfulModel(), maxConcurrentSubcalls: 16))
                .complete(query: "q", context: .file(file))
            blackHole(result.answer)
        }
    }

    // The same with a 1-byte context: the process's own peak, for reading the one above.
    Benchmark(
        "1-byte file context split into 100 llm_query_batched calls",
        configuration: .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(10), maxIterations: 3)
    ) { benchmark in
        let code = "```repl\nr = llm_query_batched([context] * 100)\nanswer['content'] = str(len(r)); answer['ready'] = True\n```"
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-bench-1b-\(getpid()).txt")
        try Data("x".utf8).write(to: file)
        for _ in benchmark.scaledIterations {
            let root = ScriptedModel.sequence([code])
            let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: ForgetfulModel(), maxConcurrentSubcalls: 16))
                .complete(query: "q", context: .file(file))
            blackHole(result.answer)
        }
    }

    // Idle sessions in one process: each has answered one turn over a 1 KB context and waits for
    // the next. Peak RSS minus the 1-session run, divided by the sessions, is the cost of one.
    for count in [1, 1_000, 10_000] {
        Benchmark(
            "\(count) idle sessions with 1 KB contexts",
            configuration: .init(
                metrics: [.wallClock, .peakMemoryResident],
                maxDuration: .seconds(120), maxIterations: 1)
        ) { benchmark in
            let context = String(repeating: "0123456789abcdef", count: 64)
            let rlm = RLM(configuration: RLMConfiguration(rootModel: ScriptedModel { _ in "FINAL(ok)" }))
            var sessions: [RLMSession] = []
            sessions.reserveCapacity(count)
            for _ in 0..<count {
                let session = rlm.session()
                _ = try await session.complete(query: "q", context: .text(context))
                sessions.append(session)
            }
            for session in sessions { await session.close() }
        }
    }

    Benchmark("256 llm_query_batched calls at 0 latency") { benchmark in
        for _ in benchmark.scaledIterations {
            try await scriptedRun(
                ["```repl\nr = llm_query_batched(['p'] * 256)\nanswer['content'] = str(len(r)); answer['ready'] = True\n```"],
                sub: { _ in "a" }, maxConcurrentSubcalls: 64)
        }
    }
}
