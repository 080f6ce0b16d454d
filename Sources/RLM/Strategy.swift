import Foundation
import PythonRuntime

/// How a run answers: with the RLM loop, or with one call that reads the whole context.
///
/// An RLM exists for contexts larger than a model's window. When the whole context fits well
/// inside it, one call to the root model is the bare model's own answer, and on small models it
/// is often better than what the model's code finds: `auto`, the default, takes that path, so a
/// run never answers worse than the bare model because it was an RLM.
public enum Strategy: String, Sendable, Hashable, Codable, CaseIterable {
    /// One call with the whole context when it fits in the root model's window with room to
    /// spare (``DirectPlan/fits(tokens:window:)``); for a context of up to six such calls (three windows), a
    /// scan that reads it part by part and answers when exactly one part answers with what it
    /// holds (``ScanPlan``); the RLM loop otherwise. A root model whose window is unknown gets
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

    static func messages(query: String, context: String) -> [ChatMessage] {
        [.system(system), .user("<context>\n\(context)\n</context>\n\nQuery: \(query)")]
    }

    /// The answer in a direct reply: a `FINAL(...)` if the model wrote one, else the reply.
    static func answer(in reply: String) -> String {
        if case .text(let text)? = ReplyParser.finalMarker(in: reply) { return text }
        return reply.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The scan: a context too large for one direct call but small enough for a few, read part by
/// part with the direct prompt. A needle sits in one place, so the scan's answer is taken only
/// when exactly one part answers, with words or numbers that part holds; anything else (no part,
/// several parts, an answer the part does not contain) leaves the question to the RLM loop, which
/// also handles what must be combined across parts (counts, comparisons).
/// A part that answers at all counts: two parts that both claim an answer are ambiguous even if
/// only one of them holds its own (a count that happens to appear in one part).
enum ScanPlan {
    /// The most parts a scan reads: beyond it the context is the loop's.
    static let maxParts = 6

    static let system = """
        You answer a query about a long text. The user's message holds one part of it, between \
        <part> and </part>; other parts are read separately. If this part contains what the query \
        asks for, reply with the answer itself, as briefly as the query allows, taken from the text: \
        no preamble, no code. If it does not, reply exactly NONE.
        """

    static func messages(query: String, part: String, index: Int, count: Int) -> [ChatMessage] {
        [.system(system), .user("<part \(index + 1) of \(count)>\n\(part)\n</part>\n\nQuery: \(query)")]
    }

    /// `text` in parts (split at line ends) that each fit a direct call in `window`, or `nil`
    /// when that takes more than ``maxParts`` parts, or one part would do (the direct path's case).
    static func parts(of text: String, query: String, window: ContextWindow) -> [String]? {
        let overhead = TokenEstimate.tokens(in: messages(query: query, part: "", index: 0, count: maxParts))
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

    /// What one part's reply found: `nil` for NONE or an unusable reply; otherwise the answer and
    /// whether the part holds its numbers (or, without numbers, its longer words).
    /// An answer made only of the query's own words or numbers (small models echo "480" when asked
    /// about "quartz-480") is no answer.
    static func finding(in reply: String, part: String, query: String) -> (answer: String, grounded: Bool)? {
        let answer = DirectPlan.answer(in: reply)
        if saysNone(answer) || RLMLoop.problem(with: answer) != nil || ReplyParser.hasREPLBlock(reply) { return nil }
        let asked = Set(Grounding.significantTokens(in: query).map { $0.lowercased() })
            .union(query.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init))
        let all = Grounding.significantTokens(in: answer)
        // Nothing to check it by (a short word): an answer, but not one the scan can vouch for.
        guard !all.isEmpty else { return (answer, false) }
        let tokens = all.filter { !asked.contains($0.lowercased()) }
        guard !tokens.isEmpty else { return nil }
        let haystack = part.lowercased()
        return (answer, tokens.allSatisfy { haystack.contains($0.lowercased()) })
    }
}
