import Foundation
import RLM
import RLMTesting
import XCTest

/// Record and replay from XCTest, as a suite that has not moved to Swift Testing would use it.
final class CassetteXCTests: XCTestCase {
    func testReplayFromAFileGivesTheRecordedAnswer() async throws {
        let cassette = Cassette()
        let root = ScriptedModel.sequence([
            "```repl\nanswer['content'] = llm_query('what is ' + context); answer['ready'] = True\n```",
        ], name: "root")
        let sub = ScriptedModel(name: "sub") { $0.prompt.uppercased() }
        var recording = RLMConfiguration(rootModel: RecordingModel(root, into: cassette), subModel: RecordingModel(sub, into: cassette))
        recording.strategy = .rlm
        let recorded = try await RLM(configuration: recording).complete(query: "q", context: .text("forty-two"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("xc-cassette-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try cassette.save(to: file)

        let tape = try Cassette.load(from: file)
        var replaying = RLMConfiguration(rootModel: try ReplayModel(name: "root", cassette: tape), subModel: try ReplayModel(name: "sub", cassette: tape))
        replaying.strategy = .rlm
        let replayed = try await RLM(configuration: replaying).complete(query: "q", context: .text("forty-two"))
        XCTAssertEqual(replayed.answer, "WHAT IS FORTY-TWO")
        XCTAssertEqual(replayed.answer, recorded.answer)

        do {
            _ = try await RLM(configuration: replaying).complete(query: "another question", context: .text("forty-two"))
            XCTFail("a request the recording does not hold was answered")
        } catch {
            XCTAssertTrue(String(describing: error).contains("the recording holds no reply"), "\(error)")
        }
    }
}
