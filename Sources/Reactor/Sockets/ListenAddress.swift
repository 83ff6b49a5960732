/// Where a stream listener takes connections: an IP literal and a port, or a Unix socket
/// path in the file system.
public enum ListenAddress: Hashable, Sendable, CustomStringConvertible {
    /// `host` is an IP literal (v4 or v6, no name lookup); port 0 lets the kernel choose.
    case tcp(host: String, port: UInt16)
    /// A socket file; the path must fit `sockaddr_un` (107 bytes).
    case unix(FilePath)

    public init(host: String, port: UInt16) { self = .tcp(host: host, port: port) }

    /// `127.0.0.1:9100`, `[::1]:9100` or the socket path, for log lines and error subjects.
    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return path.description
        }
    }

    /// The port of a TCP address; nil for a Unix socket.
    public var port: UInt16? {
        if case .tcp(_, let port) = self { return port }
        return nil
    }
}
