import Foundation
import PythonRuntime
import RLM
import RLMTesting
import Testing

/// `Strategy`: one direct call when the whole context fits, the RLM loop otherwise.
@Suite("Strategies: direct, RLM and auto")
struct StrategyTests {
    static let window = ContextWindow(tokens: 8_192)
    static let small = "Line one.\nThe secret code is 48213.\nLine three.\n"

    func strategies(_ result: RLMResult) -> [Strategy] {
        result.events.compactMap { event in
            guard case .strategyChosen(let strategy, _) = event.kind else { return nil }
            return strategy
        }
    }

    @Test("auto answers a context that fits in one call with the whole context, and counts it")
    func autoDirect() async throws {
        let model = ScriptedModel.sequence(["48213"], name: "root", contextWindow: Self.window)
        let result = try await RLM(configuration: RLMConfiguration(rootModel: model))
            .complete(query: "What is the secret code?", context: .text(Self.small))
        #expect(result.answer == "48213")
        #expect(result.strategy == .direct)
        #expect(result.iterations == 0)
        #expect(model.callCount == 1)
        let prompt = try #require(model.requests.first?.messages.last?.content)
        #expect(prompt.contains("The secret code is 48213.") && prompt.contains("Query: What is the secret code?"))
        #expect(!(model.requests.first?.messages.first?.content.contains("REPL") ?? true))
        #expect(result.usage.total.calls == 1)
        #expect(result.usage.total.tokens == expectedUsage(model))
        #expect(strategies(result) == [.direct])
    }

    @Test("auto takes the loop when the context needs more than a few calls of half the window, or the window is unknown")
    func autoLoop() async throws {
        let large = String(repeating: "filler words that pad the context out\n", count: 4_000) // about 38,000 tokens
        let model = ScriptedModel.sequence([repl("FINAL(len(context))")], name: "root", contextWindow: Self.window)
        let result = try await RLM(configuration: RLMConfiguration(rootModel: model)).complete(query: "How long?", context: .text(large))
        #expect(result.answer == "\(large.count)")
        #expect(result.strategy == .rlm)
        #expect(strategies(result) == [.rlm])

        let unknown = ScriptedModel.sequence([repl("FINAL(len(context))")], name: "root")
        let plain = try await RLM(configuration: RLMConfiguration(rootModel: unknown)).complete(query: "How long?", context: .text(Self.small))
        #expect(plain.strategy == .rlm)
        #expect(strategies(plain).isEmpty)
    }

    @Test("auto sends a context over maxDirectTokens to the loop whatever the window, and says why")
    func autoEffectiveContext() async throws {
        // gpt-5's window: 400K tokens. The half-window rule alone sent 136K tokens to one call,
        // where the paper has the base model behind the RLM on information-dense tasks.
        let gpt5 = ContextWindow(tokens: 400_000)
        let context = String(repeating: "record 12345 | label: praise | user 2814\n", count: 6_400)  // about 64,000 tokens
        func run(_ context: String, maxDirectTokens: Int? = nil) async throws -> (RLMResult, ScriptedModel) {
            let model = ScriptedModel(name: "gpt-5", contextWindow: gpt5) { request in
                request.messages.first?.content.contains("REPL") == true ? repl("FINAL(len(context))") : "direct"
            }
            var configuration = RLMConfiguration(rootModel: model)
            if let maxDirectTokens { configuration.maxDirectTokens = maxDirectTokens }
            return (try await RLM(configuration: configuration).complete(query: "How many records?", context: .text(context)), model)
        }
        let (loop, _) = try await run(context)
        #expect(loop.strategy == .rlm)
        #expect(loop.answer == "\(context.count)")
        let reasons = loop.events.compactMap { event -> String? in
            guard case .strategyChosen(.rlm, let reason) = event.kind else { return nil }
            return reason
        }
        #expect(reasons.count == 1)
        #expect(reasons.first?.contains("over maxDirectTokens (16384)") == true, "\(reasons)")
        // The limit is the caller's to set.
        let (direct, model) = try await run(context, maxDirectTokens: 100_000)
        #expect(direct.strategy == .direct)
        #expect(direct.answer == "direct")
        #expect(model.callCount == 1)
        // A context under it still goes direct.
        let (small, _) = try await run(String(context.prefix(40_000)))
        #expect(small.strategy == .direct)
    }

