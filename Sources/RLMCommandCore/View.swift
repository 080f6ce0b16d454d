import ArgumentParser
import Foundation

/// `rlm view`: turns a trajectory into one self-contained HTML page.
package struct View: ParsableCommand {
    package static let configuration = CommandConfiguration(
        abstract: "Render a trajectory (JSON Lines from --trajectory) as a self-contained HTML page of the recursion tree.")

    @Argument(help: "The trajectory file.")
    var trajectory: String

    @Option(help: "The HTML file to write.")
    var output: String

    package init() {}

    package func run() throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: trajectory))
        } catch {
            printError("rlm: cannot read the trajectory \(trajectory): \(error.localizedDescription)")
            throw ExitStatus.failure
        }
        var events: [[String: Any]] = []
        for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() where !line.isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], object["type"] is String else {
                printError("rlm: \(trajectory) line \(number + 1) is not a trajectory event (is this a file written by --trajectory?)")
                throw ExitStatus.failure
            }
            events.append(object)
        }
        guard !events.isEmpty else {
            printError("rlm: \(trajectory) has no events")
            throw ExitStatus.failure
        }
        do {
            try TrajectoryPage(events: events).html().write(toFile: output, atomically: true, encoding: .utf8)
        } catch {
            printError("rlm: cannot write \(output): \(error.localizedDescription)")
            throw ExitStatus.failure
        }
        printError("rlm: wrote \(output)")
    }
}

/// The HTML of a trajectory: each RLM node with its iterations, code, output and sub-calls, and
/// children nested under the iteration that started them.
struct TrajectoryPage {
    private enum Item {
        case reply([String: Any])
        case code([String: Any])
        case subcall(started: [String: Any], finished: [String: Any]?)
        case child(id: Int, started: [String: Any], finished: [String: Any]?)
        case note(String)
        /// A message the engine sent (`message` lines).
        case message([String: Any])
        /// An assist the engine used (`assist` lines).
        case assist([String: Any])
    }

    private struct Node {
        var id: Int
        var depth = 0
        var start: [String: Any] = [:]
        var answer: String?
        var iterations: [(number: Int, items: [Item])] = []
        var limit: String?
    }

    private var nodes: [Int: Node] = [:]
    private var finished: [String: Any]?

    init(events: [[String: Any]]) {
        var subcallEnds: [Int: [String: Any]] = [:]
        var childEnds: [Int: [String: Any]] = [:]
        for event in events {
            if event["type"] as? String == "subcall_finished", let call = event["call"] as? Int { subcallEnds[call] = event }
            if event["type"] as? String == "child_finished", let child = event["child"] as? Int { childEnds[child] = event }
        }
        for event in events {
            let id = event["node"] as? Int ?? 0
            var node = nodes[id] ?? Node(id: id, depth: event["depth"] as? Int ?? 0)
            func append(_ item: Item) {
                if node.iterations.isEmpty { node.iterations.append((0, [])) }
                node.iterations[node.iterations.count - 1].items.append(item)
            }
            switch event["type"] as? String {
            case "node_started": node.start = event
            case "iteration_started": node.iterations.append((event["iteration"] as? Int ?? 0, []))
            case "model_reply": append(.reply(event))
            case "message": append(.message(event))
            case "assist": append(.assist(event))
            case "code": append(.code(event))
            case "subcall_started":
                let call = event["call"] as? Int ?? -1
                append(.subcall(started: event, finished: subcallEnds[call]))
            case "child_started":
                let child = event["child"] as? Int ?? -1
                append(.child(id: child, started: event, finished: childEnds[child]))
            case "answer": node.answer = event["answer"] as? String
            case "limit_reached":
                node.limit = event["limit"] as? String
                append(.note("Limit reached: \(event["limit"] as? String ?? "?")"))
            case "history_compacted":
                let removed = event["removed_messages"] as? Int ?? 0
                let what = removed > 0 ? "\(removed) earlier messages left out" : "the middle of the latest turn cut"
                append(.note("The conversation was compacted to fit the model's context window: \(what); about \(event["estimated_tokens"] as? Int ?? 0) tokens remain."))
            case "refinement_step":
                let score = (event["judge_score"] as? Double).map { String(format: "; the judge gave it %.2f", $0) } ?? ""
                let changed = event["changed"] as? Bool == true ? "a new answer" : "the answer unchanged"
                append(.note("Refinement step \(event["step"] as? Int ?? 0): \(changed): \(event["answer"] as? String ?? "")\(score)"))
            case "subcall_routed":
                let route = event["route"] as? String == "child" ? "a child RLM" : "a plain call"
                append(.note("Routed to \(route): \(event["reason"] as? String ?? "") (\(event["prompt"] as? String ?? ""))"))
            case "strategy":
                let how = event["strategy"] as? String == "direct" ? "one direct call with the whole context" : "the RLM loop"
                append(.note("Answered by \(how): \(event["reason"] as? String ?? "")"))
            case "refinement_finished":
                append(.note("Refinement ended after \(event["steps"] as? Int ?? 0) steps (\(event["reason"] as? String ?? "?"))."))
            case "run_finished": finished = event
            default: break
            }
            nodes[id] = node
        }
    }

