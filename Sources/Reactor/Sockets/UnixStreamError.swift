import Glibc

/// Why a unix stream socket could not connect or stopped working, with the socket's path,
/// ready for one log line (`unix socket /run/haproxy/admin.sock: connection refused`).
public struct UnixStreamError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Reason: Equatable, Sendable {
        /// The path does not fit in `sockaddr_un.sun_path` (limit excludes the NUL).
        case pathTooLong(limit: Int)
        /// ENOENT: nothing at that path (the server is not running, or the path is wrong).
        case missing
        /// ECONNREFUSED on a socket file: nothing listens (a stale socket left behind).
        case refused
        /// EACCES/EPERM: the socket or a directory on the way is not ours to use.
        case permissionDenied
        /// The path exists but is something else, such as a regular file.
        case notASocket
        /// The peer closed the connection (EOF, EPIPE, ECONNRESET).
        case closedByPeer
        case timedOut(TimeoutKind, after: Duration)
        /// `write` would have queued more than the configured limit.
        case writeQueueFull(limit: Int)
        /// `write` on a stream that is closed.
        case notConnected
        case system(call: String, errno: Int32)
    }

    public enum TimeoutKind: Equatable, Sendable {
        case connect
        /// No data arrived for the read timeout (see `UnixStream.setReadTimeout`).
        case read
    }

    public let path: FilePath
    public let reason: Reason

    public init(path: FilePath, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "unix socket \(path): \(reasonDescription)" }

    public var reasonDescription: String {
        switch reason {
        case .pathTooLong(let limit): return "path longer than the \(limit)-byte limit of a unix socket address"
        case .missing: return "no such file (is the server running?)"
        case .refused: return "connection refused (nothing listens on this socket)"
        case .permissionDenied: return "permission denied"
        case .notASocket: return "not a socket"
        case .closedByPeer: return "connection closed by peer"
        case .timedOut(.connect, let after): return "connect timed out after \(after)"
        case .timedOut(.read, let after): return "no answer within \(after)"
        case .writeQueueFull(let limit): return "write queue full (limit \(limit) bytes)"
        case .notConnected: return "not connected"
        case .system(let call, let code): return "\(call): \(String(cString: strerror(code)))"
        }
    }
}

extension UnixStreamError.Reason {
    /// Names a failed connect. Linux answers ECONNREFUSED both for a socket nobody listens
    /// on and for a path that is not a socket at all, so the path is looked at to tell them
    /// apart.
    static func connectFailure(errno code: Int32, path: FilePath) -> Self {
        switch code {
        case ENOENT, ENOTDIR: return .missing
        case EACCES, EPERM: return .permissionDenied
        case ENOTSOCK: return .notASocket
        case ECONNREFUSED:
            if let status = try? FileSystem.status(path), status.mode & S_IFMT != S_IFSOCK { return .notASocket }
            return .refused
        default: return .system(call: "connect", errno: code)
        }
    }

    /// Names a failure of an established connection (read, send, SO_ERROR).
    static func transferFailure(errno code: Int32, call: String) -> Self {
        switch code {
        case EPIPE, ECONNRESET: return .closedByPeer
        default: return .system(call: call, errno: code)
        }
    }
}
