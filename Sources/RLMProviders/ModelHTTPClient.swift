import AsyncHTTPClient
import NIOCore

/// The process-wide HTTP client that providers share by default, so every model call reuses the
/// same connection pool (the reference implementation opens a connection per sub-call).
///
/// It differs from `HTTPClient.shared` in one way: a connection that cannot be established fails
/// the attempt at once instead of being retried inside the pool until the request deadline.
/// The providers' own retry policy decides what to retry, and "nothing listens at this URL"
/// surfaces in milliseconds rather than after the timeout. It also allows 512 connections per
/// host (AsyncHTTPClient's default is 8): the engine's `maxConcurrentSubcalls` is the limit that
/// should bind, not the pool (at 64, 256 batched calls took four rounds).
public enum ModelHTTPClient {
    /// The shared client. It lives as long as the process and is never shut down.
    public static let shared: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10))
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
        configuration.httpVersion = .automatic
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()
}
