import CCurl

/// Names one transfer started by an `HTTPClient`, so it can be cancelled.
public struct HTTPTransferHandle: Hashable, Sendable {
    let id: UInt64
}

/// An HTTP/HTTPS client on libcurl's multi interface, driven by an `EventLoop`.
///
/// Everything happens on the loop's thread, and no thread is started: host names are
/// resolved on the loop by a `NameResolver` (c-ares) and handed to curl with
/// `CURLOPT_RESOLVE`, so curl's threaded resolver never runs; redirects are followed by the
/// client for the same reason. Through a proxy the proxy's name is the one resolved (the
/// target's is the proxy's business). Two cases are left to curl's resolver (a short-lived
/// helper thread that never calls back into Swift): a proxy variable that is no plain http
/// URL (`https://`, `socks5h://`), and a host that is no plain ASCII name (curl converts an
/// international name first, or refuses a malformed one). Time spent resolving is bounded
/// by the resolver, not by the request's timeouts.
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
/// Only http and https are spoken, also on redirects (at most `maxRedirects`; each hop's
/// host is resolved like the first). The proxy is `Configuration.proxy`: by default the one
/// the standard environment variables name (http_proxy, https_proxy, all_proxy, no_proxy),
/// as curl reads them; the client decides the route of every hop itself (`ProxyRoute`) and
/// tells curl. Transfers beyond `maxConcurrentTransfers` wait in the client's own queue, at
/// the cost of the request and its closure; their timeouts start when they leave it.
/// https servers are checked against libcurl's CA bundle, or the ones `Configuration` names
/// (by default SSL_CERT_FILE and SSL_CERT_DIR when set).
public final class HTTPClient {
    /// Why a client could not be created.
    public struct SetupError: Error, Sendable, CustomStringConvertible {
        public let description: String

        public init(description: String) { self.description = description }
    }

    private let loop: EventLoop
    /// Resolves the host names of URLs before curl sees them.
    public let resolver: NameResolver
    private var configuration: Configuration
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
        do {
            resolver = try NameResolver(loop: loop, configuration: configuration.nameResolution)
        } catch {
            throw SetupError(description: error.description)
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

    /// The proxy setting hops use from now on (a reload may change it); transfers under way
    /// keep the route they were started on.
    public var proxy: ProxySetting {
        get { configuration.proxy }
        set { configuration.proxy = newValue }
    }

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

    /// Takes a slot for `transfer` and starts its first hop. While its host is being
    /// resolved it is active without a curl handle.
    private func activate(_ transfer: HTTPTransfer) {
        active[transfer.id] = transfer
        activeByOrigin[transfer.origin, default: 0] += 1
        startHop(transfer)
    }

    /// The proxy a request for `url` goes through, or nil when it goes straight to the URL's
    /// host (no proxy set, or `no_proxy` exempts the host). A proxy named in the environment
    /// that is no plain http URL is not reported.
    public func proxy(for url: String) -> ProxyURL? {
        if case .proxy(let proxy) = ProxyRoute.choose(for: url, setting: configuration.proxy, bypassesProxy: false) {
            return proxy
        }
        return nil
    }

    /// Resolves the host curl will connect to for the transfer's current URL (the proxy's,
    /// through a proxy) if curl would otherwise resolve it, then hands the transfer to curl.
    private func startHop(_ transfer: HTTPTransfer) {
        let route = ProxyRoute.choose(for: transfer.currentURL, setting: configuration.proxy,
                                      bypassesProxy: transfer.bypassesProxy)
        let connectsTo: URLEndpoint?
        switch route {
        case .direct: connectsTo = URLEndpoint(url: transfer.currentURL)
        case .proxy(let proxy): connectsTo = proxy.endpoint
        case .unparsedProxy: connectsTo = nil
        }
        guard let endpoint = connectsTo, endpoint.isPlainName else {
            attachToCurl(transfer, route: route, resolveEntry: nil)
            return
        }
        resolver.resolve(endpoint.lookupName) { [weak self] result in
            // Cancelled (or the client gone) while resolving: nothing left to do.
            guard let self, self.active[transfer.id] === transfer, transfer.easy == nil else { return }
            switch result {
            case .success(let answer):
                self.attachToCurl(transfer, route: route, resolveEntry: endpoint.resolveEntry(answer.addresses))
            case .failure(let error):
                self.fail(transfer, .nameNotResolved(host: error.host, detail: error.detail))
            }
        }
    }

    /// Never called from inside a curl callback: failures complete at once.
    private func attachToCurl(_ transfer: HTTPTransfer, route: ProxyRoute, resolveEntry: String?) {
        guard transfer.remainingTime > .zero else {
            fail(transfer, .timedOut(after: transfer.totalTimeout))
            return
        }
        guard let handle = pool.take() else {
            fail(transfer, .curl(code: Int(CURLE_OUT_OF_MEMORY.rawValue), message: "cannot create a curl handle"))
            return
        }
        do {
            try transfer.attach(to: handle, userAgent: configuration.userAgent, route: route, resolveEntry: resolveEntry,
                                trustedCAFile: configuration.trustedCAFile,
                                trustedCADirectory: configuration.trustedCADirectory)
        } catch {
            pool.give(handle)
            fail(transfer, error.reason)
            return
        }
        let code = driver.add(handle.pointer)
        guard code == CURLM_OK else {
            _ = transfer.detach()
            pool.give(handle)
            fail(transfer, .curl(code: Int(code.rawValue), message: String(cString: curl_multi_strerror(code))))
            return
        }
    }

    /// Ends an active transfer that has no curl handle, frees its slot and reports `reason`
    /// (deferred: this may run inside `start`).
    private func fail(_ transfer: HTTPTransfer, _ reason: HTTPError.Reason) {
        _ = removeActive(transfer.id)
        completeSoon(transfer, reason)
        loop.executeSoon { [weak self] in self?.startQueued() }
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
        if let redirect = transfer.redirectTarget(for: code) {
            follow(transfer, to: redirect.url, status: redirect.status)
            return
        }
        let result = transfer.outcome(for: code, maxRedirects: configuration.maxRedirects)
        _ = removeActive(transfer.id)
        release(transfer)
        startQueued()
        transfer.completion(result)
    }

    /// The next hop of a redirect, on http or https, at most `maxRedirects` of them.
    private func follow(_ transfer: HTTPTransfer, to target: String, status: Int) {
        let failure: HTTPError.Reason?
        if transfer.redirectsFollowed >= max(0, configuration.maxRedirects) {
            failure = .tooManyRedirects(limit: configuration.maxRedirects)
        } else if URLEndpoint(url: target) == nil {
            failure = .protocolError("redirect to a URL other than http or https: \(ASCII.printable(target.utf8))")
        } else {
            failure = nil
        }
        release(transfer)
        if let failure {
            _ = removeActive(transfer.id)
            startQueued()
            transfer.completion(.failure(HTTPError(url: transfer.url, reason: failure)))
            return
        }
        let remaining = activeByOrigin[transfer.origin, default: 1] - 1
        activeByOrigin[transfer.origin] = remaining > 0 ? remaining : nil
        transfer.follow(redirectTo: target, status: status)
        activeByOrigin[transfer.origin, default: 0] += 1
        startHop(transfer)
    }

    private func abandon(easy: UnsafeMutableRawPointer, reason: HTTPError.Reason) {
        guard let transfer = activeTransfer(for: easy) else { return }
        _ = removeActive(transfer.id)
        release(transfer)
        startQueued()
        transfer.completion(.failure(HTTPError(url: transfer.url, reason: reason)))
    }
}
