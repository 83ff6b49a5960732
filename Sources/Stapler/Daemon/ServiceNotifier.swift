import Glibc
import Reactor

/// systemd's readiness protocol (`Type=notify`, sd_notify(3)) without libsystemd: one
/// datagram of `NAME=value` lines to the unix socket named by `$NOTIFY_SOCKET`.
///
/// The socket is a path (`/run/systemd/notify`) or, with a leading `@`, a name in the
/// abstract namespace. Sends never block (the loop must not wait on systemd): a full socket
/// queue is an error like any other, and the caller logs it.
struct ServiceNotifier {
    enum State {
        /// Start-up done: certificates scanned, signals and the metrics endpoint in place.
        case ready
        /// SIGHUP: re-reading the configuration; `ready` follows when done.
        case reloading
        case stopping
    }

    /// The value of NOTIFY_SOCKET, as given.
    let socket: String

    /// Nil when the environment names no socket: not started by systemd as `Type=notify`.
    init?(environment: [String: String]) {
        guard let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty else { return nil }
        self.socket = socket
    }

    init(socket: String) { self.socket = socket }

    /// The datagram for `state`. READY names our pid: started with `--daemon`, the process
    /// systemd forked is gone by then.
    static func message(_ state: State, pid: Int32 = getpid(), monotonicMicroseconds: UInt64 = monotonicNow()) -> String {
        switch state {
        case .ready: return "READY=1\nMAINPID=\(pid)"
        // systemd's Type=notify-reload wants to know when the reload began.
        case .reloading: return "RELOADING=1\nMONOTONIC_USEC=\(monotonicMicroseconds)"
        case .stopping: return "STOPPING=1"
        }
    }

    func notify(_ state: State) throws(SystemError) {
        try send(Self.message(state))
    }

    /// Sends one datagram. Errors name the socket: `sendto(NOTIFY_SOCKET=/run/...): ...`.
    func send(_ message: String) throws(SystemError) {
        let subject = "NOTIFY_SOCKET=\(socket)"
        let address = try Self.address(of: socket)
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", subject: subject) }
        defer { close(fd) }
        let bytes = Array(message.utf8)
        while true {
            let sent = bytes.withUnsafeBytes { raw in
                address.withSockaddr {
                    sendto(fd, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), $0, $1)
                }
            }
            if sent >= 0 { return }
            if errno == EINTR { continue }
            throw SystemError("sendto", subject: subject)
        }
    }

    /// The address NOTIFY_SOCKET names: a path, or with a leading `@` a name in the abstract
    /// namespace.
    static func address(of socket: String) throws(SystemError) -> UnixSocketAddress {
        let name = Array(socket.utf8)
        let address: UnixSocketAddress?
        if name.first == UInt8(ascii: "@") {
            address = UnixSocketAddress(abstractName: Array(name.dropFirst()))
        } else {
            guard name.first == UInt8(ascii: "/") else {
                // vsock: and relative names are not for us.
                throw SystemError("NOTIFY_SOCKET", subject: socket, errno: EAFNOSUPPORT)
            }
            address = UnixSocketAddress(path: FilePath(bytes: name))
        }
        guard let address else { throw SystemError("NOTIFY_SOCKET", subject: socket, errno: ENAMETOOLONG) }
        return address
    }

    static func monotonicNow() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1_000
    }
}
