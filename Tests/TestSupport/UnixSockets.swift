import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Unix stream sockets for tests: the leftovers and neighbours a listener must cope with.
public enum UnixSockets {
    /// A socket file nobody listens on, as a process that died leaves behind: bound, then
    /// closed without unlinking.
    public static func makeStale(at path: String) throws {
        let fd = try bound(at: path)
        Glibc.close(fd)
    }

    /// A listening socket at `path`; the caller closes the descriptor (the file stays).
    public static func listen(at path: String) throws -> Int32 {
        let fd = try bound(at: path)
        guard Glibc.listen(fd, 4) == 0 else {
            Glibc.close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        return fd
    }

    /// A connected (blocking) client socket, or nil when nothing answers at `path`.
    public static func connect(to path: String) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        let connected = withAddress(path) { Glibc.connect(fd, $0, $1) } == 0
        if connected { return fd }
        Glibc.close(fd)
        return nil
    }

    /// Sends `request` and reads until the peer closes (HAProxy's one-command mode).
    public static func exchange(_ path: String, _ request: String) -> String? {
        guard let fd = connect(to: path) else { return nil }
        defer { Glibc.close(fd) }
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else { return nil }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if got <= 0 { break }
            answer.append(contentsOf: buffer[..<got])
        }
        return String(decoding: answer, as: UTF8.self)
    }

    /// Whether something answers at `path` (the probe connection is closed at once).
    public static func accepts(_ path: String) -> Bool {
        guard let fd = connect(to: path) else { return false }
        Glibc.close(fd)
        return true
    }

    private static func bound(at path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        guard withAddress(path, { bind(fd, $0, $1) }) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
        return fd
    }

    /// `path` as a `sockaddr_un`, for bind or connect.
    static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        precondition(bytes.count < MemoryLayout.size(ofValue: address.sun_path), "socket path too long: \(path)")
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
