import Foundation
import RLM
import RLMTesting
import Testing

/// `RLMContext.mappedFile`: a context the REPL maps instead of reading.
@Suite("Mapped contexts")
struct MappedContextTests {
    /// A 2.6 MB log (more than two of the 1 MB blocks the scans step by) with multi-byte
    /// characters throughout, a needle across the first block edge, and a final line without
    /// its newline.
    static let text: String = {
        func line(_ index: Int) -> String {
            switch index % 7 {
            case 0: return "2026-12-02 10:00:\(index % 60) ERROR [svc-\(index % 13)] timeout après \(index) ms — 시간 초과 🙂\n"
            case 3: return "2026-12-02 10:00:\(index % 60) WARN cache miss for key user:\(index)\n"
            default: return "2026-12-02 10:00:\(index % 60) INFO request \(index) served in \(index % 97) ms\n"
            }
        }
        var text = ""
        var size = 0
        var index = 0
        while size < 1_048_000 {
            let next = line(index)
            text += next
            size += next.utf8.count
            index += 1
        }
        // The needle straddles byte 1 MB (1,048,576): it starts 3 bytes before it.
        text += String(repeating: "x", count: 1_048_573 - size) + "NEEDLE-42\n"
        size = 1_048_573 + 10
        while size < 2_600_000 {
            let next = line(index)
            text += next
            size += next.utf8.count
            index += 1
        }
        return text + "last line, no newline ü"
    }()

