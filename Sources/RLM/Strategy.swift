import Foundation
import PythonRuntime

/// How a run answers: with the RLM loop, or with one call that reads the whole context.
///
/// An RLM exists for contexts larger than a model's window. When the whole context fits well
/// inside it, one call to the root model is the bare model's own answer, and on small models it
/// is often better than what the model's code finds: `auto`, the default, takes that path, so a
/// run never answers worse than the bare model because it was an RLM.
public enum Strategy: String, Sendable, Hashable, Codable, CaseIterable {
    /// Up to ``RLMConfiguration/maxDirectTokens`` of context (by default 16,384 tokens, where
    /// the paper shows a base model's accuracy on information-dense tasks falling), one call with
    /// the whole context when it fits in the root model's window with room to spare
    /// (``DirectPlan/fits(tokens:window:)``); for a context of up to
    /// ``RLMConfiguration/maxScanParts`` such calls (by default six: three windows), a scan that
    /// reads it part by part and answers when one part shows its answer in a sentence naming what
    /// the query asks about, or exactly one part answers with what it holds (``ScanPlan``); the
    /// RLM loop otherwise. A root model whose window is unknown gets
    /// the loop. If a direct call is refused as too long, fails, or answers nothing usable
    /// (empty, a placeholder), or the scan's parts answer none or several, the run goes on with
    /// the loop.
    case auto
    /// Always the RLM loop.
    case rlm
    /// Always one call with the whole context; a context that cannot be read whole (a mapped
    /// file, bytes) is an ``RLMError/Code/invalidConfiguration`` error.
    case direct
}

/// The direct path: the context as text for one call, and the prompt that asks it.
enum DirectPlan {
    /// A context's text for a direct call, or `nil` when it has none that one call can read: a
    /// mapped file (it exists for files too large to load), bytes, or a file over `maxBytes`.
    /// A JSON-like value is sent in its Python rendering, as the REPL would print it.
    static func text(of context: RLMContext, maxBytes: Int) -> String? {
        switch context {
        case .text(let text): return text
        case .texts(let texts): return texts.enumerated().map { "[document \($0.offset + 1)]\n\($0.element)" }.joined(separator: "\n\n")
        case .json(let value): return value.description
        case .file(let url):
            guard let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int, size <= maxBytes,
                  let data = FileManager.default.contents(atPath: url.path) else { return nil }
            return String(validating: data, as: UTF8.self)
        case .bytes, .mappedFile: return nil
        }
    }

    /// Whether a prompt of `tokens` (estimated) fits "with room to spare": at most half of what
    /// the window leaves for a prompt. Token estimates are rough (``TokenEstimate``), and small
    /// models read the start and the end of a full window better than its middle.
    static func fits(tokens: Int, window: ContextWindow) -> Bool {
        tokens <= window.promptTokens / 2
    }

    static let system = """
        You answer a query about a context. The whole context is in the user's message, between \
        <context> and </context>. Read all of it. Reply with the answer itself, as briefly as the \
        query allows, taken from the context: no preamble, no code, no explanation unless the query \
        asks for one. If the context does not contain the answer, say so.
        """

    /// ``system`` with the reply asked for as ``QuotedAnswer`` JSON.
    static let structuredSystem = """
        You answer a query about a context. The whole context is in the user's message, between \
        <context> and </context>. Read all of it. \(QuotedAnswer.instructions)
        """

    static func messages(query: String, context: String, structured: Bool = false) -> [ChatMessage] {
        [.system(structured ? structuredSystem : system), .user("<context>\n\(context)\n</context>\n\nQuery: \(query)")]
    }

