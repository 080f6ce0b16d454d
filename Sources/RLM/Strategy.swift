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
    /// spare (``DirectPlan/fits(tokens:window:)``), the RLM loop otherwise. A root model
    /// whose window is unknown gets the loop. If the direct call is refused as too long, fails,
    /// or answers nothing usable (empty, a placeholder), the run goes on with the loop.
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
