import CCurl

/// Names one transfer started by an `HTTPClient`, so it can be cancelled.
public struct HTTPTransferHandle: Hashable, Sendable {
    let id: UInt64
}

/// An HTTP/HTTPS client on libcurl's multi interface, driven by an `EventLoop`.
///
/// Everything happens on the loop's thread; the client starts no threads of its own. With
/// IP-literal URLs curl starts none either; a host name is resolved on a short-lived helper
/// thread of Debian's threaded resolver, which never calls back into Swift.
///
/// Guarantees:
/// - Every `start` gets exactly one completion call, on the loop, never from inside `start`,
///   `cancel` or `cancelAll` (those defer it to the end of the current loop pass) and never
///   from inside a curl callback. A completion may start, cancel or cancel all transfers.
/// - A cancelled transfer completes with `HTTPError.Reason.cancelled`.
/// - Dropping the client drops its unfinished transfers (running or queued) without calling
///   their completions; call `cancelAll()` first to have them reported (those reports still
///   arrive after the client is gone).
///
/// Only http and https are spoken, also on redirects (at most `maxRedirects`). Proxies come
/// from the standard environment variables (http_proxy, https_proxy, no_proxy), as curl does
/// by default. Transfers beyond `maxConcurrentTransfers` wait in the client's own queue, at
/// the cost of the request and its closure; their timeouts start when they leave it.
/// https servers are checked against libcurl's CA bundle, or the ones `Configuration` names
/// (by default SSL_CERT_FILE and SSL_CERT_DIR when set).
public final class HTTPClient {
    /// Why a client could not be created.
    public struct SetupError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    private let loop: EventLoop
    private let configuration: Configuration
    private let driver: CurlMultiDriver
    private var pool: CurlEasyPool
    private var nextID: UInt64 = 1
    private var active: [UInt64: HTTPTransfer] = [:]
    /// How many of `active` go to each origin (`HTTPClient.origin(of:)`).
    private var activeByOrigin: [String: Int] = [:]
    private var queue = HTTPTransferQueue()

    // MARK: Setup

    private static let globalInitCode: Int = Int(curl_global_init(CCURL_GLOBAL_DEFAULT).rawValue)

    /// Initialises libcurl once per process; later calls only report the first result.
    ///
    /// Call it from `main` before any other thread exists: curl_global_init is not safe to
    /// run while other threads use libraries it initialises (OpenSSL). `init` calls it too,
    /// which suffices for a single-threaded program.
    public static func globalInit() throws(SetupError) {
        let code = globalInitCode
        guard code == Int(CURLE_OK.rawValue) else {
            let message = String(cString: curl_easy_strerror(CURLcode(UInt32(code))))
            throw SetupError(description: "curl_global_init failed: \(message)")
        }
    }

    public init(loop: EventLoop, configuration: Configuration = Configuration()) throws(SetupError) {
        try Self.globalInit()
        guard let driver = CurlMultiDriver(loop: loop) else {
            throw SetupError(description: "curl_multi_init failed")
        }
        self.loop = loop
        self.configuration = configuration
        self.driver = driver
        pool = CurlEasyPool(capacity: configuration.idleHandlePoolSize)
        driver.setLimit(CURLMOPT_MAX_HOST_CONNECTIONS, max(1, configuration.maxConnectionsPerHost))
        driver.setLimit(CURLMOPT_MAX_TOTAL_CONNECTIONS, max(1, configuration.maxTotalConnections))
        driver.setLimit(CURLMOPT_MAXCONNECTS, max(1, configuration.maxCachedConnections))
        driver.onFinished = { [weak self] easy, code in self?.finished(easy: easy, code: code) }
        driver.onUnwatchableSocket = { [weak self] easy, error in
            self?.abandon(easy: easy, reason: .connectFailed("cannot watch the socket: \(error)"))
        }
    }

    deinit {
        for transfer in active.values { release(transfer) }
    }

    // MARK: Transfers

    /// Transfers handed to curl (some may wait inside curl for a free connection).
    public var activeTransferCount: Int { active.count }

    /// Transfers waiting in the client for a slot.
    public var queuedTransferCount: Int { queue.count }

    /// Transfers handed to curl for URLs of `origin` (as `origin(of:)` spells it). Beyond
    /// `connectionsPerHost` they wait inside curl with their timeouts running, so a caller
    /// with many hosts can hold back work for a busy one and serve the others first.
    public func activeTransferCount(origin: String) -> Int { activeByOrigin[origin, default: 0] }

    /// The connections curl opens to one host at most (`maxConnectionsPerHost`).
    public var connectionsPerHost: Int { max(1, configuration.maxConnectionsPerHost) }

