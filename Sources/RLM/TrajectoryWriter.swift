import Foundation
import Synchronization
#if RLM_TSAN_LOCKS
import PythonRuntime  // its SanitizerMutex is this module's Mutex under ThreadSanitizer
#endif

/// Writes a run's events as JSON Lines, one event per line, as they happen.
///
/// Each line carries only what is new (a message the engine sent, a model reply, a cell's code and
/// output, a sub-call), never the context or the whole history again, so the file grows with the
/// work done, not quadratically; the `message` lines with the `model_reply` lines rebuild every
/// request exactly.
/// Long sub-call prompts (often slices of the context) are cut to ``maxTextCharacters``.
///
/// Lines have `type`, `node`, `parent`, `depth` and `t` (seconds since the start) plus fields
/// of their type; `rlm view` turns a file into a page.
public final class TrajectoryWriter: Sendable {
    private let handle: Mutex<FileHandle?>
    /// The longest prompt text kept per line.
    public let maxTextCharacters: Int

    /// Creates (or truncates) the file at `url`.
    public init(url: URL, maxTextCharacters: Int = 4_000) throws {
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw RLMError(code: .invalidConfiguration, message: "cannot create the trajectory file \(url.path)")
        }
        self.handle = Mutex(try FileHandle(forWritingTo: url))
        self.maxTextCharacters = maxTextCharacters
    }

    /// Appends one event. Streamed reply pieces are not written: the whole reply follows.
    public func write(_ event: RLMEvent) {
        if case .modelReplyDelta = event.kind { return }
        guard var line = try? JSONSerialization.data(withJSONObject: Self.object(for: event, limit: maxTextCharacters), options: [.sortedKeys]) else {
            return
        }
        line.append(0x0A)
        handle.withLock { try? $0?.write(contentsOf: line) }
    }

    /// Flushes and closes the file.
    public func close() {
        handle.withLock { handle in
            try? handle?.close()
            handle = nil
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    static func clip(_ text: String, _ limit: Int) -> String {
        guard text.count > limit else { return text }
        let half = limit / 2
        return String(text.prefix(half)) + "\n… [\(text.count - 2 * half) characters left out] …\n" + String(text.suffix(half))
    }

    static func usage(_ usage: TokenUsage) -> [String: Any] {
        ["input": usage.inputTokens, "output": usage.outputTokens, "cached": usage.cachedInputTokens]
    }

    static func summary(_ usage: ModelUsage) -> [String: Any] {
        var object: [String: Any] = ["calls": usage.calls, "tokens": Self.usage(usage.tokens), "cost_usd": usage.costUSD]
        if usage.cacheHits + usage.cacheMisses > 0 {
            object["cache"] = [
                "hits": usage.cacheHits, "misses": usage.cacheMisses, "saved_tokens": Self.usage(usage.savedTokens),
                "saved_cost_usd": usage.savedCostUSD,
            ]
        }
        return object
    }

    /// The JSON object of one event.
    public static func object(for event: RLMEvent, limit: Int = .max) -> [String: Any] {
        var object: [String: Any] = [
            "node": event.nodeID, "parent": event.parentID ?? NSNull(), "depth": event.depth, "t": seconds(event.time),
        ]
        switch event.kind {
        case .nodeStarted(let query, let context):
            object["type"] = "node_started"
            object["query"] = query ?? NSNull()
            object["context"] = context
        case .iterationStarted(let iteration):
            object["type"] = "iteration_started"
            object["iteration"] = iteration
        case .messageSent(let iteration, let role, let text, let transient):
            object["type"] = "message"
            object["iteration"] = iteration
            object["role"] = role.rawValue
            object["text"] = text
            object["transient"] = transient
        case .assisted(let iteration, let assist, let text):
            object["type"] = "assist"
            object["iteration"] = iteration
            object["assist"] = assist.rawValue
            object["text"] = text
        case .modelReplyDelta(let iteration, let text):
            object["type"] = "model_reply_delta"
            object["iteration"] = iteration
            object["text"] = text
        case .modelReplied(let iteration, let text, let tokens, let latency):
            object["type"] = "model_reply"
            object["iteration"] = iteration
            object["text"] = text
            object["usage"] = usage(tokens)
            object["latency"] = seconds(latency)
        case .codeExecuted(let iteration, let cell, let code, let output, let status, let duration):
            object["type"] = "code"
            object["iteration"] = iteration
            object["cell"] = cell
            object["code"] = code
            object["output"] = output
            object["status"] = status.rawValue
            object["duration"] = seconds(duration)
        case .subcallStarted(let callID, let model, let prompt):
            object["type"] = "subcall_started"
            object["call"] = callID
            object["model"] = model
            object["prompt"] = clip(prompt, limit)
            object["prompt_chars"] = prompt.count
        case .subcallFinished(let callID, let model, let response, let tokens, let latency, let error):
            object["type"] = "subcall_finished"
            object["call"] = callID
            object["model"] = model
            object["response"] = clip(response, limit)
            object["usage"] = usage(tokens)
            object["latency"] = seconds(latency)
            object["error"] = error ?? NSNull()
        case .subcallCached(let callID, let model, let saved):
            object["type"] = "subcall_cached"
            object["call"] = callID
            object["model"] = model
            object["saved"] = usage(saved)
        case .childStarted(let childID, let prompt):
            object["type"] = "child_started"
            object["child"] = childID
            object["prompt"] = clip(prompt, limit)
            object["prompt_chars"] = prompt.count
        case .childFinished(let childID, let answer, let iterations, let latency, let error):
            object["type"] = "child_finished"
            object["child"] = childID
            object["answer"] = answer ?? NSNull()
            object["iterations"] = iterations
            object["latency"] = seconds(latency)
            object["error"] = error ?? NSNull()
        case .historyCompacted(let iteration, let removed, let tokens):
            object["type"] = "history_compacted"
            object["iteration"] = iteration
            object["removed_messages"] = removed
            object["estimated_tokens"] = tokens
        case .iterationFinished(let iteration):
            object["type"] = "iteration_finished"
            object["iteration"] = iteration
        case .answer(let text, let iterations):
            object["type"] = "answer"
            object["answer"] = text
            object["iterations"] = iterations
        case .limitReached(let limitKind, let partial):
            object["type"] = "limit_reached"
            object["limit"] = limitKind.rawValue
            object["partial_answer"] = partial ?? NSNull()
        case .refinementStep(let step, let answer, let changed, let score):
            object["type"] = "refinement_step"
            object["step"] = step
            object["answer"] = answer
            object["changed"] = changed
            object["judge_score"] = score ?? NSNull()
        case .refinementFinished(let steps, let reason):
            object["type"] = "refinement_finished"
            object["steps"] = steps
            object["reason"] = reason.rawValue
        case .subcallRouted(let prompt, let recurse, let reason, let score):
            object["type"] = "subcall_routed"
            object["prompt"] = prompt
            object["route"] = recurse ? "child" : "plain"
            object["reason"] = reason
            object["score"] = score ?? NSNull()
        case .strategyChosen(let strategy, let reason):
            object["type"] = "strategy"
            object["strategy"] = strategy.rawValue
            object["reason"] = reason
        case .runFinished(let usageSummary, let elapsed, let error):
            object["type"] = "run_finished"
            object["elapsed"] = seconds(elapsed)
            object["error"] = error ?? NSNull()
            object["usage"] = [
                "total": summary(usageSummary.total),
                "by_model": usageSummary.byModel.mapValues(summary),
                "by_depth": Dictionary(uniqueKeysWithValues: usageSummary.byDepth.map { (String($0.key), summary($0.value)) }),
            ]
        }
        return object
    }
}
