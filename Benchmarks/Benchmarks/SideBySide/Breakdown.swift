// Where one sub-call's time goes, measured in this process against the same scripted server, the
// layers interleaved round by round (this machine's speed drifts by tens of percent within
// minutes): a bare blocking socket (the floor: the server, the kernel and the wake-ups),
// AsyncHTTPClient on its own, OpenAICompatibleModel.complete (the HTTP client plus request and
// response bodies), and llm_query from Python (the sequential-1000 scenario: the bridge and the
// engine on top; its one root call and REPL start-up add a few µs per call).
import AsyncHTTPClient
import Foundation
import NIOCore
import RLM
import RLMProviders

#if canImport(Glibc)
import Glibc
#endif

enum Breakdown {
    static let body = Data(#"{"model":"sub@0","messages":[{"role":"user","content":"q"}]}"#.utf8)

    /// Seconds per call for each layer, one value per round.
    static func run(baseURL: String, rounds: Int, calls: Int = 1000) async throws -> [String: [Double]] {
        guard let url = URL(string: baseURL), let port = url.port else { throw BreakdownError.badURL(baseURL) }
        let model = try OpenAICompatibleModel(configuration: .init(baseURL: baseURL, model: "sub@0", apiKeyVariable: nil))
        let rlm = RLM(configuration: RLMConfiguration(
            rootModel: try OpenAICompatibleModel(configuration: .init(baseURL: baseURL, model: "root:sequential-1000@0", apiKeyVariable: nil)),
            subModel: model))
        let clock = ContinuousClock()
        var samples: [String: [Double]] = [:]
        for _ in 0..<rounds {
            samples["socket", default: []].append(try await onThread { try socketLoop(port: port, path: url.path + "/chat/completions", calls: calls) })
            samples["http_client", default: []].append(try await timed(calls) { try await clientCall(baseURL) })
            samples["complete", default: []].append(try await timed(calls) { _ = try await model.complete([.user("q")]) })
            let start = clock.now
            let result = try await rlm.complete(query: "benchmark", context: .text("c"))
            guard result.answer == "1000" else { throw BreakdownError.wrongAnswer(result.answer) }
            samples["llm_query", default: []].append(seconds(clock.now - start) / 1000)
        }
        return samples
    }

    static func clientCall(_ baseURL: String) async throws {
        var request = HTTPClientRequest(url: baseURL + "/chat/completions")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: body))
        let response = try await ModelHTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
    }

    static func timed(_ calls: Int, _ call: () async throws -> Void) async throws -> Double {
        for _ in 0..<50 { try await call() }
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<calls { try await call() }
        return seconds(clock.now - start) / Double(calls)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Runs blocking work on a thread of its own, off the cooperative pool.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Keep-alive HTTP/1.1 over one blocking socket with TCP_NODELAY: one write and the reads
    /// that the response needs per call.
    static func socketLoop(port: Int, path: String, calls: Int) throws -> Double {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BreakdownError.socket(errno) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw BreakdownError.socket(errno) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let request = Array("POST \(path) HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: \(body.count)\r\n\r\n".utf8) + Array(body)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let headerEnd = Array("\r\n\r\n".utf8)
        let lengthName = Array("content-length:".utf8)

        func call() throws {
            let written = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == request.count else { throw BreakdownError.socket(errno) }
            var received = 0
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + received, $0.count - received) }
                guard count > 0 else { throw BreakdownError.socket(errno) }
                received += count
                let bytes = buffer[0..<received]
                guard let end = bytes.firstRange(of: headerEnd) else { continue }
                let head = Array(bytes[..<end.lowerBound]).map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
                guard let name = head.firstRange(of: lengthName) else { throw BreakdownError.noContentLength }
                let digits = head[name.upperBound...].drop(while: { $0 == 32 }).prefix(while: { $0 >= 48 && $0 <= 57 })
                let length = digits.reduce(0) { $0 * 10 + Int($1 - 48) }
                if received >= end.upperBound + length { return }
            }
        }
        for _ in 0..<50 { try call() }
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<calls { try call() }
        return seconds(clock.now - start) / Double(calls)
    }
}

enum BreakdownError: Error {
    case badURL(String)
    case wrongAnswer(String)
    case socket(Int32)
    case noContentLength
}
