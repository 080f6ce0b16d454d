
/// Reads a model reply: its ```repl code blocks and a `FINAL(...)` / `FINAL_VAR(...)` answer
/// written outside code (inside code they are functions of the REPL: repl_support.py).
enum ReplyParser {
    /// How a reply submits its answer in text.
    enum FinalMarker: Equatable, Sendable {
        /// `FINAL(text)`.
        case text(String)
        /// `FINAL_VAR(name)`.
        case variable(String)
    }

    /// The code of every ```repl block, in order. A reply without any ```repl block has its
    /// closed ```python (or ```py) blocks run instead: small models write those despite the
    /// prompt, and would otherwise make no progress at all. With a ```repl block present, other
    /// fences are illustrations and never run.
    ///
    /// Without `pythonBlocks` (``Assists/Assist/pythonBlocks``), only ```repl blocks run.
    static func codeBlocks(in reply: String, pythonBlocks: Bool = true) -> [String] {
        let all = fences(in: reply)
        let repl = all.filter { $0.info == "repl" }
        if !repl.isEmpty || !pythonBlocks { return repl.map(\.body) }
        return all.filter { ($0.info == "python" || $0.info == "py") && $0.closed }.map(\.body)
    }

    /// The answer as the paper's reference implementation reads it, without the lenient reading
    /// of ``finalMarker(in:)`` (``Assists/Assist/lenientAnswers`` off). Case matters, and a marker
    /// counts only where it starts a line (after blanks), anywhere in the reply:
    /// - `FINAL_VAR(` first: the variable named up to the next `)`, quotes around it taken off;
    /// - else `FINAL`, blanks, `(`: the text up to the `)` that balances it, which may be on a
    ///   later line (none: no answer);
    /// - else `FINAL` as a word followed by anything else: the rest of the reply (```` FINAL ```…``` ````
    ///   up to its closing fence).
    static func paperFinalMarker(in reply: String) -> FinalMarker? {
        let lines = reply.split(separator: "\n", omittingEmptySubsequences: false)
        /// The reply from just after `marker`, where a line starts with it.
        func after(_ marker: String, where accept: (Substring) -> Bool = { _ in true }) -> Substring? {
            for line in lines {
                let text = line.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
                guard text.hasPrefix(marker) else { continue }
                let rest = reply[text.index(text.startIndex, offsetBy: marker.count)...]
                if accept(rest) { return rest }
            }
            return nil
        }
        if let rest = after("FINAL_VAR("), let close = rest.firstIndex(of: ")") {
            return .variable(String(rest[..<close].trimmed(of: " \n\t\r").trimmed(of: "\"").trimmed(of: "'")))
        }
        let isWordCharacter: (Character) -> Bool = { $0.isLetter || $0.isNumber || $0 == "_" }
        guard let found = after("FINAL", where: { $0.first.map { !isWordCharacter($0) } ?? true }) else { return nil }
        let rest = found.drop { $0.isWhitespace }
        if rest.first == "(" {
            var depth = 0
            for position in rest.indices {
                if rest[position] == "(" { depth += 1 }
                if rest[position] == ")" {
                    depth -= 1
                    if depth == 0 { return .text(String(rest[rest.index(after: rest.startIndex)..<position].trimmed(of: " \n\t\r"))) }
                }
            }
            return nil
        }
        if rest.hasPrefix("```") {
            guard let end = rest.dropFirst(3).firstRange(of: "```") else { return nil }
            return .text(String(rest[..<end.upperBound].trimmed(of: " \n\t\r")))
        }
        return .text(String(rest.trimmed(of: " \n\t\r")))
    }

    /// The ")" in `text` that balances a "(" just before it, if any.
    private static func balancingParenthesis(in text: Substring) -> Substring.Index? {
        var depth = 1
        for position in text.indices {
            if text[position] == "(" { depth += 1 }
            if text[position] == ")" {
                depth -= 1
                if depth == 0 { return position }
            }
        }
        return nil
    }

    /// Whether the reply has a ```repl block: code for the REPL, never an answer in itself.
    static func hasREPLBlock(_ reply: String) -> Bool {
        fences(in: reply).contains { $0.info == "repl" }
    }

