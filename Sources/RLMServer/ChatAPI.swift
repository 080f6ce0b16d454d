import Foundation
import RLM

/// The OpenAI Chat Completions wire format, as far as `rlm serve` speaks it, and how a request
/// becomes an RLM's query and context.
enum ChatAPI {
    /// `POST /v1/chat/completions`. Fields the server does not use (temperature, max_tokens…)
    /// are accepted and ignored; the `rlm_` fields are this server's extensions.
    struct Request: Decodable, Sendable {
        var model: String
        var messages: [Message]
        var stream: Bool?
        var streamOptions: StreamOptions?
        /// The context as text, or as a list of texts.
        var rlmContext: Content?
        /// Files (under the directories the operator allowed) whose text is the context.
        var rlmFiles: [String]?
        /// A session (`POST /v1/sessions`) to take this turn in.
        var rlmSession: String?

        struct StreamOptions: Decodable, Sendable {
            var includeUsage: Bool?
            enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
        }

        enum CodingKeys: String, CodingKey {
            case model, messages, stream
            case streamOptions = "stream_options"
            case rlmContext = "rlm_context", rlmFiles = "rlm_files", rlmSession = "rlm_session"
        }
    }

    struct Message: Decodable, Sendable {
        var role: String
        var content: Content?
    }