    /// 700 lines, a few times half an 8K window, with a needle in one line.
    static func haystack(needleAt needle: Int?) -> String {
        (0..<700).map { (line: Int) -> String in
            line == needle ? "The vault code is 7Q-19." : "filler words that pad the context out \(line)"
        }.joined(separator: "\n")
    }

    /// A root that answers a scan part with the code only when the part holds it.
    static func scanner(answer: @escaping @Sendable (String) -> String = { part in part.contains("7Q-19") ? "7Q-19" : "NONE" }) -> ScriptedModel {
        ScriptedModel(name: "root", contextWindow: window) { request in
            let prompt = request.prompt
            if prompt.hasPrefix("<part ") { return answer(prompt) }
            return repl("FINAL('from the loop')")
        }
    }

    @Test("auto reads a context of a few windows part by part, and takes the one part's answer that part holds")
    func autoScan() async throws {
        let model = Self.scanner()
        let text = Self.haystack(needleAt: 500)
        let result = try await RLM(configuration: RLMConfiguration(rootModel: model)).complete(query: "What is the vault code?", context: .text(text))
        #expect(result.answer == "7Q-19")
        #expect(result.strategy == .direct)
        #expect(strategies(result) == [.direct])
        let parts = model.requests.map(\.prompt)
        #expect((2...4).contains(parts.count))
        #expect(parts.allSatisfy { $0.hasPrefix("<part ") && $0.hasSuffix("Query: What is the vault code?") })
        // Every line is in exactly one part, whole.
        let lines = parts.flatMap { $0.split(separator: "\n").filter { !$0.hasPrefix("<part") && !$0.hasPrefix("</part") && !$0.hasPrefix("Query:") && !$0.isEmpty } }
        #expect(lines.count == 700)
        #expect(result.usage.total.calls == parts.count)

        // Small models say "does not mention" instead of NONE, or echo the query's own number:
        // neither is an answer from that part.
        let wordy = Self.scanner { part in
            part.contains("7Q-19") ? "7Q-19" : part.contains("out 0\n") ? "This part does not mention the vault code." : "Vault 12"
        }
        let found = try await RLM(configuration: RLMConfiguration(rootModel: wordy)).complete(query: "What is the code of vault 12?", context: .text(text))
        #expect(found.answer == "7Q-19")
        #expect(found.strategy == .direct)
    }

    @Test("the scan leaves the question to the loop when no part, several parts, or an ungrounded answer comes back")
    func scanFallsBack() async throws {
        // No needle: every part says NONE, or that it does not mention it, as small models do.
        let none = Self.scanner { part in part.contains("out 0\n") ? "The text does not mention a vault code." : "NONE." }
        let empty = try await RLM(configuration: RLMConfiguration(rootModel: none)).complete(query: "What is the vault code?", context: .text(Self.haystack(needleAt: nil)))
        #expect(empty.answer == "from the loop")
        #expect(strategies(empty) == [.direct, .rlm])
        // Every part claims a count: the loop must combine them.
        let counting = Self.scanner { _ in "250" }
        let counted = try await RLM(configuration: RLMConfiguration(rootModel: counting)).complete(query: "Which lines hold a code?", context: .text(Self.haystack(needleAt: nil)))
        #expect(counted.answer == "from the loop")
        #expect(strategies(counted) == [.direct, .rlm])
        // A query that reads as combining parts skips the scan: no part's answer could be the whole.
        let tally = Self.scanner { _ in "250" }
        let tallied = try await RLM(configuration: RLMConfiguration(rootModel: tally)).complete(query: "How many lines are there?", context: .text(Self.haystack(needleAt: nil)))
        #expect(tallied.answer == "from the loop")
        #expect(strategies(tallied) == [.rlm])
        #expect(!tally.requests.contains { $0.prompt.hasPrefix("<part ") })
        let compared = try await RLM(configuration: RLMConfiguration(rootModel: tally))
            .complete(query: "Which label appears in more records: 'bug' or 'praise'?", context: .text(Self.haystack(needleAt: nil)))
        #expect(strategies(compared) == [.rlm])
        #expect(!tally.requests.contains { $0.prompt.hasPrefix("<part ") })
        // One part answers with a value it does not hold.
        let inventing = Self.scanner { part in part.contains("filler words that pad the context out 0\n") ? "9X-99" : "NONE" }
        let invented = try await RLM(configuration: RLMConfiguration(rootModel: inventing)).complete(query: "What is the vault code?", context: .text(Self.haystack(needleAt: 500)))
        #expect(invented.answer == "from the loop")
        #expect(invented.strategy == .rlm)
    }

