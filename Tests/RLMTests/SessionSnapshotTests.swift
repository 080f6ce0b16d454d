import Foundation
import RLM
import RLMTesting
import Testing

@Suite("Sessions that survive a restart")
struct SessionSnapshotTests {
    static var process: Isolation {
        var isolation = Isolation.process
        isolation.requiresAllLayers = true
        return isolation
    }

    static let firstTurn = repl("""
                counts = {'apples': 3, 'pears': 5}
                notes = [context.upper()]
                square = lambda x: x * x
                class Local:
                    pass
                instance = Local()
                answer['content'] = 'counted'; answer['ready'] = True
                """)

    @Test("a snapshot round-trips through JSON into a new session that goes on where the first stopped", arguments: isolationNames)
    func roundTrip(isolationName: String) async throws {
        let isolation = isolationName == "process" ? Self.process : Isolation.inProcess
        let first = ScriptedModel(name: "root") { request in
            // A second call means the cell did not answer: its output is in the prompt.
            request.index == 0 ? Self.firstTurn : "FINAL(unexpected second call after: \(request.prompt.prefix(3_000)))"
        }
        var configuration = RLMConfiguration(rootModel: first)
        configuration.isolation = isolation
        let session = RLM(configuration: configuration).session()
        let answer = try await session.complete(query: "count", context: .text("first context")).answer
        try #require(answer == "counted", "\(answer)")
        let snapshot = try await session.snapshot()
        await session.close()
        #expect(snapshot.turns.map(\.query) == ["count"] && snapshot.turns.first?.usage.total.calls == 1)
        #expect(snapshot.contextCount == 1)
        #expect(Set(snapshot.variables.keys) == ["counts", "notes", "context_0"])
        #expect(Set(snapshot.skipped.map(\.name)) == ["square", "Local", "instance"])
        #expect(snapshot.skipped.allSatisfy { !$0.reason.isEmpty })

        let stored = try JSONEncoder().encode(snapshot)
        let loaded = try JSONDecoder().decode(RLMSession.Snapshot.self, from: stored)
        #expect(loaded == snapshot)

        let second = ScriptedModel.sequence([
            repl("""
                print(counts['pears'], notes, context_0, context, len(history), history[0]['answer'], 'square' in globals())
                answer['content'] = str(counts['apples'] + 1); answer['ready'] = True
                """),
        ], name: "root")
        var again = RLMConfiguration(rootModel: second)
        again.isolation = isolation
        let restored = RLM(configuration: again).session(restoring: loaded)
        let result = try await restored.complete(query: "one more", context: .text("second context"))
        #expect(result.answer == "4")
        #expect(cellOutputs(result).first?.contains("5 ['FIRST CONTEXT'] first context second context 1 counted False") == true, "\(cellOutputs(result))")
        let later = try await restored.snapshot()
        #expect(later.turns.map(\.query) == ["count", "one more"])
        #expect(later.contextCount == 2)
        await restored.close()
    }

    @Test("a snapshot that will not load says so, naming the Python that made it")
    func brokenSnapshot() async throws {
        let snapshot = RLMSession.Snapshot(
            turns: [], contextCount: 0, variables: ["bad": Data("not a pickle".utf8)], skipped: [], pythonVersion: "3.99.0")
        let session = RLM(configuration: RLMConfiguration(rootModel: ScriptedModel.sequence(["FINAL(x)"]))).session(restoring: snapshot)
        do {
            _ = try await session.complete(query: "q", context: .text("c"))
            Issue.record("expected a failure")
        } catch let error as RLMError {
            #expect(error.code == .pythonFailed)
            #expect(error.message.contains("could not be restored") && error.message.contains("3.99.0"), "\(error.message)")
        }
    }
}
