import Reactor

/// Hands each new staple to every HAProxy that serves its certificate: one client per stats
/// socket, each with its own queue, connection and backoff. One log line per push that ends
/// in something an operator should see, and one per change of a socket's health.
final class HAProxyFanOut {
    private let loop: EventLoop
    private let logger: Logger
    private let statistics: Statistics
    private var clients: [FilePath: HAProxySocketClient] = [:]
    /// Pushes sent and not answered yet, over every socket.
    private(set) var pendingPushes = 0
    /// Called each time a push ends (`--one-off` waits for the last).
    var onPushEnded: (() -> Void)?
    /// Called when a socket is answered by another HAProxy process than before (the first,
    /// or a restarted or reloaded one). Set before `configure` to have it watched.
    var onNewProcess: ((FilePath) -> Void)?

    init(loop: EventLoop, logger: Logger, statistics: Statistics) {
        self.loop = loop
        self.logger = logger
        self.statistics = statistics
    }

    /// Creates a client per socket and shuts down those no longer wanted. Clients that stay
    /// keep their queue and connection and take the new keepalive.
    func configure(sockets: [FilePath], keepalive: Duration) {
        let wanted = Set(sockets)
        for (socket, client) in clients where !wanted.contains(socket) {
            client.shutDown()
            clients[socket] = nil
        }
        for client in clients.values where client.configuration.keepalive != keepalive {
            client.setKeepalive(keepalive)
        }
        var configuration = HAProxySocketClient.Configuration()
        configuration.keepalive = keepalive
        configuration.watchesProcess = onNewProcess != nil
        for socket in sockets where clients[socket] == nil {
            let client = HAProxySocketClient(loop: loop, socket: socket, configuration: configuration) {
                [weak self] event in self?.handle(event)
            }
            clients[socket] = client
            client.startWatching()
        }
    }

    private func handle(_ event: HAProxyClientEvent) {
        switch event {
        case .connected(let socket):
            logger.info("HAProxy \(socket): connected")
        case .failed(let error, let retryIn):
            logger.error("\(error); retrying in \(retryIn.components.seconds) s")
        case .newProcess(let socket, let process):
            logger.info("HAProxy \(socket): process \(process.pid) answers; giving it every current staple")
            onNewProcess?(socket)
        }
    }

    /// Sends `staple` (DER) for the certificate at `path` to each of `sockets` this fan-out has.
    func push(_ staple: [UInt8], for path: FilePath, to sockets: [FilePath]) {
        for socket in sockets {
            guard let client = clients[socket] else { continue }
            pendingPushes += 1
            client.push(staple: staple, certificate: path) { [weak self] result in
                guard let self else { return }
                self.pendingPushes -= 1
                self.statistics.record(push: result)
                self.log(result, path: path, socket: socket)
                self.onPushEnded?()
            }
        }
    }

    /// Closes every connection; waiting pushes end as cancelled.
    func shutDown() {
        for client in clients.values { client.shutDown() }
    }

    private func log(_ result: HAProxyPushResult, path: FilePath, socket: FilePath) {
        switch result {
        case .updated, .installed:
            logger.info("\(path): staple pushed to HAProxy \(socket)" + (result == .installed ? " (new staple slot)" : ""))
        case .superseded, .cancelled:
            break
        case .rejected(let answer):
            logger.error("\(path): HAProxy \(socket) refused the staple: \(answer)")
        case .certificateNotServed:
            logger.warning("\(path): HAProxy \(socket) does not serve this certificate")
        case .stapleTooLarge(let limit):
            logger.error("\(path): staple too large for HAProxy \(socket) (limit \(limit) bytes)")
        case .queueFull(let limit):
            logger.error("\(path): HAProxy \(socket) has \(limit) staples waiting; dropped this one")
        }
    }
}
