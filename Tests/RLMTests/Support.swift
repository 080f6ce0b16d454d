import Foundation
import RLM
import RLMTesting

/// Worker processes run under a memory limit (RLIMIT_AS) and a seccomp filter that a sanitizer's
/// shadow memory does not survive: scripts/sanitize.sh sets `RLM_TESTS_SKIP_WORKERS` and the
/// tests that start workers are left out there (their C code runs in-process in the others).
let workersRun = ProcessInfo.processInfo.environment["RLM_TESTS_SKIP_WORKERS"] == nil

/// The isolation levels a test runs under: `process` only where workers run.
let isolationNames = workersRun ? ["in-process", "process"] : ["in-process"]

/// A ```repl block.
func repl(_ code: String) -> String { "```repl\n\(code)\n```" }

/// Expected usage of a scripted model's calls, from its own log and token rule.
func expectedUsage(_ models: ScriptedModel...) -> TokenUsage {
    var total = TokenUsage()
    for model in models {
        for request in model.requests {
            guard let reply = model.replies[request.index] else { continue }
            total.inputTokens += request.messages.reduce(0) { $0 + ScriptedModel.tokens($1.content) }
            total.outputTokens += ScriptedModel.tokens(reply)
        }
    }
    return total
}

/// What each code cell's output was, as the model saw it, for the nodes at `depth` (all when nil).
func cellOutputs(_ result: RLMResult, depth: Int? = nil) -> [String] {
    result.events.compactMap { event in
        guard depth == nil || event.depth == depth, case .codeExecuted(_, _, _, let output, _, _) = event.kind else { return nil }
        return output
    }
}