    /// A haystack like the bench's: filler that holds common words (which a small model may
    /// give as an answer), and one needle naming what is asked.
    static func needleHaystack(_ needles: [Int: String]) -> String {
        (0..<700).map { (line: Int) -> String in
            needles[line] ?? "Pepper and copper words pad the context out \(line)."
        }.joined(separator: "\n")
    }

    @Test("the scan takes the one answer a part shows in a sentence naming what is asked, over other parts' made-up answers")
    func scanEvidence() async throws {
        let query = "What is the special magic number for quartz-480 mentioned in the context? Answer with the value only."
        let text = Self.needleHaystack([500: "The special magic number for quartz-480 is: 4817203."])
        // As Qwen2.5-Coder-1.5B did: a part without the needle answers a number it made up, or a
        // filler word it holds; only the needle's part answers with the value.
        let model = Self.scanner { part in
            part.contains("4817203") ? "4817203" : part.contains("out 0.") ? "8" : "pepper"
        }
        let result = try await RLM(configuration: RLMConfiguration(rootModel: model)).complete(query: query, context: .text(text))
        #expect(result.answer == "4817203")
        #expect(result.strategy == .direct)
        #expect(model.requests.allSatisfy { $0.prompt.hasPrefix("<part ") })

        // The needle's part answering in a sentence is as good.
        let wordy = Self.scanner { part in
            part.contains("4817203") ? "The special magic number for quartz-480 is 4817203." : "NONE"
        }
        #expect(try await RLM(configuration: RLMConfiguration(rootModel: wordy)).complete(query: query, context: .text(text)).answer
            == "The special magic number for quartz-480 is 4817203.")
    }

    @Test("the scan hands over when evidenced parts disagree, when the query combines parts, or when evidence names something else")
    func scanEvidenceLimits() async throws {
        // Two parts each show a value for the name: which one is meant is for the loop.
        let twice = Self.needleHaystack([
            100: "The special magic number for quartz-480 is: 4817203.", 600: "The special magic number for quartz-480 is: 5550001.",
        ])
        let both = Self.scanner { part in part.contains("4817203") ? "4817203" : part.contains("5550001") ? "5550001" : "NONE" }
        let query = "What is the special magic number for quartz-480?"
        let disagreed = try await RLM(configuration: RLMConfiguration(rootModel: both)).complete(query: query, context: .text(twice))
        #expect(disagreed.answer == "from the loop")
        let reasons = disagreed.events.compactMap { event -> String? in
            guard case .strategyChosen(.rlm, let reason) = event.kind else { return nil }
            return reason
        }
        #expect(reasons.count == 1 && reasons[0].contains("parts 1, 3"))

        // A count is combined across parts, however well one part shows its own.
        let records = Self.needleHaystack([100: "Record 7 of user-480: 2 tickets.", 600: "Record 9 of user-480: 2 tickets."])
        let counting = Self.scanner { part in part.contains("user-480") ? "2" : "NONE" }
        #expect(try await RLM(configuration: RLMConfiguration(rootModel: counting))
            .complete(query: "How many tickets does user-480 have in total?", context: .text(records)).answer == "from the loop")

        // The value sits in a sentence about another name: no evidence, and two parts answered.
        let other = Self.needleHaystack([500: "The special magic number for quartz-481 is: 4817203."])
        let misled = Self.scanner { part in part.contains("4817203") ? "4817203" : part.contains("out 0.") ? "8" : "NONE" }
        #expect(try await RLM(configuration: RLMConfiguration(rootModel: misled)).complete(query: query, context: .text(other)).answer
            == "from the loop")
    }

    @Test("maxScanParts bounds the scan, and a call budget keeps half its calls for the loop")
    func scanBounds() async throws {
        let text = Self.haystack(needleAt: 500)
        var off = RLMConfiguration(rootModel: Self.scanner())
        off.maxScanParts = 0
        let loop = try await RLM(configuration: off).complete(query: "What is the vault code?", context: .text(text))
        #expect(loop.answer == "from the loop")
        #expect(strategies(loop) == [.rlm])

        var budgeted = RLMConfiguration(rootModel: Self.scanner())
        budgeted.budget.maxModelCalls = 4  // the scan needs 3 calls; at most 2 may go to it
        #expect(try await RLM(configuration: budgeted).complete(query: "What is the vault code?", context: .text(text)).answer == "from the loop")

        // About 38,000 tokens: past six parts of half an 8K window, within twelve.
        let large = (0..<4_000).map { $0 == 3_000 ? "The vault code is 7Q-19." : "filler words that pad the context out \($0)" }
            .joined(separator: "\n")
        let model = Self.scanner()
        #expect(try await RLM(configuration: RLMConfiguration(rootModel: model)).complete(query: "What is the vault code?", context: .text(large)).answer
            == "from the loop")
        let wide = Self.scanner()
        var configuration = RLMConfiguration(rootModel: wide)
        configuration.maxScanParts = 14
        #expect(try await RLM(configuration: configuration).complete(query: "What is the vault code?", context: .text(large)).answer
            == "from the loop", "over maxDirectTokens, the scan is not taken either")
        configuration.maxDirectTokens = 50_000
        let scanned = try await RLM(configuration: configuration).complete(query: "What is the vault code?", context: .text(large))
        #expect(scanned.answer == "7Q-19")
        #expect((8...15).contains(wide.callCount), "the loop's one call, then 7 to 14 parts")

        off.maxScanParts = -1
        await #expect(throws: RLMError.self) { try await RLM(configuration: off).complete(query: "q", context: .text(text)) }
    }

    @Test("with structured output, the scan asks for a quote and an answer, and takes the answer its quote shows")
    func structuredScan() async throws {
        let query = "What is the special magic number for quartz-480?"
        let text = Self.needleHaystack([500: "The special magic number for quartz-480 is: 4817203."])
        let json: @Sendable (String, String) -> String = { quote, answer in #"{"quote": "\#(quote)", "answer": "\#(answer)"}"# }
        let model = Self.scanner { part in
            part.contains("4817203") ? "```json\n" + json("the special magic number for  quartz-480 is: 4817203", "4817203") + "\n```"
                : part.contains("out 0.") ? json("Pepper and copper words pad the context out 0.", "8") : json("", "NONE")
        }
        var configuration = RLMConfiguration(rootModel: model)
        configuration.structuredOutput = true
        let result = try await RLM(configuration: configuration).complete(query: query, context: .text(text))
        #expect(result.answer == "4817203")
        #expect(result.strategy == .direct)
        #expect(model.requests.allSatisfy { $0.schema?.name == "quoted_answer" && $0.messages[0].content.contains(#""quote""#) })

        // A quote the part does not hold is no evidence, even with the needle beside it: the
        // made-up quote and the other part's answer leave the question to the loop.
        let misquoting = Self.scanner { part in
            part.contains("4817203") ? json("The special magic number for quartz-480 is 4817203, as stated.", "4817203")
                : part.contains("out 0.") ? json("", "8") : json("", "NONE")
        }
        var misquoted = RLMConfiguration(rootModel: misquoting)
        misquoted.structuredOutput = true
        #expect(try await RLM(configuration: misquoted).complete(query: query, context: .text(text)).answer == "from the loop")

        // A model that ignores the format is read as text.
        let plain = Self.scanner { part in part.contains("4817203") ? "4817203" : "NONE" }
        var prose = RLMConfiguration(rootModel: plain)
        prose.structuredOutput = true
        #expect(try await RLM(configuration: prose).complete(query: query, context: .text(text)).answer == "4817203")
    }

    @Test("with structured output, a direct answer needs a quote the context holds; NONE or a made-up quote goes to the loop")
    func structuredDirect() async throws {
        func run(_ reply: String) async throws -> RLMResult {
            let model = ScriptedModel.sequence([reply, repl("FINAL('from the loop')")], name: "root", contextWindow: Self.window)
            var configuration = RLMConfiguration(rootModel: model)
            configuration.structuredOutput = true
            let result = try await RLM(configuration: configuration).complete(query: "What is the secret code?", context: .text(Self.small))
            #expect(model.requests.first?.schema?.name == "quoted_answer")
            return result
        }
        let quoted = try await run(#"{"quote": "The secret code is 48213.", "answer": "48213"}"#)
        #expect(quoted.answer == "48213" && quoted.strategy == .direct)
        #expect(try await run(#"{"quote": "The secret code is 48213.", "answer": 48213}"#).answer == "48213")
        for refused in [
            #"{"quote": "", "answer": "NONE"}"#, #"{"quote": "The secret code is 99999.", "answer": "99999"}"#,
            #"{"quote": "The secret code is 48213.", "answer": "77"}"#, #"{"quote": "", "answer": "48213"}"#,
        ] {
            let result = try await run(refused)
            #expect(result.answer == "from the loop", "\(refused)")
            #expect(strategies(result) == [.direct, .rlm])
        }
    }

    @Test("auto goes on with the loop when the direct answer is empty or the server refuses the context")
    func autoFallsBack() async throws {
        let empty = ScriptedModel.sequence(["  ", repl("FINAL(context.split()[-3])")], name: "root", contextWindow: Self.window)
        let result = try await RLM(configuration: RLMConfiguration(rootModel: empty)).complete(query: "Which word?", context: .text(Self.small))
        #expect(result.answer == "48213.")
        #expect(result.strategy == .rlm)
        #expect(strategies(result) == [.direct, .rlm])
        #expect(result.usage.total.calls == 2)

        let refusing = ScriptedModel(name: "root", contextWindow: Self.window) { request in
            if request.index == 0 { throw ContextWindowExceeded(model: "root", promptTokens: 9_000, windowTokens: 8_192) }
            return repl("FINAL('from the loop')")
        }
        let refused = try await RLM(configuration: RLMConfiguration(rootModel: refusing)).complete(query: "q", context: .text(Self.small))
        #expect(refused.answer == "from the loop")
        let reasons = refused.events.compactMap { event -> String? in
            guard case .strategyChosen(.rlm, let reason) = event.kind else { return nil }
            return reason
        }
        #expect(reasons.count == 1 && reasons[0].contains("refused"))
    }

    @Test("refinement and tools keep auto on the loop; rlm never calls directly")
    func loopOnly() async throws {
        var configuration = RLMConfiguration(rootModel: ScriptedModel.sequence([repl("FINAL('loop')")], name: "root", contextWindow: Self.window))
        configuration.strategy = .rlm
        #expect(try await RLM(configuration: configuration).complete(query: "q", context: .text(Self.small)).strategy == .rlm)

        var tooled = RLMConfiguration(
            rootModel: ScriptedModel.sequence([repl("FINAL(shout('x'))")], name: "root", contextWindow: Self.window),
            tools: [RLMTool(name: "shout", description: "upper-cases", body: { arguments in .string((arguments.positional.first?.stringValue ?? "").uppercased()) })])
        tooled.strategy = .auto
        let result = try await RLM(configuration: tooled).complete(query: "q", context: .text(Self.small))
        #expect(result.answer == "X")
        #expect(result.strategy == .rlm)
    }

    @Test("direct always makes one call, whatever the window, and refuses a context it cannot read whole")
    func forcedDirect() async throws {
        let model = ScriptedModel.sequence(["FINAL(48213)"], name: "root")
        var configuration = RLMConfiguration(rootModel: model)
        configuration.strategy = .direct
        let result = try await RLM(configuration: configuration).complete(query: "Code?", context: .texts(["a", Self.small]))
        #expect(result.answer == "48213")
        #expect(model.requests.first?.messages.last?.content.contains("[document 2]") == true)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-strategy-\(UUID().uuidString).txt")
        try Data(Self.small.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        do {
            _ = try await RLM(configuration: configuration).complete(query: "q", context: .mappedFile(file))
            Issue.record("a mapped file cannot go in one call")
        } catch let error as RLMError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("strategy direct"))
        }

        let empty = ScriptedModel.sequence([""], name: "root")
        configuration.rootModel = empty
        do {
            _ = try await RLM(configuration: configuration).complete(query: "q", context: .text(Self.small))
            Issue.record("an empty direct answer is not an answer")
        } catch let error as RLMError {
            #expect(error.code == .modelFailed)
        }
    }
}
