import Foundation
import RLMBench
import RLMTesting
import Synchronization
import Testing

@testable import RLM

/// Real models' recorded runs (`rlm bench --keep-trajectories`, turned into fixtures by
/// scripts/replay-fixture.py), replayed through the engine: the same replies must give the same
/// answer in the same number of turns. A change to how the engine reads replies, runs cells or
/// decides to go on shows here against what real models wrote, not only against scripts.
@Suite("Recorded runs of real models, replayed")
struct ReplayCorpusTests {
    struct Fixture: Decodable {
        struct Settings: Decodable {
            var assists: String
            var max_iterations: Int
            var max_calls: Int
        }

        struct Subcall: Decodable {
            var prompt: String
            var response: String
        }

        var model: String
        var family: String
        var recorded: String
        var task: String
        var seed: UInt64
        var settings: Settings
        var root_replies: [String]
        var subcalls: [Subcall]
        /// What the engine must end with now: the recorded outcome, unless a deliberate change
        /// since says otherwise (`note`, with the outcome as recorded in `recorded_answer`).
        var answer: String?
        var iterations: Int?
        var limit: String?
        var recorded_answer: String?
        var note: String?
    }

    /// A sub-call the recording does not hold: the engine sent a prompt the model never saw.
    struct Unrecorded: Error {
        var prompt: String
    }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/replays")

    static let names: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted()
    }()

    static func load(_ name: String) throws -> Fixture {
        try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: directory.appendingPathComponent(name)))
    }

    @Test("the corpus holds at least 10 runs from at least 2 model families")
    func corpus() throws {
        let fixtures = try Self.names.map(Self.load)
        #expect(fixtures.count >= 10, "\(fixtures.count) runs")
        #expect(Set(fixtures.map(\.family)).count >= 2, "\(Set(fixtures.map(\.family)))")
    }

    @Test("a recorded run replays to its recorded answer in its recorded number of turns", arguments: names)
    func replay(name: String) async throws {
        let fixture = try Self.load(name)
        let parts = fixture.task.split(separator: "-")
        let family = try #require(BenchTask.Family(rawValue: String(parts[0])))
        let size = try #require(Int(parts[1]))
        let index = try #require(Int(parts[2]))
        let task = TaskGenerator.tasks(family, sizeTokens: size, count: index + 1, seed: fixture.seed)[index]
        let root = ScriptedModel.sequence(fixture.root_replies, name: fixture.model)
        // Sub-calls may run concurrently: each is answered by its prompt, as the trajectory kept it.
        let pending = Mutex(Dictionary(grouping: fixture.subcalls, by: \.prompt).mapValues { $0.map(\.response) })
        let sub = ScriptedModel(name: fixture.model + " (sub-calls)") { request in
            let key = TrajectoryWriter.clip(request.prompt, EventSink.maxTextCharacters)
            guard let response = pending.withLock({ $0[key]?.isEmpty == false ? $0[key]!.removeFirst() : nil }) else {
                throw Unrecorded(prompt: String(request.prompt.prefix(200)))
            }
            return response
        }
        var configuration = RLMConfiguration(
            rootModel: root, subModel: sub, maxIterations: fixture.settings.max_iterations,
            budget: Budget(maxModelCalls: fixture.settings.max_calls))
        configuration.strategy = Strategy.rlm
        configuration.assists = try Assists(parsing: fixture.settings.assists)
        do {
            let result = try await RLM(configuration: configuration).complete(query: task.question, context: .text(task.context))
            #expect(result.answer == fixture.answer, "\(name)")
            #expect(result.iterations == fixture.iterations, "\(name)")
        } catch let error as RLMError {
            #expect(fixture.answer == nil, "\(name): \(error)")
            #expect(error.limit?.rawValue == fixture.limit, "\(name): \(error)")
        }
        #expect(root.callCount == fixture.root_replies.count, "\(name): every recorded reply is asked for")
    }
}
