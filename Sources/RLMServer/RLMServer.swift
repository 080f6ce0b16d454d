import Foundation
import Hummingbird
import Logging
import NIOCore
import RLM
import ServiceLifecycle
import UnixSignals

/// The request context of ``RLMServer``'s routes.
public struct ServerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
    }
}

/// RLMs behind an OpenAI-compatible HTTP API, with sessions, tenants and a live page.
///
/// ```swift
/// let store = try await SQLiteSessionStore.open(path: "rlm.sqlite")
/// let server = RLMServer(service: RLMService(configuration: configuration, store: store))
/// try await server.run(host: "127.0.0.1", port: 8080)   // until SIGTERM or SIGINT
/// ```
///
/// Routes: `GET /v1/models`, `POST /v1/chat/completions` (streaming or not), sessions under
/// `/v1/sessions`, runs under `/v1/runs`, the live page at `/`, and `GET /health`.
/// docs/serve.md describes each.
public struct RLMServer: Sendable {
    /// What the server runs.
    public let service: RLMService
    let logger: Logger

    public init(service: RLMService, logger: Logger = Logger(label: "rlm.server")) {
        self.service = service
        self.logger = logger
    }

    /// The Hummingbird application, for callers that run it in their own service group;
    /// `onServerRunning` learns the bound port.
    public func application(
        host: String, port: Int, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: makeRouter(),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "swift-rlm"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// Serves until SIGTERM or SIGINT; then stops accepting, lets runs in progress finish for up
    /// to `shutdownGrace`, cancels the rest, closes the sessions and the store, and returns.
    public func run(
        host: String, port: Int, shutdownGrace: Duration = .seconds(30),
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: application(host: host, port: port, onServerRunning: onServerRunning))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = shutdownGrace
        configuration.maximumCancellationDuration = .seconds(10)
        let group = ServiceGroup(configuration: configuration)
        do {
            try await group.run()
        } catch {
            await service.shutdown()
            throw error
        }
        await service.shutdown()
    }

    // MARK: Routes