    /// The first `FINAL(...)` or `FINAL_VAR(...)` outside any fenced block.
    ///
    /// The paper's form starts a line, and its answer may run over several lines: it ends at the
    /// ")" that closes its line or, for an answer over several lines, the first later line that
    /// ends with ")". Small models also write it within a sentence ("The answer is FINAL(42).")
    /// or in inline code: there the answer ends at the parenthesis that balances the opening one
    /// on the same line. Whether the answer is usable (not empty, not a placeholder such as
    /// `FINAL(your answer)`) is for ``RLMLoop/problem(with:)`` to say.
    static func finalMarker(in reply: String) -> FinalMarker? {
        let prose = proseLines(of: reply)
        for (index, line) in prose.enumerated() {
            guard let found = markerStart(in: line) else { continue }
            let rest = line[found.argument...]
            if found.variable {
                guard let close = rest.firstIndex(of: ")") else { continue }
                let name = rest[..<close].trimmed(of: " \"'`\r")
                if !name.isEmpty { return .variable(String(name)) }
                continue
            }
            if found.startsLine {
                // A line that goes on past the ")" balancing the opening one is prose after the
                // answer: SmolLM2 echoed "FINAL(the answer itself) on a line of its own, or
                // FINAL_VAR(name) …" from the final-answer request, and everything up to a later
                // line's ")" was taken as its answer.
                if !rest.trimmed(of: " `*\t\r").hasSuffix(")"), let close = balancingParenthesis(in: rest) {
                    return .text(unquoted(rest[..<close].trimmed(of: " \t\r")))
                }
                // The answer ends at the ")" that closes its line, or, for an answer over several
                // lines, the first later line that ends with ")" (prose after it is not part of it).
                let lines = [String(rest)] + prose[(index + 1)...]
                if let end = lines.firstIndex(where: { $0.trimmed(of: " `*\t\r").hasSuffix(")") }) {
                    let text = lines[...end].joined(separator: "\n").trimmed(of: " `*\t\r")
                    return .text(unquoted(text.dropLast().trimmed(of: " \n\t\r")))
                }
                // No line closes it: take it up to the last ")" there is, if any.
                let joined = lines.joined(separator: "\n")
                guard let close = joined.lastIndex(of: ")") else { continue }
                return .text(unquoted(joined[..<close].trimmed(of: " \n\t\r")))
            }
            // Within a sentence: up to the balancing ")" on this line, else its last ")".
            guard let close = balancingParenthesis(in: rest) ?? rest.lastIndex(of: ")") else { continue }
            return .text(unquoted(rest[..<close].trimmed(of: " \t\r")))
        }
        return nil
    }

