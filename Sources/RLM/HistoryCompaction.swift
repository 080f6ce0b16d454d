/// Keeps a node's conversation inside its model's context window.
///
/// A node's conversation is the system prompt, the first user message (query and context
/// description), then one assistant reply and one user message (the cells' output) per turn.
/// When its estimated size passes ``trigger`` of the window's prompt budget, the oldest turns
/// are left out until it is under ``target``: the REPL still holds every variable those turns
/// made, and a note in the first user message says so. Compacting well below the trigger means
/// it happens rarely and the prompt's prefix stays the same between compactions (good for
/// providers' prompt caches). The latest turn is always kept; if it alone is too big, the middle
/// of its texts is cut.
enum HistoryCompaction {
    /// The share of the prompt budget that starts a compaction.
    static let trigger = 0.85
    /// The share a compaction brings the conversation down to.
    static let target = 0.5
    /// Appended to the first user message once turns have been left out.
    static let note = "\n\n[Earlier turns of this conversation were left out to fit the model's context window. "
        + "The REPL still holds every variable they made: SHOW_VARS() lists them; print what you need again.]"

    /// What a compaction did.
    struct Result: Equatable {
        var removedMessages: Int
        var estimatedTokens: Int
    }

    /// Compacts `messages` when they pass the trigger, or always when `force` is set (the server
    /// refused the prompt; `budget` is then the size it must get under). Returns `nil` when nothing
    /// was, or could be, left out.
    static func compact(_ messages: inout [ChatMessage], window: ContextWindow, force: Bool = false, budget: Int? = nil) -> Result? {
        let limit = budget ?? window.promptTokens
        var tokens = TokenEstimate.tokens(in: messages)
        guard force || Double(tokens) > Double(limit) * trigger else { return nil }
        let goal = Int(Double(limit) * target)
        // messages[0] is the system prompt and messages[1] the first user message; turns follow
        // as (assistant, user) pairs. Drop from the oldest, keeping the latest pair, and stop
        // at an assistant message so roles still alternate.
        let head = min(2, messages.count)
        var removed = 0
        var firstKept = head
        while messages.count - firstKept > 2
            && (tokens > goal || (removed > 0 && messages[firstKept].role != .assistant)) {
            tokens -= TokenEstimate.tokens(in: [messages[firstKept]])
            firstKept += 1
            removed += 1
        }
        if removed > 0 {
            messages.removeSubrange(head..<firstKept)
            if head == 2 && !messages[1].content.hasSuffix(note) {
                messages[1].content += note
                tokens += TokenEstimate.tokens(in: note)
            }
        }
        // The latest turn alone can still be too big (a huge reply or output): cut its middles.
        var clipped = false
        if tokens > goal {
            for index in messages.indices.dropFirst(head).reversed() where tokens > goal {
                let content = messages[index].content
                let excess = tokens - goal
                let own = TokenEstimate.tokens(in: content)
                guard own > 64 else { continue }
                let keepTokens = max(own - excess, 32)
                // Tokens to characters, by this message's own ratio.
                let keep = Int(Double(content.unicodeScalars.count) * Double(keepTokens) / Double(own))
                let shortened = clipMiddle(content, keepingScalars: keep)
                tokens += TokenEstimate.tokens(in: shortened) - own
                messages[index].content = shortened
                clipped = true
            }
        }
        guard removed > 0 || clipped else { return nil }
        return Result(removedMessages: removed, estimatedTokens: TokenEstimate.tokens(in: messages))
    }

    /// `text` with its middle replaced by a marker, keeping about `keep` scalars from both ends.
    static func clipMiddle(_ text: String, keepingScalars keep: Int) -> String {
        let scalars = text.unicodeScalars
        guard scalars.count > keep else { return text }
        let half = max(keep / 2, 1)
        let head = String(String.UnicodeScalarView(scalars.prefix(half)))
        let tail = String(String.UnicodeScalarView(scalars.suffix(half)))
        return head + "\n[… \(scalars.count - 2 * half) characters left out to fit the context window …]\n" + tail
    }
}
