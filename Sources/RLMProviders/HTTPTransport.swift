import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RLM

/// When and how often a failed request is tried again.
public struct RetryPolicy: Sendable, Hashable {
    /// Retries after the first attempt. Defaults to 4.
    public var maxRetries: Int
    /// The first backoff; each retry doubles it. Defaults to 0.5 s.
    public var initialBackoff: Duration
    /// The longest backoff, and the longest `Retry-After` honoured. Defaults to 30 s.
    public var maxBackoff: Duration
    /// The random share added to or removed from each backoff, from 0 to 1. Defaults to 0.2.
    public var jitter: Double

    /// Creates a policy.
    public init(maxRetries: Int = 4, initialBackoff: Duration = .milliseconds(500), maxBackoff: Duration = .seconds(30), jitter: Double = 0.2) {
        self.maxRetries = maxRetries
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.jitter = jitter
    }

    /// No retries.
    public static let none = RetryPolicy(maxRetries: 0)

    func backoff(attempt: Int) -> Duration {
        let base = initialBackoff * (1 << min(attempt, 20))
        let capped = min(base, maxBackoff)
        let factor = 1 + Double.random(in: -jitter...jitter)
        return capped * max(0, factor)
    }
}

/// An API key that never prints itself: `print`, string interpolation, `dump` and debuggers
/// show `<redacted>`.
///
/// Give one per model when keys come from somewhere other than the process environment (a
/// server holding a key per tenant or per request):
///
/// ```swift
/// var configuration = OpenAICompatibleModel.Configuration(baseURL: url, model: "gpt-5")
/// configuration.apiKey = APIKey(tenant.openAIKey)
/// ```
public struct APIKey: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The key.
    public let value: String
    /// Wraps a key.
    public init(_ value: String) { self.value = value }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }

    /// Reads the key from `variable`; throws when it is needed but missing.
    static func resolve(variable: String?, required: Bool, provider: String) throws -> APIKey? {
        if let variable, let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty {
            return APIKey(value)
        }
        guard required else { return nil }
        let name = variable ?? "an API key variable"
        throw ProviderError(code: .missingAPIKey, message: "\(provider) needs an API key: set the environment variable \(name)")
    }
}

/// POSTs JSON with retries, timeouts and typed errors, over one shared HTTP client (so
/// connections are reused across sub-calls).
struct HTTPTransport: Sendable {
    let client: HTTPClient
    let baseURL: String
    /// The model the requests are for, named in ``ContextWindowExceeded``.
    let model: String
    let timeout: Duration
    let retry: RetryPolicy
    let logger: Logger

    /// A transport for `baseURL` and the API key it needs: `apiKey` when given; else the key in
    /// `apiKeyVariable`, required unless the server is on this machine (`nil` sends none).
    static func make(
        baseURL: String, model: String, apiKey: APIKey?, apiKeyVariable: String?, provider: String, timeout: Duration,
        retry: RetryPolicy, client: HTTPClient, logger: Logger
    ) throws -> (HTTPTransport, APIKey?) {
        let validated = try validate(baseURL: baseURL)
        if let apiKey, apiKey.value.isEmpty {
            throw ProviderError(code: .missingAPIKey, message: "\(provider) at \(validated) was given an empty API key")
        }
        let key = try apiKey ?? APIKey.resolve(
            variable: apiKeyVariable, required: apiKeyVariable != nil && !isLocal(validated), provider: "\(provider) at \(validated)")
        return (HTTPTransport(client: client, baseURL: validated, model: model, timeout: timeout, retry: retry, logger: logger), key)
    }