    /// The value after "final answer:" (or "final answer is") in the reply's prose, markup taken
    /// off: `Final answer: \`48\``, `**Final Answer**: billing`. Only for a reply to a request
    /// for the final answer; in the loop such prose is not a submission. `includingCode` reads
    /// code lines too (`# Final answer: 193`, a comment small models answer with).
    static func statedFinalAnswer(in reply: String, includingCode: Bool = false) -> String? {
        let lines = includingCode ? reply.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) : proseLines(of: reply)
        for line in lines {
            guard let match = line.firstMatch(of: /(?i)final answer\W*?(?:is)?\W*?[:：]\s*(.+)/) else { continue }
            let value = String(String(match.output.1).trimmed(of: " \t\r*`"))
            let bare = value.hasSuffix(".") ? String(value.dropLast()) : value  // the sentence's full stop
            let text = unquoted(bare.trimmed(of: " *`")[...])
            if !text.isEmpty, text.count <= 500 { return text }
        }
        return nil
    }

    /// The value of a block that is one literal and nothing else (`102`, `"billing"`), which is
    /// how small models answer a forced final request; `nil` for any other code.
    static func literalAnswer(in code: String) -> String? {
        let text = code.trimmed(of: " \t\n\r")
        guard !text.isEmpty, !text.contains("\n") else { return nil }
        if text.wholeMatch(of: /-?\d[\d_]*(\.\d+)?/) != nil { return String(text.filter { $0 != "_" }) }
        guard let first = text.first, first == "\"" || first == "'" else { return nil }
        let inner = unquoted(text[...])
        return inner.count == text.count - 2 && !inner.contains("\\") ? inner : nil
    }

    /// `"1284"` as `1284`: models quote answers as if `FINAL` took a string literal. Only one
    /// pair that encloses the whole answer, with no other such quote inside, is taken off.
    private static func unquoted(_ text: Substring) -> String {
        guard text.count >= 2, let first = text.first, first == "\"" || first == "'", text.last == first,
              !text.dropFirst().dropLast().contains(first) else { return String(text) }
        return String(text.dropFirst().dropLast())
    }

    /// Where the first `FINAL(` or `FINAL_VAR(` of `line` opens its argument; `startsLine` when
    /// only blanks and Markdown emphasis or quoting come before it. `MY_FINAL(` is not one. Any
    /// case: small models write `Final(3)`, and `final(…)` is the same function in code.
    private static func markerStart(in line: String) -> (argument: String.Index, variable: Bool, startsLine: Bool)? {
        var search = line.startIndex
        while let range = line[search...].firstRange(of: /final/.ignoresCase()) {
            search = range.upperBound
            if range.lowerBound > line.startIndex {
                let before = line[line.index(before: range.lowerBound)]
                if before.isLetter || before.isNumber || before == "_" { continue }
            }
            let after = line[range.upperBound...]
            let variable: Bool
            let argument: String.Index
            if after.prefix(5).uppercased() == "_VAR(" {
                variable = true
                argument = line.index(range.upperBound, offsetBy: 5)
            } else if after.hasPrefix("(") {
                variable = false
                argument = line.index(after: range.upperBound)
            } else {
                continue
            }
            let startsLine = line[..<range.lowerBound].allSatisfy { " \t*`>-".contains($0) }
            return (argument, variable, startsLine)
        }
        return nil
    }

    private struct Fence {
        var info: String
        var body: String
        var closed = true
    }

    /// Fenced blocks: a line starting with ``` opens one (its info string is the rest of the
    /// line) and the next line that is exactly ``` closes it. An unclosed ```repl fence runs to
    /// the end (a reply cut off by its length limit still has its code).
    private static func fences(in reply: String) -> [Fence] {
        var result: [Fence] = []
        var current: Fence?
        var lines: [Substring] = []
        for line in restoringOpeningFence(of: reply) {
            let trimmed = line.trimmed(of: " \t\r")
            if var open = current {
                if trimmed == "```" {
                    open.body = lines.joined(separator: "\n")
                    result.append(open)
                    current = nil
                    lines = []
                } else {
                    lines.append(line)
                }
            } else if trimmed.hasPrefix("```") {
                current = Fence(info: trimmed.dropFirst(3).trimmed(of: " ").lowercased(), body: "")
            }
        }
        if var open = current, open.info == "repl" {
            open.body = lines.joined(separator: "\n")
            open.closed = false
            result.append(open)
        }
        return result
    }

    /// The reply's lines, with the opening fence put back when the reply starts inside a block:
    /// its first line is `repl` alone and a later line is ``` (Qwen2.5-Coder-1.5B served by
    /// llama.cpp writes its code that way, as if it had already opened the fence).
    private static func restoringOpeningFence(of reply: String) -> [Substring] {
        var lines = reply.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        guard let first = lines.firstIndex(where: { !$0.trimmed(of: " \t\r").isEmpty }),
              lines[first].trimmed(of: " \t\r") == "repl",
              lines[(first + 1)...].contains(where: { $0.trimmed(of: " \t\r") == "```" })
        else { return lines }
        lines[first] = "```repl"
        return lines
    }

    /// The reply's lines that are not inside a fenced block.
    private static func proseLines(of reply: String) -> [String] {
        var inside = false
        var prose: [String] = []
        for line in restoringOpeningFence(of: reply) {
            let trimmed = line.trimmed(of: " \t\r")
            if inside {
                if trimmed == "```" { inside = false }
            } else if trimmed.hasPrefix("```") {
                inside = true
            } else {
                prose.append(String(line))
            }
        }
        return prose
    }
}

extension StringProtocol {
    /// The text without the leading and trailing characters in `characters`: a plain loop over
    /// characters. Foundation's `trimmingCharacters(in:)` bridges through `NSString`, and with
    /// every reply line trimmed that way it was 3% of a run's engine time.
    fileprivate func trimmed(of characters: String) -> SubSequence {
        let rest = self.drop(while: characters.contains)
        var end = rest.endIndex
        while end > rest.startIndex, characters.contains(rest[rest.index(before: end)]) { end = rest.index(before: end) }
        return rest[..<end]
    }
}
