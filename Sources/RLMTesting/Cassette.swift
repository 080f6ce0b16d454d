import Foundation
import RLM
import Synchronization
#if RLM_TSAN_LOCKS
import PythonRuntime  // its SanitizerMutex is this module's Mutex under ThreadSanitizer
#endif

/// A recording of model calls, to replay a run offline and deterministically through the real
/// engine: every request (model and exact messages) with its reply and usage, and each model's
/// window.
///
/// Record once against a real model with ``RecordingModel`` (or `rlm run --record FILE`), commit
/// the file, and replay it in tests with ``ReplayModel`` (or `rlm run --replay FILE`): no network,
/// the same answer every time, and a clear failure when the code under test asks something the
/// recording does not hold.
///
/// ```swift
/// let cassette = try Cassette.load(from: fixtures.appendingPathComponent("needle.json"))
/// let root = try ReplayModel(name: "gpt-5", cassette: cassette)
/// let result = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: q, context: .text(text))
/// ```
public final class Cassette: Sendable {
    /// One recorded call.
    public struct Entry: Sendable, Hashable, Codable {
        /// ``LanguageModel/modelName``.
        public var model: String
        /// The messages sent.
        public var messages: [ChatMessage]
        /// The reply.
        public var reply: String
        /// The tokens the call cost.
        public var usage: TokenUsage
    }

    private struct Contents: Codable {
        var format = 1
        var windows: [String: ContextWindow] = [:]
        var entries: [Entry] = []
    }
    private let contents: Mutex<Contents>

    /// An empty cassette, to record into.
    public init() {
        contents = Mutex(Contents())
    }

    private init(_ contents: Contents) {
        self.contents = Mutex(contents)
    }

    /// The cassette saved at `url`.
    public static func load(from url: URL) throws -> Cassette {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ReplayError(message: "cannot read the recording \(url.path): \(error.localizedDescription)")
        }
        do {
            let contents = try JSONDecoder().decode(Contents.self, from: data)
            guard contents.format == 1 else { throw ReplayError(message: "the recording \(url.path) has format \(contents.format); this version reads 1") }
            return Cassette(contents)
        } catch let error as ReplayError {
            throw error
        } catch {
            throw ReplayError(message: "\(url.path) is not a recording of model calls (\(error))")
        }
    }

    /// Writes the cassette to `url` (sorted keys, one step).
    public func save(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(contents.withLock { $0 }).write(to: url, options: .atomic)
    }

    /// Every recorded call, in the order they finished.
    public var entries: [Entry] { contents.withLock { $0.entries } }

    /// The recorded models' names.
    public var models: [String] { contents.withLock { Array(Set($0.entries.map(\.model)).union($0.windows.keys)).sorted() } }

    func record(_ entry: Entry, window: ContextWindow?) {
        contents.withLock { contents in
            contents.entries.append(entry)
            if let window { contents.windows[entry.model] = window }
        }
    }

    func window(of model: String) -> ContextWindow? { contents.withLock { $0.windows[model] } }
}

/// A model whose calls go to `model` and are recorded in a ``Cassette``. Calls that fail are not
/// recorded.
public struct RecordingModel: LanguageModel {
    /// The model called.
    public let model: any LanguageModel
    /// Where calls are recorded.
    public let cassette: Cassette

    /// Records `model`'s calls into `cassette`.
    public init(_ model: any LanguageModel, into cassette: Cassette) {
        self.model = model
        self.cassette = cassette
    }

    public var modelName: String { model.modelName }
    public var contextWindow: ContextWindow? { model.contextWindow }
    public var secrets: [String] { model.secrets }
    public var cacheIdentity: CacheIdentity { model.cacheIdentity }

    public func complete(_ messages: [ChatMessage]) async throws -> ModelResponse {
        try await recording(messages) { try await model.complete(messages) }
    }

    public func complete(_ messages: [ChatMessage], schema: ReplySchema) async throws -> ModelResponse {
        try await recording(messages) { try await model.complete(messages, schema: schema) }
    }