    static func file(_ text: String = text) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-mapped-\(UUID().uuidString).log")
        try Data(text.utf8).write(to: url)
        return url
    }

    /// Runs one cell over the mapped file and returns what it put in `answer` (JSON).
    static func probe(_ code: String, isolation: Isolation = .inProcess, text: String = text) async throws -> (answer: [String: Any], root: ScriptedModel) {
        let url = try file(text)
        defer { try? FileManager.default.removeItem(at: url) }
        let root = ScriptedModel.sequence([repl(code + "\nimport json\nanswer['content'] = json.dumps(out)\nanswer['ready'] = True")])
        var configuration = RLMConfiguration(rootModel: root)
        configuration.isolation = isolation
        configuration.isolation.requiresAllLayers = isolation.level == .process
        configuration.execTimeout = .seconds(120)
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .mappedFile(url))
        let object = try JSONSerialization.jsonObject(with: Data(result.answer.utf8))
        return (try #require(object as? [String: Any], "the cell's answer: \(result.answer) \(cellOutputs(result))"), root)
    }

    static let checks = """
        out = {}
        out['type'] = type(context).__name__
        out['len'] = len(context)
        out['head'] = context[0:40]
        out['whole'] = ''.join(context[i:i + 7] for i in range(0, len(context), 7)) == context[0:len(context)]
        out['whole_len'] = len(context[:])
        out['needle'] = context.find('NEEDLE-42')
        out['needle_text'] = context[out['needle']:out['needle'] + 9]
        out['errors'] = context.count('ERROR')
        out['needle_count'] = context.count('NEEDLE-42')
        out['emoji'] = context.count('🙂')
        out['last_error'] = context.rfind('ERROR')
        out['contains'] = ('시간 초과' in context, 'absent-thing' in context)
        out['line_count'] = context.line_count()
        out['lines'] = context.lines(30000, 3)
        out['tail_lines'] = context.lines(out['line_count'] - 1, 5)
        out['past_end'] = context.lines(out['line_count'] + 10, 2)
        m = context.search(r'ERROR \\[svc-(\\d+)\\] timeout après (\\d+)')
        out['match'] = [m.group(), m.group(1), m.groups(), m.start(), m.end(), context[m.start():m.end()] == m.group()]
        out['finditer'] = sum(1 for _ in context.finditer(r'WARN cache miss'))
        out['findall'] = context.findall(r'svc-(1[0-2])\\]')[:3]
        try:
            context.split('\\n')
        except AttributeError as error:
            out['split'] = str(error)
        try:
            iter(context)
        except TypeError as error:
            out['iter'] = str(error)
        """

    @Test("a mapped context reads like a str with byte positions, across block edges and multi-byte characters")
    func behavesLikeText() async throws {
        let text = Self.text
        let bytes = Array(text.utf8)
        let (out, root) = try await Self.probe(Self.checks)
        #expect(out["type"] as? String == "MappedText")
        #expect(out["len"] as? Int == bytes.count)
        #expect(out["head"] as? String == String(decoding: bytes[0..<40], as: UTF8.self))
        #expect(out["whole"] as? Bool == true)
        #expect(out["whole_len"] as? Int == text.unicodeScalars.count)
        #expect(out["needle"] as? Int == 1_048_573)
        #expect(out["needle_text"] as? String == "NEEDLE-42")
        #expect(out["needle_count"] as? Int == 1)
        #expect(out["errors"] as? Int == text.components(separatedBy: "ERROR").count - 1)
        #expect(out["emoji"] as? Int == text.components(separatedBy: "🙂").count - 1)
        let lastError = text.range(of: "ERROR", options: .backwards).map { text.utf8.distance(from: text.utf8.startIndex, to: $0.lowerBound) }
        #expect(out["last_error"] as? Int == lastError)
        #expect(out["contains"] as? [Bool] == [true, false])
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(out["line_count"] as? Int == lines.count)
        #expect(out["lines"] as? [String] == Array(lines[30000..<30003]))
        #expect(out["tail_lines"] as? [String] == [lines.last!])
        #expect(out["past_end"] as? [String] == [])
        let match = try #require(out["match"] as? [Any])
        #expect(match[0] as? String == "ERROR [svc-0] timeout après 0")
        #expect(match[1] as? String == "0")
        #expect(match[5] as? Bool == true)
        #expect(out["finditer"] as? Int == text.components(separatedBy: "WARN cache miss").count - 1)
        #expect((out["findall"] as? [String])?.allSatisfy { ["10", "11", "12"].contains($0) } == true)
        #expect((out["split"] as? String)?.contains("not a str") == true)
        #expect((out["iter"] as? String)?.contains("chunks") == true)
        // The system prompt tells the model what a mapped context offers.
        let system = root.requests.first?.messages.first?.content ?? ""
        #expect(system.contains("A mapped context is a file too large to load"))
        #expect(root.requests.first?.messages.last?.content.contains("a mapped context") == true)
    }

    @Test("chunks are line-aligned pieces that cover the file once, or overlap by what was asked")
    func chunks() async throws {
        let (out, _) = try await Self.probe("""
            out = {}
            pieces = list(context.chunks(100_000))
            out['count'] = len(pieces)
            out['joined'] = ''.join(pieces) == context[:]
            out['aligned'] = all(p.endswith('\\n') for p in pieces[:-1])
            out['sizes'] = max(len(p.encode()) for p in pieces) <= 100_000
            over = list(context.chunks(100_000, 20_000))
            out['overlap_starts'] = all(context[:].count(p) >= 1 for p in over[:3])
            out['overlap_covers'] = over[-1].endswith('no newline ü') and len(over) > len(pieces)
            out['overlap_progress'] = all(len(p) > 0 for p in over)
            # A line longer than a chunk is cut at a character edge, never inside one.
            tiny = list(context.chunks(5))
            out['tiny_joined'] = ''.join(tiny) == context[:]
            out['tiny_valid'] = all('\\ufffd' not in p for p in tiny)
            try:
                list(context.chunks(0))
            except ValueError as error:
                out['bad'] = str(error)
            """)
        let bytes = Self.text.utf8.count
        #expect((out["count"] as? Int).map { $0 >= bytes / 100_000 } == true)
        #expect(out["joined"] as? Bool == true)
        #expect(out["aligned"] as? Bool == true)
        #expect(out["sizes"] as? Bool == true)
        #expect(out["overlap_starts"] as? Bool == true)
        #expect(out["overlap_covers"] as? Bool == true)
        #expect(out["overlap_progress"] as? Bool == true)
        #expect(out["tiny_joined"] as? Bool == true)
        #expect(out["tiny_valid"] as? Bool == true)
        #expect((out["bad"] as? String)?.contains("at least 1") == true)
    }

    @Test("a needle that overlaps itself is counted as str.count counts it, and an empty file maps to an empty context")
    func edgeCases() async throws {
        let (out, _) = try await Self.probe("""
            out = {'aa': context.count('aa'), 'aaa': context.count('aaa'), 'len': len(context), 'slice': context[3:9]}
            """, text: String(repeating: "a", count: 2_100_001))
        #expect(out["aa"] as? Int == 1_050_000)
        #expect(out["aaa"] as? Int == 700_000)
        #expect(out["slice"] as? String == "aaaaaa")
        let (empty, _) = try await Self.probe("out = {'len': len(context), 'lines': context.lines(0, 3), 'chunks': list(context.chunks(10)), 'find': context.find('x')}", text: "")
        #expect(empty["len"] as? Int == 0)
        #expect(empty["lines"] as? [String] == [])
        #expect(empty["chunks"] as? [String] == [])
        #expect(empty["find"] as? Int == -1)
    }

    @Test("in a worker process, the worker maps the descriptor the host opened", .enabled(if: workersRun))
    func inWorker() async throws {
        let (out, _) = try await Self.probe("""
            out = {'len': len(context), 'needle': context.find('NEEDLE-42'), 'errors': context.count('ERROR'),
                   'lines': context.lines(5, 1)}
            """, isolation: .process)
        let lines = Self.text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(out["len"] as? Int == Self.text.utf8.count)
        #expect(out["needle"] as? Int == 1_048_573)
        #expect(out["errors"] as? Int == Self.text.components(separatedBy: "ERROR").count - 1)
        #expect(out["lines"] as? [String] == [String(lines[5])])
    }

    @Test("a context file that cannot be mapped is an invalid context naming the file")
    func missingFile() async throws {
        let root = ScriptedModel.sequence(["FINAL(x)"])
        let url = URL(fileURLWithPath: "/nonexistent/rlm-\(UUID().uuidString).log")
        await #expect {
            _ = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .mappedFile(url))
        } throws: { error in
            guard let error = error as? RLMError else { return false }
            return error.code == .invalidContext && error.message.contains(url.path)
        }
        #expect(root.callCount == 0)
    }
}
