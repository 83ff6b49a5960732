import Glibc
import Reactor

/// The `--metrics` endpoint: a small HTTP server on the daemon's loop, over TCP or a Unix
/// socket, answering `GET /metrics` with `Metrics.render` of the current state; any other
/// path is 404.
final class MetricsEndpoint {
    let address: MetricsAddress
    let server: SimpleHTTPServer
    /// When an accept failure was last logged: out of descriptors, the listener fails ten
    /// times a second, and one line a minute says enough.
    var lastFailureLogged: MonotonicInstant?

    init(address: MetricsAddress, server: SimpleHTTPServer) {
        self.address = address
        self.server = server
    }

    static let failureLogInterval: Duration = .seconds(60)
}

extension Daemon {
    /// Listens on `--metrics` if given (not for `--one-off`: nothing would be up long enough
    /// to scrape). A failure (address in use, not on this host) stops the start: the operator
    /// asked for metrics and would otherwise scrape nothing.
    func startMetrics() throws(SystemError) {
        guard metricsEndpoint == nil, !options.oneOff, let address = options.metricsAddress else { return }
        metricsEndpoint = try openMetricsEndpoint(address)
        logger.info("metrics: serving \(Self.metricsLocation(address))")
    }

    func stopMetrics() {
        metricsEndpoint?.server.close()
        metricsEndpoint = nil
    }

    /// After SIGHUP: follows a changed `--metrics`. A new address that cannot be bound is
    /// logged and the endpoint keeps serving where it was.
    func reconfigureMetrics() {
        let wanted = options.oneOff ? nil : options.metricsAddress
        guard wanted != metricsEndpoint?.address else { return }
        let previous = metricsEndpoint?.address
        guard let wanted else {
            stopMetrics()
            logger.info("metrics: endpoint closed")
            return
        }
        // On the same port the old socket would be in the new one's way (127.0.0.1:9100 to
        // 0.0.0.0:9100): it goes first, and comes back if the new one cannot be had. Socket
        // paths differ, or the address would not have changed.
        if let port = wanted.port, previous?.port == port { stopMetrics() }
        do {
            let fresh = try openMetricsEndpoint(wanted)
            stopMetrics()
            metricsEndpoint = fresh
            logger.info("metrics: serving \(Self.metricsLocation(wanted))")
        } catch {
            if metricsEndpoint == nil, let previous { metricsEndpoint = try? openMetricsEndpoint(previous) }
            logger.error("SIGHUP: \(error)" + (metricsEndpoint.map { "; metrics still served on \($0.address)" } ?? ""))
        }
    }

    private func openMetricsEndpoint(_ address: MetricsAddress) throws(SystemError) -> MetricsEndpoint {
        do {
            let server = try SimpleHTTPServer(loop: loop, address: address, onAcceptFailure: { [unowned self] error in
                self.metricsAcceptFailed(error, address: address)
            }, handler: { [unowned self] request in
                self.answerMetricsRequest(request)
            })
            return MetricsEndpoint(address: address, server: server)
        } catch {
            // `bind(--metrics 127.0.0.1:9100): Address already in use` names the option to fix;
            // so does `bind(--metrics /run/stapler/metrics.sock): File exists`.
            throw SystemError(error.call, subject: "--metrics \(address)", errno: error.errno)
        }
    }

    /// `http://127.0.0.1:9100/metrics`, or `/metrics on unix socket /run/stapler/metrics.sock`.
    static func metricsLocation(_ address: MetricsAddress) -> String {
        switch address {
        case .tcp: return "http://\(address)/metrics"
        case .unix(let path): return "/metrics on unix socket \(path)"
        }
    }

    private func metricsAcceptFailed(_ error: SystemError, address: MetricsAddress) {
        guard let endpoint = metricsEndpoint, endpoint.address == address else { return }
        let now = MonotonicInstant.now()
        if let last = endpoint.lastFailureLogged, now < last + MetricsEndpoint.failureLogInterval { return }
        endpoint.lastFailureLogged = now
        logger.error("metrics: cannot accept a connection on \(address): \(error)")
    }

    func answerMetricsRequest(_ request: SimpleHTTPServer.Request) -> SimpleHTTPServer.Response {
        guard request.path == "/metrics" else {
            return SimpleHTTPServer.Response(status: 404, text: "not found; metrics are at /metrics\n")
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            var response = SimpleHTTPServer.Response(status: 405, text: "GET or HEAD only\n")
            response.headers.append(("Allow", "GET, HEAD"))
            return response
        }
        return SimpleHTTPServer.Response(status: 200, headers: [("Content-Type", Metrics.contentType)], body: renderMetrics())
    }

    /// The exposition of the current state, from the fields the status table reads.
    func renderMetrics() -> [UInt8] {
        let process = Metrics.Process(fetchesRunning: activeFetches, fetchesQueued: queue.count,
                                      pushesPending: pendingPushes, startTime: ProcessStartTime.seconds,
                                      version: Usage.programVersion)
        return Metrics.render(certificates: certificates.values.map(Metrics.Certificate.init),
                              statistics: statistics, process: process)
    }
}

/// When this process started, as Unix time, read from /proc like Prometheus' own clients do:
/// right even when the endpoint is opened later by a SIGHUP.
enum ProcessStartTime {
    static let seconds: Int64 = read() ?? UTCTime.now()

    private static func read() -> Int64? {
        // Field 22 of /proc/self/stat is the start in clock ticks after boot; fields are
        // counted after the command name, which may itself hold spaces and parentheses.
        guard let stat = try? FileSystem.readFile("/proc/self/stat", limit: 64 << 10),
              let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 19, let ticks = Int64(String(decoding: fields[19], as: UTF8.self)) else { return nil }
        guard let procStat = try? FileSystem.readFile("/proc/stat", limit: 1 << 20) else { return nil }
        var bootTime: Int64?
        for line in procStat.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("btime ".utf8)) {
            bootTime = Int64(String(decoding: line.dropFirst(6), as: UTF8.self))
        }
        let ticksPerSecond = Int64(sysconf(Int32(_SC_CLK_TCK)))
        guard let bootTime, ticksPerSecond > 0 else { return nil }
        return bootTime + ticks / ticksPerSecond
    }
}
