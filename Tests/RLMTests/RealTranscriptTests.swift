import Foundation
import RLM
import RLMTesting
import Testing

/// Replies of real small models (recorded with scripts/real-model.sh), replayed through the
/// engine: what real output does to the parser, the loop and the context window.
@Suite("Real transcripts replayed")
struct RealTranscriptTests {
    struct Transcript: Decodable {
        var model: String
        var query: String
        var root_replies: [String]
        var subcall_replies: [String]
    }

    static func load(_ name: String) throws -> Transcript {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/transcripts/\(name).json")
        return try JSONDecoder().decode(Transcript.self, from: Data(contentsOf: url))
    }

    /// A needle file like the one the transcript was recorded on.
    static let needleContext: String = {
        let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda"]
        var lines = (0..<4_000).map { index in (0..<12).map { words[($0 * 7 + index * 3) % words.count] }.joined(separator: " ") }
        lines[2_971] = "The secret code is 48213."
        return lines.joined(separator: "\n") + "\n"
    }()

    @Test("SmolLM2-135M before the prompt changes: a runaway reply is compacted, python fences run, no answer is invented")
    func smolBefore() async throws {
        let transcript = try Self.load("smollm2-needle-before")
        let window = try #require(ContextWindow.known(forModel: transcript.model))
        #expect(window.tokens == 8_192)
        let root = ScriptedModel.sequence(transcript.root_replies, name: transcript.model, contextWindow: window)
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, maxIterations: transcript.root_replies.count))
        let run = rlm.run(query: transcript.query, context: .text(Self.needleContext))
        var events: [RLMEvent] = []
        for await event in run.events { events.append(event) }
        do {
            let result = try await run.result()
            Issue.record("the model never answered, yet the run did: \(result.answer)")
        } catch let error as RLMError {
            #expect(error.limit == .iterations)
            #expect(error.partialAnswer == nil, "prose like 'The secret code is: SOL…' is never taken as an answer")
        }
        // The first reply (about 7,400 tokens of repetition) would leave no room in an 8,192-token
        // window: the conversation was compacted, and every prompt fit.
        #expect(events.contains { if case .historyCompacted = $0.kind { true } else { false } })
        for request in root.requests {
            #expect(TokenEstimate.tokens(in: request.messages) <= window.promptTokens)
        }
        // The reply with only a ```python block ran it; its syntax error went back to the model.
        let cells = events.compactMap { event -> (String, RLMEvent.CellStatus)? in
            if case .codeExecuted(_, _, _, let output, let status, _) = event.kind { return (output, status) }
            return nil
        }
        #expect(cells.count == 1)
        #expect(cells.first?.1 == .failed)
        #expect(cells.first?.0.contains("SyntaxError") == true, "\(cells.first?.0 ?? "")")
        // The rambling first reply got the no-code reminder.
        #expect(root.requests[1].messages.last?.content.contains("had no ```repl block") == true)
    }

    @Test("SmolLM2-135M after the prompt changes: it writes code every turn; its syntax errors come back as the cell's own line")
    func smolAfter() async throws {
        let transcript = try Self.load("smollm2-count-after")
        let root = ScriptedModel.sequence(transcript.root_replies, name: transcript.model, contextWindow: ContextWindow(tokens: 8_192))
        // The recorded turns are the loop's; a context this small would otherwise go direct.
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, maxIterations: transcript.root_replies.count, strategy: .rlm))
        let run = rlm.run(query: transcript.query, context: .text("2026-11-25 10:00:00 ERROR step 0\n"))
        var outputs: [String] = []
        for await event in run.events {
            if case .codeExecuted(_, _, _, let output, let status, _) = event.kind {
                #expect(status == .failed)
                outputs.append(output)
            }
        }
        await #expect(throws: RLMError.self) { try await run.result() }
        #expect(outputs.count == transcript.root_replies.count, "every reply had a python block, and each ran")
        for output in outputs {
            #expect(output.contains("SyntaxError"))
            #expect(output.contains("<cell "))
            #expect(!output.contains("compile_cell") && !output.contains("ast.py"), "\(output)")
        }
    }

    @Test("Qwen2.5-Coder-1.5B: empty submissions are refused every time, and its made-up forced answer is taken only without grounding")
    func qwenNeedle() async throws {
        let transcript = try Self.load("qwen-needle-rlm")
        func replay(groundAnswers: Bool) async throws -> (Result<RLMResult, any Error>, ScriptedModel) {
            let root = ScriptedModel.sequence(transcript.root_replies, name: transcript.model, contextWindow: ContextWindow(tokens: 32_768))
            var configuration = RLMConfiguration(rootModel: root, maxIterations: 5, finalAnswerOnLimit: true, strategy: .rlm)
            configuration.groundAnswers = groundAnswers
            let rlm = RLM(configuration: configuration)
            do {
                // The replies do not depend on the filler, only on the needle line (which their
                // first cell searches for) and on no "123" being in it.
                return (.success(try await rlm.complete(query: transcript.query, context: .text(Self.needleContext))), root)
            } catch {
                return (.failure(error), root)
            }
        }
        let (plain, root) = try await replay(groundAnswers: false)
        // Turns 2 to 5 each set answer["ready"] = True with nothing in answer["content"]: refused,
        // never an empty answer.
        #expect(root.requests.count == 6)
        for request in root.requests[2...4] {
            #expect(request.prompt.contains("[answer refused: the answer is empty"), "\(request.prompt.suffix(300))")
        }
        // The fifth refusal is the message before the final-answer request.
        #expect(root.requests[5].messages.dropLast().last?.content.contains("[answer refused: the answer is empty") == true)
        // Asked for a final answer, it ran FINAL(123) in a code block: a value it made up.
        let result = try plain.get()
        #expect(result.answer == "123")
        #expect(result.answeredAfterLimit == .iterations)
        // Grounded, 123 is in no output and not in the context: the run ends at its limit, with
        // no answer rather than a made-up one.
        let (grounded, _) = try await replay(groundAnswers: true)
        switch grounded {
        case .success(let result): Issue.record("a made-up answer was taken: \(result.answer)")
        case .failure(let error as RLMError):
            #expect(error.limit == .iterations)
            #expect(error.partialAnswer == nil)
        case .failure(let error): Issue.record("unexpected \(error)")
        }
    }
}