    /// Whether a base URL points at this machine (where local servers need no API key).
    static func isLocal(_ baseURL: String) -> Bool {
        guard let host = URL(string: baseURL)?.host?.lowercased() else { return false }
        return host == "localhost" || host == "127.0.0.1" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// Checks a base URL and returns it without a trailing slash.
    static func validate(baseURL: String) throws -> String {
        guard let url = URL(string: baseURL), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty
        else {
            throw ProviderError(code: .invalidConfiguration, message: "'\(baseURL)' is not a usable base URL: give one like http://127.0.0.1:8000/v1 or https://api.openai.com/v1")
        }
        return baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
    }

    /// GETs `path` once (no retries), for metadata such as the model list.
    func get(path: String, headers: [(String, String)], timeout: Duration) async throws -> Data {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .GET
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await client.execute(request, timeout: .nanoseconds(Int64(Self.nanoseconds(timeout))))
        let data = Data(buffer: try await response.body.collect(upTo: 16 << 20))
        guard response.status.code == 200 else {
            throw ProviderError(
                code: .badRequest, message: "\(baseURL)\(path) answered HTTP \(response.status.code)\(Self.serverMessage(data))",
                statusCode: Int(response.status.code))
        }
        return data
    }

    func post(path: String, headers: [(String, String)], body: Data) async throws -> Data {
        try await send(path: path, headers: headers, body: body) { response, _ in
            Data(buffer: try await response.body.collect(upTo: 64 << 20))
        }
    }

    /// Marks that part of a streamed body reached the caller: from then on a failure is not retried.
    final class Delivery: @unchecked Sendable {
        private(set) var started = false
        func start() { started = true }
    }

    /// POSTs and hands a successful (2xx) response to `consume`. Failures are retried by the
    /// policy, unless `consume` already delivered part of the body.
    func send<T>(
        path: String, headers: [(String, String)], body: Data,
        consume: (HTTPClientResponse, Delivery) async throws -> T
    ) async throws -> T {
        let url = baseURL + path
        var attempt = 0
        while true {
            try Task.checkCancellation()
            let failure: ProviderError
            var retryAfter: Duration?
            do {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/json")
                for (name, value) in headers { request.headers.add(name: name, value: value) }
                request.body = .bytes(ByteBuffer(data: body))
                let response = try await client.execute(request, timeout: .nanoseconds(Int64(Self.nanoseconds(timeout))))
                let status = Int(response.status.code)
                if (200..<300).contains(status) {
                    let delivery = Delivery()
                    do {
                        return try await consume(response, delivery)
                    } catch where delivery.started {
                        throw DeliveredFailure(underlying: error)
                    }
                }
                let errorBody = Data(buffer: try await response.body.collect(upTo: 1 << 20))
                if let refusal = Self.contextWindowRefusal(status: status, body: errorBody, model: model) { throw refusal }
                let reason = Self.serverMessage(errorBody)
                switch status {
                case 401, 403:
                    throw ProviderError(code: .authentication, message: "\(baseURL) rejected the credentials (HTTP \(status)): check the API key\(reason)", statusCode: status)
                case 429:
                    failure = ProviderError(code: .rateLimited, message: "\(baseURL) kept rate-limiting the requests (HTTP 429)\(reason)", statusCode: status)
                    retryAfter = Self.retryAfter(response.headers)
                case 408:
                    failure = ProviderError(code: .timeout, message: "\(baseURL) timed out the request (HTTP 408)\(reason)", statusCode: status)
                    retryAfter = Self.retryAfter(response.headers)
                case 500...599:
                    failure = ProviderError(code: .server, message: "\(baseURL) kept failing with HTTP \(status)\(reason)", statusCode: status)
                    retryAfter = Self.retryAfter(response.headers)
                default:
                    throw ProviderError(code: .badRequest, message: "\(baseURL) refused the request with HTTP \(status)\(reason)", statusCode: status)
                }
            } catch let error as ProviderError {
                throw error
            } catch let error as ContextWindowExceeded {
                throw error
            } catch let failure as DeliveredFailure {
                if failure.underlying is CancellationError || Task.isCancelled { throw CancellationError() }
                throw ProviderError(code: .unreachable, message: "the stream from \(baseURL) broke off: \(failure.underlying)")
            } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .writeTimeout {
                failure = ProviderError(code: .timeout, message: "\(baseURL) did not answer within \(timeout) (the request timeout)")
            } catch let error as HTTPClientError where error == .cancelled {
                throw CancellationError()
            } catch let error as HTTPClientError where error == .connectTimeout {
                failure = ProviderError(code: .unreachable, message: "could not connect to \(baseURL) (connect timeout): is the server running and the URL right?")
            } catch {
                if Task.isCancelled { throw CancellationError() }
                let text = String(describing: error)
                if text.localizedCaseInsensitiveContains("refused") {
                    throw ProviderError(code: .unreachable, message: "nothing is listening at \(baseURL) (connection refused): start the server or fix --base-url")
                }
                if text.localizedCaseInsensitiveContains("resolve") || text.localizedCaseInsensitiveContains("NXDOMAIN") {
                    throw ProviderError(code: .unreachable, message: "the host of \(baseURL) could not be resolved: check the URL")
                }
                failure = ProviderError(code: .unreachable, message: "the connection to \(baseURL) failed: \(text)")
            }
            guard attempt < retry.maxRetries else {
                var final = failure
                if attempt > 0 { final.message += " (after \(attempt) retries)" }
                throw final
            }
            let wait = min(retryAfter ?? retry.backoff(attempt: attempt), retry.maxBackoff)
            logger.debug("retrying model request", metadata: [
                "url": "\(url)", "attempt": "\(attempt + 1)", "reason": "\(failure.code)", "wait": "\(wait)",
            ])
            attempt += 1
            try await Task.sleep(for: wait)
        }
    }

    private struct DeliveredFailure: Error {
        var underlying: any Error
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// `Retry-After` in seconds or as an HTTP date.
    static func retryAfter(_ headers: HTTPHeaders) -> Duration? {
        guard let value = headers.first(name: "retry-after")?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = Double(value) { return .milliseconds(Int64(max(0, seconds) * 1000)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .milliseconds(Int64(max(0, date.timeIntervalSinceNow) * 1000))
    }

    /// The server's error message, quoted briefly.
    /// The server's refusal of a prompt as too long, recognised by OpenAI's
    /// `context_length_exceeded` code, llama.cpp's `exceed_context_size_error` type, or the
    /// wording of OpenAI, vLLM, llama-cpp-python and Anthropic; `nil` for any other failure.
    static func contextWindowRefusal(status: Int, body: Data, model: String) -> ContextWindowExceeded? {
        guard (400..<500).contains(status), status != 401, status != 403, status != 429 else { return nil }
        let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        let error = object?["error"] as? [String: Any] ?? object ?? [:]
        let message = (error["message"] as? String) ?? String(decoding: body.prefix(1_000), as: UTF8.self)
        let code = (error["code"] as? String) ?? ""
        let type = (error["type"] as? String) ?? ""
        let lowered = message.lowercased()
        let phrases = [
            "maximum context length", "context window", "context length", "prompt is too long",
            "exceeds the available context size", "input is too long", "too many tokens",
        ]
        guard code == "context_length_exceeded" || type == "exceed_context_size_error"
            || phrases.contains(where: lowered.contains)
        else { return nil }
        func number(_ pattern: String) -> Int? {
            guard let regex = try? NSRegularExpression(pattern: pattern, options: [.caseInsensitive]),
                let match = regex.firstMatch(in: message, range: NSRange(message.startIndex..., in: message)),
                let range = Range(match.range(at: 1), in: message)
            else { return nil }
            return Int(message[range])
        }
        let window = (error["n_ctx"] as? Int)
            ?? number(#"maximum context length is (\d+)"#) ?? number(#"context window of (\d+)"#)
            ?? number(#"> (\d+) maximum"#) ?? number(#"context size \((\d+)"#)
        let prompt = (error["n_prompt_tokens"] as? Int)
            ?? number(#"requested (\d+) tokens"#) ?? number(#"resulted in (\d+) tokens"#)
            ?? number(#"prompt is too long: (\d+) tokens"#) ?? number(#"Requested tokens \((\d+)\)"#)
        return ContextWindowExceeded(
            model: model, promptTokens: prompt, windowTokens: window, serverMessage: String(message.prefix(300)))
    }

    static func serverMessage(_ data: Data) -> String {
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            if let error = object["error"] as? [String: Any], let message = error["message"] as? String {
                return ": " + String(message.prefix(300))
            }
            if let message = object["message"] as? String { return ": " + String(message.prefix(300)) }
        }
        let text = String(decoding: data.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "" : ": " + text
    }
}
