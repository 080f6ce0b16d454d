import Foundation
import Logging
import MCP
import RLM

/// RLMs as Model Context Protocol tools, for coding agents: `rlm_query` (a query over inline
/// text or files under the allowed directories, optionally in a session) and session tools.
/// Progress notifications follow a run when the client sends a progress token; failures come
/// back as tool errors (`isError`) whose text says what to fix.
public struct RLMMCPServer: Sendable {
    public let service: RLMService

    public init(service: RLMService) {
        self.service = service
    }

    /// The tools, as `tools/list` returns them.
    static var tools: [Tool] {
        let text: Value = .object(["type": "string"])
        return [
            Tool(
                name: "rlm_query",
                description: """
                    Answer a query over a context too large for a model's window with a Recursive Language Model: \
                    the context is held in a Python REPL that a model inspects with code and sub-calls. \
                    Give the context as `text`, or as `files` (paths under the directories the server allows), \
                    or name a `session` whose REPL already holds earlier contexts.
                    """,
                inputSchema: .object([
                    "type": "object",
                    "properties": .object([
                        "query": .object(["type": "string", "description": "The question or task."]),
                        "text": .object(["type": "string", "description": "The context, inline."]),
                        "files": .object(["type": "array", "items": text, "description": "Context files (UTF-8 text)."]),
                        "session": .object(["type": "string", "description": "A session from rlm_session_create."]),
                    ]),
                    "required": .array(["query"]),
                ])),
            Tool(name: "rlm_session_create", description: "Start a session: a REPL that keeps its variables and contexts across rlm_query calls.",
                 inputSchema: .object(["type": "object", "properties": .object([:])])),
            Tool(name: "rlm_session_list", description: "List the sessions with their turn counts.",
                 inputSchema: .object(["type": "object", "properties": .object([:])])),
            Tool(name: "rlm_session_delete", description: "Delete a session and its REPL.",
                 inputSchema: .object(["type": "object", "properties": .object(["session": text]), "required": .array(["session"])])),
        ]
    }

    /// Serves over stdin and stdout until the client closes them.
    public func runStdio(logger: Logger = Logger(label: "rlm.mcp")) async throws {
        let server = Server(
            name: "swift-rlm", version: "0.1.0",
            capabilities: .init(tools: .init(listChanged: false)))
        let service = self.service
        await server.withMethodHandler(ListTools.self) { _ in .init(tools: Self.tools) }
        await server.withMethodHandler(CallTool.self) { params in
            do {
                return try await Self.call(params, service: service) { progress, message in
                    guard let token = params._meta?.progressToken else { return }
                    try? await server.notify(ProgressNotification.message(.init(progressToken: token, progress: progress, message: message)))
                }
            } catch {
                return .init(content: [Self.plain(Self.message(for: error))], isError: true)
            }
        }
        try await server.start(transport: StdioTransport(logger: logger))
        await server.waitUntilCompleted()
        await service.shutdown()
    }

    static func plain(_ text: String) -> Tool.Content { .text(text: text, annotations: nil, _meta: nil) }

    static func message(for error: any Error) -> String {
        switch error {
        case let refusal as ChatAPI.Refusal: refusal.message
        case let error as RLMError: error.message
        case is CancellationError: "the run was cancelled"
        default: "\(error)"
        }
    }

    static func call(
        _ params: CallTool.Parameters, service: RLMService, progress: @escaping @Sendable (Double, String) async -> Void
    ) async throws -> CallTool.Result {
        let tenant = service.configuration.anonymousTenant
        let arguments = params.arguments ?? [:]
        switch params.name {
        case "rlm_query":
            guard let query = arguments["query"]?.stringValue, !query.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ChatAPI.Refusal.invalid("rlm_query needs `query`: the question to answer")
            }
            let session = arguments["session"]?.stringValue
            var chat = ChatAPI.Request(model: service.configuration.modelName, messages: [.init(role: "user", content: .text(query))])
            chat.rlmContext = arguments["text"]?.stringValue.map { .text($0) }
            chat.rlmFiles = arguments["files"]?.arrayValue?.compactMap(\.stringValue)
            var task = try ChatAPI.task(for: chat, allowedRoots: service.configuration.allowedRoots)
            if chat.rlmContext == nil && (chat.rlmFiles ?? []).isEmpty {
                guard session != nil else {
                    throw ChatAPI.Refusal.invalid("rlm_query needs a context: `text`, `files`, or a `session` that holds one")
                }
                task = ChatAPI.Task(query: query, context: nil, instructions: nil)
            }
            if let session { _ = try await service.session(id: session, tenant: tenant) }
            let record = try await service.admit(tenant, query: query, session: session)
            let watcher = Task {
                var count = 0.0
                for await event in record.watch() {
                    guard let line = Progress.line(event) else { continue }
                    count += 1
                    await progress(count, line)
                }
            }
            defer { watcher.cancel() }
            do {
                let result = try await service.execute(task, tenant: tenant, session: session, record: record)
                return try .init(content: [Self.plain(result.answer)], structuredContent: Answer(record: record.id, result: result, limit: nil))
            } catch let error as RLMError where error.code == .limitReached {
                let limit = error.limit.map { "\($0)" } ?? "a limit"
                guard let partial = error.partialAnswer else {
                    throw ChatAPI.Refusal.invalid("the run stopped at the \(limit) before the model answered; retry with a larger budget or a narrower query")
                }
                return .init(content: [Self.plain(partial), Self.plain("(the \(limit) ended the run; this is the best answer so far)")])
            }
        case "rlm_session_create":
            let session = try await service.createSession(tenant: tenant)
            return .init(content: [Self.plain(session.id)])
        case "rlm_session_list":
            let sessions = try await service.store.list(tenant: tenant.name)
            let lines = sessions.map { "\($0.id)  \($0.turns) turn(s)" }
            return .init(content: [Self.plain(lines.isEmpty ? "no sessions" : lines.joined(separator: "\n"))])
        case "rlm_session_delete":
            guard let id = arguments["session"]?.stringValue else { throw ChatAPI.Refusal.invalid("rlm_session_delete needs `session`") }
            try await service.deleteSession(id: id, tenant: tenant)
            return .init(content: [Self.plain("deleted \(id)")])
        default:
            throw ChatAPI.Refusal.invalid("no tool named \(params.name): the tools are \(tools.map(\.name).joined(separator: ", "))")
        }
    }

    /// `rlm_query`'s structured result.
    struct Answer: Codable {
        var answer: String
        var runID: String
        var iterations: Int
        var calls: Int
        var inputTokens: Int
        var outputTokens: Int
        var costUSD: Double

        init(record: String, result: RLMResult, limit: String?) {
            answer = result.answer
            runID = record
            iterations = result.iterations
            calls = result.usage.total.calls
            inputTokens = result.usage.total.tokens.inputTokens
            outputTokens = result.usage.total.tokens.outputTokens
            costUSD = result.usage.total.costUSD
        }

        enum CodingKeys: String, CodingKey {
            case answer, runID = "run_id", iterations, calls, inputTokens = "input_tokens", outputTokens = "output_tokens", costUSD = "cost_usd"
        }
    }
}
