import CEpoll
import Glibc

/// The file system side of a listening Unix socket: making room at the path before bind,
/// the mode after it, and removing the file on close while it is still ours.
struct UnixSocketFile {
    let path: FilePath
    /// Which file bind created: on close, a file another process put there since is left alone.
    private let device: UInt64
    private let inode: UInt64

    /// Makes room for bind at `path`. Nothing there is fine. A socket nobody answers on
    /// (left behind by a process that died without cleaning up) is removed. A socket
    /// someone answers on fails as `bind` with EADDRINUSE; anything else there (a file, a
    /// directory, a symlink) as `bind` with EEXIST: it is never replaced.
    static func clearStale(at path: FilePath, address: SocketAddress, subject: String) throws(SystemError) {
        var status = stat()
        if path.withCString({ lstat($0, &status) }) != 0 {
            if errno == ENOENT { return }
            throw SystemError("lstat", subject: subject)
        }
        guard status.st_mode & S_IFMT == S_IFSOCK else { throw SystemError("bind", subject: subject, errno: EEXIST) }
        switch probe(address) {
        case .answered:
            throw SystemError("bind", subject: subject, errno: EADDRINUSE)
        case .refused:
            if path.withCString({ unlink($0) }) != 0 && errno != ENOENT { throw SystemError("unlink", subject: subject) }
        case .failed(let error):
            throw SystemError(error.call, subject: subject, errno: error.errno)
        }
    }

    private enum ProbeResult { case answered, refused, failed(SystemError) }

    /// Whether a listener is behind the socket file. Non-blocking, so a live listener with
    /// a full backlog (EAGAIN) counts as answering instead of holding up the caller.
    private static func probe(_ address: SocketAddress) -> ProbeResult {
        let flags = CEPOLL_SOCK_STREAM_NONBLOCK_CLOEXEC
        let fd = socket(AF_UNIX, flags, 0)
        guard fd >= 0 else { return .failed(SystemError("socket")) }
        defer { close(fd) }
        while true {
            if address.withSockaddr({ connect(fd, $0, $1) }) == 0 { return .answered }
            switch errno {
            case EINTR: continue
            case EAGAIN, EINPROGRESS: return .answered
            case ECONNREFUSED: return .refused
            default: return .failed(SystemError("connect"))
            }
        }
    }

    /// Right after bind: gives the file `mode` (the umask shaped the one bind chose) and
    /// remembers it as ours. Called before listen, so nobody connects meanwhile.
    static func claim(_ path: FilePath, mode: mode_t, subject: String) throws(SystemError) -> UnixSocketFile {
        func failed(_ call: String) -> SystemError {
            let error = SystemError(call, subject: subject)
            _ = path.withCString { unlink($0) } // bind just made it: no one else's file
            return error
        }
        guard path.withCString({ chmod($0, mode) }) == 0 else { throw failed("chmod") }
        var status = stat()
        guard path.withCString({ lstat($0, &status) }) == 0 else { throw failed("lstat") }
        return UnixSocketFile(path: path, device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// Removes the socket file if it is still the one bound. Best effort: a file that
    /// cannot be removed is cleared as stale by the next start.
    func remove() {
        var status = stat()
        guard path.withCString({ lstat($0, &status) }) == 0,
              UInt64(status.st_dev) == device, UInt64(status.st_ino) == inode else { return }
        _ = path.withCString { unlink($0) }
    }
}
