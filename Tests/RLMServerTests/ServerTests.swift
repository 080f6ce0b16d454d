import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RLM
import RLMServer
import RLMTesting
import Testing

/// `rlm serve`'s HTTP API, over real HTTP on loopback, with a scripted model behind the RLM.
@Suite struct ServerTests {
    static let alice = Tenant(name: "alice", token: "alice-token-0123456789", maxConcurrentRuns: 2)
    static let bob = Tenant(name: "bob", token: "bob-token-0123456789ab")

    @Test func completionAnswersWithTheWholeTreesUsage() async throws {
        try await TestServer.with(configuration()) { server in
            let models = try await fetch(.GET, server.baseURL + "/v1/models")
            #expect(models.status == 200)
            #expect(((models.json["data"] as? [[String: Any]])?.first?["id"] as? String) == "rlm")

            // The last paragraph is the query; the rest is the context.
            let reply = try await fetch(.POST, server.baseURL + "/v1/chat/completions", json: chat("alpha beta gamma\n\nsize please"))
            #expect(reply.status == 200, "\(reply.text)")
            #expect(content(reply) == "16 characters, first word alpha")
            let usage = try #require(reply.json["usage"] as? [String: Any])
            #expect((usage["prompt_tokens"] as? Int ?? 0) > 0)
            #expect((usage["total_tokens"] as? Int) == (usage["prompt_tokens"] as? Int ?? 0) + (usage["completion_tokens"] as? Int ?? 0))
            let run = try #require((reply.json["rlm"] as? [String: Any])?["run_id"] as? String)
            #expect(((reply.json["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String) == "stop")

            // The run is listed, answered, with its events.
            let runs = try await fetch(.GET, server.baseURL + "/v1/runs")
            let listed = try #require((runs.json["data"] as? [[String: Any]])?.first { $0["id"] as? String == run })
            #expect(listed["status"] as? String == "answered")
            #expect((listed["events"] as? Int ?? 0) > 3)
            // The list carries the server's clock, by which the page times runs in progress.
            let now = try #require(runs.json["now"] as? Double)
            #expect(abs(now - Date().timeIntervalSince1970) < 60)

            // Context parts: every part but the last is context.
            let parts = try await fetch(.POST, server.baseURL + "/v1/chat/completions", json: [
                "model": "rlm",
                "messages": [["role": "system", "content": "Be brief."],
                             ["role": "user", "content": [["type": "text", "text": "one two"], ["type": "text", "text": "size?"]]]],
            ])
            #expect(content(parts) == "7 characters, first word one")
        }
    }