    /// `scheme://host[:port]` of a URL, lower-cased, without user info: what curl's
    /// per-host connection limit counts by (a missing port is not filled in).
    public static func origin(of url: String) -> String {
        let bytes = Array(url.utf8)
        let separator = Array("://".utf8)
        guard let schemeEnd = (0..<max(0, bytes.count - 2)).first(where: { bytes[$0..<$0 + 3].elementsEqual(separator) })
        else { return String(decoding: bytes.map(ASCII.lowercased), as: UTF8.self) }
        let authorityStart = schemeEnd + 3
        let authorityEnd = bytes[authorityStart...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?")
            || $0 == UInt8(ascii: "#") } ?? bytes.count
        var authority = bytes[authorityStart..<authorityEnd]
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) { authority = authority[(at + 1)...] }
        // ASCII only, byte by byte: this runs for every transfer, and String.lowercased()
        // (full Unicode case mapping) showed up in profiles of a cold start.
        return String(decoding: (bytes[..<authorityStart] + authority).map(ASCII.lowercased), as: UTF8.self)
    }

    /// Starts `request`, or queues it when `maxConcurrentTransfers` are running.
    @discardableResult
    public func start(_ request: HTTPRequest,
                      completion: @escaping (Result<HTTPResponse, HTTPError>) -> Void) -> HTTPTransferHandle {
        let transfer = HTTPTransfer(id: nextID, request: request, completion: completion)
        nextID += 1
        if let problem = HTTPTransfer.problem(with: request) {
            completeSoon(transfer, .invalidRequest(problem))
        } else if active.count < max(1, configuration.maxConcurrentTransfers) {
            activate(transfer)
        } else {
            queue.append(transfer)
        }
        return HTTPTransferHandle(id: transfer.id)
    }

    /// Ends a queued or running transfer; it completes with `.cancelled` at the end of the
    /// current loop pass. Returns false when the transfer has already finished or been
    /// cancelled (its completion has run or is about to).
    @discardableResult
    public func cancel(_ handle: HTTPTransferHandle) -> Bool {
        if let transfer = queue.remove(id: handle.id) {
            completeSoon(transfer, .cancelled)
            return true
        }
        guard let transfer = removeActive(handle.id) else { return false }
        release(transfer)
        completeSoon(transfer, .cancelled)
        startQueued()
        return true
    }

    /// Cancels every queued and running transfer (for shutdown); each completes with
    /// `.cancelled`, in the order they were started.
    public func cancelAll() {
        let waiting = queue.removeAll()
        let running = active.values.sorted { $0.id < $1.id }
        active.removeAll()
        activeByOrigin.removeAll()
        for transfer in running {
            release(transfer)
        }
        for transfer in (running + waiting).sorted(by: { $0.id < $1.id }) {
            completeSoon(transfer, .cancelled)
        }
    }

    // MARK: Internals

    private func activate(_ transfer: HTTPTransfer) {
        guard let handle = pool.take() else {
            completeSoon(transfer, .curl(code: Int(CURLE_OUT_OF_MEMORY.rawValue), message: "cannot create a curl handle"))
            return
        }
        do {
            try transfer.attach(to: handle, userAgent: configuration.userAgent,
                                maxRedirects: configuration.maxRedirects,
                                trustedCAFile: configuration.trustedCAFile,
                                trustedCADirectory: configuration.trustedCADirectory)
        } catch {
            pool.give(handle)
            completeSoon(transfer, error.reason)
            return
        }
        let code = driver.add(handle.pointer)
        guard code == CURLM_OK else {
            _ = transfer.detach()
            pool.give(handle)
            completeSoon(transfer, .curl(code: Int(code.rawValue), message: String(cString: curl_multi_strerror(code))))
            return
        }
        active[transfer.id] = transfer
        activeByOrigin[transfer.origin, default: 0] += 1
    }

    private func removeActive(_ id: UInt64) -> HTTPTransfer? {
        guard let transfer = active.removeValue(forKey: id) else { return nil }
        let remaining = activeByOrigin[transfer.origin, default: 1] - 1
        activeByOrigin[transfer.origin] = remaining > 0 ? remaining : nil
        return transfer
    }

    private func startQueued() {
        while active.count < max(1, configuration.maxConcurrentTransfers), let next = queue.popFirst() {
            activate(next)
        }
    }

    /// Takes the transfer's handle out of curl and back into the pool.
    private func release(_ transfer: HTTPTransfer) {
        guard let handle = transfer.easy else { return }
        // Out of curl first: the header list goes with `detach`.
        driver.remove(handle.pointer)
        _ = transfer.detach()
        pool.give(handle)
    }

    /// Reports a failure at the end of the current loop pass, even if the client is gone by
    /// then (so `cancelAll()` followed by dropping the client still reports every transfer).
    private func completeSoon(_ transfer: HTTPTransfer, _ reason: HTTPError.Reason) {
        let error = HTTPError(url: transfer.url, reason: reason)
        let completion = transfer.completion
        loop.executeSoon { completion(.failure(error)) }
    }

    /// The active transfer attached to `easy`, through the id kept in CURLOPT_PRIVATE.
    private func activeTransfer(for easy: UnsafeMutableRawPointer) -> HTTPTransfer? {
        var pointer: UnsafeMutableRawPointer?
        guard ccurl_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &pointer) == CURLE_OK, let pointer,
              let transfer = active[UInt64(UInt(bitPattern: pointer))],
              transfer.easy?.pointer == easy else { return nil }
        return transfer
    }

    private func finished(easy: UnsafeMutableRawPointer, code: CURLcode) {
        guard let transfer = activeTransfer(for: easy) else {
            driver.remove(easy)
            return
        }
        let result = transfer.outcome(for: code, maxRedirects: configuration.maxRedirects)
        _ = removeActive(transfer.id)
        release(transfer)
        startQueued()
        transfer.completion(result)
    }

    private func abandon(easy: UnsafeMutableRawPointer, reason: HTTPError.Reason) {
        guard let transfer = activeTransfer(for: easy) else { return }
        _ = removeActive(transfer.id)
        release(transfer)
        startQueued()
        transfer.completion(.failure(HTTPError(url: transfer.url, reason: reason)))
    }
}
