// A context larger than memory (issue 14): one RLM run over a mapped log file with scripted
// models, printed as JSON with the process's peak anonymous memory (RssAnon, sampled every 5 ms).
//
//   HugeContext needle FILE [text|mapped]   find the needle line with context.find
//   HugeContext errors FILE [text|mapped]   count error kinds: chunks of 64 MB, each counted by
//                                           regex in the cell, then one llm_query per chunk
//                                           (in waves of 16) to name the kinds
//   HugeContext scan FILE PATTERN           a full regex scan (finditer) of the mapped file
//
// Make the file with Benchmarks/scripts/make-log.py; it is never committed.
import Foundation
import RLM
import RLMTesting

func status() -> [String: Int] {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return [:] }
    var fields: [String: Int] = [:]
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, ["VmRSS", "RssAnon", "RssFile"].contains(String(parts[0])) else { continue }
        fields[String(parts[0])] = Int(parts[1].split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
    }
    return fields
}

final class Peaks: @unchecked Sendable {
    private let lock = NSLock()
    private var peaks: [String: Int] = [:]
    private let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "peaks"))

    init() {
        timer.schedule(deadline: .now(), repeating: .milliseconds(5))
        timer.setEventHandler { [self] in sample() }
        timer.resume()
    }

    func sample() {
        let now = status()
        lock.withLock { for (key, value) in now { peaks[key] = max(peaks[key] ?? 0, value) } }
    }

    func stop() -> [String: Int] {
        timer.cancel()
        sample()
        return lock.withLock { peaks }
    }
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    FileHandle.standardError.write(Data("usage: HugeContext needle|errors FILE [text|mapped] | scan FILE PATTERN\n".utf8))
    exit(64)
}
let url = URL(fileURLWithPath: arguments[2])
let mapped = arguments[1] == "scan" || arguments.count < 4 || arguments[3] == "mapped"
let code: String
switch arguments[1] {
case "needle":
    code = """
        i = context.find('NEEDLE')
        j = context.find('\\n', i)
        answer['content'] = context[i:j]
        answer['ready'] = True
        """
case "errors":
    code = """
        import re
        counts = {}
        pieces = []
        # A str context (text mode) is sliced instead; the work per piece is the same.
        size = 64_000_000
        source = context.chunks(size) if hasattr(context, 'chunks') else (context[i:i + size] for i in range(0, len(context), size))
        for piece in source:
            for kind in re.findall(r'ERROR \\[svc-\\d+\\] (\\w+)', piece):
                counts[kind] = counts.get(kind, 0) + 1
            pieces.append(piece[:200])
            if len(pieces) == 16:
                named = llm_query_batched(['Name the error kinds in: ' + p for p in pieces])
                pieces = []
        if pieces:
            named = llm_query_batched(['Name the error kinds in: ' + p for p in pieces])
        answer['content'] = repr(sorted(counts.items()))
        answer['ready'] = True
        """
case "scan":
    guard arguments.count == 4 else { exit(64) }
    code = """
        lines = 0
        for m in context.finditer(\(String(reflecting: arguments[3]))):
            lines += 1
        answer['content'] = str(lines)
        answer['ready'] = True
        """
default:
    exit(64)
}
let root = ScriptedModel.sequence(["```repl\n\(code)\n```"])
var configuration = RLMConfiguration(rootModel: root, subModel: ScriptedModel { _ in "timeout" })
configuration.execTimeout = .seconds(3600)
let peaks = Peaks()
let clock = ContinuousClock()
let start = clock.now
let result = try await RLM(configuration: configuration).complete(query: "q", context: mapped ? .mappedFile(url) : .file(url))
let elapsed = clock.now - start
let peak = peaks.stop()
let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? 0
let object: [String: Any] = [
    "scenario": arguments[1], "mode": mapped ? "mapped" : "text", "file_bytes": size,
    "seconds": Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
    "answer": String(result.answer.prefix(300)), "model_calls": result.usage.total.calls,
    "peak_anon_kb": peak["RssAnon"] ?? 0, "peak_rss_kb": peak["VmRSS"] ?? 0, "peak_file_kb": peak["RssFile"] ?? 0,
]
print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
