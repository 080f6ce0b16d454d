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

    Benchmark("256 llm_query_batched calls at 0 latency") { benchmark in
        for _ in benchmark.scaledIterations {
            try await scriptedRun(
                ["```repl\nr = llm_query_batched(['p'] * 256)\nanswer['content'] = str(len(r)); answer['ready'] = True\n```"],
                sub: { _ in "a" }, maxConcurrentSubcalls: 64)
        }
    }
}
