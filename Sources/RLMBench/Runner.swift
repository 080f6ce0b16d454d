import Foundation
import RLM

/// One task run one way: as an RLM, or by the base model alone.
public struct BenchResult: Sendable, Hashable, Codable {
    public enum Mode: String, Sendable, Hashable, Codable, CaseIterable {
        /// A Recursive Language Model over the whole context.
        case rlm
        /// The root model alone, with the context cut to its window.
        case base
    }

    public var id: String
    public var family: BenchTask.Family
    public var sizeTokens: Int
    public var mode: Mode
    /// 0–1: right or wrong, or F1 for pairs.
    public var score: Double
    public var answer: String
    /// `nil` when the run answered; else why it failed: `limit:<name>`, `model`, `python`, `error`.
    public var failure: String?
    public var calls: Int
    public var inputTokens: Int
    public var outputTokens: Int
    public var costUSD: Double
    public var seconds: Double
    /// How an RLM run answered (``Strategy``); `nil` for the base model and older results.
    public var strategy: Strategy?
}

/// Runs tasks as RLMs and against the base model, appending each result to a JSON Lines file so
/// that a re-run skips what is done.
public struct BenchRunner: Sendable {
    /// The RLM's settings (models, budget, depth); each task gets a run of its own.
    public var configuration: RLMConfiguration
    /// Whether each task also runs against the base model alone.
    public var includeBase: Bool
    /// The base model's window in tokens, when the model does not say: the context is cut to it.
    public var baseWindowTokens: Int
    /// Tasks run at once.
    public var concurrency: Int
    /// A directory for each RLM run's trajectory (`TASK.jsonl`, for `rlm view`). Defaults to `nil`: none kept.
    public var trajectories: URL?

    public init(
        configuration: RLMConfiguration, includeBase: Bool = true, baseWindowTokens: Int = 8_192, concurrency: Int = 2,
        trajectories: URL? = nil
    ) {
        self.configuration = configuration
        self.includeBase = includeBase
        self.baseWindowTokens = baseWindowTokens
        self.concurrency = concurrency
        self.trajectories = trajectories
    }

    /// Results already in `file`, keyed by task id and mode.
    public static func load(_ file: URL) throws -> [BenchResult] {
        guard FileManager.default.fileExists(atPath: file.path) else { return [] }
        let text = try String(contentsOf: file, encoding: .utf8)
        let decoder = JSONDecoder()
        // A line cut short by an interrupted run is dropped: its task runs again.
        return text.split(separator: "\n").compactMap { try? decoder.decode(BenchResult.self, from: Data($0.utf8)) }
    }

    /// Runs every (task, mode) not yet in `file`, appending results as they finish; returns all
    /// results, old and new. `progress` hears about each new one.
    public func run(_ tasks: [BenchTask], resultsFile file: URL, progress: @escaping @Sendable (BenchResult) -> Void = { _ in }) async throws -> [BenchResult] {
        let done = try Self.load(file)
        let finished = Set(done.map { "\($0.id)/\($0.mode.rawValue)" })
        let modes: [BenchResult.Mode] = includeBase ? [.rlm, .base] : [.rlm]
        let work = tasks.flatMap { task in modes.map { (task, $0) } }.filter { !finished.contains("\($0.0.id)/\($0.1.rawValue)") }
        if !FileManager.default.fileExists(atPath: file.path), !FileManager.default.createFile(atPath: file.path, contents: nil) {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path, NSLocalizedDescriptionKey: "cannot create the results file \(file.path)"])
        }
        let handle = try FileHandle(forWritingTo: file)
        defer { try? handle.close() }
        try handle.seekToEnd()
        let writer = ResultWriter(handle: handle)
        var results = done
        try await withThrowingTaskGroup(of: BenchResult.self) { group in
            var pending = work.makeIterator()
            func startNext() -> Bool {
                guard let (task, mode) = pending.next() else { return false }
                group.addTask { try await self.run(task, mode: mode) }
                return true
            }
            var started = 0
            while started < max(1, concurrency), startNext() { started += 1 }
            for try await result in group {
                try await writer.append(result)
                results.append(result)
                progress(result)
                _ = startNext()
            }
        }
        return results
    }

    /// One task one way. Failures are results (with `failure` set), not errors; only
    /// cancellation throws.
    public func run(_ task: BenchTask, mode: BenchResult.Mode) async throws -> BenchResult {
        let clock = ContinuousClock()
        let start = clock.now
        var result = BenchResult(
            id: task.id, family: task.family, sizeTokens: task.sizeTokens, mode: mode, score: 0, answer: "",
            failure: nil, calls: 0, inputTokens: 0, outputTokens: 0, costUSD: 0, seconds: 0)
        func record(_ usage: UsageSummary?) {
            guard let usage else { return }
            result.calls = usage.total.calls
            result.inputTokens = usage.total.tokens.inputTokens
            result.outputTokens = usage.total.tokens.outputTokens
            result.costUSD = usage.total.costUSD
        }
        do {
            switch mode {
            case .rlm:
                let writer = try trajectories.map { try TrajectoryWriter(url: $0.appendingPathComponent("\(task.id).jsonl")) }
                defer { writer?.close() }
                let outcome = try await RLM(configuration: configuration).complete(query: task.question, context: .text(task.context), trajectory: writer)
                result.answer = outcome.answer
                result.strategy = outcome.strategy
                record(outcome.usage)
                if let limit = outcome.answeredAfterLimit { result.failure = "limit:\(limit.rawValue) (answered)" }
            case .base:
                let model = configuration.rootModel
                let window = model.contextWindow ?? ContextWindow(tokens: baseWindowTokens)
                let messages = Self.baseMessages(task, windowTokens: window.promptTokens)
                let response = try await model.complete(messages)
                result.answer = response.text
                result.calls = 1
                result.inputTokens = response.usage.inputTokens
                result.outputTokens = response.usage.outputTokens
                result.costUSD = configuration.budget.prices[model.modelName]?.cost(of: response.usage) ?? 0
            }
            result.score = Scorer.score(result.answer, expected: task.expected)
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as RLMError {
            result.failure = error.limit.map { "limit:\($0.rawValue)" } ?? (error.code == .modelFailed ? "model" : error.code == .pythonFailed ? "python" : "error")
            result.answer = error.partialAnswer ?? ""
            record(error.usage)
            result.score = result.answer.isEmpty ? 0 : Scorer.score(result.answer, expected: task.expected)
        } catch {
            result.failure = "model"
        }
        result.seconds = Double((clock.now - start).components.attoseconds) / 1e18 + Double((clock.now - start).components.seconds)
        return result
    }

    /// The base model's prompt: as much of the context as its window holds (the start and the
    /// end, with the middle left out), then the question.
    static func baseMessages(_ task: BenchTask, windowTokens: Int) -> [ChatMessage] {
        let question = "\n\nQuestion: \(task.question)"
        let budget = max(0, (windowTokens - TokenEstimate.tokens(in: question) - 64) * 3)
        var context = task.context
        if context.count > budget {
            let half = budget / 2
            context = String(context.prefix(half)) + "\n[… the middle of the document is left out: it does not fit …]\n" + String(context.suffix(half))
        }
        return [
            .system("Answer the question about the document. Be brief."),
            .user(context + question),
        ]
    }
}

/// Appends results to the results file one line at a time.
actor ResultWriter {
    let handle: FileHandle
    let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    init(handle: FileHandle) { self.handle = handle }

    func append(_ result: BenchResult) throws {
        var line = try encoder.encode(result)
        line.append(UInt8(ascii: "\n"))
        try handle.write(contentsOf: line)
    }
}
