import Foundation
import Logging
import PythonRuntime
import Synchronization
import Tracing

/// Everything the nodes of one run share: configuration, budget, the tree-wide sub-call limit,
/// the event sink and the id counters.
final class RunTree: Sendable {
    let configuration: RLMConfiguration
    let tracker: BudgetTracker
    let subcallPermits: AsyncSemaphore
    let events: EventSink
    /// Who this run's calls wait as in a shared ``ModelCallLimiter``.
    let limiterClient: String
    let telemetry: Telemetry
    private let nodeCounter = Atomic<Int>(0)
    private let callCounter = Atomic<Int>(0)

    init(configuration: RLMConfiguration, tracker: BudgetTracker, events: EventSink, telemetry: Telemetry) {
        self.configuration = configuration
        self.telemetry = telemetry
        self.tracker = tracker
        self.events = events
        self.subcallPermits = AsyncSemaphore(permits: configuration.maxConcurrentSubcalls)
        self.limiterClient = configuration.limiterKey ?? "run-\(UUID().uuidString)"
    }

    func newNodeID() -> Int { nodeCounter.add(1, ordering: .relaxed).oldValue }

    /// The model for `model=name`, or `fallback` when no name is given.
    func model(named name: String?, fallback: any LanguageModel) throws -> any LanguageModel {
        guard let name else { return fallback }
        if let model = configuration.models[name] { return model }
        if name == configuration.rootModel.modelName { return configuration.rootModel }
        if let sub = configuration.subModel, name == sub.modelName { return sub }
        let known = configuration.models.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
        throw PythonError(code: .exception, typeName: "ValueError",
                          message: "unknown model '\(name)'" + (known.isEmpty ? "; no named models are configured" : "; known models: \(known)"))
    }

    /// One model call, counted in the budget. `limited` calls wait for a tree-wide permit;
    /// `onStart` runs once the call really starts (permit held, budget reserved).
    ///
    /// A call cancelled after it was sent (the deadline, a cancelled run) is counted too: the
    /// server has read the prompt and may have written part of a reply, which providers bill.
    /// It counts the prompt's estimated tokens and those of the text streamed so far, and
    /// `onCancelled` gets that estimate (for the sub-call's event).
    ///
    /// A `cached` call is first looked up in the configuration's ``ModelCache``: a hit returns
    /// the stored reply with no usage (and calls `onCacheHit` with what the first call cost)
    /// without a permit, a budget reservation or the model; a successful reply is stored.
    func call(
        _ model: any LanguageModel, _ messages: [ChatMessage], depth: Int, limited: Bool, force: Bool = false,
        cached: Bool = false, schema: ReplySchema? = nil, span: (any Span)? = nil, onText: (@Sendable (String) -> Void)? = nil, onStart: () -> Void = {},
        onCancelled: (TokenUsage) -> Void = { _ in }, onCacheHit: (TokenUsage) -> Void = { _ in }
    ) async throws -> ModelResponse {
        let cache = cached ? configuration.cache : nil
        let key = cache?.key(for: model, messages)
        if let cache, let key {
            // A storage that fails is passed over: the model answers instead.
            let hit = try? await cache.storage.reply(for: key)
            tracker.recordLookup(model: model.modelName, depth: depth, saved: hit?.usage)
            telemetry.cacheLookup(model: model.modelName, hit: hit != nil)
            if let hit {
                onCacheHit(hit.usage)
                onText?(hit.text)
                return ModelResponse(text: hit.text, usage: TokenUsage())
            }
        }
        let response = try await callModel(
            model, messages, depth: depth, limited: limited, force: force, schema: schema, span: span, onText: onText,
            onStart: onStart, onCancelled: onCancelled)
        if let cache, let key { try? await cache.storage.store(response, for: key) }
        return response
    }

