import Foundation

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

    /// The code of every ```repl block, in order.
    static func codeBlocks(in reply: String) -> [String] {
        var blocks: [String] = []
        for fence in fences(in: reply) where fence.info == "repl" {
            blocks.append(fence.body)
        }
        return blocks
    }

    /// The first `FINAL(...)` or `FINAL_VAR(...)` that starts a line outside any fenced block.
    static func finalMarker(in reply: String) -> FinalMarker? {
        let prose = proseLines(of: reply)
        for (index, line) in prose.enumerated() {
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.hasPrefix("FINAL_VAR(") {
                guard let close = trimmed.firstIndex(of: ")") else { continue }
                let inner = trimmed[trimmed.index(trimmed.startIndex, offsetBy: 10)..<close]
                let name = inner.trimmingCharacters(in: [" ", "\"", "'", "`"])
                if !name.isEmpty { return .variable(name) }
            } else if trimmed.hasPrefix("FINAL(") {
                // The answer may span lines: it runs to the last ")" of the remaining prose.
                let rest = ([String(trimmed.dropFirst(6))] + prose[(index + 1)...]).joined(separator: "\n")
                guard let close = rest.lastIndex(of: ")") else { continue }
                return .text(String(rest[..<close]).trimmingCharacters(in: [" ", "\n", "\t"]))
            }
        }
        return nil
    }

    private struct Fence {
        var info: String
        var body: String
    }

    /// Fenced blocks: a line starting with ``` opens one (its info string is the rest of the
    /// line) and the next line that is exactly ``` closes it. An unclosed fence runs to the end.
    private static func fences(in reply: String) -> [Fence] {
        var result: [Fence] = []
        var current: Fence?
        var lines: [Substring] = []
        for line in reply.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: [" ", "\t", "\r"])
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
                current = Fence(info: String(trimmed.dropFirst(3)).trimmingCharacters(in: [" "]).lowercased(), body: "")
            }
        }
        if var open = current, open.info == "repl" {
            open.body = lines.joined(separator: "\n")
            result.append(open)
        }
        return result
    }

    /// The reply's lines that are not inside a fenced block.
    private static func proseLines(of reply: String) -> [String] {
        var inside = false
        var prose: [String] = []
        for line in reply.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: [" ", "\t", "\r"])
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
