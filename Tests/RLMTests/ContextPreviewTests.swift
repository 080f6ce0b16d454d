import Foundation
import PythonRuntime
@testable import RLM
import RLMTesting
import Testing

/// The start of `context` shown in a node's first message (``RLMConfiguration/contextPreviewCharacters``):
/// small models otherwise write their first code against a form they guessed.
@Suite("The context preview in the first message")
struct ContextPreviewTests {
    /// The first user message the root model got for `context`.
    static func firstMessage(_ context: RLMContext, characters: Int? = nil, isolation: Isolation = .inProcess) async throws -> String {
        let root = ScriptedModel.sequence([repl("answer['content'] = 'done'\nanswer['ready'] = True")])
        var configuration = RLMConfiguration(rootModel: root)
        if let characters { configuration.contextPreviewCharacters = characters }
        configuration.isolation = isolation
        configuration.isolation.requiresAllLayers = isolation.level == .process
        let result = try await RLM(configuration: configuration).complete(query: "How many records?", context: context)
        #expect(result.answer == "done")
        let first = try #require(root.requests.first)
        return try #require(first.messages.first { $0.role == .user }).content
    }

    static let records = (0..<2_000).map { "Record \($0) | user \(1000 + $0 % 97) | label: \(["billing", "outage"][$0 % 2]) | text\n" }.joined()

    @Test("a str context shows its first characters, and nothing past them")
    func textPreview() async throws {
        let message = try await Self.firstMessage(.text(Self.records))
        let head = String(Self.records.prefix(500))
        #expect(message.contains("```\n\(head)\n```"))
        #expect(!message.contains(String(Self.records.dropFirst(500).prefix(40))))
        #expect(message.contains("Query: How many records?"))
        #expect(message.contains("These are only samples"))
    }

    @Test("a long str context also shows a sample from its middle, from a line's start")
    func middleSample() async throws {
        let message = try await Self.firstMessage(.text(Self.records))
        let middle = Self.records.count / 2
        let lineStart = Self.records[Self.records.index(Self.records.startIndex, offsetBy: middle)...].firstIndex(of: "\n")
            .map { Self.records.index(after: $0) }!
        let sample = String(Self.records[lineStart...].prefix(250))
        #expect(sample.hasPrefix("Record 1"))
        #expect(message.contains("From its middle:\n```\n\(sample)\n```"))
        #expect(message.contains("These are only samples"))
        // A context not much longer than the preview shows only its start.
        let short = try await Self.firstMessage(.text(String(Self.records.prefix(1_500))))
        #expect(!short.contains("From its middle"))
        #expect(short.contains("This is only its start"))
    }

    @Test("a preview of 0 characters shows none, as the paper's prompt")
    func off() async throws {
        let message = try await Self.firstMessage(.text(Self.records), characters: 0)
        #expect(!message.contains("Record 0"))
        #expect(message.contains("You have not looked at it yet"))
    }

    @Test("a large list is shown as a clipped repr, not built whole")
    func listPreview() async throws {
        let items = (0..<200_000).map { PythonValue.string("item \($0) " + String(repeating: "x", count: 50)) }
        let message = try await Self.firstMessage(.json(.list(items)), characters: 300)
        #expect(message.contains("['item 0 xxx"))
        #expect(message.contains("more]"))
        #expect(!message.contains("item 199999"))
        let fenced = try #require(message.split(separator: "```").dropFirst().first)
        #expect(fenced.count <= 330, "the preview holds about 300 characters")
    }

    @Test("a context holding fences is shown inside a longer fence")
    func fences() async throws {
        let text = "before\n```repl\nprint(1)\n```\nafter"
        let message = try await Self.firstMessage(.text(text))
        #expect(message.contains("````\n\(text)\n````"))
    }

    @Test("a mapped file shows its first bytes")
    func mapped() async throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-preview-\(UUID().uuidString).log")
        try Data(Self.records.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let message = try await Self.firstMessage(.mappedFile(url), characters: 120)
        #expect(message.contains("```\n\(Self.records.prefix(120))\n```"))
    }

    @Test("a worker process gives the same preview", .enabled(if: workersRun))
    func inWorker() async throws {
        let message = try await Self.firstMessage(.text(Self.records), characters: 200, isolation: .process)
        #expect(message.contains("```\n\(Self.records.prefix(200))\n```"))
    }

    @Test("a negative preview is refused, naming the setting")
    func negative() async throws {
        var configuration = RLMConfiguration(rootModel: ScriptedModel.sequence(["FINAL(1)"]))
        configuration.contextPreviewCharacters = -1
        let error = await #expect(throws: RLMError.self) {
            _ = try await RLM(configuration: configuration).complete(query: "q", context: .text("x"))
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("contextPreviewCharacters") == true)
    }
}