    private func callModel(
        _ model: any LanguageModel, _ messages: [ChatMessage], depth: Int, limited: Bool, force: Bool, schema: ReplySchema?,
        span: (any Span)?, onText: (@Sendable (String) -> Void)?, onStart: () -> Void, onCancelled: (TokenUsage) -> Void
    ) async throws -> ModelResponse {
        var began: ContinuousClock.Instant?
        let streamed = StreamedTokens()
        func send() async throws -> ModelResponse {
            began = .now
            do {
                let response = if let onText {
                    try await model.complete(messages) { text in
                        streamed.count.add(TokenEstimate.tokens(in: text), ordering: .relaxed)
                        onText(text)
                    }
                } else if let schema {
                    try await model.complete(messages, schema: schema)
                } else {
                    try await model.complete(messages)
                }
                if let span { telemetry.modelCall(model: model.modelName, depth: depth, usage: response.usage, duration: .now - (began ?? .now), span: span) }
                return response
            } catch {
                if error is CancellationError || Task.isCancelled {
                    let estimate = TokenUsage(inputTokens: TokenEstimate.tokens(in: messages), outputTokens: streamed.count.load(ordering: .relaxed))
                    _ = tracker.record(model: model.modelName, depth: depth, tokens: estimate)
                    onCancelled(estimate)
                }
                if let span, !(error is CancellationError) {
                    telemetry.modelCall(model: model.modelName, depth: depth, usage: nil, duration: .now - (began ?? .now), span: span)
                    span.recordError(error)
                }
                throw error
            }
        }
        // Reserve once every permit is held, so calls still queued when a limit trips never count.
        func start() async throws -> ModelResponse {
            guard let limiter = configuration.callLimiter else {
                try tracker.reserveCall(force: force)
                onStart()
                return try await send()
            }
            return try await limiter.withPermit(client: limiterClient, estimatedTokens: TokenEstimate.tokens(in: messages)) {
                try tracker.reserveCall(force: force)
                onStart()
                let response = try await send()
                return (response, response.usage.totalTokens)
            }
        }
        let response = limited ? try await subcallPermits.withPermit { try await start() } : try await start()
        _ = tracker.record(model: model.modelName, depth: depth, tokens: response.usage)
        return response
    }

    /// A plain model call made from a node's REPL (`llm_query`, or `rlm_query` at the depth limit).
    func subcall(_ prompt: PythonValue, model name: String?, from node: NodeInfo, logger: Logger? = nil) async throws -> String {
        let redact = events.redact
        let messages = try Self.messages(from: prompt).map { ChatMessage(role: $0.role, content: redact($0.content)) }
        let model = try model(named: name, fallback: configuration.subModel ?? configuration.rootModel)
        // One message (the usual case) is its own text: no copy of a large prompt.
        let promptText = messages.count == 1 ? messages[0].content : messages.map(\.content).joined(separator: "\n\n")
        let promptTokens = TokenEstimate.tokens(in: messages)
        if let window = model.contextWindow, promptTokens > window.promptTokens {
            // It cannot fit: tell the model code how to split it instead of spending a call on a refusal.
            let refusal = ContextWindowExceeded(model: model.modelName, promptTokens: promptTokens, windowTokens: window.tokens)
            let callID = callCounter.add(1, ordering: .relaxed).newValue
            events.emit(node, .subcallStarted(callID: callID, model: model.modelName, prompt: promptText))
            events.emit(node, .subcallFinished(
                callID: callID, model: model.modelName, response: "", usage: TokenUsage(), latency: .zero, error: refusal.description))
            return refusal.messageForModelCode(promptCharacters: promptText.unicodeScalars.count)
        }
        let callID = callCounter.add(1, ordering: .relaxed).newValue
        let logger = logger ?? telemetry.logger(for: node)
        let span = telemetry.startSpan("rlm.subcall", kind: .client)
        if span.isRecording {
            span.attributes["rlm.call"] = callID
            span.attributes["rlm.prompt_tokens_estimate"] = promptTokens
        }
        defer { span.end() }
        var start = ContinuousClock.now
        var started = false
        var spent = TokenUsage()
        do {
            func begin() {
                started = true
                start = .now
                events.emit(node, .subcallStarted(callID: callID, model: model.modelName, prompt: promptText))
            }
            let response = try await call(
                model, messages, depth: node.depth + 1, limited: true, cached: true, span: span, onStart: begin,
                onCancelled: { spent = $0 },
                onCacheHit: { saved in
                    begin()
                    events.emit(node, .subcallCached(callID: callID, model: model.modelName, saved: saved))
                })
            events.emit(node, .subcallFinished(
                callID: callID, model: model.modelName, response: response.text, usage: response.usage,
                latency: .now - start, error: nil))
            logger.debug("sub-call finished", metadata: [
                "rlm.call": "\(callID)", "rlm.model": "\(model.modelName)", "rlm.input_tokens": "\(response.usage.inputTokens)",
                "rlm.output_tokens": "\(response.usage.outputTokens)", "rlm.latency": "\(ContinuousClock.now - start)",
            ])
            return response.text
        } catch var refusal as ContextWindowExceeded {
            logger.notice("sub-call refused by the server as too long", metadata: ["rlm.call": "\(callID)", "rlm.model": "\(model.modelName)"])
            refusal.promptTokens = refusal.promptTokens ?? promptTokens
            refusal.windowTokens = refusal.windowTokens ?? model.contextWindow?.tokens
            events.emit(node, .subcallFinished(
                callID: callID, model: model.modelName, response: "", usage: TokenUsage(), latency: .now - start,
                error: refusal.description))
            return refusal.messageForModelCode(promptCharacters: promptText.unicodeScalars.count)
        } catch {
            if started {
                events.emit(node, .subcallFinished(
                    callID: callID, model: model.modelName, response: "", usage: spent, latency: .now - start,
                    error: String(describing: error)))
            }
            if !(error is CancellationError) {
                logger.warning("sub-call failed: \(events.redact(String(describing: error)))", metadata: [
                    "rlm.call": "\(callID)", "rlm.model": "\(model.modelName)",
                ])
            }
            throw error
        }
    }

