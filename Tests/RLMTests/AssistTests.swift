import Foundation
import Testing

@testable import RLM
import RLMTesting

/// What the engine says beyond the paper's protocol (``Assists``): under `paper` exactly the
/// golden conversation, under the default nothing extra for a model that follows the protocol,
/// and every message recorded so that each request can be rebuilt from the events.
@Suite("Assists and the paper's protocol")
struct AssistTests {
    static let query = "How many lines mention alpha?"
    static let context = RLMContext.text("alpha beta\nalpha gamma\ndelta alpha\nomega\n")

    /// A model that follows the protocol and makes progress every turn: it looks, assigns in a
    /// block that prints nothing, prints, runs a cell a second time, counts a true 0, and
    /// submits a variable named beside the block that makes it (which must run first).
    static func protocolReplies(submit: String) -> [String] {
        [
            "I look at the context first.\n" + repl("print(type(context).__name__, len(context))\nprint(context[:25])"),
            "I keep the lines that mention alpha.\n" + repl("lines = context.splitlines()\nhits = [line for line in lines if 'alpha' in line]"),
            repl("print(len(hits))"),
            "Let me check that count once more.\n" + repl("print(len(hits))"),
            "And lines that mention zeta, to be sure none is misread:\n" + repl("print(sum('zeta' in line for line in lines))"),
            "The answer is the count.\n" + repl("count = str(len(hits))\nprint(count)") + "\n" + submit,
        ]
    }