    public func complete(_ messages: [ChatMessage], onText: @escaping @Sendable (String) -> Void) async throws -> ModelResponse {
        try await recording(messages) { try await model.complete(messages, onText: onText) }
    }

    private func recording(_ messages: [ChatMessage], _ call: () async throws -> ModelResponse) async throws -> ModelResponse {
        let response = try await call()
        cassette.record(Entry(model: modelName, messages: messages, reply: response.text, usage: response.usage), window: contextWindow)
        return response
    }

    private typealias Entry = Cassette.Entry
}

/// A model that answers from a ``Cassette``: each request gets the reply recorded for the same
/// model and exactly the same messages (repeated requests get their recorded replies in order,
/// then the last again), with the recorded usage and window. A request the cassette does not hold
/// throws ``ReplayError``, naming the model and where the request parts from the nearest recorded one.
public final class ReplayModel: LanguageModel {
    public let modelName: String
    public let contextWindow: ContextWindow?
    private let replies: [[ChatMessage]: [Cassette.Entry]]
    private let recorded: [[ChatMessage]]
    private let served = Mutex<[[ChatMessage]: Int]>([:])

    /// Replays `cassette`'s calls to the model named `name`; fails when it recorded none.
    public init(name: String, cassette: Cassette) throws {
        let entries = cassette.entries.filter { $0.model == name }
        guard !entries.isEmpty else {
            throw ReplayError(message: "the recording holds no calls to '\(name)'; it recorded \(cassette.models.map { "'\($0)'" }.joined(separator: ", "))")
        }
        modelName = name
        contextWindow = cassette.window(of: name)
        replies = Dictionary(grouping: entries, by: \.messages)
        recorded = entries.map(\.messages)
    }

    public func complete(_ messages: [ChatMessage]) async throws -> ModelResponse {
        guard let entries = replies[messages] else { throw miss(messages) }
        let index = served.withLock { served -> Int in
            defer { served[messages, default: 0] += 1 }
            return min(served[messages, default: 0], entries.count - 1)
        }
        return ModelResponse(text: entries[index].reply, usage: entries[index].usage)
    }

    /// Where `messages` parts from the recorded request that shares the longest start with it.
    private func miss(_ messages: [ChatMessage]) -> ReplayError {
        func shared(_ other: [ChatMessage]) -> Int { zip(messages, other).prefix { $0 == $1 }.count }
        let nearest = recorded.max { shared($0) < shared($1) } ?? []
        let index = shared(nearest)
        var detail = "it recorded \(recorded.count) requests to '\(modelName)'"
        if index < messages.count {
            let asked = messages[index].content
            let had = index < nearest.count ? nearest[index].content : nil
            let at = zip(asked, had ?? "").prefix { $0 == $1 }.count
            detail += "; the nearest matches up to message \(index + 1) (\(messages[index].role.rawValue)), which here reads “\(Self.excerpt(asked, at: at))”"
            detail += had.map { " but was recorded as “\(Self.excerpt($0, at: at))”" } ?? " and was not in the recording"
        } else {
            detail += "; the nearest recorded request has more messages"
        }
        return ReplayError(message: "the recording holds no reply to this request to '\(modelName)': \(detail)")
    }

    private static func excerpt(_ text: String, at offset: Int) -> String {
        let start = text.index(text.startIndex, offsetBy: max(0, offset - 20), limitedBy: text.endIndex) ?? text.endIndex
        let piece = text[start...].prefix(80).replacingOccurrences(of: "\n", with: "⏎")
        return (start > text.startIndex ? "…" : "") + piece + (text.distance(from: start, to: text.endIndex) > 80 ? "…" : "")
    }
}

/// A recording that cannot be read, or a request it does not hold.
public struct ReplayError: Error, CustomStringConvertible {
    /// What went wrong, and where.
    public var message: String
    public var description: String { message }
}
