import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix
import Synchronization

/// A real HTTP/1.1 server on 127.0.0.1 whose answers come from a Swift closure: for testing
/// clients against delays, errors, malformed bodies and dropped connections.
///
/// ```swift
/// let server = try await ScriptedHTTPServer.start { request in
///     .respond(status: 200, body: Data("hello".utf8))
/// }
/// defer { Task { try await server.shutdown() } }
/// print(server.baseURL)   // http://127.0.0.1:PORT
/// ```
public final class ScriptedHTTPServer: Sendable {
    /// A request as the server received it.
    public struct Request: Sendable {
        /// `GET`, `POST`, …
        public var method: String
        /// The path with its query.
        public var path: String
        /// Header names are lower-cased.
        public var headers: [String: String]
        /// The body.
        public var body: Data
        /// 0-based arrival order.
        public var index: Int
    }

    /// What to do with a request.
    public enum Action: Sendable {
        /// Answer after `delay`.
        case respond(status: Int, headers: [String: String] = ["content-type": "application/json"], body: Data, delay: Duration = .zero)
        /// Close the connection without answering, after `delay`.
        case dropConnection(delay: Duration = .zero)
        /// Answer with the body written `chunkSize` bytes at a time, each flushed on its own a
        /// millisecond after the last, so that the client reads it in pieces that may split a
        /// UTF-8 character or a line.
        case respondInChunks(status: Int, headers: [String: String], body: Data, chunkSize: Int)
    }

    private struct Stats {
        var requests = 0
        var connections = 0
        var inFlight = 0
        var peakInFlight = 0
    }

    private let channel: any Channel
    private let stats = Mutex(Stats())

    /// The bound port.
    public let port: Int
    /// `http://127.0.0.1:PORT`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(channel: any Channel, port: Int) {
        self.channel = channel
        self.port = port
    }

    /// Starts a server on 127.0.0.1 (port 0 picks a free one) whose answers come from an async
    /// closure, run as a task for each request.
    public static func start(port: Int = 0, handler: @escaping @Sendable (Request) async -> Action) async throws -> ScriptedHTTPServer {
        try await start(port: port, handler: .asynchronous(handler))
    }

    /// Starts a server on 127.0.0.1 (port 0 picks a free one) that answers on the connection's
    /// event loop, without a hop to a task: the server's own cost per request stays a few
    /// microseconds, so benchmarks measure the client rather than the server.
    public static func start(port: Int = 0, synchronousHandler: @escaping @Sendable (Request) -> Action) async throws -> ScriptedHTTPServer {
        try await start(port: port, handler: .synchronous(synchronousHandler))
    }

    private static func start(port: Int, handler: Handler) async throws -> ScriptedHTTPServer {
        let counters = Counters()
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                counters.connection()
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(RequestHandler(handler: handler, counters: counters))
                }
            }
        let channel = try await bootstrap.bind(host: "127.0.0.1", port: port).get()
        let server = ScriptedHTTPServer(channel: channel, port: channel.localAddress?.port ?? port)
        counters.server.withLock { $0 = server }
        return server
    }

    /// Requests received so far.
    public var requestCount: Int { stats.withLock { $0.requests } }
    /// TCP connections accepted so far.
    public var connectionCount: Int { stats.withLock { $0.connections } }
    /// The most requests being handled at once.
    public var peakConcurrentRequests: Int { stats.withLock { $0.peakInFlight } }

    /// Stops listening.
    public func shutdown() async throws {
        try await channel.close()
    }

    fileprivate func begin() -> Int {
        stats.withLock { stats in
            stats.inFlight += 1
            stats.peakInFlight = max(stats.peakInFlight, stats.inFlight)
            stats.requests += 1
            return stats.requests - 1
        }
    }

    fileprivate func end() { stats.withLock { $0.inFlight -= 1 } }
    fileprivate func connected() { stats.withLock { $0.connections += 1 } }
}

