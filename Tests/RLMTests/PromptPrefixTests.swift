import RLM
import RLMTesting
import Testing

/// A provider's prompt cache serves a request's prefix only if it is byte for byte what an
/// earlier request sent: the root's conversation must only grow.
@Suite("The root's conversation only grows")
struct PromptPrefixTests {
    @Test("each turn's messages begin with every byte of the previous turn's, then its reply", arguments: [false, true])
    func messagesOnlyGrow(persistent: Bool) async throws {
        let root = ScriptedModel.sequence([
            repl("print(len(context))"),
            repl("1 / 0"),
            "No code in this reply.",
            repl("print('x' * 50)"),
            repl("answer['content'] = 'done'\nanswer['ready'] = True"),
        ])
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, maxIterations: 10))
        if persistent {
            let session = rlm.session()
            #expect(try await session.complete(query: "q", context: .text("abc")).answer == "done")
            await session.close()
        } else {
            #expect(try await rlm.complete(query: "q", context: .text("abc")).answer == "done")
        }
        let requests = root.requests
        try #require(requests.count == 5)
        for index in 1..<requests.count {
            let previous = requests[index - 1].messages
            let current = requests[index].messages
            #expect(Array(current.prefix(previous.count)) == previous, "turn \(index) rewrote an earlier message")
            #expect(current.count > previous.count && current[previous.count].role == .assistant)
            #expect(current[previous.count].content == root.replies[index - 1])
        }
    }
}
