import Foundation
import RLM
import RLMTesting
import Testing

@Suite("Record and replay")
struct CassetteTests {
    static func configuration(root: any LanguageModel, sub: any LanguageModel) -> RLMConfiguration {
        var configuration = RLMConfiguration(rootModel: root, subModel: sub)
        configuration.strategy = .rlm
        return configuration
    }

    @Test("a recorded run replays offline through the real engine: same answer, usage and windows, from a saved file")
    func recordThenReplay() async throws {
        let root = ScriptedModel.sequence([
            repl("parts = llm_query_batched(context.split())\nprint(parts)"),
            repl("answer['content'] = '+'.join(parts); answer['ready'] = True"),
        ], name: "root", contextWindow: ContextWindow(tokens: 8_192))
        let sub = ScriptedModel(name: "sub") { $0.prompt.uppercased() }
        let cassette = Cassette()
        let recorded = try await RLM(configuration: Self.configuration(root: RecordingModel(root, into: cassette), sub: RecordingModel(sub, into: cassette)))
            .complete(query: "join", context: .text("x y z w"))
        #expect(cassette.entries.count == 6)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cassette-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try cassette.save(to: file)

        let tape = try Cassette.load(from: file)
        let replayRoot = try ReplayModel(name: "root", cassette: tape)
        #expect(replayRoot.contextWindow == ContextWindow(tokens: 8_192))
        for _ in 0..<2 {
            let replayed = try await RLM(configuration: Self.configuration(root: try ReplayModel(name: "root", cassette: tape), sub: try ReplayModel(name: "sub", cassette: tape)))
                .complete(query: "join", context: .text("x y z w"))
            #expect(replayed.answer == recorded.answer)
            #expect(replayed.usage.total.tokens == recorded.usage.total.tokens)
            #expect(replayed.usage.total.calls == recorded.usage.total.calls)
        }
    }

    @Test("a request the recording does not hold fails clearly, naming the model and where it parts")
    func missIsClear() async throws {
        let root = ScriptedModel.sequence([repl("answer['content'] = str(len(context)); answer['ready'] = True")], name: "root")
        let cassette = Cassette()
        _ = try await RLM(configuration: RLMConfiguration(rootModel: RecordingModel(root, into: cassette)))
            .complete(query: "how long?", context: .text("12345"))
        let replay = try ReplayModel(name: "root", cassette: cassette)
        await #expect {
            _ = try await RLM(configuration: RLMConfiguration(rootModel: replay)).complete(query: "how short?", context: .text("12345"))
        } throws: { error in
            let text = String(describing: error)
            return text.contains("the recording holds no reply to this request to 'root'") && text.contains("how short?")
                && text.contains("how long?")
        }
        #expect(throws: ReplayError.self) { try ReplayModel(name: "other", cassette: cassette) }
        let garbage = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-cassette-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: garbage) }
        try Data("{\"hello\": 1}".utf8).write(to: garbage)
        #expect(throws: ReplayError.self) { try Cassette.load(from: garbage) }
    }
}
