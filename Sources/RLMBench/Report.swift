import Foundation
import RLM

/// What a set of results says, per family and mode, and per context size.
public struct BenchReport: Sendable, Codable {
    public struct Row: Sendable, Codable, Hashable {
        public var family: BenchTask.Family
        public var mode: BenchResult.Mode
        public var tasks: Int
        /// Mean score: accuracy, or mean F1 for pairs.
        public var score: Double
        public var costUSD: Double
        public var inputTokens: Int
        public var outputTokens: Int
        public var calls: Int
        /// Summed wall time of the tasks (they may have run at once).
        public var seconds: Double
        /// Failures by kind (`limit:…`, `model`, `python`, `error`).
        public var failures: [String: Int]
    }

    public struct Point: Sendable, Codable, Hashable {
        public var family: BenchTask.Family
        public var mode: BenchResult.Mode
        public var sizeTokens: Int
        public var score: Double
        public var tasks: Int
        /// Median wall time and calls of the runs at this size (`nil` in reports from before).
        public var medianSeconds: Double?
        public var medianCalls: Double?
        /// RLM runs at this size that one direct call answered (``Strategy/auto``).
        public var direct: Int?
    }

    public var rows: [Row]
    /// Mean score against context size, for the plots.
    public var points: [Point]

    public init(results: [BenchResult]) {
        var rows: [Row] = []
        var points: [Point] = []
        for family in BenchTask.Family.allCases {
            for mode in BenchResult.Mode.allCases {
                let mine = results.filter { $0.family == family && $0.mode == mode }
                guard !mine.isEmpty else { continue }
                var failures: [String: Int] = [:]
                for result in mine { if let failure = result.failure { failures[failure, default: 0] += 1 } }
                rows.append(Row(
                    family: family, mode: mode, tasks: mine.count, score: mine.map(\.score).reduce(0, +) / Double(mine.count),
                    costUSD: mine.map(\.costUSD).reduce(0, +), inputTokens: mine.map(\.inputTokens).reduce(0, +),
                    outputTokens: mine.map(\.outputTokens).reduce(0, +), calls: mine.map(\.calls).reduce(0, +),
                    seconds: mine.map(\.seconds).reduce(0, +), failures: failures))
                for size in Set(mine.map(\.sizeTokens)).sorted() {
                    let sized = mine.filter { $0.sizeTokens == size }
                    points.append(Point(
                        family: family, mode: mode, sizeTokens: size, score: sized.map(\.score).reduce(0, +) / Double(sized.count), tasks: sized.count,
                        medianSeconds: Self.median(sized.map(\.seconds)), medianCalls: Self.median(sized.map { Double($0.calls) }),
                        direct: sized.filter { $0.strategy == .direct }.count))
                }
            }
        }
        self.rows = rows
        self.points = points
    }

    static func percent(_ value: Double) -> String { String(format: "%.0f%%", value * 100) }

    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func size(_ tokens: Int) -> String {
        tokens >= 1_000_000 ? String(format: "%gM", Double(tokens) / 1e6) : tokens >= 1_000 ? String(format: "%gK", Double(tokens) / 1e3) : "\(tokens)"
    }

