/// How much a model can read in one call, in tokens.
///
/// The engine uses a model's window (``LanguageModel/contextWindow``) twice: an `llm_query`
/// whose prompt cannot fit is answered, without calling the provider, with a message that tells
/// the model to split the prompt; and the root's conversation is compacted before it outgrows
/// its model's window. Token counts are estimates (``TokenEstimate``), so a prompt the estimate
/// lets through can still be refused by the server; providers report that refusal as
/// ``ContextWindowExceeded`` and the engine handles it the same way.
public struct ContextWindow: Sendable, Hashable, Codable {
    /// The window: prompt plus reply.
    public var tokens: Int
    /// Tokens kept free for the reply. Defaults to an eighth of the window, at most 8,192.
    public var reservedForReply: Int

    /// Creates a window of `tokens`, keeping `reservedForReply` of them for the reply.
    public init(tokens: Int, reservedForReply: Int? = nil) {
        self.tokens = max(tokens, 1)
        self.reservedForReply = min(max(reservedForReply ?? min(tokens / 8, 8_192), 0), self.tokens - 1)
    }

    /// The most tokens a prompt may take.
    public var promptTokens: Int { tokens - reservedForReply }

    /// The window of a well-known model, by name: `nil` when the name is not known.
    ///
    /// The name is matched case-insensitively by its longest known prefix, after any gateway
    /// prefix such as `openai/` (OpenRouter). The table holds the windows the vendors publish;
    /// a local server may be started with a smaller one, so set the window where you know it.
    public static func known(forModel name: String) -> ContextWindow? {
        var key = name.lowercased()
        if let slash = key.lastIndex(of: "/") { key = String(key[key.index(after: slash)...]) }
        var best: (prefix: String, window: ContextWindow)?
        for (prefix, window) in knownWindows where key.hasPrefix(prefix) {
            if prefix.count > (best?.prefix.count ?? -1) { best = (prefix, window) }
        }
        return best?.window
    }

    /// ``known(forModel:)`` keeping `reply` tokens free for the reply when it is given (a
    /// provider's `max_tokens`).
    public static func known(forModel name: String, reservingForReply reply: Int?) -> ContextWindow? {
        guard let window = known(forModel: name) else { return nil }
        guard let reply else { return window }
        return ContextWindow(tokens: window.tokens, reservedForReply: reply)
    }

    private static let knownWindows: [(String, ContextWindow)] = [
        ("gpt-4o", ContextWindow(tokens: 128_000, reservedForReply: 16_384)),
        ("gpt-4-turbo", ContextWindow(tokens: 128_000, reservedForReply: 4_096)),
        ("gpt-4.1", ContextWindow(tokens: 1_047_576, reservedForReply: 32_768)),
        ("gpt-5", ContextWindow(tokens: 400_000, reservedForReply: 128_000)),
        ("o1", ContextWindow(tokens: 200_000, reservedForReply: 100_000)),
        ("o3", ContextWindow(tokens: 200_000, reservedForReply: 100_000)),
        ("o4-mini", ContextWindow(tokens: 200_000, reservedForReply: 100_000)),
        ("claude-", ContextWindow(tokens: 200_000, reservedForReply: 8_192)),
        ("qwen2.5", ContextWindow(tokens: 32_768)),
        ("qwen3", ContextWindow(tokens: 32_768)),
        ("llama-3.1", ContextWindow(tokens: 131_072)),
        ("llama-3.2", ContextWindow(tokens: 131_072)),
        ("llama-3.3", ContextWindow(tokens: 131_072)),
        ("smollm2", ContextWindow(tokens: 8_192)),
        ("deepseek-chat", ContextWindow(tokens: 128_000)),
        ("deepseek-reasoner", ContextWindow(tokens: 128_000)),
    ]
}

/// Token counts estimated without a tokenizer.
///
/// Four bytes of ASCII count as one token (the usual rule for English and code with BPE
/// tokenizers) and every other Unicode scalar as one token (CJK, Hangul and emoji take about
/// one or more each), plus four tokens per message for its framing. It reads each byte once and
/// allocates nothing.
public enum TokenEstimate {
    /// The estimated tokens of `text`.
    public static func tokens(in text: String) -> Int {
        var ascii = 0
        var other = 0
        for byte in text.utf8 {
            if byte < 0x80 {
                ascii += 1
            } else if byte & 0xC0 != 0x80 {
                other += 1  // the lead byte of a multi-byte scalar
            }
        }
        return (ascii + 3) / 4 + other
    }

    /// The estimated tokens of a conversation.
    public static func tokens(in messages: [ChatMessage]) -> Int {
        messages.reduce(0) { $0 + 4 + tokens(in: $1.content) }
    }
}

/// A model refused a prompt because it did not fit its context window. Providers throw it when
/// the server says so (OpenAI's `context_length_exceeded`, llama.cpp's and vLLM's messages,
/// Anthropic's "prompt is too long"); the engine then tells the model to split the prompt, or
/// compacts the root's conversation and tries once more.
public struct ContextWindowExceeded: Error, Sendable, CustomStringConvertible {
    /// The model's name.
    public var model: String
    /// The prompt's size in tokens, when known (from the server, or the engine's estimate).
    public var promptTokens: Int?
    /// The window in tokens, when known.
    public var windowTokens: Int?
    /// The server's own words, when it sent some.
    public var serverMessage: String?

    /// Creates the error.
    public init(model: String, promptTokens: Int? = nil, windowTokens: Int? = nil, serverMessage: String? = nil) {
        self.model = model
        self.promptTokens = promptTokens
        self.windowTokens = windowTokens
        self.serverMessage = serverMessage
    }

    public var description: String {
        var text = "the prompt does not fit the context window of '\(model)'"
        switch (promptTokens, windowTokens) {
        case let (prompt?, window?): text += " (about \(prompt) tokens; the window holds \(window))"
        case let (nil, window?): text += " (\(window) tokens)"
        case let (prompt?, nil): text += " (about \(prompt) tokens)"
        case (nil, nil): break
        }
        if let serverMessage { text += ": \(serverMessage)" }
        return text
    }

    /// What `llm_query` returns to model code instead of a reply: the size, the window and what
    /// to do, with a piece size that fits.
    func messageForModelCode(promptCharacters: Int) -> String {
        var text = "[error] this prompt is too long for the model '\(model)'"
        switch (promptTokens, windowTokens) {
        case let (prompt?, window?): text += ": it is about \(prompt) tokens (\(promptCharacters) characters) and the context window holds \(window) tokens."
        case let (nil, window?): text += ": it is \(promptCharacters) characters and the context window holds \(window) tokens."
        default: text += ": it is \(promptCharacters) characters."
        }
        if let prompt = promptTokens, let window = windowTokens, prompt > 0 {
            // Pieces at about half the window leave room for instructions and the reply.
            let pieces = max(2, (prompt + window / 2 - 1) / max(window / 2, 1))
            let size = max(promptCharacters / pieces, 1)
            text += " Split it into about \(pieces) pieces of at most \(size) characters and call llm_query_batched on them, then combine the answers."
        } else {
            text += " Split it into smaller pieces and call llm_query_batched on them, then combine the answers."
        }
        text += serverMessage == nil ? " The model was not called." : " The server refused it."
        return text
    }
}