    func html() -> String {
        var body = "<header><h1>RLM trajectory</h1>" + totals()
        body += "<p class=\"controls\"><button type=\"button\" onclick=\"setAll(true)\">Expand all</button> "
        body += "<button type=\"button\" onclick=\"setAll(false)\">Collapse all</button></p></header><main>"
        if let root = nodes.keys.min() { body += render(node: root, visited: []) }
        body += "</main>"
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>RLM trajectory</title><style>\(Self.css)</style></head>
            <body>\(body)<script>\(Self.script)</script></body></html>
            """
    }

    private func totals() -> String {
        guard let finished else { return "<p class=\"warn\">The run did not finish (no run_finished event).</p>" }
        let usage = finished["usage"] as? [String: Any] ?? [:]
        let total = usage["total"] as? [String: Any] ?? [:]
        let tokens = total["tokens"] as? [String: Any] ?? [:]
        var html = "<dl class=\"totals\">"
        if let answer = nodes[nodes.keys.min() ?? 0]?.answer {
            html += "<dt>Answer</dt><dd class=\"answer\">\(escape(answer))</dd>"
        }
        if let error = finished["error"] as? String { html += "<dt>Ended by</dt><dd class=\"warn\">\(escape(error))</dd>" }
        html += "<dt>Elapsed</dt><dd>\(seconds(finished["elapsed"]))</dd>"
        html += "<dt>Model calls</dt><dd>\(total["calls"] as? Int ?? 0)</dd>"
        html += "<dt>Tokens</dt><dd>\(tokens["input"] as? Int ?? 0) in, \(tokens["output"] as? Int ?? 0) out</dd>"
        html += "<dt>Cost</dt><dd>$\(String(format: "%.4f", total["cost_usd"] as? Double ?? 0))</dd>"
        html += "<dt>RLM nodes</dt><dd>\(nodes.count)</dd></dl>"
        if let byModel = usage["by_model"] as? [String: [String: Any]], !byModel.isEmpty {
            html += "<table class=\"models\"><tr><th>Model</th><th>Calls</th><th>Input</th><th>Output</th><th>Cost</th></tr>"
            for (model, entry) in byModel.sorted(by: { $0.key < $1.key }) {
                let tokens = entry["tokens"] as? [String: Any] ?? [:]
                html += "<tr><td>\(escape(model))</td><td>\(entry["calls"] as? Int ?? 0)</td><td>\(tokens["input"] as? Int ?? 0)</td>"
                html += "<td>\(tokens["output"] as? Int ?? 0)</td><td>$\(String(format: "%.4f", entry["cost_usd"] as? Double ?? 0))</td></tr>"
            }
            html += "</table>"
        }
        return html
    }

    private func render(node id: Int, visited: Set<Int>) -> String {
        guard let node = nodes[id], !visited.contains(id) else { return "" }
        let visited = visited.union([id])
        let query = node.start["query"] as? String
        var summary = "RLM node \(id) · depth \(node.depth) · \(node.iterations.filter { $0.number > 0 }.count) iterations"
        if let answer = node.answer { summary += " · answer: " + String(answer.prefix(80)) }
        if let limit = node.limit { summary += " · stopped by \(limit)" }
        var html = "<details class=\"node\" data-node=\"\(id)\" open><summary>\(escape(summary))</summary><div class=\"body\">"
        if let query { html += "<p><b>Query:</b> \(escape(query))</p>" }
        html += "<p><b>Context:</b> \(escape(node.start["context"] as? String ?? ""))</p>"
        for (number, items) in node.iterations {
            html += "<details class=\"iteration\"\(number == node.iterations.last?.number ? " open" : "")><summary>Iteration \(number)</summary><div class=\"body\">"
            for item in items { html += render(item, visited: visited) }
            html += "</div></details>"
        }
        if let answer = node.answer { html += "<p class=\"answer\"><b>Answer:</b> \(escape(answer))</p>" }
        return html + "</div></details>"
    }

    private func render(_ item: Item, visited: Set<Int>) -> String {
        switch item {
        case .reply(let event):
            let usage = event["usage"] as? [String: Any] ?? [:]
            return "<div class=\"reply\"><div class=\"label\">Model reply · \(seconds(event["latency"])) · \(usage["input"] as? Int ?? 0) in / \(usage["output"] as? Int ?? 0) out tokens</div><pre>\(escape(event["text"] as? String ?? ""))</pre></div>"
        case .code(let event):
            let status = event["status"] as? String ?? ""
            return "<div class=\"cell \(escape(status))\"><div class=\"label\">Cell \(event["cell"] as? Int ?? 0) · \(escape(status)) · \(seconds(event["duration"]))</div><pre class=\"code\">\(escape(event["code"] as? String ?? ""))</pre><pre class=\"output\">\(escape(event["output"] as? String ?? ""))</pre></div>"
        case .subcall(let started, let finished):
            let usage = finished?["usage"] as? [String: Any] ?? [:]
            let error = finished?["error"] as? String
            var summary = "Sub-call \(started["call"] as? Int ?? 0) → \(started["model"] as? String ?? "")"
            if let finished { summary += " · \(seconds(finished["latency"])) · \(usage["input"] as? Int ?? 0) in / \(usage["output"] as? Int ?? 0) out" }
            if error != nil { summary += " · failed" }
            var html = "<details class=\"subcall\(error != nil ? " failed" : "")\"><summary>\(escape(summary))</summary><div class=\"body\">"
            html += "<div class=\"label\">Prompt (\(started["prompt_chars"] as? Int ?? 0) characters)</div><pre>\(escape(started["prompt"] as? String ?? ""))</pre>"
            if let error { html += "<div class=\"label\">Error</div><pre>\(escape(error))</pre>" }
            if let response = finished?["response"] as? String { html += "<div class=\"label\">Response</div><pre>\(escape(response))</pre>" }
            return html + "</div></details>"
        case .child(let id, let started, let finished):
            var html = "<div class=\"child\"><div class=\"label\">Child RLM \(id) started with a prompt of \(started["prompt_chars"] as? Int ?? 0) characters"
            if let finished { html += " · \(seconds(finished["latency"]))" }
            html += "</div>" + render(node: id, visited: visited)
            if let error = finished?["error"] as? String { html += "<p class=\"warn\">\(escape(error))</p>" }
            return html + "</div>"
        case .note(let text):
            return "<p class=\"warn\">\(escape(text))</p>"
        case .message(let event):
            let role = event["role"] as? String ?? "user"
            let when = event["transient"] as? Bool == true ? " (this request only)" : ""
            let text = event["text"] as? String ?? ""
            return "<details class=\"message\"><summary>\(escape("Message to the model · \(role)\(when) · \(text.count) characters"))</summary><pre>\(escape(text))</pre></details>"
        case .assist(let event):
            return "<p class=\"assist\">\(escape("Assist \(event["assist"] as? String ?? "?"): \(event["text"] as? String ?? "")"))</p>"
        }
    }

    private func seconds(_ value: Any?) -> String {
        String(format: "%.3f s", (value as? Double) ?? Double(value as? Int ?? 0))
    }

    private func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            default: result.append(character)
            }
        }
        return result
    }

    static let css = """
        body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
        header{background:#1d2330;color:#fff;padding:16px 24px}h1{margin:0 0 8px;font-size:20px}
        .totals{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}.totals dt{opacity:.7}
        .totals dd{margin:0}.answer{font-weight:600}table.models{margin-top:8px;border-collapse:collapse}
        table.models td,table.models th{padding:2px 10px;border-bottom:1px solid #46506a;text-align:left}
        main{padding:16px 24px}details{margin:6px 0}summary{cursor:pointer;font-weight:600}
        details.node{background:#fff;border:1px solid #d5d9e2;border-left:4px solid #3b6fd8;border-radius:6px;padding:6px 10px}
        details.iteration{border-left:2px solid #c7cede;padding-left:10px}.body{margin-left:6px}
        pre{background:#f1f3f7;padding:8px;border-radius:4px;white-space:pre-wrap;word-break:break-word;max-height:420px;overflow:auto;margin:4px 0}
        pre.code{background:#eef6ee}.cell.failed pre.output,.cell.timedOut pre.output{background:#fbeaea}
        .label{font-size:12px;color:#5b6478;margin-top:6px}details.subcall{border-left:2px solid #e0a33b;padding-left:8px}
        details.subcall.failed{border-left-color:#d33}.child{margin:8px 0 8px 12px}.warn{color:#b3261e}.assist{color:#6a3d9a;font-style:italic}details.message summary{color:#555}
        .controls button{margin-right:6px}
        """

    static let script = """
        function setAll(open){document.querySelectorAll('details').forEach(function(d){d.open=open;});}
        if(location.hash==='#expand-all'){setAll(true);}
        """
}
