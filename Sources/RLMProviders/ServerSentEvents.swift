/// Splits a `text/event-stream` body into the payloads of its `data:` lines, whatever the chunk
/// boundaries (a line or an event may span chunks).
struct ServerSentEvents {
    private var pending = ""
    private var data: [String] = []

    /// Feeds a chunk and returns the payloads of the events it completed.
    mutating func feed(_ chunk: String) -> [String] {
        pending += chunk
        var completed: [String] = []
        while let newline = pending.firstIndex(where: { $0 == "\n" || $0 == "\r\n" }) {
            let line = String(pending[..<newline]).trimmingSuffix("\r")
            pending = String(pending[pending.index(after: newline)...])
            if line.isEmpty {
                if !data.isEmpty { completed.append(data.joined(separator: "\n")) }
                data = []
            } else if line.hasPrefix("data:") {
                var value = line.dropFirst(5)
                if value.first == " " { value = value.dropFirst() }
                data.append(String(value))
            }
        }
        return completed
    }

    /// Returns what an unterminated last event held.
    mutating func finish() -> [String] {
        var completed = feed("\n\n")
        if !pending.isEmpty, pending.hasPrefix("data:") { completed.append(String(pending.dropFirst(5)).trimmingSuffix(" ")) }
        return completed
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: Character) -> String {
        last == suffix ? String(dropLast()) : self
    }
}
