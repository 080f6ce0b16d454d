import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOFoundationCompat
import RLM
import RLMServer
import RLMTesting

/// A ```repl block.
func repl(_ code: String) -> String { "```repl\n\(code)\n```" }

/// The query of the turn a root model is asked about ("Query: …" in its first user message).
func query(of request: ScriptedModel.Request) -> String? {
    guard let message = request.messages.last(where: { $0.role == .user && $0.content.hasPrefix("Query: ") }) else { return nil }
    return message.content.dropFirst("Query: ".count).split(separator: "\n", maxSplits: 1).first.map(String.init)
}

/// A root model that does what its query's first word says; plain sub-calls echo their prompt.
/// `remember` keeps the context's first word in the REPL; `recall` answers with it;
/// `slow` makes a sub-call that takes `slowCall`; `draft` leaves an answer that is never ready and
/// `dawdle` never answers, until the iteration limit; anything else answers with the context's size.
func scriptedRoot(slowCall: Duration = .seconds(30)) -> ScriptedModel {
    ScriptedModel(name: "root") { request in
        guard let query = query(of: request) else {
            if request.prompt.hasPrefix("SLEEP") { try await Task.sleep(for: slowCall) }
            return "echo: \(request.prompt.prefix(40))"
        }
        switch query.split(separator: " ").first ?? "" {
        case "remember": return repl("remembered = context.split()[0]\nanswer['content'] = 'stored ' + remembered\nanswer['ready'] = True")
        case "recall": return repl("answer['content'] = 'recalled ' + remembered\nanswer['ready'] = True")
        case "draft": return repl("answer['content'] = 'a draft'")
        case "dawdle": return repl("x = 1")
        case "slow": return repl("answer['content'] = llm_query('SLEEP')\nanswer['ready'] = True")
        case "subcalls": return repl("parts = llm_query_batched([f'part {i}' for i in range(3)])\nanswer['content'] = ' | '.join(parts)\nanswer['ready'] = True")
        default: return repl("answer['content'] = f'{len(context)} characters, first word {context.split()[0]}'\nanswer['ready'] = True")
        }
    }
}

/// A server on a free loopback port for the length of `body`.
struct TestServer {
    let baseURL: String
    let service: RLMService

    static func with<T>(
        _ configuration: RLMServerConfiguration, store path: String? = nil,
        _ body: (TestServer) async throws -> T
    ) async throws -> T {
        let file = path ?? FileManager.default.temporaryDirectory.appendingPathComponent("rlm-store-\(UUID().uuidString).sqlite").path
        let store = try await SQLiteSessionStore.open(path: file)
        var logger = Logger(label: "rlm.server.test")
        logger.logLevel = .critical
        let service = RLMService(configuration: configuration, store: store, logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = RLMServer(service: service, logger: logger).application(host: "127.0.0.1", port: 0) { continuation.yield($0) }
        let running = Task { try await app.run() }
        var port = 0
        for await bound in ports { port = bound; break }
        defer { running.cancel() }
        do {
            let result = try await body(TestServer(baseURL: "http://127.0.0.1:\(port)", service: service))
            running.cancel()
            _ = await running.result
            await service.shutdown()
            return result
        } catch {
            running.cancel()
            _ = await running.result
            await service.shutdown()
            throw error
        }
    }
}

/// A response as a test reads it.
struct Reply {
    var status: Int
    var body: Data
    var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:] }
    var text: String { String(decoding: body, as: UTF8.self) }
    var errorMessage: String { (json["error"] as? [String: Any])?["message"] as? String ?? "" }
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}

/// Sends one request with AsyncHTTPClient.
func fetch(
    _ method: HTTPMethod, _ url: String, json: Any? = nil, raw: Data? = nil, token: String? = nil
) async throws -> Reply {
    var request = HTTPClientRequest(url: url)
    request.method = method
    if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
    if let json { request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))) }
    if let raw { request.body = .bytes(ByteBuffer(data: raw)) }
    request.headers.add(name: "content-type", value: "application/json")
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
    let body = try await response.body.collect(upTo: 64 << 20)
    return Reply(status: Int(response.status.code), body: Data(body.readableBytesView))
}

/// The answer of a chat completion reply.
func content(_ reply: Reply) -> String? {
    ((reply.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
}

func chat(_ text: String, session: String? = nil, stream: Bool = false, extra: [String: Any] = [:]) -> [String: Any] {
    var body: [String: Any] = ["model": "rlm", "messages": [["role": "user", "content": text]]]
    if let session { body["rlm_session"] = session }
    if stream { body["stream"] = true; body["stream_options"] = ["include_usage": true] }
    for (key, value) in extra { body[key] = value }
    return body
}

func configuration(
    root: ScriptedModel = scriptedRoot(), tenants: [Tenant] = [], allowedRoots: [String] = [], maxBodyBytes: Int = 1 << 20
) -> RLMServerConfiguration {
    var rlm = RLMConfiguration(rootModel: root, maxIterations: 4)
    rlm.isolation = Isolation(level: .inProcess, readablePaths: allowedRoots)
    return RLMServerConfiguration(rlm: rlm, tenants: tenants, allowedRoots: allowedRoots, maxBodyBytes: maxBodyBytes)
}

/// Waits up to `seconds` for `condition`.
func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}