    /// A plain-text table.
    public func table() -> String {
        var lines = ["family   mode  tasks  score   calls   input tok  output tok   cost USD   seconds  failures"]
        for row in rows {
            let failures = row.failures.isEmpty ? "-" : row.failures.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")
            lines.append(
                row.family.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
                    + row.mode.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)
                    + String(row.tasks).leftPadded(5) + Self.percent(row.score).leftPadded(7)
                    + String(row.calls).leftPadded(8) + String(row.inputTokens).leftPadded(12) + String(row.outputTokens).leftPadded(12)
                    + String(format: "%.4f", row.costUSD).leftPadded(11) + String(format: "%.1f", row.seconds).leftPadded(10) + "  " + failures)
        }
        lines.append("")
        lines.append("by context size (medians per run; direct: RLM runs one direct call answered):")
        lines.append("family   size   mode  tasks  score  median s  median calls  direct")
        for family in BenchTask.Family.allCases {
            for size in Set(points.filter { $0.family == family }.map(\.sizeTokens)).sorted() {
                for point in points where point.family == family && point.sizeTokens == size {
                    lines.append(
                        family.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
                            + Self.size(size).padding(toLength: 7, withPad: " ", startingAt: 0)
                            + point.mode.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)
                            + String(point.tasks).leftPadded(5) + Self.percent(point.score).leftPadded(7)
                            + (point.medianSeconds.map { String(format: "%.1f", $0) } ?? "-").leftPadded(10)
                            + (point.medianCalls.map { String(format: "%g", $0) } ?? "-").leftPadded(14)
                            + (point.mode == .rlm ? point.direct.map(String.init) ?? "-" : "-").leftPadded(8))
                }
            }
        }
        return lines.joined(separator: "\n")
    }

    /// A self-contained page: the table and, per family, score against context length for the
    /// RLM and the base model (inline SVG; no remote assets).
    public func html(title: String) -> String {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var body = "<h1>\(escape(title))</h1><table><tr><th>family</th><th>mode</th><th>tasks</th><th>score</th><th>calls</th><th>input tokens</th><th>output tokens</th><th>cost USD</th><th>seconds</th><th>failures</th></tr>"
        for row in rows {
            let failures = row.failures.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")
            body += "<tr><td>\(row.family.rawValue)</td><td>\(row.mode.rawValue)</td><td>\(row.tasks)</td><td>\(Self.percent(row.score))</td>"
                + "<td>\(row.calls)</td><td>\(row.inputTokens)</td><td>\(row.outputTokens)</td><td>\(String(format: "%.4f", row.costUSD))</td>"
                + "<td>\(String(format: "%.1f", row.seconds))</td><td>\(escape(failures))</td></tr>"
        }
        body += "</table>"
        for family in BenchTask.Family.allCases where points.contains(where: { $0.family == family }) {
            body += "<h2>\(family.rawValue): score against context length</h2>" + plot(family)
        }
        return """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title><style>
            body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
            th{background:#f4f4f4}td:first-child,td:nth-child(2){text-align:left}svg{background:#fff;border:1px solid #ddd}
            .rlm{stroke:#1f6feb;fill:#1f6feb}.base{stroke:#d1242f;fill:#d1242f}</style></head><body>\(body)</body></html>
            """
    }

    private func plot(_ family: BenchTask.Family) -> String {
        let width = 520.0, height = 260.0, left = 50.0, bottom = 40.0, top = 20.0, right = 20.0
        let sizes = Set(points.filter { $0.family == family }.map(\.sizeTokens)).sorted()
        guard let first = sizes.first, let last = sizes.last else { return "" }
        let low = log10(Double(first)), high = log10(Double(max(last, first + 1)))
        func x(_ size: Int) -> Double {
            sizes.count == 1 ? left + (width - left - right) / 2 : left + (log10(Double(size)) - low) / (high - low) * (width - left - right)
        }
        func y(_ score: Double) -> Double { height - bottom - score * (height - bottom - top) }
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"score against context length\">"
        for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
            svg += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(y(tick))\" y2=\"\(y(tick))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 8)\" y=\"\(y(tick) + 4)\" text-anchor=\"end\" font-size=\"11\">\(Int(tick * 100))%</text>"
        }
        for size in sizes {
            svg += "<text x=\"\(x(size))\" y=\"\(height - bottom + 16)\" text-anchor=\"middle\" font-size=\"11\">\(Self.size(size))</text>"
        }
        svg += "<text x=\"\((width + left) / 2)\" y=\"\(height - 6)\" text-anchor=\"middle\" font-size=\"11\">context length (tokens)</text>"
        for (index, mode) in BenchResult.Mode.allCases.enumerated() {
            let mine = points.filter { $0.family == family && $0.mode == mode }.sorted { $0.sizeTokens < $1.sizeTokens }
            guard !mine.isEmpty else { continue }
            let path = mine.map { "\(x($0.sizeTokens)),\(y($0.score))" }.joined(separator: " ")
            svg += "<polyline class=\"\(mode.rawValue)\" fill=\"none\" stroke-width=\"2\" points=\"\(path)\"/>"
            for point in mine { svg += "<circle class=\"\(mode.rawValue)\" cx=\"\(x(point.sizeTokens))\" cy=\"\(y(point.score))\" r=\"3\"/>" }
            svg += "<text class=\"\(mode.rawValue)\" x=\"\(width - right - 60)\" y=\"\(top + 14 + Double(index) * 16)\" font-size=\"12\" stroke=\"none\">\(mode == .rlm ? "RLM" : "base model")</text>"
        }
        return svg + "</svg>"
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
