import Foundation
import RLM
import RLMProviders
import RLMTestServers
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Each test starts its own server on 127.0.0.1.
@Suite("HTTP providers against real local servers")
struct ProviderTests {
    static let fast = RetryPolicy(maxRetries: 3, initialBackoff: .milliseconds(20), maxBackoff: .seconds(5), jitter: 0.1)

    func openAI(_ server: ScriptedHTTPServer, timeout: Duration = .seconds(30), retry: RetryPolicy = fast, key: String? = nil) throws -> OpenAICompatibleModel {
        try OpenAICompatibleModel(configuration: .init(
            baseURL: server.baseURL + "/v1", model: "test-model", apiKeyVariable: key, requestTimeout: timeout, retry: retry))
    }

    func ok(_ http: ScriptedHTTPServer.Request, _ text: String = "hello") -> ScriptedHTTPServer.Action {
        guard let request = ModelServers.decode(http) else { return .respond(status: 400, body: Data()) }
        return .respond(status: 200, body: ModelServers.openAIBody(text: text, request: request, cachedTokens: 2))
    }

    @Test("429 with Retry-After is retried after the wait, then succeeds")
    func rateLimited() async throws {
        let arrivals = Mutex<[ContinuousClock.Instant]>([])
        let server = try await ScriptedHTTPServer.start { http in
            arrivals.withLock { $0.append(.now) }
            if http.index < 2 {
                return .respond(status: 429, headers: ["retry-after": "1"], body: Data(#"{"error":{"message":"slow down"}}"#.utf8))
            }
            return ok(http)
        }
        let response = try await openAI(server).complete([.user("hi")])
        #expect(response.text == "hello")
        #expect(response.usage.inputTokens == 1 && response.usage.outputTokens == 2 && response.usage.cachedInputTokens == 2)
        let times = arrivals.withLock { $0 }
        #expect(times.count == 3)
        #expect(times[1] - times[0] >= .milliseconds(950))
        #expect(times[2] - times[1] >= .milliseconds(950))
        try await server.shutdown()
    }

    @Test("5xx responses are retried; persistent ones end in a server error")
    func serverErrors() async throws {
        let flaky = try await ScriptedHTTPServer.start { http in
            http.index < 2 ? .respond(status: 503, body: Data("busy".utf8)) : ok(http)
        }
        #expect(try await openAI(flaky).complete([.user("hi")]).text == "hello")
        #expect(flaky.requestCount == 3)
        try await flaky.shutdown()

        let broken = try await ScriptedHTTPServer.start { _ in .respond(status: 500, body: Data(#"{"error":{"message":"boom"}}"#.utf8)) }
        await #expect {
            try await openAI(broken).complete([.user("hi")])
        } throws: { error in
            guard let error = error as? ProviderError else { return false }
            return error.code == .server && error.statusCode == 500 && error.message.contains("boom") && error.message.contains("after 3 retries")
        }
        #expect(broken.requestCount == 4)
        try await broken.shutdown()
    }

    @Test("a dropped connection is retried")
    func droppedConnection() async throws {
        let server = try await ScriptedHTTPServer.start { http in
            http.index == 0 ? .dropConnection() : ok(http)
        }
        #expect(try await openAI(server).complete([.user("hi")]).text == "hello")
        #expect(server.requestCount == 2)
        try await server.shutdown()
    }

    @Test("a slow server past the timeout is a timeout error")
    func slowServer() async throws {
        let server = try await ScriptedHTTPServer.start { http in
            .respond(status: 200, body: Data(), delay: .seconds(5))
        }
        await #expect {
            try await openAI(server, timeout: .milliseconds(300), retry: .none).complete([.user("hi")])
        } throws: { error in
            (error as? ProviderError)?.code == .timeout
        }
        try await server.shutdown()
    }

    @Test("malformed JSON is a malformed-response error")
    func malformed() async throws {
        let server = try await ScriptedHTTPServer.start { _ in .respond(status: 200, body: Data("{not json".utf8)) }
        await #expect {
            try await openAI(server).complete([.user("hi")])
        } throws: { error in
            guard let error = error as? ProviderError else { return false }
            return error.code == .malformedResponse && error.message.contains("{not json")
        }
        try await server.shutdown()
    }

    @Test("the request carries only the settings that are set; replies without content or usage read as empty")
    func wireFormat() async throws {
        let bodies = Mutex<[Data]>([])
        let server = try await ScriptedHTTPServer.start { http in
            bodies.withLock { $0.append(http.body) }
            let reply = http.index == 0
                ? #"{"choices":[{"message":{"role":"assistant","content":null}}],"extra":{"ignored":[1,2]}}"#
                : #"{"choices":[{"message":{"content":"fine"}}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#
            return .respond(status: 200, body: Data(reply.utf8))
        }
        let plain = try openAI(server)
        let empty = try await plain.complete([.system("rules"), .user("hi \"quoted\" \u{1F600}")])
        #expect(empty.text == "" && empty.usage == TokenUsage())
        let tuned = try OpenAICompatibleModel(configuration: .init(
            baseURL: server.baseURL + "/v1", model: "tuned", apiKeyVariable: nil, temperature: 0.5, maxTokens: 64, seed: 7, reasoningEffort: "low"))
        let answer = try await tuned.complete([.user("x")])
        #expect(answer.text == "fine" && answer.usage.inputTokens == 7 && answer.usage.outputTokens == 3)

        let sent = try bodies.withLock { $0 }.map { try #require(try JSONSerialization.jsonObject(with: $0) as? [String: Any]) }
        try #require(sent.count == 2)
        #expect(Set(sent[0].keys) == ["model", "messages"])
        let messages = sent[0]["messages"] as? [[String: String]] ?? []
        #expect(messages == [["role": "system", "content": "rules"], ["role": "user", "content": "hi \"quoted\" \u{1F600}"]])
        #expect(sent[1]["temperature"] as? Double == 0.5 && sent[1]["max_tokens"] as? Int == 64)
        #expect(sent[1]["seed"] as? Int == 7 && sent[1]["reasoning_effort"] as? String == "low" && sent[1]["stream"] == nil)
        try await server.shutdown()
    }

    @Test("a reply schema goes out as response_format in the configured style, or not at all")
    func replySchema() async throws {
        let bodies = Mutex<[Data]>([])
        let server = try await ScriptedHTTPServer.start { http in
            bodies.withLock { $0.append(http.body) }
            return .respond(status: 200, body: Data(#"{"choices":[{"message":{"content":"{\"quote\":\"q\",\"answer\":\"a\"}"}}]}"#.utf8))
        }
        let schema = ReplySchema(name: "quoted", json: #"{"type":"object","properties":{"answer":{"type":"string","maxLength":40}},"required":["answer"]}"#)
        var configuration = OpenAICompatibleModel.Configuration(baseURL: server.baseURL + "/v1", model: "m", apiKeyVariable: nil)
        #expect(try await OpenAICompatibleModel(configuration: configuration).complete([.user("x")], schema: schema).text == #"{"quote":"q","answer":"a"}"#)
        configuration.structuredOutput = .jsonObject
        _ = try await OpenAICompatibleModel(configuration: configuration).complete([.user("x")], schema: schema)
        configuration.structuredOutput = nil
        _ = try await OpenAICompatibleModel(configuration: configuration).complete([.user("x")], schema: schema)

        let sent = try bodies.withLock { $0 }.map { try #require(try JSONSerialization.jsonObject(with: $0) as? [String: Any]) }
        try #require(sent.count == 3)
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(schema.json.utf8)) as? NSDictionary)
        let first = try #require(sent[0]["response_format"] as? [String: Any])
        let named = try #require(first["json_schema"] as? [String: Any])
        #expect(first["type"] as? String == "json_schema" && named["name"] as? String == "quoted" && named["strict"] as? Bool == true)
        #expect((named["schema"] as? NSDictionary) == expected)
        let second = try #require(sent[1]["response_format"] as? [String: Any])
        #expect(second["type"] as? String == "json_object" && (second["schema"] as? NSDictionary) == expected && second["json_schema"] == nil)
        #expect(sent[2]["response_format"] == nil)

        // A schema that is not a JSON object is the caller's mistake, named, and nothing is sent.
        configuration.structuredOutput = .jsonSchema
        await #expect {
            try await OpenAICompatibleModel(configuration: configuration).complete([.user("x")], schema: ReplySchema(name: "bad", json: "[1, 2"))
        } throws: { error in
            (error as? ProviderError)?.code == .invalidConfiguration && "\(error)".contains("'bad'")
        }
        #expect(bodies.withLock { $0.count } == 3)
        try await server.shutdown()
    }

    @Test("an unreachable port says that nothing listens there")
    func unreachable() async throws {
        let server = try await ScriptedHTTPServer.start { http in ok(http) }
        let url = server.baseURL
        try await server.shutdown()
        let model = try OpenAICompatibleModel(configuration: .init(baseURL: url + "/v1", model: "m", apiKeyVariable: nil, retry: Self.fast))
        await #expect {
            try await model.complete([.user("hi")])
        } throws: { error in
            guard let error = error as? ProviderError else { return false }
            return error.code == .unreachable && error.message.contains("nothing is listening at \(url)")
        }
    }

    @Test("a server answering on its event loop honours each request's latency and serves them together")
    func eventLoopServer() async throws {
        let server = try await ModelServers.openAI(
            latency: { $0.model == "slow" ? .milliseconds(300) : .zero },
            synchronousReply: { "echo:" + $0.prompt })
        let slow = try OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "slow", apiKeyVariable: nil))
        let clock = ContinuousClock()
        let start = clock.now
        let replies = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<6 { group.addTask { try await slow.complete([.user("p\(index)")]).text } }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(clock.now - start >= .milliseconds(300))
        #expect(replies == Set((0..<6).map { "echo:p\($0)" }))
        // Served together, not one after another; a loaded machine may start the six a little
        // apart, so not necessarily all at once.
        #expect(server.peakConcurrentRequests >= 3)
        #expect(try await openAI(server).complete([.user("now")]).text == "echo:now")
        try await server.shutdown()
    }

    @Test("concurrent requests are in flight together over reused connections")
    func concurrency() async throws {
        let server = try await ScriptedHTTPServer.start { http in
            guard let request = ModelServers.decode(http) else { return .respond(status: 400, body: Data()) }
            return .respond(status: 200, body: ModelServers.openAIBody(text: "x", request: request), delay: .seconds(1))
        }
        let model = try openAI(server)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { _ = try await model.complete([.user("hi")]) } }
            try await group.waitForAll()
        }
        #expect(server.peakConcurrentRequests == 8)
        let connectionsAfterBurst = server.connectionCount
        for _ in 0..<10 { _ = try await model.complete([.user("again")]) }
        #expect(server.connectionCount == connectionsAfterBurst)
        try await server.shutdown()
    }

    @Test("authentication failures are not retried and never show the key")
    func authentication() async throws {
        let variable = "RLM_TEST_KEY_\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
        setenv(variable, "sk-secret-value-123", 1)
        defer { unsetenv(variable) }
        let seen = Mutex<String?>(nil)
        let server = try await ScriptedHTTPServer.start { http in
            seen.withLock { $0 = http.headers["authorization"] }
            return .respond(status: 401, body: Data(#"{"error":{"message":"invalid api key"}}"#.utf8))
        }
        await #expect {
            try await openAI(server, key: variable).complete([.user("hi")])
        } throws: { error in
            guard let error = error as? ProviderError else { return false }
            return error.code == .authentication && !error.message.contains("sk-secret") && !"\(error)".contains("sk-secret")
        }
        #expect(seen.withLock { $0 } == "Bearer sk-secret-value-123")
        #expect(server.requestCount == 1)
        try await server.shutdown()
    }

    @Test("a key given as a value is sent, wins over the variable, and never prints itself")
    func keyPerRequest() async throws {
        let seen = Mutex<[String]>([])
        let server = try await ScriptedHTTPServer.start { http in
            seen.withLock { $0.append(http.headers["authorization"] ?? "") }
            return ok(http)
        }
        for tenant in ["sk-tenant-a-111", "sk-tenant-b-222"] {
            var openAI = OpenAICompatibleModel.Configuration(baseURL: server.baseURL + "/v1", model: "m", apiKeyVariable: "RLM_TEST_UNSET_KEY")
            openAI.apiKey = APIKey(tenant)
            let model = try OpenAICompatibleModel(configuration: openAI)
            #expect(model.secrets == [tenant])
            _ = try await model.complete([.user("hi")])
            // Printing, interpolating or dumping the configuration shows no key.
            var dumped = ""
            dump(openAI, to: &dumped)
            for text in ["\(openAI)", String(describing: openAI), String(reflecting: openAI), dumped] {
                #expect(!text.contains(tenant), "\(text)")
            }
        }
        #expect(seen.withLock { $0 } == ["Bearer sk-tenant-a-111", "Bearer sk-tenant-b-222"])

        var anthropic = AnthropicModel.Configuration(baseURL: "https://api.example.com", model: "claude-x", apiKeyVariable: "RLM_TEST_UNSET_KEY")
        anthropic.apiKey = APIKey("sk-ant-333")
        #expect(try AnthropicModel(configuration: anthropic).secrets == ["sk-ant-333"], "no variable is needed for a remote server")
        anthropic.apiKey = APIKey("")
        #expect(throws: ProviderError.self) { try AnthropicModel(configuration: anthropic) }
        try await server.shutdown()
    }

    @Test("a remote base URL without its API key is refused up front, naming the variable")
    func missingKey() throws {
        #expect {
            try OpenAICompatibleModel(configuration: .init(baseURL: "https://api.example.com/v1", model: "m", apiKeyVariable: "RLM_TEST_UNSET_KEY"))
        } throws: { error in
            (error as? ProviderError)?.code == .missingAPIKey && "\(error)".contains("RLM_TEST_UNSET_KEY")
        }
        #expect {
            try OpenAICompatibleModel(configuration: .init(baseURL: "not a url", model: "m", apiKeyVariable: nil))
        } throws: { error in
            (error as? ProviderError)?.code == .invalidConfiguration
        }
    }

    @Test("the Anthropic client sends system at top level and keeps only text blocks")
    func anthropic() async throws {
        let received = Mutex<ModelServers.ChatRequest?>(nil)
        let server = try await ScriptedHTTPServer.start { http in
            guard http.path == "/v1/messages", http.headers["anthropic-version"] != nil,
                let request = ModelServers.decode(http)
            else { return .respond(status: 404, body: Data()) }
            received.withLock { $0 = request }
            return .respond(status: 200, body: ModelServers.anthropicBody(text: "answer text", request: request))
        }
        let model = try AnthropicModel(configuration: .init(baseURL: server.baseURL, model: "claude-test", retry: Self.fast))
        let response = try await model.complete([.system("be brief"), .user("question")])
        #expect(response.text == "answer text")
        #expect(response.usage.outputTokens == ModelServers.tokens("answer text"))
        let request = received.withLock { $0 }
        #expect(request?.messages.first?.role == "system")
        #expect(request?.messages.first?.content == "be brief")
        #expect(request?.messages.count == 2)
        try await server.shutdown()
    }

    @Test("an RLM runs end to end over HTTP with exact usage")
    func endToEnd() async throws {
        let server = try await ModelServers.openAI { request in
            if request.model == "root" {
                let turn = request.messages.filter { $0.role == "assistant" }.count
                return turn == 0
                    ? "```repl\nparts = llm_query_batched(['one', 'two', 'three'])\nprint(parts)\n```"
                    : "```repl\nanswer['content'] = ','.join(parts); answer['ready'] = True\n```"
            }
            return request.prompt.uppercased()
        }
        let root = try OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "root", apiKeyVariable: nil))
        let sub = try OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "sub", apiKeyVariable: nil))
        let prices = ["root": ModelPrice(inputPerMillion: 1, outputPerMillion: 2), "sub": ModelPrice(inputPerMillion: 3, outputPerMillion: 4)]
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub, budget: Budget(prices: prices)))
            .complete(query: "shout", context: .text("c"))
        #expect(result.answer == "ONE,TWO,THREE")
        #expect(result.usage.byModel["sub"]?.calls == 3)
        #expect(result.usage.byModel["sub"]?.tokens.outputTokens == ["ONE", "TWO", "THREE"].map(ModelServers.tokens).reduce(0, +))
        #expect(result.usage.byModel["root"]?.calls == 2)
        #expect((result.usage.byModel["sub"]?.costUSD ?? 0) > 0)
        #expect(server.requestCount == 5)
        try await server.shutdown()
    }
}
