import Foundation
import RLM
import RLMTestServers
import Synchronization
import Testing

@testable import RLMProviders

@Suite("Streaming")
struct StreamingTests {
    @Test("server-sent events are split correctly whatever the chunk boundaries")
    func parser() {
        let stream = Array("data: {\"a\":1}\r\n\r\n: comment\n\ndata: 한글 世界 👋🏽\ndata: line\n\ndata: [DONE]\n\n".utf8)
        for size in [1, 2, 3, 5, 7, 1000] {
            var parser = ServerSentEvents()
            var payloads: [String] = []
            var index = 0
            while index < stream.count {
                let end = min(index + size, stream.count)
                payloads += parser.feed(stream[index..<end])
                index = end
            }
            payloads += parser.finish()
            #expect(payloads == ["{\"a\":1}", "한글 世界 👋🏽\nline", "[DONE]"], "chunk size \(size)")
        }
    }

    @Test("Korean, CJK and emoji deltas arrive whole when the server writes one byte at a time")
    func multibyteSplitAcrossReads() async throws {
        let text = "안녕하세요, 世界! 👋🏽 naïve — ok"
        let server = try await ScriptedHTTPServer.start { request in
            guard let chat = ModelServers.decode(request) else { return .dropConnection() }
            return .respondInChunks(
                status: 200, headers: ["content-type": "text/event-stream"],
                body: ModelServers.openAIStreamBody(text: text, request: chat, pieceLength: 1), chunkSize: 1)
        }
        let model = try OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "m", apiKeyVariable: nil))
        let pieces = Mutex<[String]>([])
        let response = try await model.complete([.user("hi")]) { piece in pieces.withLock { $0.append(piece) } }
        #expect(response.text == text)
        #expect(pieces.withLock { $0 } == text.map(String.init))
        #expect(!response.text.contains("\u{FFFD}"))
        try await server.shutdown()
    }

    @Test("the root model's reply streams into the event stream; usage comes from the last chunk")
    func streamedRootReplies() async throws {
        let reply = "```repl\nanswer['content'] = 'streamed'; answer['ready'] = True\n```"
        let server = try await ModelServers.openAI { _ in reply }
        let model = try OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "root", apiKeyVariable: nil))
        let pieces = Mutex<[String]>([])
        let direct = try await model.complete([.user("hi")]) { piece in pieces.withLock { $0.append(piece) } }
        #expect(direct.text == reply)
        #expect(pieces.withLock { $0.count } == (reply.count + 2) / 3)
        #expect(direct.usage.outputTokens == ModelServers.tokens(reply))

        var configuration = RLMConfiguration(rootModel: model)
        configuration.streamRootReplies = true
        let run = RLM(configuration: configuration).run(query: "q", context: .text("c"))
        var streamed = ""
        for await event in run.events {
            if case .modelReplyDelta(_, let text) = event.kind { streamed += text }
        }
        let result = try await run.result()
        #expect(result.answer == "streamed")
        #expect(!result.events.contains { if case .modelReplyDelta = $0.kind { true } else { false } })
        #expect(streamed == reply)
        try await server.shutdown()
    }
}
