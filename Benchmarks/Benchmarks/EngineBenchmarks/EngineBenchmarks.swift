import Benchmark
import Foundation
import RLM
import RLMTesting

/// The engine's orchestration overhead with models that answer instantly.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal, .peakMemoryResident], maxDuration: .seconds(5))

    Benchmark("3-turn RLM run, zero model latency") { benchmark in
        for _ in benchmark.scaledIterations {
            let root = ScriptedModel.sequence([
                "```repl\nprint(len(context))\n```",
                "```repl\nx = llm_query('hello')\n```",
                "```repl\nanswer['content'] = x; answer['ready'] = True\n```",
            ])
            let sub = ScriptedModel { $0.prompt }
            let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub)).complete(query: "q", context: .text("context"))
            blackHole(result.answer)
        }
    }

    Benchmark("1,000 sequential llm_query calls") { benchmark in
        for _ in benchmark.scaledIterations {
            let root = ScriptedModel.sequence([
                "```repl\nfor i in range(1000):\n    last = llm_query('q')\nanswer['content'] = last; answer['ready'] = True\n```"
            ])
            let sub = ScriptedModel { _ in "a" }
            let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub)).complete(query: "q", context: .text("c"))
            blackHole(result.answer)
        }
    }

    Benchmark("256 llm_query_batched calls at 0 latency") { benchmark in
        for _ in benchmark.scaledIterations {
            let root = ScriptedModel.sequence([
                "```repl\nr = llm_query_batched(['p'] * 256)\nanswer['content'] = str(len(r)); answer['ready'] = True\n```"
            ])
            let sub = ScriptedModel { _ in "a" }
            let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub, maxConcurrentSubcalls: 64))
                .complete(query: "q", context: .text("c"))
            blackHole(result.answer)
        }
    }
}
