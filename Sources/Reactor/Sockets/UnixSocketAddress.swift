import Glibc

/// A `sockaddr_un` and its length, built in one place for listening, connecting and sending
/// datagrams. A path must leave room for the terminating NUL; an abstract name (first byte
/// NUL, as `@name` in NOTIFY_SOCKET) has none, and its length says where it ends.
public struct UnixSocketAddress {
    /// `sun_path` holds 108 bytes on Linux, the terminating NUL of a path included.
    public static let maxPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    private var storage = sockaddr_un()
    private let length: socklen_t

    /// Nil when the name does not fit, is empty, or a path holds a NUL (it would name
    /// another file).
    public init?(path: FilePath) {
        guard !path.bytes.isEmpty, path.bytes.count <= Self.maxPathLength, !path.bytes.contains(0) else { return nil }
        self.init(name: path.bytes, terminated: true)
    }

    /// An abstract socket name, without the leading NUL.
    public init?(abstractName: [UInt8]) {
        // The leading NUL takes the place a path's terminating NUL would.
        guard abstractName.count <= Self.maxPathLength else { return nil }
        self.init(name: [0] + abstractName, terminated: false)
    }

    private init(name: [UInt8], terminated: Bool) {
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { $0.copyBytes(from: name) }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        length = socklen_t(pathOffset + name.count + (terminated ? 1 : 0))
    }

    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