    /// A message's content: a string, or a list of parts of which only text is understood.
    enum Content: Decodable, Sendable {
        case text(String)
        case parts([String])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self = .text(text)
                return
            }
            struct Part: Decodable {
                var type: String?
                var text: String?
            }
            // A list of strings (for `rlm_context`) or of content parts.
            if let texts = try? container.decode([String].self) {
                self = .parts(texts)
                return
            }
            let parts = try container.decode([Part].self)
            self = .parts(try parts.map { part in
                guard part.type == nil || part.type == "text", let text = part.text else {
                    throw DecodingError.dataCorruptedError(
                        in: container, debugDescription: "only text content parts are supported (got type \(part.type ?? "none"))")
                }
                return text
            })
        }

        var texts: [String] {
            switch self {
            case .text(let text): [text]
            case .parts(let parts): parts
            }
        }
    }

    /// What a request asks of an RLM.
    struct Task: Sendable {
        var query: String
        /// `nil`: a session turn over the contexts the session already holds.
        var context: RLMContext?
        /// The request's system messages and earlier turns, for the system prompt.
        var instructions: String?
        /// The context is only the query itself (a short message without a paragraph break): a
        /// session turn then works on the contexts the session holds instead.
        var contextIsQuery = false
    }

    /// A request the server refuses, with the status and the OpenAI error type to say so.
    struct Refusal: Error, Sendable {
        var status: Int
        var type: String
        var code: String?
        var message: String
        var param: String?

        static func invalid(_ message: String, param: String? = nil) -> Refusal {
            Refusal(status: 400, type: "invalid_request_error", code: nil, message: message, param: param)
        }
    }

    /// The longest query taken from the end of a user message; a longer message is all context.
    static let longestInlineQuery = 4_000

    /// The query when a user's message is all context.
    static let wholeMessageQuery = "Do what the user's message, which is the `context`, asks. Its request may be at its start or at its end."

    /// Turns the messages into a query and context: see docs/serve.md for the rules.
    static func task(for request: Request, allowedRoots: [String]) throws -> Task {
        guard let last = request.messages.lastIndex(where: { $0.role == "user" }) else {
            throw Refusal.invalid("`messages` has no message with role \"user\": the last user message is the query", param: "messages")
        }
        let texts = request.messages[last].content?.texts ?? []
        guard !texts.isEmpty, texts.contains(where: { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }) else {
            throw Refusal.invalid("the last user message is empty", param: "messages")
        }
        var instructions: [String] = []
        let system = request.messages.filter { $0.role == "system" || $0.role == "developer" }.flatMap { $0.content?.texts ?? [] }
        if !system.isEmpty { instructions.append("The user's instructions:\n" + system.joined(separator: "\n")) }
        let earlier = request.messages[..<last].filter { $0.role == "user" || $0.role == "assistant" }
        if !earlier.isEmpty {
            let transcript = earlier.map { "\($0.role): \(($0.content?.texts ?? []).joined(separator: "\n"))" }.joined(separator: "\n")
            instructions.append("Earlier messages of this conversation:\n" + String(transcript.suffix(8_000)))
        }
        let explicit = try explicitContext(request, allowedRoots: allowedRoots)
        let query: String
        let context: RLMContext
        if let explicit {
            query = texts.joined(separator: "\n")
            context = explicit
        } else if texts.count > 1 {
            // Parts: the last is the request, the others the context.
            query = texts[texts.count - 1]
            context = texts.count == 2 ? .text(texts[0]) : .texts(Array(texts.dropLast()))
        } else {
            (query, context) = split(texts[0])
        }
        var task = Task(query: query, context: context, instructions: instructions.isEmpty ? nil : instructions.joined(separator: "\n\n"))
        task.contextIsQuery = explicit == nil && texts.count == 1 && query == texts[0]
        return task
    }

    /// One string: its last paragraph is the query when short, and the rest the context.
    static func split(_ text: String) -> (String, RLMContext) {
        if let range = text.range(of: "\n\n", options: .backwards) {
            let head = text[..<range.lowerBound]
            let tail = text[range.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)
            if !tail.isEmpty, tail.count <= longestInlineQuery, !head.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                return (tail, .text(String(head)))
            }
        }
        return (text.count <= longestInlineQuery ? text : wholeMessageQuery, .text(text))
    }

    private static func explicitContext(_ request: Request, allowedRoots: [String]) throws -> RLMContext? {
        if let files = request.rlmFiles, !files.isEmpty {
            if request.rlmContext != nil { throw Refusal.invalid("give `rlm_context` or `rlm_files`, not both", param: "rlm_files") }
            let urls = try files.map { try FileAccess.resolve($0, allowedRoots: allowedRoots, param: "rlm_files") }
            if urls.count == 1 { return .file(urls[0]) }
            return .texts(try urls.map { url in
                guard let text = String(data: try Data(contentsOf: url), encoding: .utf8) else {
                    throw Refusal.invalid("\(url.lastPathComponent) is not UTF-8 text", param: "rlm_files")
                }
                return text
            })
        }
        switch request.rlmContext {
        case .text(let text)?: return .text(text)
        case .parts(let texts)?: return .texts(texts)
        case nil: return nil
        }
    }

    // MARK: Responses

    struct Completion: Encodable {
        var id: String
        var object = "chat.completion"
        var created: Int
        var model: String
        var choices: [Choice]
        var usage: Usage
        var rlm: Extension

        struct Choice: Encodable {
            var index = 0
            var message: ReplyMessage
            var finishReason: String
            enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason" }
        }

        struct ReplyMessage: Encodable {
            var role = "assistant"
            var content: String
        }
    }

    /// What the server adds to a completion: the run's id (the live page's), its session, its
    /// iterations and the limit that ended it, if one did.
    struct Extension: Encodable {
        var runID: String
        var session: String?
        var iterations: Int?
        var limit: String?
        var costUSD: Double
        /// Calls answered from the reply cache (`--cache`), and the tokens they saved.
        var cacheHits: Int
        var savedTokens: Int
        enum CodingKeys: String, CodingKey {
            case runID = "run_id", session, iterations, limit, costUSD = "cost_usd", cacheHits = "cache_hits", savedTokens = "saved_tokens"
        }
    }

    struct Usage: Encodable {
        var promptTokens: Int
        var completionTokens: Int
        var totalTokens: Int
        var promptTokensDetails: Details

        struct Details: Encodable {
            var cachedTokens: Int
            enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
        }

        init(_ summary: UsageSummary) {
            let tokens = summary.total.tokens
            promptTokens = tokens.inputTokens
            completionTokens = tokens.outputTokens
            totalTokens = tokens.inputTokens + tokens.outputTokens
            promptTokensDetails = Details(cachedTokens: tokens.cachedInputTokens)
        }

        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
            case promptTokensDetails = "prompt_tokens_details"
        }
    }

    struct Chunk: Encodable {
        var id: String
        var object = "chat.completion.chunk"
        var created: Int
        var model: String
        var choices: [Choice]
        var usage: Usage?
        var rlm: Extension?

        struct Choice: Encodable {
            var index = 0
            var delta: Delta
            var finishReason: String?
            enum CodingKeys: String, CodingKey { case index, delta, finishReason = "finish_reason" }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(index, forKey: .index)
                try container.encode(delta, forKey: .delta)
                // OpenAI sends `"finish_reason": null` until the last chunk.
                try container.encode(finishReason, forKey: .finishReason)
            }
        }

        struct Delta: Encodable {
            var role: String?
            var content: String?
        }
    }

    /// What a run answers: its result's answer, or the best answer so far when a limit ended it
    /// (`finish_reason: "length"`). A run that ended without any answer is an error.
    struct Answered {
        var answer: String
        var finishReason: String
        var usage: UsageSummary
        var limit: String?
        var iterations: Int?

        init(_ outcome: Result<RLMResult, any Error>) throws {
            switch outcome {
            case .success(let result):
                answer = result.answer
                finishReason = result.answeredAfterLimit == nil ? "stop" : "length"
                usage = result.usage
                limit = result.answeredAfterLimit.map { "\($0)" }
                iterations = result.iterations
            case .failure(let error as RLMError) where error.code == .limitReached && error.partialAnswer != nil:
                answer = error.partialAnswer ?? ""
                finishReason = "length"
                usage = error.usage ?? UsageSummary()
                limit = error.limit.map { "\($0)" }
            case .failure(let error):
                throw error
            }
        }

        func extensionFields(runID: String, session: String?) -> Extension {
            Extension(
                runID: runID, session: session, iterations: iterations, limit: limit, costUSD: usage.total.costUSD,
                cacheHits: usage.total.cacheHits, savedTokens: usage.total.savedTokens.totalTokens)
        }
    }

    struct ErrorBody: Encodable {
        init(_ refusal: Refusal) {
            error = Detail(message: refusal.message, type: refusal.type, param: refusal.param, code: refusal.code)
        }

        var error: Detail
        struct Detail: Encodable {
            var message: String
            var type: String
            var param: String?
            var code: String?
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(message, forKey: .message)
                try container.encode(type, forKey: .type)
                try container.encode(param, forKey: .param)
                try container.encode(code, forKey: .code)
            }
            enum CodingKeys: String, CodingKey { case message, type, param, code }
        }
    }

    struct ModelList: Encodable {
        var object = "list"
        var data: [Model]
        struct Model: Encodable {
            var id: String
            var object = "model"
            var created: Int
            var ownedBy = "swift-rlm"
            enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by" }
        }
    }
}

/// Files a request may name: only under the directories the operator allowed, after links are
/// resolved, so `..` and symbolic links cannot reach outside them.
enum FileAccess {
    static func resolve(_ path: String, allowedRoots: [String], param: String) throws -> URL {
        guard !allowedRoots.isEmpty else {
            throw ChatAPI.Refusal(status: 403, type: "permission_error", code: "files_not_allowed",
                                  message: "this server allows no files: its operator starts it with --allow-files DIR", param: param)
        }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL
        let inside = allowedRoots.contains { root in
            let base = URL(fileURLWithPath: root).resolvingSymlinksInPath().standardizedFileURL.path
            return resolved.path == base || resolved.path.hasPrefix(base.hasSuffix("/") ? base : base + "/")
        }
        guard inside else {
            throw ChatAPI.Refusal(status: 403, type: "permission_error", code: "file_not_allowed",
                                  message: "\(path) is not under a directory this server allows", param: param)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ChatAPI.Refusal(status: 404, type: "invalid_request_error", code: "file_not_found",
                                  message: "\(path) does not exist or is a directory", param: param)
        }
        return resolved
    }
}