    /// The answer in a direct reply: a `FINAL(...)` if the model wrote one, else the reply.
    static func answer(in reply: String) -> String {
        if case .text(let text)? = ReplyParser.finalMarker(in: reply) { return text }
        return reply.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The scan: a context too large for one direct call but small enough for a few, read part by
/// part with the direct prompt. A needle sits in one place, so the scan takes an answer only
/// when one part vouches for it (``choice(among:query:)``); anything else (no part, several
/// parts that disagree, an answer the part does not contain) leaves the question to the RLM
/// loop, which also handles what must be combined across parts (counts, comparisons).
enum ScanPlan {
    /// What one part's reply found.
    struct Finding: Sendable, Equatable {
        /// The part's index.
        var index: Int
        /// The reply's answer.
        var answer: String
        /// The part holds the answer's numbers (or, without numbers, its longer words).
        var grounded: Bool
        /// One sentence of the part holds both the answer and a name the query asks about
        /// (``names(in:)``): the part shows where its answer comes from.
        var evidenced: Bool
    }

    static let system = """
        You answer a query about a long text. The user's message holds one part of it, between \
        <part> and </part>; other parts are read separately. If this part contains what the query \
        asks for, reply with the answer itself, as briefly as the query allows, taken from the text: \
        no preamble, no code. If it does not, reply exactly NONE.
        """

    /// ``system`` with the reply asked for as ``QuotedAnswer`` JSON.
    static let structuredSystem = """
        You answer a query about a long text. The user's message holds one part of it, between \
        <part> and </part>; other parts are read separately. \(QuotedAnswer.instructions)
        """

    static func messages(query: String, part: String, index: Int, count: Int, structured: Bool = false) -> [ChatMessage] {
        [.system(structured ? structuredSystem : system), .user("<part \(index + 1) of \(count)>\n\(part)\n</part>\n\nQuery: \(query)")]
    }

    /// `text` in parts (split at line ends) that each fit a direct call in `window`, or `nil`
    /// when that takes more than `maxParts` parts, or one part would do (the direct path's case).
    static func parts(of text: String, query: String, window: ContextWindow, maxParts: Int) -> [String]? {
        guard maxParts >= 2 else { return nil }
        let overhead = TokenEstimate.tokens(in: messages(query: query, part: "", index: maxParts - 1, count: maxParts))
        let budget = window.promptTokens / 2 - overhead
        guard budget > 64, TokenEstimate.tokens(in: text) <= budget * maxParts else { return nil }
        var parts: [String] = []
        var lines: [Substring] = []
        var tokens = 0
        func flush() {
            if !lines.isEmpty { parts.append(lines.joined(separator: "\n")) }
            lines = []
            tokens = 0
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var rest = line
            // A line longer than a part is cut into pieces of a part's size.
            while TokenEstimate.tokens(in: String(rest)) > budget {
                flush()
                let cut = rest.index(rest.startIndex, offsetBy: budget * 3, limitedBy: rest.endIndex) ?? rest.endIndex
                parts.append(String(rest[..<cut]))
                rest = rest[cut...]
            }
            let lineTokens = TokenEstimate.tokens(in: String(rest)) + 1
            if tokens + lineTokens > budget { flush() }
            lines.append(rest)
            tokens += lineTokens
        }
        flush()
        return (2...maxParts).contains(parts.count) ? parts : nil
    }

    /// Whether a reply says the part lacks the answer: NONE, or, as small models put it, that
    /// the text does not mention, contain or provide it.
    static func saysNone(_ answer: String) -> Bool {
        let text = answer.lowercased()
        let bare = text.trimmingCharacters(in: CharacterSet(charactersIn: " .\"'`*"))
        if bare.hasPrefix("none") || bare == "n/a" || bare == "unknown" { return true }
        let phrases = [
            "not mentioned", "no mention", "does not mention", "doesn't mention", "not contain", "doesn't contain",
            "not provided", "not provide", "not found", "not present", "not specified", "not stated", "not given",
            "no information", "cannot be determined", "can't be determined", "not in this part", "not in the text",
            "cannot tell", "can't tell", "do not know", "don't know", "unable to find", "unable to determine",
        ]
        return text.count < 400 && phrases.contains { text.contains($0) }
    }

    /// What part `index`'s reply found: `nil` for NONE or an unusable reply.
    /// An answer made only of the query's own words or numbers (small models echo "480" when asked
    /// about "quartz-480") is no answer.
    /// With `structured` (``RLMConfiguration/structuredOutput``), a reply in ``QuotedAnswer``
    /// JSON is evidenced only by its quote, when the part holds it; other replies are read as text.
    static func finding(in reply: String, part: String, index: Int, query: String, structured: Bool = false) -> Finding? {
        let quoted = structured ? QuotedAnswer.parse(reply) : nil
        let answer = quoted?.answer ?? DirectPlan.answer(in: reply)
        if saysNone(answer) || RLMLoop.problem(with: answer) != nil || ReplyParser.hasREPLBlock(reply) { return nil }
        let asked = Set(Grounding.significantTokens(in: query).map { $0.lowercased() }).union(words(in: query))
        let all = Grounding.significantTokens(in: answer)
        // Nothing to check it by (a short word): an answer, but not one the scan can vouch for.
        guard !all.isEmpty else { return Finding(index: index, answer: answer, grounded: false, evidenced: false) }
        let tokens = all.map { $0.lowercased() }.filter { !asked.contains($0) }
        guard !tokens.isEmpty else { return nil }
        let haystack = part.lowercased()
        let grounded = tokens.allSatisfy { haystack.contains($0) }
        let names = self.names(in: query)
        // Where the evidence may be: the sentence the reply quotes, if the part holds it; else any.
        let candidates = quoted.map { QuotedAnswer.isQuote($0.quote, of: part) ? [Substring($0.quote.lowercased())] : [] }
            ?? sentences(of: haystack)
        let evidenced = grounded && !names.isEmpty && candidates.contains { sentence in
            tokens.allSatisfy { contains(sentence, word: $0) } && names.contains { contains(sentence, word: $0) }
        }
        return Finding(index: index, answer: answer, grounded: grounded, evidenced: evidenced)
    }

    /// The answer the scan takes, or `nil` when the loop should decide:
    /// - the answer of the parts with evidence (``Finding/evidenced``), when they agree and the
    ///   query looks a thing up rather than combining parts (``combines(_:)``): the other parts'
    ///   answers are then values a small model took from text that does not name what was asked;
    /// - otherwise the one part's answer when exactly one part answered, with what it holds. Two
    ///   parts that both claim an answer are ambiguous even if only one holds its own.
    static func choice(among findings: [Finding], query: String) -> Finding? {
        let evidenced = findings.filter(\.evidenced)
        if !evidenced.isEmpty, !combines(query) {
            let answers = Set(evidenced.map { Grounding.significantTokens(in: $0.answer).map { $0.lowercased() } })
            return answers.count == 1 ? evidenced.first : nil
        }
        return findings.count == 1 && findings[0].grounded ? findings[0] : nil
    }

    /// The names a query asks about: words that hold a digit or join parts with `-`, `_`, `#`
    /// or `:` (`quartz-480`, `user 4521`'s `4521`, `INV_2024`), and quoted phrases. Plain
    /// words are too common to show where an answer comes from.
    static func names(in query: String) -> [String] {
        var names: [String] = []
        for word in query.lowercased().split(whereSeparator: { $0.isWhitespace || ",;?!()[]{}".contains($0) }) {
            let name = word.trimmingCharacters(in: CharacterSet(charactersIn: ".:'\"`"))
            let joined = name.contains { "-_#:".contains($0) } && name.contains(where: \.isLetter)
            if name.count >= 3, name.contains(where: \.isNumber) || joined { names.append(name) }
        }
        for (index, piece) in query.lowercased().split(separator: "\"", omittingEmptySubsequences: false).enumerated()
        where index % 2 == 1 && piece.count >= 3 {
            names.append(String(piece))
        }
        return names
    }

    /// Whether a query combines what several parts hold (a count, a list, a comparison, a total),
    /// so that one part's answer is not the whole answer however well it is evidenced.
    static func combines(_ query: String) -> Bool {
        let text = " " + query.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).joined(separator: " ") + " "
        let cues = [
            " how many ", " how much ", " count ", " number of ", " total ", " sum ", " average ", " mean ", " list ",
            " every ", " all ", " each ", " more ", " fewer ", " less ", " most ", " least ", " fewest ", " pairs ", " compare ",
        ]
        return cues.contains { text.contains($0) }
    }

    /// Whether `text` holds `word` with no letter or digit just before or after it (`480` is not
    /// in `4801`).
    static func contains(_ text: Substring, word: String) -> Bool {
        var from = text.startIndex
        while let range = text.range(of: word, range: from..<text.endIndex) {
            func joins(_ character: Character?) -> Bool { character.map { $0.isLetter || $0.isNumber } ?? false }
            let before = range.lowerBound == text.startIndex ? nil : text[text.index(before: range.lowerBound)]
            let after = range.upperBound == text.endIndex ? nil : text[range.upperBound]
            if !joins(before), !joins(after) { return true }
            from = text.index(after: range.lowerBound)
        }
        return false
    }

    /// The lower-case letter and digit runs of `text`.
    static func words(in text: String) -> [String] {
        text.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init)
    }