    static var goldenURL: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/transcripts/paper-protocol.json")
    }

    /// Each request as `[[role, content]]`.
    static func transcript(_ requests: [[ChatMessage]]) -> [[[String]]] {
        requests.map { $0.map { [$0.role.rawValue, $0.content] } }
    }

    /// The requests rebuilt from a node's events: the engine's messages, the transient prompt of
    /// each turn and the model's replies.
    static func rebuiltRequests(from events: [RLMEvent], node: Int = 0) -> [[ChatMessage]] {
        var history: [ChatMessage] = []
        var transient: ChatMessage?
        var requests: [[ChatMessage]] = []
        for event in events where event.nodeID == node {
            switch event.kind {
            case .messageSent(_, let role, let text, let isTransient):
                if isTransient { transient = ChatMessage(role: role, content: text) } else { history.append(ChatMessage(role: role, content: text)) }
            case .modelReplied(_, let text, _, _):
                requests.append(history + (transient.map { [$0] } ?? []))
                history.append(.assistant(text))
                transient = nil
            default:
                break
            }
        }
        return requests
    }

    static func assisted(_ result: RLMResult) -> [String] {
        result.events.compactMap { event in
            guard case .assisted(_, let assist, let text) = event.kind else { return nil }
            return "\(assist.name): \(text)"
        }
    }

    @Test("under paper a protocol-following model gets exactly the golden messages, with no assist")
    func paperSendsTheGoldenMessages() async throws {
        let model = ScriptedModel.sequence(Self.protocolReplies(submit: "FINAL_VAR(count)"))
        var configuration = RLMConfiguration(rootModel: model, maxIterations: 10)
        configuration.assists = .paper
        let result = try await RLM(configuration: configuration).complete(query: Self.query, context: Self.context)
        #expect(result.answer == "3")
        #expect(result.iterations == 6)
        #expect(Self.assisted(result).isEmpty, "\(Self.assisted(result))")
        let sent = Self.transcript(model.requests.map(\.messages))
        if ProcessInfo.processInfo.environment["RLM_UPDATE_GOLDEN"] == "1" {
            let data = try JSONSerialization.data(withJSONObject: sent, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            try data.write(to: Self.goldenURL)
        }
        let golden = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.goldenURL)) as? [[[String]]])
        #expect(sent.count == golden.count)
        for (index, (request, expected)) in zip(sent, golden).enumerated() {
            #expect(request.count == expected.count, "request \(index + 1)")
            for (position, (message, wanted)) in zip(request, expected).enumerated() {
                #expect(message == wanted, "request \(index + 1), message \(position + 1)")
            }
        }
        #expect(Self.transcript(Self.rebuiltRequests(from: result.events)) == sent)
    }

    @Test("under the default a protocol-following model triggers no assist, and each message after a turn is its outputs and the prompt to go on")
    func defaultSaysNothingExtraToAProtocolFollower() async throws {
        let model = ScriptedModel.sequence(Self.protocolReplies(submit: "FINAL(count)"))
        let configuration = RLMConfiguration(rootModel: model, maxIterations: 10)
        let result = try await RLM(configuration: configuration).complete(query: Self.query, context: Self.context)
        #expect(result.answer == "3")
        #expect(result.iterations == 6)
        #expect(Self.assisted(result).isEmpty, "\(Self.assisted(result))")
        // After the first turn, each request ends with one new user message: that turn's outputs
        // and the prompt to go on, and nothing else.
        let requests = model.requests.map(\.messages)
        for turn in 1..<requests.count {
            let outputs = result.events.compactMap { event -> String? in
                guard case .codeExecuted(let iteration, _, _, let output, _, _) = event.kind, iteration == turn else { return nil }
                return output
            }
            let expected = outputs.joined(separator: "\n\n") + "\n\n" + Prompts.continueMessage(query: Self.query)
            #expect(requests[turn].last == .user(expected), "turn \(turn + 1)")
            #expect(requests[turn].count == requests[turn - 1].count + 2, "turn \(turn + 1): the history only grows")
        }
        #expect(Self.transcript(Self.rebuiltRequests(from: result.events)) == Self.transcript(requests))
    }

    /// A small model's habits: blocks that only assign, turn after turn, then the same cell
    /// again and again.
    static let smallModelReplies = [
        repl("hits = [line for line in context.splitlines() if 'alpha' in line]"),
        repl("n = len(hits)"),
        repl("print(len(hits))"),
        repl("print(len(hits))"),
        repl("print(len(hits))"),
        repl("print(len(hits))"),
        "3",
        "FINAL(3)",
    ]

    @Test("the default's notes reach a model that departs from the protocol; paper says none of them")
    func assistsFireOnlyWhenSwitchedOn() async throws {
        let small = ScriptedModel.sequence(Self.smallModelReplies)
        let helped = try await RLM(configuration: RLMConfiguration(rootModel: small, maxIterations: 10))
            .complete(query: Self.query, context: Self.context)
        let names = Set(Self.assisted(helped).map { String($0.prefix { $0 != ":" }) })
        #expect(names.contains("printed-nothing"))
        #expect(names.contains("repeated-cell"))
        #expect(names.contains("answer-now"))
        // The bare `3` answers the answer-now request.
        #expect(helped.answer == "3")
        for event in helped.events {
            guard case .assisted(let iteration, _, let text) = event.kind else { continue }
            // Each assist's words are in the message of the turn it names.
            let request = small.requests[iteration - 1].messages
            #expect(request.last?.content.contains(text) == true, "\(text)")
        }

        let plain = ScriptedModel.sequence(Self.smallModelReplies)
        var configuration = RLMConfiguration(rootModel: plain, maxIterations: 10)
        configuration.assists = .paper
        let unhelped = try await RLM(configuration: configuration).complete(query: Self.query, context: Self.context)
        #expect(Self.assisted(unhelped).isEmpty)
        // Without lenient reading a bare `3` is no answer; FINAL(3) on its own line is.
        #expect(unhelped.answer == "3")
        #expect(unhelped.iterations == 8)
        for request in plain.requests {
            #expect(!request.messages.contains { $0.content.contains("[the block printed nothing") || $0.content.contains("[you ran this block before") })
        }
    }

    @Test("one assist can be switched off in the library and by name")
    func switchingOneAssist() async throws {
        var assists = try Assists(parsing: "default,-repeated-cell")
        #expect(!assists.contains(.repeatedCell))
        #expect(assists.contains(.printedNothing))
        #expect(assists.description == "default,-repeated-cell")
        assists.remove(.answerNow)
        let model = ScriptedModel.sequence(Self.smallModelReplies)
        var configuration = RLMConfiguration(rootModel: model, maxIterations: 10)
        configuration.assists = assists
        let result = try await RLM(configuration: configuration).complete(query: Self.query, context: Self.context)
        let used = Set(Self.assisted(result).map { String($0.prefix { $0 != ":" }) })
        // Without the answer-now request the bare `3` is a reply with neither code nor an answer.
        #expect(used == ["printed-nothing", "no-code-no-answer"], "\(used)")
    }

    @Test("assist lists parse presets, additions and removals, and name what is wrong", arguments: [
        ("paper", Assists.paper, "paper"),
        ("none", Assists.paper, "paper"),
        ("default", Assists.default, "default"),
        ("all", Assists.all, "all"),
        ("paper,+printed-nothing", Assists([.printedNothing]), "paper,+printed-nothing"),
        ("default,+grounding", Assists(Assists.default.enabled.union([.grounding])), "default,+grounding"),
        ("printed-nothing, repeated-cell", Assists([.printedNothing, .repeatedCell]), "paper,+printed-nothing,+repeated-cell"),
    ])
    func parsing(spec: String, expected: Assists, description: String) throws {
        let parsed = try Assists(parsing: spec)
        #expect(parsed == expected)
        #expect(parsed.description == description)
        #expect(try Assists(parsing: parsed.description) == parsed)
    }

    @Test("an unknown assist is a configuration error that lists the names")
    func unknownAssist() {
        let error = #expect(throws: RLMError.self) { try Assists(parsing: "default,-repeat") }
        #expect(error?.message.contains("'repeat' is not an assist") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("repeated-cell") == true)
    }

    @Test("under paper, auto is the loop, and the strategy event says why")
    func paperIsTheLoop() async throws {
        let model = ScriptedModel.sequence([repl("print(len(context))"), "FINAL(42)"], contextWindow: ContextWindow(tokens: 400_000))
        var configuration = RLMConfiguration(rootModel: model)
        configuration.assists = .paper
        let result = try await RLM(configuration: configuration).complete(query: "What is it?", context: .text("tiny"))
        #expect(result.answer == "42")
        #expect(result.strategy == .rlm)
        let reasons = result.events.compactMap { event -> String? in
            guard case .strategyChosen(.rlm, let reason) = event.kind else { return nil }
            return reason
        }
        #expect(reasons == ["direct answers are off (assists: paper): the paper's method is the loop"])
    }

    @Test("the paper's reading of FINAL: start of a line, case kept, FINAL_VAR first, balanced parentheses", arguments: [
        ("FINAL(42)", ReplyParser.FinalMarker.text("42")),
        ("  FINAL(f(x) + 1)\nmore", .text("f(x) + 1")),
        ("FINAL(a\nb)", .text("a\nb")),
        ("FINAL(3)\nFINAL_VAR(total)", .variable("total")),
        ("FINAL_VAR(\"total\")", .variable("total")),
        ("FINAL ANSWER: 7", .text("ANSWER: 7")),
    ])
    func paperFinal(reply: String, expected: ReplyParser.FinalMarker) {
        #expect(ReplyParser.paperFinalMarker(in: reply) == expected)
    }

    @Test("the paper's reading takes no marker within a sentence, in another case, or unclosed", arguments: [
        "The answer is FINAL(42).", "final(42)", "Final(42)", "FINAL(42", "FINALLY done", "MY_FINAL(3)",
    ])
    func paperNoFinal(reply: String) {
        #expect(ReplyParser.paperFinalMarker(in: reply) == nil)
    }
}