/// Connects the channel handlers to the server object, which exists only once the port is bound
/// (before any client can connect).
private final class Counters: Sendable {
    let server = Mutex<ScriptedHTTPServer?>(nil)

    func connection() {
        server.withLock { $0?.connected() }
    }
}

private enum Handler: Sendable {
    case asynchronous(@Sendable (ScriptedHTTPServer.Request) async -> ScriptedHTTPServer.Action)
    case synchronous(@Sendable (ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Action)
}

private final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let handler: Handler
    private let counters: Counters
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(handler: Handler, counters: Counters) {
        self.handler = handler
        self.counters = counters
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var buffer):
            body.writeBuffer(&buffer)
        case .end:
            guard let head else { return }
            self.head = nil
            let server = counters.server.withLock { $0 }
            let index = server?.begin() ?? 0
            var headers: [String: String] = [:]
            for (name, value) in head.headers { headers[name.lowercased()] = value }
            let request = ScriptedHTTPServer.Request(method: head.method.rawValue, path: head.uri, headers: headers, body: Data(buffer: body), index: index)
            let channel = context.channel
            let keepAlive = head.isKeepAlive
            switch handler {
            case .synchronous(let handler):
                let action = handler(request)
                let delay = action.delay
                guard delay > .zero else {
                    Self.perform(action, on: channel, keepAlive: keepAlive)
                    server?.end()
                    return
                }
                channel.eventLoop.scheduleTask(in: TimeAmount(delay)) {
                    Self.perform(action, on: channel, keepAlive: keepAlive)
                    server?.end()
                }
            case .asynchronous(let handler):
                Task {
                    let action = await handler(request)
                    defer { server?.end() }
                    if action.delay > .zero { try? await Task.sleep(for: action.delay) }
                    Self.perform(action, on: channel, keepAlive: keepAlive)
                }
            }
        }
    }

    private static func perform(_ action: ScriptedHTTPServer.Action, on channel: any Channel, keepAlive: Bool) {
        switch action {
        case .dropConnection:
            channel.close(promise: nil)
        case .respond(let status, let extraHeaders, let body, _):
            var responseHeaders = HTTPHeaders()
            for (name, value) in extraHeaders { responseHeaders.add(name: name, value: value) }
            responseHeaders.replaceOrAdd(name: "content-length", value: String(body.count))
            if !keepAlive { responseHeaders.replaceOrAdd(name: "connection", value: "close") }
            let responseHead = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: responseHeaders)
            channel.write(HTTPServerResponsePart.head(responseHead), promise: nil)
            channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
            let done = channel.eventLoop.makePromise(of: Void.self)
            channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: done)
            if !keepAlive { done.futureResult.whenComplete { _ in channel.close(promise: nil) } }
        case .respondInChunks(let status, let extraHeaders, let body, let chunkSize):
            var responseHeaders = HTTPHeaders()
            for (name, value) in extraHeaders { responseHeaders.add(name: name, value: value) }
            responseHeaders.replaceOrAdd(name: "content-length", value: String(body.count))
            if !keepAlive { responseHeaders.replaceOrAdd(name: "connection", value: "close") }
            channel.writeAndFlush(HTTPServerResponsePart.head(
                HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: responseHeaders)), promise: nil)
            let pieces = stride(from: 0, to: body.count, by: max(1, chunkSize)).map { body[$0..<min($0 + max(1, chunkSize), body.count)] }
            func write(_ index: Int) {
                guard index < pieces.count else {
                    let done = channel.eventLoop.makePromise(of: Void.self)
                    channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: done)
                    if !keepAlive { done.futureResult.whenComplete { _ in channel.close(promise: nil) } }
                    return
                }
                channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: pieces[index]))), promise: nil)
                channel.eventLoop.scheduleTask(in: .milliseconds(1)) { write(index + 1) }
            }
            write(0)
        }
    }
}

extension ScriptedHTTPServer.Action {
    var delay: Duration {
        switch self {
        case .respond(_, _, _, let delay), .dropConnection(let delay): delay
        case .respondInChunks: .zero
        }
    }
}
