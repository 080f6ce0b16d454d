import Foundation

/// Reads the answer a reply gives in text, at one of four levels of leniency: the one place
/// where the loop (``RLMLoop``) and the final-answer request at a limit (``RLM``) decide what in
/// a reply is an answer. Code that submits (`answer["ready"]`, `FINAL(…)` in a block) is the
/// REPL's to read, not this.
enum AnswerReader {
    /// How much of a reply counts as an answer; each level reads what the one before reads, and more.
    enum Leniency: Int, Comparable, Sendable {
        /// The reference implementation's reading (``ReplyParser/paperFinalMarker(in:)``):
        /// `FINAL_VAR(` or `FINAL(` where it starts a line. Without the
        /// ``Assists/Assist/lenientAnswers`` assist, every turn reads so.
        case paper
        /// The loop's turns: `FINAL(…)` within a sentence, in any case, in bold or inline code,
        /// quotes taken off (``ReplyParser/finalMarker(in:)``); `FINAL(name)` may name a variable.
        case protocolForms
        /// A reply to a request for the answer (the answer-now turn, or the turn after a reply
        /// with neither code nor an answer): also one literal or name, alone or as the only code
        /// of a block (`65`, ```` ```repl\n"billing"\n``` ````), and "Final answer: X" in a reply
        /// without code (beside code it was written before the code ran: Qwen wrote "Final
        /// answer: 3" beside a block that printed 193).
        case answerRequest
        /// The final-answer request at a limit, the last turn there is: also "Final answer: X"
        /// beside code or in a comment, and a reply without code or a marker is its own answer.
        case finalRequest

        static func < (lhs: Leniency, rhs: Leniency) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// An answer found in a reply.
    enum Reading: Equatable, Sendable {
        /// The answer itself.
        case text(String)
        /// `FINAL_VAR(name)`: the `str` of the REPL variable `name`.
        case variable(String)
        /// `FINAL(name)` or a bare name: the REPL variable when there is one (small models mean
        /// it so), else the text.
        case variableOrText(String)
    }

    /// The `FINAL`/`FINAL_VAR` marker of `reply` at `leniency`.
    static func marker(in reply: String, leniency: Leniency) -> Reading? {
        guard leniency > .paper else {
            switch ReplyParser.paperFinalMarker(in: reply) {
            case .text(let text)?: return .text(text)
            case .variable(let name)?: return .variable(name)
            case nil: return nil
            }
        }
        switch ReplyParser.finalMarker(in: reply) {
        case .text(let text)?: return mayNameVariable(text) ? .variableOrText(text) : .text(text)
        case .variable(let name)?: return .variable(name)
        case nil: return nil
        }
    }

    /// The answer `reply` states without a marker, at `leniency` (``Leniency/answerRequest``
    /// and above; below, prose and literals are never answers). `blocks` are its code blocks.
    static func stated(in reply: String, blocks: [String], leniency: Leniency) -> Reading? {
        guard leniency >= .answerRequest else { return nil }
        func named(_ text: String) -> Reading { mayNameVariable(text) ? .variableOrText(text) : .text(text) }
        if blocks.count == 1, let literal = ReplyParser.literalAnswer(in: blocks[0]) { return named(literal) }
        if blocks.count == 1, let name = bareName(in: blocks[0]) { return .variableOrText(name) }
        if blocks.isEmpty, let literal = ReplyParser.literalAnswer(in: reply) { return named(literal) }
        guard blocks.isEmpty || leniency == .finalRequest else { return nil }
        if let stated = ReplyParser.statedFinalAnswer(in: reply) ?? ReplyParser.statedFinalAnswer(in: reply, includingCode: true) {
            return named(stated)
        }
        guard leniency == .finalRequest, blocks.isEmpty else { return nil }
        let text = reply.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.contains("```") else { return .text(text) }
        // One fence (not ```repl) around one line, `billing` or `final("billing")`: read as if
        // the line stood alone.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 3, lines[0].hasPrefix("```"), lines[2] == "```", !lines[1].contains("`") else { return nil }
        let line = lines[1].trimmingCharacters(in: .whitespaces)
        if let literal = ReplyParser.literalAnswer(in: line) { return .text(literal) }
        return marker(in: line, leniency: .protocolForms) ?? stated(in: line, blocks: [], leniency: .finalRequest)
    }

    /// Whether `FINAL(text)` may name a REPL variable: `text` is a Python identifier (ASCII),
    /// and not `answer` (the protocol's dict) or `context` (the whole input).
    static func mayNameVariable(_ text: String) -> Bool {
        guard text != "answer" && text != "context" else { return false }
        guard let first = text.unicodeScalars.first, first == "_" || (first.isASCII && CharacterSet.letters.contains(first)) else { return false }
        return text.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && CharacterSet.alphanumerics.contains($0)) }
    }

    /// A block that is one bare name and nothing else (```` ```repl\noutage\n``` ````): asked for
    /// its answer, Qwen2.5-Coder-1.5B wrote the label so, and it raised a `NameError`. Read as
    /// `FINAL(name)` is: the variable when the REPL has one, else the word.
    static func bareName(in code: String) -> String? {
        let text = code.trimmingCharacters(in: .whitespacesAndNewlines)
        guard mayNameVariable(text), text.count <= 60, !pythonKeywords.contains(text) else { return nil }
        return text
    }

    private static let pythonKeywords: Set<String> = [
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
        "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
        "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
    ]
}
