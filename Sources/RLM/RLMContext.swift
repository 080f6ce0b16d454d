import Foundation
import PythonRuntime

/// The context of a run: what the REPL's `context` variable holds. The model sees only its
/// type and size until its code looks inside.
public enum RLMContext: Sendable {
    /// A `str`.
    case text(String)
    /// A `list[str]`, for example documents or chunks.
    case texts([String])
    /// Any JSON-like value: a `dict`, a `list`, numbers.
    case json(PythonValue)
    /// `bytes`.
    case bytes(Data)
    /// A UTF-8 text file, read straight into the Python `str`: one copy, and for ASCII text no
    /// more memory than the file's size.
    case file(URL)
    /// A UTF-8 text file mapped read-only, for files too large to read into memory: `context`
    /// is a `MappedText`, a str-like object whose positions are byte offsets (`len`, slices,
    /// `find`/`rfind`/`count`, `lines`, `chunks`, regex `search`/`finditer`/`findall`; the system
    /// prompt describes it). Its pages are the page cache's, so it costs no anonymous memory;
    /// under `.process` isolation the worker maps the descriptor the host opened. Not kept in a
    /// session snapshot (the file stays where it is).
    case mappedFile(URL)

    /// Binds the context to `names` in the namespace (the first binding is made, the others
    /// alias the same object). Returns a short description for the prompt.
    func load(into namespace: any PythonREPL, as name: String) async throws -> String {
        switch self {
        case .text(let text):
            try await namespace.set(name, to: .string(text))
            // Python's len(): code points, not Swift's grapheme clusters.
            return "a str of \(text.unicodeScalars.count) characters"
        case .texts(let texts):
            try await namespace.set(name, to: .list(texts.map(PythonValue.string)))
            let lengths = texts.prefix(20).map { String($0.unicodeScalars.count) }.joined(separator: ", ")
            let more = texts.count > 20 ? ", …" : ""
            return "a list of \(texts.count) str chunks with \(texts.reduce(0) { $0 + $1.unicodeScalars.count }) characters in all (chunk lengths: \(lengths)\(more))"
        case .json(let value):
            try await namespace.set(name, to: value)
            switch value {
            case .dictionary(let entries):
                let keys = entries.prefix(20).map(\.key.debugDescription).joined(separator: ", ")
                return "a dict with \(entries.count) keys (\(keys)\(entries.count > 20 ? ", …" : ""))"
            case .list(let items):
                return "a list of \(items.count) items"
            default:
                return "a \(value.pythonTypeName)"
            }
        case .bytes(let data):
            try await namespace.set(name, to: .bytes(data))
            return "a bytes object of \(data.count) bytes"
        case .file(let url):
            do {
                try await namespace.setString(name, contentsOfFile: url.path)
            } catch let error as PythonError where error.code == .conversion {
                let problem = error.typeName == "OSError" ? error.message : "it is not UTF-8 text: \(error.message)"
                throw RLMError(code: .invalidContext, message: "cannot use the context file \(url.path): \(problem)", cause: error)
            }
            let characters = try await namespace.evaluate("len(\(name))").intValue ?? 0
            return "a str of \(characters) characters (read from \(url.lastPathComponent))"
        case .mappedFile(let url):
            do {
                try await namespace.setMapping(name, contentsOfFile: url.path)
            } catch let error as PythonError where error.code == .conversion {
                throw RLMError(code: .invalidContext, message: "cannot map the context file \(url.path): \(error.message)", cause: error)
            }
            let label = url.lastPathComponent.unicodeScalars.map { $0.isASCII && $0 != "\\" && $0 != "'" && $0.value >= 32 ? String($0) : "?" }.joined()
            try await namespace.executePrivately("g['\(name)'] = MappedText(g['\(name)'], '\(label)')")
            let bytes = try await namespace.evaluate("len(\(name))").intValue ?? 0
            return "a mapped context: \(bytes) bytes of UTF-8 text in \(label), not loaded (positions are byte offsets)"
        }
    }
}
