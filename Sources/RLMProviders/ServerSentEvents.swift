/// Splits a `text/event-stream` body into the payloads of its `data:` lines, whatever the chunk
/// boundaries: a line, an event or a UTF-8 character may span chunks. Bytes are kept until a line
/// is complete, and only whole lines are decoded (a line feed never occurs inside a UTF-8
/// sequence), so a character split between two network reads arrives whole.
struct ServerSentEvents {
    private var pending: [UInt8] = []
    private var data: [String] = []

    /// Feeds a chunk and returns the payloads of the events it completed.
    mutating func feed(_ chunk: some Sequence<UInt8>) -> [String] {
        pending.append(contentsOf: chunk)
        var completed: [String] = []
        var start = 0
        while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            var end = newline
            if end > start && pending[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            let line = String(decoding: pending[start..<end], as: UTF8.self)
            start = newline + 1
            if line.isEmpty {
                if !data.isEmpty { completed.append(data.joined(separator: "\n")) }
                data = []
            } else if line.hasPrefix("data:") {
                var value = line.dropFirst(5)
                if value.first == " " { value = value.dropFirst() }
                data.append(String(value))
            }
        }
        pending.removeFirst(start)
        return completed
    }

    /// Returns what an unterminated last event held.
    mutating func finish() -> [String] {
        feed("\n\n".utf8)
    }
}