    /// `text`'s sentences: split at line ends and at `.`, `?` or `!` followed by a space.
    static func sentences(of text: String) -> [Substring] {
        var sentences: [Substring] = []
        var start = text.startIndex
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(after: index)
            if text[index] == "\n" || ".?!".contains(text[index]) && (next == text.endIndex || text[next] == " ") {
                sentences.append(text[start..<index])
                start = next
            }
            index = next
        }
        sentences.append(text[start...])
        return sentences
    }
}

/// The JSON reply ``RLMConfiguration/structuredOutput`` asks of direct and scan calls: the
/// sentence that answers, copied from the text, then the answer. Quoting first makes a model look
/// for the answer before it writes one, and gives the engine something to check.
enum QuotedAnswer {
    static let schema = ReplySchema(name: "quoted_answer", json: """
        {"type":"object","properties":{"quote":{"type":"string"},"answer":{"type":"string"}},\
        "required":["quote","answer"],"additionalProperties":false}
        """)

    static let instructions = """
        Reply with one JSON object and nothing else: {"quote": "...", "answer": "..."}. "quote": the \
        sentence of the text that answers the query, copied exactly; "" if no sentence does. "answer": \
        the answer itself, as briefly as the query allows, taken from that sentence; "NONE" if the \
        text does not contain it.
        """