    func makeRouter() -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        let service = self.service
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                     body: .init(byteBuffer: ByteBuffer(string: LivePage.html)))
        }
        router.get("/health") { _, _ in
            Self.json(["status": "ok", "runs": "\(service.runningCount)"])
        }
        router.get("/v1/models") { request, _ in
            await Self.guarded(service, request) { _ in
                Self.json(ChatAPI.ModelList(data: [.init(id: service.configuration.modelName, created: Self.startTime)]))
            }
        }
        router.post("/v1/chat/completions") { request, _ in
            await Self.guarded(service, request) { tenant in
                let body = try await Self.body(request, limit: service.configuration.maxBodyBytes)
                let chat: ChatAPI.Request
                do {
                    chat = try JSONDecoder().decode(ChatAPI.Request.self, from: body)
                } catch {
                    throw ChatAPI.Refusal.invalid("the body is not a chat completion request: \(Self.describe(error))")
                }
                guard chat.model == service.configuration.modelName else {
                    throw ChatAPI.Refusal(status: 404, type: "invalid_request_error", code: "model_not_found",
                                          message: "this server serves the model \"\(service.configuration.modelName)\", not \"\(chat.model)\"", param: "model")
                }
                var task = try ChatAPI.task(for: chat, allowedRoots: service.configuration.allowedRoots)
                if let session = chat.rlmSession {
                    let stored = try await service.session(id: session, tenant: tenant)
                    // "What about X?" in a session asks about what the session holds.
                    if task.contextIsQuery && stored.turns > 0 { task.context = nil }
                }
                let record = try await service.admit(tenant, query: task.query, session: chat.rlmSession)
                if chat.stream == true {
                    return Self.stream(service, task, tenant: tenant, session: chat.rlmSession, record: record,
                                       includeUsage: chat.streamOptions?.includeUsage ?? false)
                }
                return try await Self.complete(service, task, tenant: tenant, session: chat.rlmSession, record: record)
            }
        }
        router.post("/v1/sessions") { request, _ in
            await Self.guarded(service, request) { tenant in
                Self.json(SessionView(try await service.createSession(tenant: tenant)), status: .created)
            }
        }
        router.get("/v1/sessions") { request, _ in
            await Self.guarded(service, request) { tenant in
                Self.json(ListView(data: try await service.store.list(tenant: tenant.name).map { SessionView($0) }))
            }
        }
        router.get("/v1/sessions/{id}") { request, context in
            await Self.guarded(service, request) { tenant in
                Self.json(SessionView(try await service.session(id: context.parameters.get("id") ?? "", tenant: tenant), withTurns: true))
            }
        }
        router.delete("/v1/sessions/{id}") { request, context in
            await Self.guarded(service, request) { tenant in
                let id = context.parameters.get("id") ?? ""
                try await service.deleteSession(id: id, tenant: tenant)
                return Self.json(["id": id, "object": "rlm.session.deleted", "deleted": "true"])
            }
        }
        router.post("/v1/sessions/{id}/query") { request, context in
            await Self.guarded(service, request) { tenant in
                let id = context.parameters.get("id") ?? ""
                let body = try await Self.body(request, limit: service.configuration.maxBodyBytes)
                let query: SessionQuery
                do {
                    query = try JSONDecoder().decode(SessionQuery.self, from: body)
                } catch {
                    throw ChatAPI.Refusal.invalid("the body should be {\"query\": TEXT, \"context\": TEXT or [TEXT], \"files\": [PATH]}: \(Self.describe(error))")
                }
                var chat = ChatAPI.Request(model: service.configuration.modelName, messages: [.init(role: "user", content: .text(query.query))])
                chat.rlmContext = query.context
                chat.rlmFiles = query.files
                var task = try ChatAPI.task(for: chat, allowedRoots: service.configuration.allowedRoots)
                if query.context == nil && (query.files ?? []).isEmpty {
                    // A turn without new context works on what the session holds.
                    task = ChatAPI.Task(query: query.query, context: nil, instructions: nil)
                }
                _ = try await service.session(id: id, tenant: tenant)
                let record = try await service.admit(tenant, query: task.query, session: id)
                return try await Self.complete(service, task, tenant: tenant, session: id, record: record)
            }
        }
        router.get("/v1/runs") { request, _ in
            await Self.guarded(service, request) { tenant in
                Self.json(RunsView(data: service.registry.runs(tenant: tenant.name), now: Date()))
            }
        }
        router.get("/v1/runs/{id}/events") { request, context in
            await Self.guarded(service, request) { tenant in
                guard let record = service.registry.record(id: context.parameters.get("id") ?? "", tenant: tenant.name) else {
                    throw ChatAPI.Refusal(status: 404, type: "invalid_request_error", code: "run_not_found",
                                          message: "no run with that id for this tenant (finished runs are kept for a while: GET /v1/runs lists them)")
                }
                let events = record.watch()
                return Response(
                    status: .ok, headers: Self.eventStreamHeaders,
                    body: ResponseBody { writer in
                        let encoder = JSONEncoder()
                        for await event in events {
                            try await writer.write(Self.serverSentEvent(event, encoder: encoder))
                        }
                        try await writer.write(Self.serverSentEvent(record.summary, named: "end", encoder: encoder))
                        try await writer.finish(nil)
                    })
            }
        }
        return router
    }

    // MARK: Completions

    static func complete(
        _ service: RLMService, _ task: ChatAPI.Task, tenant: Tenant, session: String?, record: RunRegistry.Record
    ) async throws -> Response {
        let id = "chatcmpl-" + record.id
        let model = service.configuration.modelName
        let created = Int(Date().timeIntervalSince1970)
        let outcome: Result<RLMResult, any Error>
        do {
            outcome = .success(try await service.execute(task, tenant: tenant, session: session, record: record))
        } catch {
            outcome = .failure(error)
        }
        let answered = try ChatAPI.Answered(outcome)
        return json(ChatAPI.Completion(
            id: id, created: created, model: model,
            choices: [.init(message: .init(content: answered.answer), finishReason: answered.finishReason)],
            usage: ChatAPI.Usage(answered.usage), rlm: answered.extensionFields(runID: record.id, session: session)))
    }

    static func stream(
        _ service: RLMService, _ task: ChatAPI.Task, tenant: Tenant, session: String?, record: RunRegistry.Record, includeUsage: Bool
    ) -> Response {
        let id = "chatcmpl-" + record.id
        let model = service.configuration.modelName
        let created = Int(Date().timeIntervalSince1970)
        let run = Task { try await service.execute(task, tenant: tenant, session: session, record: record) }
        // Events and a heartbeat every 2 s, so a client that went away is noticed while a
        // model call is slow: the write fails and the run is cancelled.
        let (items, continuation) = AsyncStream<RLMEvent?>.makeStream()
        let forward = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await event in record.watch() { continuation.yield(event) }
                    continuation.finish()
                }
                group.addTask {
                    while (try? await Task.sleep(for: .seconds(2))) != nil {
                        continuation.yield(nil)
                    }
                }
                await group.next()
                group.cancelAll()
            }
        }
        return Response(status: .ok, headers: eventStreamHeaders, body: ResponseBody { writer in
            let encoder = JSONEncoder()
            func send(_ chunk: ChatAPI.Chunk) async throws {
                try await writer.write(serverSentEvent(chunk, encoder: encoder))
            }
            try await withTaskCancellationHandler {
                do {
                    try await send(ChatAPI.Chunk(id: id, created: created, model: model, choices: [.init(delta: .init(role: "assistant", content: ""))]))
                    for await item in items {
                        // Progress goes out as SSE comments, which OpenAI clients skip.
                        let text = item.flatMap(Progress.line) ?? "keep-alive"
                        try await writer.write(ByteBuffer(string: ": rlm \(text)\n\n"))
                    }
                    let answered: ChatAPI.Answered
                    do {
                        answered = try ChatAPI.Answered(await run.result)
                    } catch {
                        try await writer.write(serverSentEvent(ChatAPI.ErrorBody(refusal(for: error)), encoder: encoder))
                        try await writer.finish(nil)
                        return
                    }
                    var rest = Substring(answered.answer)
                    while !rest.isEmpty {
                        try await send(ChatAPI.Chunk(id: id, created: created, model: model, choices: [.init(delta: .init(content: String(rest.prefix(256))))]))
                        rest = rest.dropFirst(256)
                    }
                    try await send(ChatAPI.Chunk(
                        id: id, created: created, model: model, choices: [.init(delta: .init(), finishReason: answered.finishReason)],
                        rlm: answered.extensionFields(runID: record.id, session: session)))
                    if includeUsage {
                        try await send(ChatAPI.Chunk(id: id, created: created, model: model, choices: [], usage: ChatAPI.Usage(answered.usage)))
                    }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                } catch {
                    // The client went away (or the server is stopping): nobody wants the run.
                    run.cancel()
                    forward.cancel()
                    throw error
                }
            } onCancel: {
                run.cancel()
                forward.cancel()
            }
        })
    }

    // MARK: Helpers

    static let startTime = Int(Date().timeIntervalSince1970)

    static let eventStreamHeaders: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]

    /// Authenticates the request and turns every error into an OpenAI-shaped error response.
    static func guarded(_ service: RLMService, _ request: Request, _ body: (Tenant) async throws -> Response) async -> Response {
        var token: String?
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { token = String(parts[1]) }
        }
        guard let tenant = service.directory.tenant(token: token) else {
            var response = errorResponse(ChatAPI.Refusal(
                status: 401, type: "invalid_request_error", code: "invalid_api_key",
                message: token == nil ? "no bearer token: send Authorization: Bearer TOKEN" : "the bearer token is not one this server knows"))
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        do {
            return try await body(tenant)
        } catch {
            return errorResponse(refusal(for: error))
        }
    }

    /// The status and OpenAI error for any error a route meets.
    static func refusal(for error: any Error) -> ChatAPI.Refusal {
        switch error {
        case let refusal as ChatAPI.Refusal:
            return refusal
        case let error as RLMError:
            switch error.code {
            case .limitReached:
                return .init(status: 422, type: "rlm_limit_reached", code: "limit_reached",
                             message: "the run stopped before the model answered: \(error.message)")
            case .invalidContext, .invalidConfiguration:
                return .invalid(error.message)
            case .modelFailed:
                return .init(status: 502, type: "api_error", code: "model_failed", message: error.message)
            case .sessionClosed:
                return .init(status: 409, type: "invalid_request_error", code: "session_closed", message: error.message)
            default:
                return .init(status: 500, type: "server_error", code: "\(error.code)", message: error.message)
            }
        case is CancellationError:
            return .init(status: 503, type: "server_error", code: "cancelled", message: "the run was cancelled (the server is stopping)")
        case let error as HTTPError where error.status == .contentTooLarge:
            return .init(status: 413, type: "invalid_request_error", code: "body_too_large", message: "the request body is too large for this server")
        case let error as SessionStoreError:
            return .init(status: 500, type: "server_error", code: "store_failed", message: error.message)
        default:
            return .init(status: 500, type: "server_error", code: nil, message: "\(error)")
        }
    }

    static func errorResponse(_ refusal: ChatAPI.Refusal) -> Response {
        json(ChatAPI.ErrorBody(refusal), status: HTTPResponse.Status(code: refusal.status))
    }

    /// One server-sent event: `value` as JSON on a `data:` line, under `event: name` when given.
    static func serverSentEvent(_ value: some Encodable, named name: String? = nil, encoder: JSONEncoder) throws -> ByteBuffer {
        var buffer = ByteBuffer(string: name.map { "event: \($0)\n" } ?? "")
        buffer.writeString("data: ")
        buffer.writeBytes(try encoder.encode(value))
        buffer.writeString("\n\n")
        return buffer
    }

    static func body(_ request: Request, limit: Int) async throws -> Data {
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Data(buffer.readableBytesView)
        } catch {
            throw ChatAPI.Refusal(status: 413, type: "invalid_request_error", code: "body_too_large",
                                  message: "the request body is larger than this server's limit of \(limit) bytes")
        }
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "`\(key.stringValue)` is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "`\(context.codingPath.map(\.stringValue).joined(separator: "."))` has the wrong type"
        case DecodingError.dataCorrupted(let context):
            context.codingPath.isEmpty ? "it is not JSON" : "`\(context.codingPath.map(\.stringValue).joined(separator: "."))`: \(context.debugDescription)"
        default: "\(error)"
        }
    }
}

