import Foundation
import Synchronization
#if RLM_TSAN_LOCKS
import PythonRuntime  // its SanitizerMutex is this module's Mutex under ThreadSanitizer
#endif

/// What besides the messages decides a model's reply, for ``ModelCache`` keys.
///
/// ```swift
/// var cacheIdentity: CacheIdentity { CacheIdentity(settings: "temperature=0;max_tokens=512", isSampled: false) }
/// ```
public struct CacheIdentity: Sendable, Hashable {
    /// The settings that change the reply (server, sampling parameters, output limit), as one string.
    public var settings: String
    /// Whether replies are sampled (a temperature above 0, or the server's default), so that the
    /// same messages may get a different reply. A cache keeps those only when it is told to
    /// (``ModelCache/cachesSampledReplies``).
    public var isSampled: Bool

    /// Creates an identity.
    public init(settings: String, isSampled: Bool) {
        self.settings = settings
        self.isSampled = isSampled
    }
}

/// One model call as a cache sees it: the model, its settings and the exact messages.
public struct ModelCallKey: Sendable, Hashable {
    /// ``LanguageModel/modelName``.
    public var model: String
    /// ``CacheIdentity/settings``.
    public var settings: String
    /// The messages sent.
    public var messages: [ChatMessage]

    /// Creates a key.
    public init(model: String, settings: String, messages: [ChatMessage]) {
        self.model = model
        self.settings = settings
        self.messages = messages
    }

    /// The whole key as one string (what a persistent store compares, so that a digest collision
    /// is only a miss).
    public var canonical: String {
        var text = "\(model)\u{1}\(settings)"
        for message in messages { text += "\u{1}\(message.role.rawValue)\u{2}\(message.content)" }
        return text
    }

    /// A 128-bit digest of ``canonical`` in hex (two FNV-1a 64 hashes with different offsets):
    /// an index for stores, stable across processes and machines.
    public var digest: String {
        var first: UInt64 = 0xcbf2_9ce4_8422_2325
        var second: UInt64 = 0x6c62_272e_07bb_0142
        for byte in canonical.utf8 {
            first = (first ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            second = (second ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            second = second &+ (second >> 29)
        }
        return String(format: "%016llx%016llx", first, second)
    }

    /// Roughly how many bytes the key holds.
    var byteCount: Int { model.utf8.count + settings.utf8.count + messages.reduce(0) { $0 + $1.content.utf8.count + 16 } }
}

/// Where a ``ModelCache`` keeps replies: in memory (``MemoryModelCacheStorage``), in SQLite or
/// PostgreSQL (`RLMCache`), or your own.
public protocol ModelCacheStorage: Sendable {
    /// The reply stored for `key`, or `nil`.
    func reply(for key: ModelCallKey) async throws -> ModelResponse?
    /// Stores `response` as the reply for `key`.
    func store(_ response: ModelResponse, for key: ModelCallKey) async throws
}

/// Replies to repeated model calls, answered without calling the model again
/// (``RLMConfiguration/cache``).
///
/// Keys are the model's name, its ``CacheIdentity`` and the exact messages; a hit costs no
/// tokens and no money, and its saved tokens and cost appear in ``ModelUsage/cacheHits``,
/// ``ModelUsage/savedTokens`` and ``ModelUsage/savedCostUSD``, in a ``RLMEvent/Kind/subcallCached(callID:model:saved:)``
/// event and in the `rlm_cache_lookups_total` metric. Errors are never cached, and neither are
/// sampled replies unless ``cachesSampledReplies`` is set. A storage that fails is passed over:
/// the call goes to the model.
///
/// ```swift
/// configuration.cache = ModelCache(storage: MemoryModelCacheStorage(maxBytes: 64 << 20))
/// ```
public struct ModelCache: Sendable {
    /// Where replies are kept.
    public var storage: any ModelCacheStorage
    /// Also answer the root model's turns from the cache, not only `llm_query` and
    /// `llm_query_batched`. Defaults to `false`.
    public var includesRootTurns: Bool
    /// Keep and reuse sampled replies too (see ``CacheIdentity/isSampled``). Defaults to `false`.
    public var cachesSampledReplies: Bool

    /// Creates a cache over `storage`.
    public init(storage: any ModelCacheStorage, includesRootTurns: Bool = false, cachesSampledReplies: Bool = false) {
        self.storage = storage
        self.includesRootTurns = includesRootTurns
        self.cachesSampledReplies = cachesSampledReplies
    }

    /// The same cache with its keys kept apart from every other scope's: a server gives each
    /// tenant its own scope, so that one tenant never gets (or learns of) another's replies.
    public func scoped(to scope: String) -> ModelCache {
        var scoped = self
        scoped.storage = ScopedStorage(base: storage, scope: scope)
        return scoped
    }

    private struct ScopedStorage: ModelCacheStorage {
        let base: any ModelCacheStorage
        let scope: String

        func scopedKey(_ key: ModelCallKey) -> ModelCallKey {
            var key = key
            key.settings = "scope=\(scope);" + key.settings
            return key
        }

        func reply(for key: ModelCallKey) async throws -> ModelResponse? { try await base.reply(for: scopedKey(key)) }
        func store(_ response: ModelResponse, for key: ModelCallKey) async throws { try await base.store(response, for: scopedKey(key)) }
    }

    /// The key for a call to `model`, or `nil` when its replies are not to be cached.
    func key(for model: any LanguageModel, _ messages: [ChatMessage]) -> ModelCallKey? {
        let identity = model.cacheIdentity
        guard !identity.isSampled || cachesSampledReplies else { return nil }
        return ModelCallKey(model: model.modelName, settings: identity.settings, messages: messages)
    }
}

/// Replies kept in memory, least recently used first out once they hold more than `maxBytes`.
public final class MemoryModelCacheStorage: ModelCacheStorage {
    private struct Entry {
        var response: ModelResponse
        var bytes: Int
        var lastUse: UInt64
    }
    private struct State {
        var entries: [ModelCallKey: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }
    private let state = Mutex(State())
    /// The most bytes (keys and replies) kept.
    public let maxBytes: Int

    /// Creates a storage of at most `maxBytes` (default 64 MiB).
    public init(maxBytes: Int = 64 << 20) {
        self.maxBytes = maxBytes
    }

    /// How many replies are kept, and their bytes.
    public var count: (entries: Int, bytes: Int) { state.withLock { ($0.entries.count, $0.bytes) } }

    public func reply(for key: ModelCallKey) async throws -> ModelResponse? {
        state.withLock { state in
            guard var entry = state.entries[key] else { return nil }
            state.clock += 1
            entry.lastUse = state.clock
            state.entries[key] = entry
            return entry.response
        }
    }

    public func store(_ response: ModelResponse, for key: ModelCallKey) async throws {
        let bytes = key.byteCount + response.text.utf8.count + 64
        guard bytes <= maxBytes else { return }
        state.withLock { state in
            state.clock += 1
            if let old = state.entries.updateValue(Entry(response: response, bytes: bytes, lastUse: state.clock), forKey: key) {
                state.bytes -= old.bytes
            }
            state.bytes += bytes
            guard state.bytes > maxBytes else { return }
            // Evict the least recently used until under the bound (a sort per eviction round:
            // rounds are rare, since each frees down to three quarters of the bound).
            let byAge = state.entries.sorted { $0.value.lastUse < $1.value.lastUse }
            for (oldKey, entry) in byAge where state.bytes > maxBytes * 3 / 4 {
                state.entries[oldKey] = nil
                state.bytes -= entry.bytes
            }
        }
    }
}
