import Glibc

/// A `ListenAddress` as the kernel takes it: IPv4, IPv6 (from IP literals, no name lookup)
/// or a Unix socket path.
enum SocketAddress {
    case v4(sockaddr_in)
    case v6(sockaddr_in6)
    case unix(UnixSocketAddress)

    /// Throws with the address as subject: `inet_pton` (EINVAL) for a host that is no IP
    /// literal, `bind` (ENAMETOOLONG) for a socket path that does not fit.
    init(_ address: ListenAddress) throws(SystemError) {
        let subject = address.description
        switch address {
        case .tcp(let host, let port) where host.contains(":"):
            var storage = sockaddr_in6()
            storage.sin6_family = sa_family_t(AF_INET6)
            storage.sin6_port = port.bigEndian
            guard host.withCString({ inet_pton(AF_INET6, $0, &storage.sin6_addr) }) == 1 else {
                throw SystemError("inet_pton", subject: subject, errno: EINVAL)
            }
            self = .v6(storage)
        case .tcp(let host, let port):
            var storage = sockaddr_in()
            storage.sin_family = sa_family_t(AF_INET)
            storage.sin_port = port.bigEndian
            guard host.withCString({ inet_pton(AF_INET, $0, &storage.sin_addr) }) == 1 else {
                throw SystemError("inet_pton", subject: subject, errno: EINVAL)
            }
            self = .v4(storage)
        case .unix(let path):
            guard let unix = UnixSocketAddress(path: path) else {
                throw SystemError("bind", subject: subject, errno: path.bytes.contains(0) ? EINVAL : ENAMETOOLONG)
            }
            self = .unix(unix)
        }
    }

    var family: Int32 {
        switch self {
        case .v4: return AF_INET
        case .v6: return AF_INET6
        case .unix: return AF_UNIX
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch self {
        case .v4(var storage): return Self.withRebound(&storage, body)
        case .v6(var storage): return Self.withRebound(&storage, body)
        case .unix(let unix): return unix.withSockaddr(body)
        }
    }

    private static func withRebound<T, R>(_ storage: inout T, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<T>.size)) }
        }
    }

    /// The port a TCP socket ended up on (the kernel picks one for port 0); nil when it
    /// cannot be read, 0 for a Unix socket.
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
        case .unix:
            return 0
        }
    }
}
