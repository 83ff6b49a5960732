import CEpoll
import Glibc

/// A non-blocking listening TCP socket on an IP literal (v4 or v6) and a port, driven by an
/// `EventLoop`.
///
/// Every connection the kernel completed is handed over as a descriptor, non-blocking and
/// close-on-exec, which the handler then owns. The owner can pause accepting (to cap its
/// connections: further clients wait in the kernel's backlog instead of being turned away)
/// and resume later. A failed accept (out of descriptors, mostly) is reported and accepting
/// pauses for a moment: the pending connection stays readable, and retrying at once would
/// spin the loop.
public final class TCPListener {
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

        public init(backlog: Int32 = 128, maxAcceptsPerWakeup: Int = 64, acceptRetryDelay: Duration = .milliseconds(100)) {
            self.backlog = backlog
            self.maxAcceptsPerWakeup = maxAcceptsPerWakeup
            self.acceptRetryDelay = acceptRetryDelay
        }
    }

    /// The address as given, e.g. `127.0.0.1` or `::1`.
    public let host: String
    /// The bound port: the one asked for, or the kernel's choice when that was 0.
    public let port: UInt16
    public let configuration: Configuration
    /// `127.0.0.1:9100` or `[::1]:9100`, for log lines.
    public var addressDescription: String { Self.describe(host: host, port: port) }

    private let loop: EventLoop
    private let handler: (Event) -> Void
    private var fd: Int32
    private var registration: IORegistration?
    private var pausedByOwner = false
    private var retryTimer: TimerHandle?

    /// Binds and listens (with SO_REUSEADDR, so a restart does not wait for TIME_WAIT).
    /// Throws with the failed call and the address as subject: `bind(127.0.0.1:80): Permission
    /// denied`; a host that is no IP literal fails `inet_pton` with EINVAL.
    public init(loop: EventLoop, host: String, port: UInt16, configuration: Configuration = .init(),
                handler: @escaping (Event) -> Void) throws(SystemError) {
        self.loop = loop
        self.host = host
        self.configuration = configuration
        self.handler = handler
        let subject = Self.describe(host: host, port: port)
        let address = try SocketAddress(host: host, port: port, subject: subject)
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let socketFD = socket(address.family, flags, 0)
        guard socketFD >= 0 else { throw SystemError("socket", subject: subject) }
        var one: Int32 = 1
        _ = setsockopt(socketFD, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockaddr { bind(socketFD, $0, $1) }
        guard bound == 0, listen(socketFD, configuration.backlog) == 0 else {
            let error = SystemError(bound == 0 ? "listen" : "bind", subject: subject)
            Glibc.close(socketFD)
            throw error
        }
        guard let boundPort = address.readBoundPort(of: socketFD) else {
            let error = SystemError("getsockname", subject: subject)
            Glibc.close(socketFD)
            throw error
        }
        self.port = boundPort
        fd = socketFD
        do {
            registration = try loop.register(fd: socketFD, interest: .readable) { [weak self] _ in self?.acceptPending() }
        } catch {
            Glibc.close(socketFD)
            fd = -1
            throw error
        }
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

    /// Stops listening; connections still in the backlog are reset by the kernel. Safe to
    /// call more than once; no event follows.
    public func close() {
        guard fd >= 0 else { return }
        if let retryTimer { loop.cancel(retryTimer) }
        retryTimer = nil
        registration?.cancel()
        registration = nil
        Glibc.close(fd)
        fd = -1
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

    static func describe(host: String, port: UInt16) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// An IPv4 or IPv6 socket address built from an IP literal (no name lookup).
private enum SocketAddress {
    case v4(sockaddr_in)
    case v6(sockaddr_in6)

    init(host: String, port: UInt16, subject: String) throws(SystemError) {
        if host.contains(":") {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard host.withCString({ inet_pton(AF_INET6, $0, &address.sin6_addr) }) == 1 else {
                throw SystemError("inet_pton", subject: subject, errno: EINVAL)
            }
            self = .v6(address)
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            guard host.withCString({ inet_pton(AF_INET, $0, &address.sin_addr) }) == 1 else {
                throw SystemError("inet_pton", subject: subject, errno: EINVAL)
            }
            self = .v4(address)
        }
    }

    var family: Int32 {
        switch self {
        case .v4: return AF_INET
        case .v6: return AF_INET6
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch self {
        case .v4(var address):
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(var address):
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    /// The port the socket ended up on (the kernel picks one for port 0).
    func readBoundPort(of fd: Int32) -> UInt16? {
        switch self {
        case .v4:
            var bound = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let result = withUnsafeMutablePointer(to: &bound) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            return result == 0 ? UInt16(bigEndian: bound.sin_port) : nil
        case .v6:
            var bound = sockaddr_in6()
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            let result = withUnsafeMutablePointer(to: &bound) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            return result == 0 ? UInt16(bigEndian: bound.sin6_port) : nil
        }
    }
}
