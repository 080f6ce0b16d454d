
/// Reads a model reply: its ```repl code blocks and a `FINAL(...)` / `FINAL_VAR(...)` answer
/// written outside code.
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
    static func codeBlocks(in reply: String) -> [String] {
        let all = fences(in: reply)
        let repl = all.filter { $0.info == "repl" }
        if !repl.isEmpty { return repl.map(\.body) }
        return all.filter { ($0.info == "python" || $0.info == "py") && $0.closed }.map(\.body)
    }

    /// The first `FINAL(...)` or `FINAL_VAR(...)` that starts a line outside any fenced block.
    static func finalMarker(in reply: String) -> FinalMarker? {
        let prose = proseLines(of: reply)
        for (index, line) in prose.enumerated() {
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.hasPrefix("FINAL_VAR(") {
                guard let close = trimmed.firstIndex(of: ")") else { continue }
                let inner = trimmed[trimmed.index(trimmed.startIndex, offsetBy: 10)..<close]
                let name = inner.trimmed(of: " \"'`\r")
                if !name.isEmpty { return .variable(String(name)) }
            } else if trimmed.hasPrefix("FINAL(") {
                // The answer ends at the ")" that closes its line, or, for an answer over several
                // lines, the first later line that ends with ")" (prose after it is not part of it).
                let rest = [String(trimmed.dropFirst(6))] + prose[(index + 1)...]
                if let end = rest.firstIndex(where: { $0.trimmed(of: " \t\r").hasSuffix(")") }) {
                    let text = rest[...end].joined(separator: "\n").trimmed(of: " \t\r")
                    return .text(String(text.dropLast().trimmed(of: " \n\t\r")))
                }
                // No line closes it: take it up to the last ")" there is, if any.
                let joined = rest.joined(separator: "\n")
                guard let close = joined.lastIndex(of: ")") else { continue }
                return .text(String(joined[..<close].trimmed(of: " \n\t\r")))
            }
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
        for line in reply.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
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

    /// The reply's lines that are not inside a fenced block.
    private static func proseLines(of reply: String) -> [String] {
        var inside = false
        var prose: [String] = []
        for line in reply.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
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
