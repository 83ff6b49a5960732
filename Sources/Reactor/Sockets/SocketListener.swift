import CEpoll
import Glibc

/// A non-blocking listening stream socket, TCP (on an IP literal and a port) or Unix (on a
/// path), driven by an `EventLoop`.
///
/// Every connection the kernel completed is handed over as a descriptor, non-blocking and
/// close-on-exec, which the handler then owns. The owner can pause accepting (to cap its
/// connections: further clients wait in the kernel's backlog instead of being turned away)
/// and resume later. A failed accept (out of descriptors, mostly) is reported and accepting
/// pauses for a moment: the pending connection stays readable, and retrying at once would
/// spin the loop.
///
/// A Unix socket file is created with `Configuration.unixSocketMode` (0660 by default,
/// whatever the umask), replaces only a stale socket file (one nobody answers on, left by a
/// process that died), and is removed on close.
public final class SocketListener {
    public enum Event {
        /// A new connection; the handler owns `fd` and must close it.
        case accepted(fd: Int32)
        /// accept(2) failed with something other than "nothing pending"; accepting resumes
        /// by itself after `Configuration.acceptRetryDelay`.
        case acceptFailed(SystemError)
    }

    public struct Configuration: Sendable {
        public var backlog: Int32
        /// Connections taken per readiness event, so a flood cannot starve other descriptors.
        public var maxAcceptsPerWakeup: Int
        public var acceptRetryDelay: Duration
        /// Who may connect to a Unix socket: owner and group by default.
        public var unixSocketMode: mode_t
        /// TCP only (TCP_DEFER_ACCEPT): the kernel hands a connection over once the client
        /// has sent something, or once about this long has passed (whole seconds, at least
        /// one). A client that connects and says nothing takes no descriptor meanwhile, and
        /// one that asks at once arrives with its request. nil: at the handshake.
        public var deferAcceptUntilData: Duration?

        public init(backlog: Int32 = 128, maxAcceptsPerWakeup: Int = 64, acceptRetryDelay: Duration = .milliseconds(100),
                    unixSocketMode: mode_t = 0o660, deferAcceptUntilData: Duration? = nil) {
            self.backlog = backlog
            self.maxAcceptsPerWakeup = maxAcceptsPerWakeup
            self.acceptRetryDelay = acceptRetryDelay
            self.unixSocketMode = unixSocketMode
            self.deferAcceptUntilData = deferAcceptUntilData
        }
    }

    /// The address listened on; for TCP port 0, with the port the kernel chose.
    public let address: ListenAddress
    public let configuration: Configuration
    /// The bound TCP port; 0 for a Unix socket.
    public var port: UInt16 { address.port ?? 0 }
    /// `127.0.0.1:9100`, `[::1]:9100` or the socket path, for log lines.
    public var addressDescription: String { address.description }

    private let loop: EventLoop
    private let handler: (Event) -> Void
    private var fd: Int32
    private var socketFile: UnixSocketFile?
    private var registration: IORegistration?
    private var pausedByOwner = false
    private var retryTimer: TimerHandle?

