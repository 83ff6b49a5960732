import Glibc

/// A failed system call: which call, on what, and the errno it left.
///
/// Carries enough context for one log line (`epoll_ctl(fd 7): Bad file descriptor`), so the
/// layers above never have to guess what went wrong or where.
public struct SystemError: Error, Equatable, CustomStringConvertible, Sendable {
    public let call: String
    public let subject: String?
    public let errno: Int32

    public init(_ call: String, subject: String? = nil, errno: Int32 = Glibc.errno) {
        self.call = call
        self.subject = subject
        self.errno = errno
    }

    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        if let subject { return "\(call)(\(subject)): \(reason)" }
        return "\(call): \(reason)"
    }
}

/// Retries a system call interrupted by a signal; any other failure becomes a `SystemError`.
@inline(__always)
func retryingOnInterrupt<T: BinaryInteger>(_ call: String, subject: @autoclosure () -> String? = nil,
                                           _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(call, subject: subject(), errno: code)
    }
}