    /// A child RLM whose context is `prompt`, one level deeper than `parent`.
    func child(_ unredacted: String, model name: String?, from parent: NodeInfo) async throws -> String {
        let prompt = events.redact(unredacted)
        let model = try model(named: name, fallback: configuration.rootModel)
        let info = NodeInfo(id: newNodeID(), parentID: parent.id, depth: parent.depth + 1)
        events.emit(parent, .childStarted(childID: info.id, prompt: prompt))
        let start = ContinuousClock.now
        let node = RLMNode(tree: self, info: info, model: model)
        do {
            let outcome = try await node.runFresh(query: nil, context: .text(prompt))
            events.emit(parent, .childFinished(
                childID: info.id, answer: outcome.answer, iterations: outcome.iterations, latency: .now - start, error: nil))
            return outcome.answer
        } catch let error as RLMError where error.limit == .iterations || error.limit == .consecutiveErrors {
            // The child ran out of turns or kept failing (it reported that itself): the parent gets
            // its best answer, or an error. Code it could not stop raises in the parent's cell.
            events.emit(parent, .childFinished(
                childID: info.id, answer: error.partialAnswer, iterations: node.iterations, latency: .now - start,
                error: error.message))
            if let partial = error.partialAnswer { return partial }
            throw PythonError(code: .exception, typeName: "RuntimeError",
                              message: "the child RLM reached its \(error.limit ?? .iterations) without an answer")
        } catch {
            events.emit(parent, .childFinished(
                childID: info.id, answer: nil, iterations: node.iterations, latency: .now - start, error: String(describing: error)))
            throw error
        }
    }

    /// Turns a prompt argument into messages: a `str`, or a list of `{"role", "content"}` dicts.
    static func messages(from prompt: PythonValue) throws -> [ChatMessage] {
        switch prompt {
        case .string(let text):
            return [.user(text)]
        case .list(let items):
            return try items.map { item in
                guard let role = item["role"]?.stringValue.flatMap(ChatMessage.Role.init(rawValue:)),
                    let content = item["content"]?.stringValue
                else {
                    throw PythonError(code: .exception, typeName: "TypeError",
                                      message: "a message list needs dicts with 'role' (system, user or assistant) and 'content' str")
                }
                return ChatMessage(role: role, content: content)
            }
        default:
            throw PythonError(code: .exception, typeName: "TypeError",
                              message: "the prompt must be a str or a list of {'role', 'content'} dicts, not \(prompt.pythonTypeName)")
        }
    }
}

/// The estimated tokens of a reply streamed so far (a call's `onText` runs on the provider's side).
private final class StreamedTokens: Sendable {
    let count = Atomic<Int>(0)
}