/// `POST /v1/sessions/{id}/query`.
struct SessionQuery: Decodable {
    var query: String
    var context: ChatAPI.Content?
    var files: [String]?
}

struct ListView<Element: Encodable>: Encodable {
    var object = "list"
    var data: [Element]
}

/// The runs list, with the server's clock, so a page measures how long runs have taken by the
/// server's time rather than its own.
struct RunsView: Encodable {
    var object = "list"
    var data: [RunRegistry.Summary]
    var now: Date
}

/// A session as the API shows it.
struct SessionView: Encodable {
    var id: String
    var object = "rlm.session"
    var created: Date
    var updated: Date
    var turns: Int
    var history: [Turn]?
    var notKept: [String]?

    struct Turn: Encodable {
        var query: String
        var answer: String
    }

    init(_ stored: StoredSession, withTurns: Bool = false) {
        id = stored.id
        created = stored.created
        updated = stored.updated
        turns = stored.turns
        if withTurns {
            history = stored.snapshot?.turns.map { Turn(query: $0.query, answer: $0.answer) } ?? []
            notKept = stored.snapshot?.skipped.map { "\($0.name): \($0.reason)" }
        }
    }

    enum CodingKeys: String, CodingKey { case id, object, created, updated, turns, history, notKept = "not_kept" }
}