    /// The quote and the answer in a reply, or `nil` when the reply is not that JSON (a model
    /// whose server cannot constrain replies may write prose). A number as the answer is read as
    /// its text; code fences around the object are allowed.
    static func parse(_ reply: String) -> (quote: String, answer: String)? {
        guard let start = reply.firstIndex(of: "{"), let end = reply.lastIndex(of: "}"), start < end,
              let object = try? JSONSerialization.jsonObject(with: Data(reply[start...end].utf8)) as? [String: Any]
        else { return nil }
        let answer: String
        switch object["answer"] {
        case let text as String: answer = text
        case let number as NSNumber: answer = number.stringValue
        default: return nil
        }
        return ((object["quote"] as? String) ?? "", answer.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Whether `quote` is a passage of `text`, ignoring case, runs of white space and the
    /// quote's closing punctuation. An empty quote is none.
    static func isQuote(_ quote: String, of text: String) -> Bool {
        func squeezed(_ text: String) -> String {
            text.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
        }
        let passage = squeezed(quote).trimmingCharacters(in: CharacterSet(charactersIn: " .,;:!?\"'"))
        return !passage.isEmpty && squeezed(text).contains(passage)
    }

    /// The answer of a direct reply in this JSON, or why it is none: `NONE`, or a quote the
    /// context does not hold or that does not hold the answer. `nil` when the reply is not the JSON.
    static func directAnswer(in reply: String, context: String) -> Result<String, Refusal>? {
        guard let (quote, answer) = parse(reply) else { return nil }
        if ScanPlan.saysNone(answer) { return .failure(Refusal(reason: "the direct answer says the context does not hold it")) }
        guard isQuote(quote, of: context) else {
            return .failure(Refusal(reason: quote.isEmpty ? "the direct answer quotes nothing" : "the direct answer's quote is not in the context"))
        }
        let tokens = Grounding.significantTokens(in: answer).map { $0.lowercased() }
        let sentence = Substring(quote.lowercased())
        guard tokens.allSatisfy({ ScanPlan.contains(sentence, word: $0) }) else {
            return .failure(Refusal(reason: "the direct answer is not in the sentence it quotes"))
        }
        return .success(answer)
    }

    /// Why a structured direct answer is not taken.
    struct Refusal: Error {
        var reason: String
    }
}
