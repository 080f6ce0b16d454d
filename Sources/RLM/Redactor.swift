/// Replaces secret values (API keys) with `[redacted]`: the last line of defence that keeps them
/// out of cell output, prompts, events, trajectories and answers.
struct Redactor: Sendable {
    /// Longest first, so that a secret containing another is replaced whole.
    private let secrets: [String]

    /// Values shorter than 6 characters are ignored: replacing them would mangle ordinary text.
    init(_ secrets: [String]) {
        self.secrets = Set(secrets.filter { $0.count >= 6 }).sorted { $0.count > $1.count }
    }

    /// The secrets of a configuration: its own list and those of every model it names.
    init(_ configuration: RLMConfiguration) {
        var all = configuration.secrets + configuration.rootModel.secrets
        if let sub = configuration.subModel { all += sub.secrets }
        for model in configuration.models.values { all += model.secrets }
        self.init(all)
    }

    var isEmpty: Bool { secrets.isEmpty }

    func callAsFunction(_ text: String) -> String {
        var text = text
        for secret in secrets where text.contains(secret) {
            text = text.replacing(secret, with: "[redacted]")
        }
        return text
    }

    func callAsFunction(_ text: String?) -> String? {
        text.map { self($0) }
    }
}

extension RLMEvent.Kind {
    /// The event with every string passed through `redact`.
    func redacted(by redact: Redactor) -> RLMEvent.Kind {
        switch self {
        case .nodeStarted(let query, let context):
            return .nodeStarted(query: redact(query), context: redact(context))
        case .iterationStarted, .iterationFinished, .historyCompacted:
            return self
        case .messageSent(let iteration, let role, let text, let transient):
            return .messageSent(iteration: iteration, role: role, text: redact(text), transient: transient)
        case .assisted(let iteration, let assist, let text):
            return .assisted(iteration: iteration, assist: assist, text: redact(text))
        case .modelReplyDelta(let iteration, let text):
            return .modelReplyDelta(iteration: iteration, text: redact(text))
        case .modelReplied(let iteration, let text, let usage, let latency):
            return .modelReplied(iteration: iteration, text: redact(text), usage: usage, latency: latency)
        case .codeExecuted(let iteration, let cell, let code, let output, let status, let duration):
            return .codeExecuted(iteration: iteration, cell: cell, code: redact(code), output: redact(output), status: status, duration: duration)
        case .subcallStarted(let callID, let model, let prompt):
            return .subcallStarted(callID: callID, model: model, prompt: redact(prompt))
        case .subcallFinished(let callID, let model, let response, let usage, let latency, let error):
            return .subcallFinished(callID: callID, model: model, response: redact(response), usage: usage, latency: latency, error: redact(error))
        case .childStarted(let childID, let prompt):
            return .childStarted(childID: childID, prompt: redact(prompt))
        case .childFinished(let childID, let answer, let iterations, let latency, let error):
            return .childFinished(childID: childID, answer: redact(answer), iterations: iterations, latency: latency, error: redact(error))
        case .answer(let text, let iterations):
            return .answer(text: redact(text), iterations: iterations)
        case .limitReached(let limit, let partialAnswer):
            return .limitReached(limit: limit, partialAnswer: redact(partialAnswer))
        case .runFinished(let usage, let elapsed, let error):
            return .runFinished(usage: usage, elapsed: elapsed, error: redact(error))
        case .refinementStep(let step, let answer, let changed, let score):
            return .refinementStep(step: step, answer: redact(answer), changed: changed, judgeScore: score)
        case .refinementFinished, .strategyChosen, .subcallCached:
            return self
        case .subcallRouted(let prompt, let recurse, let reason, let score):
            return .subcallRouted(prompt: redact(prompt), recurse: recurse, reason: reason, score: score)
        }
    }
}