    @Test func streamingSendsProgressThenTheAnswerInChunks() async throws {
        try await TestServer.with(configuration()) { server in
            let reply = try await fetch(.POST, server.baseURL + "/v1/chat/completions", json: chat("subcalls now\n\nsubcalls", stream: true))
            #expect(reply.status == 200)
            let blocks = reply.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(blocks.contains { $0.hasPrefix(": rlm node 0 depth 0: turn 1") })
            #expect(blocks.contains { $0.hasPrefix(": rlm node 0 depth 0: sub-call") })
            let chunks = blocks.filter { $0.hasPrefix("data: {") }.compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8)) as? [String: Any]
            }
            let deltas = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String }
            #expect(deltas.joined() == "echo: part 0 | echo: part 1 | echo: part 2")
            #expect(chunks.contains { (($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String) == "stop" })
            let usage = try #require(chunks.last?["usage"] as? [String: Any])
            #expect((usage["completion_tokens"] as? Int ?? 0) > 0)
            #expect(blocks.last == "data: [DONE]")
        }
    }

    @Test func tenantsNeedTheirTokenAndSeeOnlyTheirOwn() async throws {
        try await TestServer.with(configuration(tenants: [Self.alice, Self.bob])) { server in
            let anonymous = try await fetch(.POST, server.baseURL + "/v1/chat/completions", json: chat("a b\n\nq"))
            #expect(anonymous.status == 401)
            #expect(anonymous.errorCode == "invalid_api_key")
            let wrong = try await fetch(.GET, server.baseURL + "/v1/models", token: "alice-token-0123456788")
            #expect(wrong.status == 401)
            #expect(!wrong.text.contains("alice-token"))

            let created = try await fetch(.POST, server.baseURL + "/v1/sessions", token: Self.alice.token)
            #expect(created.status == 201)
            let session = try #require(created.json["id"] as? String)
            let answered = try await fetch(.POST, server.baseURL + "/v1/chat/completions", json: chat("secret words\n\nsize"), token: Self.alice.token)
            #expect(answered.status == 200)

            // Bob sees neither Alice's session nor her runs.
            #expect(try await fetch(.GET, server.baseURL + "/v1/sessions/\(session)", token: Self.bob.token).status == 404)
            let turn = try await fetch(.POST, server.baseURL + "/v1/chat/completions", json: chat("x\n\nrecall", session: session), token: Self.bob.token)
            #expect(turn.status == 404)
            #expect(turn.errorCode == "session_not_found")
            let bobRuns = try await fetch(.GET, server.baseURL + "/v1/runs", token: Self.bob.token)
            #expect((bobRuns.json["data"] as? [Any])?.isEmpty == true)
            let aliceRuns = try await fetch(.GET, server.baseURL + "/v1/runs", token: Self.alice.token)
            #expect((aliceRuns.json["data"] as? [Any])?.count == 1)
            #expect(try await fetch(.GET, server.baseURL + "/v1/sessions", token: Self.bob.token).json["data"] as? [Any] != nil)
        }
    }

    /// The reply cache answers a tenant's repeated sub-calls, and never another tenant's.
    @Test func theReplyCacheIsKeptPerTenant() async throws {
        let root = scriptedRoot()
        var server = configuration(root: root, tenants: [Self.alice, Self.bob])
        server.rlm.cache = ModelCache(storage: MemoryModelCacheStorage(), includesRootTurns: true)
        try await TestServer.with(server) { server in
            func ask(_ token: String) async throws -> [String: Any] {
                let reply = try await fetch(.POST, server.baseURL + "/v1/chat/completions", json: chat("x\n\nsubcalls"), token: token)
                #expect(reply.status == 200)
                #expect(content(reply) == "echo: part 0 | echo: part 1 | echo: part 2")
                return reply.json["rlm"] as? [String: Any] ?? [:]
            }
            let first = try await ask(Self.alice.token)
            #expect(first["cache_hits"] as? Int == 0)
            let calls = root.callCount
            let again = try await ask(Self.alice.token)
            #expect(again["cache_hits"] as? Int == 4)
            #expect((again["saved_tokens"] as? Int ?? 0) > 0)
            #expect(root.callCount == calls, "Alice's repeated run called the model")
            let bob = try await ask(Self.bob.token)
            #expect(bob["cache_hits"] as? Int == 0)
            #expect(root.callCount == calls + 4)
        }
    }

    @Test func badRequestsGetErrorsThatSayWhatToFix() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-allowed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("inside the allowed directory".utf8).write(to: directory.appendingPathComponent("doc.txt"))
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-outside-\(UUID().uuidString).txt")
        try Data("outside".utf8).write(to: outside)
        defer { try? FileManager.default.removeItem(at: outside) }

        try await TestServer.with(configuration(allowedRoots: [directory.path], maxBodyBytes: 4096)) { server in
            let url = server.baseURL + "/v1/chat/completions"
            let malformed = try await fetch(.POST, url, raw: Data("{\"model\": \"rlm\", \"messages\": ".utf8))
            #expect(malformed.status == 400)
            #expect(malformed.errorMessage.contains("not a chat completion request"))
            let missing = try await fetch(.POST, url, json: ["model": "rlm"])
            #expect(missing.status == 400)
            #expect(missing.errorMessage.contains("`messages` is missing"))
            let model = try await fetch(.POST, url, json: ["model": "gpt-4o", "messages": [["role": "user", "content": "hi"]]])
            #expect(model.status == 404)
            #expect(model.errorCode == "model_not_found")
            let noUser = try await fetch(.POST, url, json: ["model": "rlm", "messages": [["role": "system", "content": "hi"]]])
            #expect(noUser.status == 400)
            let huge = try await fetch(.POST, url, json: chat(String(repeating: "x", count: 10_000)))
            #expect(huge.status == 413)
            #expect(huge.errorCode == "body_too_large")

            let escape = try await fetch(.POST, url, json: chat("size", extra: ["rlm_files": [directory.path + "/../" + outside.lastPathComponent]]))
            #expect(escape.status == 403)
            #expect(escape.errorMessage.contains("not under a directory this server allows"))
            let file = try await fetch(.POST, url, json: chat("size", extra: ["rlm_files": [directory.appendingPathComponent("doc.txt").path]]))
            #expect(file.status == 200)
            #expect(content(file) == "28 characters, first word inside")
        }
    }

    @Test func sessionsKeepTheirREPLAndSurviveARestart() async throws {
        let store = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-sessions-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: store + suffix) } }
        let session = try await TestServer.with(configuration(), store: store) { server in
            let created = try await fetch(.POST, server.baseURL + "/v1/sessions")
            let session = try #require(created.json["id"] as? String)
            let first = try await fetch(.POST, server.baseURL + "/v1/chat/completions", json: chat("zebra crossing\n\nremember", session: session))
            #expect(content(first) == "stored zebra")
            // A short message in a session asks about what the session holds: no new context.
            let size = try await fetch(.POST, server.baseURL + "/v1/chat/completions", json: chat("size", session: session))
            #expect(content(size) == "14 characters, first word zebra", "\(size.text)")
            let second = try await fetch(.POST, server.baseURL + "/v1/sessions/\(session)/query", json: ["query": "recall"])
            #expect(second.status == 200, "\(second.text)")
            #expect(content(second) == "recalled zebra")
            return session
        }
        // A new server on the same store: the REPL's variables come back from the snapshot.
        try await TestServer.with(configuration(), store: store) { server in
            let third = try await fetch(.POST, server.baseURL + "/v1/sessions/\(session)/query", json: ["query": "recall"])
            #expect(content(third) == "recalled zebra", "\(third.text)")
            let shown = try await fetch(.GET, server.baseURL + "/v1/sessions/\(session)")
            #expect(shown.json["turns"] as? Int == 4)
            #expect((shown.json["history"] as? [[String: Any]])?.first?["answer"] as? String == "stored zebra")
            #expect(try await fetch(.DELETE, server.baseURL + "/v1/sessions/\(session)").status == 200)
            #expect(try await fetch(.GET, server.baseURL + "/v1/sessions/\(session)").status == 404)
        }
    }

    @Test func twoServersSharingAStoreContinueEachOthersSessions() async throws {
        let store = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-shared-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: store + suffix) } }
        try await TestServer.with(configuration(), store: store) { a in
            try await TestServer.with(configuration(), store: store) { b in
                let session = try #require(try await fetch(.POST, a.baseURL + "/v1/sessions").json["id"] as? String)
                #expect(content(try await fetch(.POST, a.baseURL + "/v1/sessions/\(session)/query", json: ["query": "remember", "context": "owl night"])) == "stored owl")
                // B restores the session A saved; then A, a turn behind, reloads B's turn
                // instead of overwriting it, and so on.
                let second = try await fetch(.POST, b.baseURL + "/v1/sessions/\(session)/query", json: ["query": "recall"])
                #expect(content(second) == "recalled owl", "\(second.text)")
                #expect(content(try await fetch(.POST, a.baseURL + "/v1/sessions/\(session)/query", json: ["query": "remember", "context": "lark day"])) == "stored lark")
                #expect(content(try await fetch(.POST, b.baseURL + "/v1/sessions/\(session)/query", json: ["query": "recall"])) == "recalled lark")
                #expect(try await fetch(.GET, b.baseURL + "/v1/sessions/\(session)").json["turns"] as? Int == 4)
            }
        }
    }

    @Test func tenantCapsRefuseWithTooManyRequests() async throws {
        var capped = Self.bob
        capped.maxTotalTokens = 1
        try await TestServer.with(configuration(root: scriptedRoot(slowCall: .seconds(3)), tenants: [Self.alice, capped])) { server in
            let url = server.baseURL + "/v1/chat/completions"
            // Bob's first run spends past his cap; the next is refused.
            #expect(try await fetch(.POST, url, json: chat("a b\n\nsize"), token: capped.token).status == 200)
            let refused = try await fetch(.POST, url, json: chat("a b\n\nsize"), token: capped.token)
            #expect(refused.status == 429)
            #expect(refused.errorCode == "insufficient_quota")
            // Alice may have two runs at once; a third is refused while they last.
            async let one = fetch(.POST, url, json: chat("x\n\nslow"), token: Self.alice.token)
            async let two = fetch(.POST, url, json: chat("x\n\nslow"), token: Self.alice.token)
            #expect(await eventually { server.service.runningCount == 2 })
            let third = try await fetch(.POST, url, json: chat("x\n\nsize"), token: Self.alice.token)
            #expect(third.status == 429)
            #expect(third.errorCode == "too_many_runs")
            #expect(try await one.status == 200)
            #expect(try await two.status == 200)
        }
    }

    @Test func aLimitGivesTheBestAnswerSoFarOrAnError() async throws {
        try await TestServer.with(configuration()) { server in
            let url = server.baseURL + "/v1/chat/completions"
            // An answer left unready when the limit trips comes back cut short.
            let draft = try await fetch(.POST, url, json: chat("x\n\ndraft"))
            #expect(draft.status == 200, "\(draft.text)")
            #expect(content(draft) == "a draft")
            #expect(((draft.json["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String) == "length")
            #expect((draft.json["rlm"] as? [String: Any])?["limit"] as? String != nil)
            let streamed = try await fetch(.POST, url, json: chat("x\n\ndraft", stream: true))
            #expect(streamed.text.contains(#""content":"a draft""#), "\(streamed.text)")
            #expect(streamed.text.contains(#""finish_reason":"length""#))
            #expect(streamed.text.hasSuffix("data: [DONE]\n\n"))
            // Without any answer, the limit is an error, in either shape.
            let none = try await fetch(.POST, url, json: chat("x\n\ndawdle"))
            #expect(none.status == 422, "\(none.text)")
            #expect(none.errorCode == "limit_reached")
            let noneStreamed = try await fetch(.POST, url, json: chat("x\n\ndawdle", stream: true))
            #expect(noneStreamed.text.contains(#"data: {"error":{"#), "\(noneStreamed.text)")
            #expect(noneStreamed.text.contains(#""code":"limit_reached""#))
            #expect(!noneStreamed.text.contains("[DONE]"))
        }
    }

    @Test func aClientThatLeavesMidStreamCancelsTheRun() async throws {
        try await TestServer.with(configuration(root: scriptedRoot(slowCall: .seconds(60)))) { server in
            var request = HTTPClientRequest(url: server.baseURL + "/v1/chat/completions")
            request.method = .POST
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: chat("x\n\nslow", stream: true))))
            let reading = Task {
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
                for try await _ in response.body { break }  // the first chunk, then the client is gone
            }
            try await reading.value
            #expect(await eventually(15) { server.service.runningCount == 0 })
            let runs = try await fetch(.GET, server.baseURL + "/v1/runs")
            #expect((runs.json["data"] as? [[String: Any]])?.first?["status"] as? String == "cancelled")
        }
    }

    @Test func theLivePageAndARunsEventStream() async throws {
        try await TestServer.with(configuration()) { server in
            let page = try await fetch(.GET, server.baseURL + "/")
            #expect(page.status == 200)
            #expect(page.text.contains("<title>swift-rlm · live</title>"))
            #expect(!page.text.contains("http://") && !page.text.contains("https://"), "the page loads nothing from elsewhere")
            let reply = try await fetch(.POST, server.baseURL + "/v1/chat/completions", json: chat("subcalls\n\nsubcalls"))
            let run = try #require((reply.json["rlm"] as? [String: Any])?["run_id"] as? String)
            let events = try await fetch(.GET, server.baseURL + "/v1/runs/\(run)/events")
            #expect(events.text.contains("subcallStarted"))
            #expect(events.text.contains("event: end\ndata: {"))
            #expect(try await fetch(.GET, server.baseURL + "/v1/runs/run_nope/events").status == 404)
        }
    }
}