/// One line of progress for an event, as `rlm serve` streams it and `rlm mcp` notifies it.
enum Progress {
    static func line(_ event: RLMEvent) -> String? {
        let node = "node \(event.nodeID) depth \(event.depth)"
        func ms(_ duration: Duration) -> String {
            let (seconds, attoseconds) = duration.components
            return "\(Int((Double(seconds) * 1000 + Double(attoseconds) / 1e15).rounded())) ms"
        }
        switch event.kind {
        case .nodeStarted: return "\(node): started"
        case .iterationStarted(let iteration): return "\(node): turn \(iteration)"
        case .codeExecuted(_, let cell, _, _, let status, let duration): return "\(node): cell \(cell) \(status.rawValue) in \(ms(duration))"
        case .subcallStarted(let callID, let model, _): return "\(node): sub-call \(callID) to \(model)"
        case .subcallFinished(let callID, _, _, _, let latency, let error): return "\(node): sub-call \(callID) " + (error == nil ? "done in \(ms(latency))" : "failed")
        case .childStarted(let childID, _): return "\(node): child RLM \(childID) started"
        case .childFinished(let childID, _, _, _, let error): return "\(node): child RLM \(childID) " + (error == nil ? "answered" : "failed")
        case .answer: return "\(node): answered"
        case .limitReached(let limit, _): return "\(node): stopped by the \(limit)"
        default: return nil
        }
    }
}
