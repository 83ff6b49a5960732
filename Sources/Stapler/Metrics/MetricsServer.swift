import Reactor

/// The `--metrics` endpoint: a small HTTP server on the daemon's loop, over TCP or a Unix
/// socket, answering `GET /metrics` with what `render` gives; any other path is 404.
final class MetricsServer {
    private let loop: EventLoop
    private let logger: Logger
    private let render: () -> [UInt8]
    private var address: MetricsAddress?
    private var server: SimpleHTTPServer?
    /// When an accept failure was last logged: out of descriptors, the listener fails ten
    /// times a second, and one line a minute says enough.
    private var lastFailureLogged: MonotonicInstant?

    static let failureLogInterval: Duration = .seconds(60)

    init(loop: EventLoop, logger: Logger, render: @escaping () -> [UInt8]) {
        self.loop = loop
        self.logger = logger
        self.render = render
    }

    /// Listens at start. A failure (address in use, not on this host) stops the start: the
    /// operator asked for metrics and would otherwise scrape nothing.
    func start(at wanted: MetricsAddress?) throws(SystemError) {
        guard server == nil, let wanted else { return }
        server = try open(wanted)
        address = wanted
        logger.info("metrics: serving \(Self.location(wanted))")
    }

    /// After SIGHUP: follows a changed address. A new address that cannot be bound is logged
    /// and the endpoint keeps serving where it was.
    func move(to wanted: MetricsAddress?) {
        guard wanted != address else { return }
        let previous = address
        guard let wanted else {
            close()
            logger.info("metrics: endpoint closed")
            return
        }
        // On the same port the old socket would be in the new one's way (127.0.0.1:9100 to
        // 0.0.0.0:9100): it goes first, and comes back if the new one cannot be had. Socket
        // paths differ, or the address would not have changed.
        if let port = wanted.port, previous?.port == port { close() }
        do {
            let fresh = try open(wanted)
            close()
            server = fresh
            address = wanted
            logger.info("metrics: serving \(Self.location(wanted))")
        } catch {
            if server == nil, let previous, let reopened = try? open(previous) {
                server = reopened
                address = previous
            }
            logger.error("SIGHUP: \(error)" + (address.map { "; metrics still served on \($0)" } ?? ""))
        }
    }

    func close() {
        server?.close()
        server = nil
        address = nil
    }

    private func open(_ address: MetricsAddress) throws(SystemError) -> SimpleHTTPServer {
        do {
            return try SimpleHTTPServer(loop: loop, address: address, onAcceptFailure: { [weak self] error in
                self?.acceptFailed(error, address: address)
            }, handler: { [weak self] request in
                self?.answer(request) ?? SimpleHTTPServer.Response(status: 503, text: "stopping\n")
            })
        } catch {
            // `bind(--metrics 127.0.0.1:9100): Address already in use` names the option to fix;
            // so does `bind(--metrics /run/stapler/metrics.sock): File exists`.
            throw SystemError(error.call, subject: "--metrics \(address)", errno: error.errno)
        }
    }

    /// `http://127.0.0.1:9100/metrics`, or `/metrics on unix socket /run/stapler/metrics.sock`.
    static func location(_ address: MetricsAddress) -> String {
        switch address {
        case .tcp: return "http://\(address)/metrics"
        case .unix(let path): return "/metrics on unix socket \(path)"
        }
    }

    private func acceptFailed(_ error: SystemError, address: MetricsAddress) {
        guard self.address == address else { return }
        let now = MonotonicInstant.now()
        if let last = lastFailureLogged, now < last + Self.failureLogInterval { return }
        lastFailureLogged = now
        logger.error("metrics: cannot accept a connection on \(address): \(error)")
    }

    private func answer(_ request: SimpleHTTPServer.Request) -> SimpleHTTPServer.Response {
        guard request.path == "/metrics" else {
            return SimpleHTTPServer.Response(status: 404, text: "not found; metrics are at /metrics\n")
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            var response = SimpleHTTPServer.Response(status: 405, text: "GET or HEAD only\n")
            response.headers.append(("Allow", "GET, HEAD"))
            return response
        }
        return SimpleHTTPServer.Response(status: 200, headers: [("Content-Type", Metrics.contentType)], body: render())
    }
}
