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
        let stream = "data: {\"a\":1}\r\n\r\n: comment\n\ndata: multi\ndata: line\n\ndata: [DONE]\n\n"
        for size in [1, 2, 5, 7, 1000] {
            var parser = ServerSentEvents()
            var payloads: [String] = []
            var index = stream.startIndex
            while index < stream.endIndex {
                let end = stream.index(index, offsetBy: size, limitedBy: stream.endIndex) ?? stream.endIndex
                payloads += parser.feed(String(stream[index..<end]))
                index = end
            }
            payloads += parser.finish()
            #expect(payloads == ["{\"a\":1}", "multi\nline", "[DONE]"], "chunk size \(size)")
        }
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
        #expect(try await run.result().answer == "streamed")
        #expect(streamed == reply)
        try await server.shutdown()
    }
}