    /// Binds and listens. TCP sockets get SO_REUSEADDR, so a restart does not wait for
    /// TIME_WAIT. Throws with the failed call and the address as subject: `bind(127.0.0.1:80):
    /// Permission denied`, `bind(/run/x.sock): Address already in use` (a live socket there),
    /// `bind(/run/x.sock): File exists` (something that is no socket); a host that is no IP
    /// literal fails `inet_pton` with EINVAL.
    public init(loop: EventLoop, address: ListenAddress, configuration: Configuration = .init(),
                handler: @escaping (Event) -> Void) throws(SystemError) {
        self.loop = loop
        self.configuration = configuration
        self.handler = handler
        let subject = address.description
        let socketAddress = try SocketAddress(address)
        if case .unix(let path) = address {
            try UnixSocketFile.clearStale(at: path, address: socketAddress, subject: subject)
        }
        let flags = CEPOLL_SOCK_STREAM_NONBLOCK_CLOEXEC
        let socketFD = socket(socketAddress.family, flags, 0)
        guard socketFD >= 0 else { throw SystemError("socket", subject: subject) }
        if socketAddress.family != AF_UNIX {
            var one: Int32 = 1
            _ = setsockopt(socketFD, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if let delay = configuration.deferAcceptUntilData {
                // Best effort: without it connections arrive at the handshake, as they would anyway.
                var seconds = Int32(clamping: max(1, delay.components.seconds))
                _ = setsockopt(socketFD, Int32(IPPROTO_TCP), TCP_DEFER_ACCEPT, &seconds, socklen_t(MemoryLayout<Int32>.size))
            }
        }
        var file: UnixSocketFile?
        func fail(_ error: SystemError) -> SystemError {
            Glibc.close(socketFD)
            file?.remove()
            return error
        }
        guard socketAddress.withSockaddr({ bind(socketFD, $0, $1) }) == 0 else { throw fail(SystemError("bind", subject: subject)) }
        if case .unix(let path) = address {
            do throws(SystemError) {
                file = try UnixSocketFile.claim(path, mode: configuration.unixSocketMode, subject: subject)
            } catch {
                throw fail(error)
            }
        }
        guard listen(socketFD, configuration.backlog) == 0 else { throw fail(SystemError("listen", subject: subject)) }
        guard let boundPort = socketAddress.readBoundPort(of: socketFD) else {
            throw fail(SystemError("getsockname", subject: subject))
        }
        if case .tcp(let host, _) = address {
            self.address = .tcp(host: host, port: boundPort)
        } else {
            self.address = address
        }
        fd = socketFD
        socketFile = file
        do {
            registration = try loop.register(fd: socketFD, interest: .readable) { [weak self] _ in self?.acceptPending() }
        } catch {
            // deinit runs for the half-made listener: leave it nothing to close twice.
            fd = -1
            socketFile = nil
            throw fail(error)
        }
    }

    /// A TCP listener on `host` (an IP literal) and `port` (0: any free one, see `port`).
    public convenience init(loop: EventLoop, host: String, port: UInt16, configuration: Configuration = .init(),
                            handler: @escaping (Event) -> Void) throws(SystemError) {
        try self.init(loop: loop, address: .tcp(host: host, port: port), configuration: configuration, handler: handler)
    }

    deinit { close() }

    public var isClosed: Bool { fd < 0 }
    /// Whether readiness is being listened for (not closed, paused or backing off).
    public var isAccepting: Bool { fd >= 0 && !pausedByOwner && retryTimer == nil }

    /// Stops taking connections; clients queue in the backlog until `resumeAccepting()`.
    public func pauseAccepting() {
        pausedByOwner = true
        updateInterest()
    }

    public func resumeAccepting() {
        pausedByOwner = false
        updateInterest()
    }

    /// Stops listening (and removes a Unix socket file); connections still in the backlog
    /// are reset by the kernel. Safe to call more than once; no event follows.
    public func close() {
        guard fd >= 0 else { return }
        if let retryTimer { loop.cancel(retryTimer) }
        retryTimer = nil
        registration?.cancel()
        registration = nil
        Glibc.close(fd)
        fd = -1
        socketFile?.remove()
        socketFile = nil
    }

    // MARK: Accepting

    private func acceptPending() {
        var taken = 0
        while isAccepting && taken < configuration.maxAcceptsPerWakeup {
            let client = cepoll_accept4(fd)
            if client < 0 {
                let code = errno
                switch code {
                case EINTR, ECONNABORTED, EPROTO:
                    continue // that one gave up before we took it: try the next
                case EAGAIN, EWOULDBLOCK:
                    return
                default:
                    backOff()
                    handler(.acceptFailed(SystemError("accept", subject: addressDescription, errno: code)))
                    return
                }
            }
            taken += 1
            handler(.accepted(fd: client))
        }
    }

    private func backOff() {
        retryTimer = loop.schedule(after: configuration.acceptRetryDelay) { [weak self] in
            guard let self else { return }
            self.retryTimer = nil
            self.updateInterest()
        }
        updateInterest()
    }

    private func updateInterest() {
        guard let registration else { return }
        // Failing to change the interest leaves it as it was: at worst a paused listener
        // still accepts, which the owner's own cap then handles.
        try? registration.setInterest(isAccepting ? .readable : [])
    }
}
