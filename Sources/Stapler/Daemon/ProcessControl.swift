import Glibc
import Reactor

/// Process-level chores of a daemon: detaching from the terminal and the pid file.
enum ProcessControl {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The classic double-fork detach: the caller returns in a grandchild that is no session
    /// leader (so it can never reacquire a terminal), with stdio on /dev/null and cwd /.
    /// Must run before any thread or descriptor the daemon relies on is created.
    static func daemonize() throws(Failure) {
        switch fork() {
        case -1: throw Failure(description: "fork: \(String(cString: strerror(errno)))")
        case 0: break
        default: _exit(0)
        }
        guard setsid() >= 0 else { throw Failure(description: "setsid: \(String(cString: strerror(errno)))") }
        switch fork() {
        case -1: throw Failure(description: "fork: \(String(cString: strerror(errno)))")
        case 0: break
        default: _exit(0)
        }
        _ = chdir("/")
        umask(0o022)
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            for fd in Int32(0)...2 { dup2(null, fd) }
            if null > 2 { close(null) }
        }
    }

    /// Writes our pid, atomically so a reader never sees an empty file.
    static func writePidFile(_ path: FilePath) throws(FileError) {
        try FileSystem.writeAtomically(Array("\(getpid())\n".utf8), to: path, mode: 0o644)
    }

    /// Removes the pid file if it still names us (a successor may have taken it over).
    static func removePidFile(_ path: FilePath) {
        guard let bytes = try? FileSystem.readFile(path, limit: 64),
              String(decoding: bytes, as: UTF8.self).split(separator: "\n").first == "\(getpid())"[...] else { return }
        try? FileSystem.remove(path)
    }
}
