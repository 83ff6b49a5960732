import Glibc
import Reactor

/// Process-level chores of a daemon: detaching from the terminal and the pid file.
enum ProcessControl {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The classic double-fork detach: the caller returns in a grandchild that is no session
    /// leader (so it can never reacquire a terminal), with stdin and stdout on /dev/null and
    /// cwd /. Must run before any thread or descriptor the daemon relies on is created.
    ///
    /// The command that was started does not exit at once: it waits until the daemon calls
    /// `StartReport.started()` (its pid file written, its signals and watches in place) and
    /// exits 0, or exits 1 if the daemon dies before. Init scripts and systemd's
    /// `Type=forking` read the pid file as soon as that command returns, and an operator
    /// learns of a failed start from the exit status. Until then the daemon's stderr is
    /// still the command's, so start-up errors reach the terminal.
    static func daemonize() throws(Failure) -> StartReport {
        var channel: [Int32] = [-1, -1]
        guard pipe(&channel) == 0 else { throw Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        switch fork() {
        case -1: throw Failure(description: "fork: \(String(cString: strerror(errno)))")
        case 0: close(channel[0])
        default:
            close(channel[1])
            _exit(waitForStart(channel[0]))
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
            for fd in Int32(0)...1 { dup2(null, fd) }
            if null > 2 { close(null) }
        }
        closeInheritedDescriptors(keeping: channel[1])
        return StartReport(channel: channel[1])
    }

    /// The detached daemon's word to the command that started it.
    struct StartReport {
        fileprivate let channel: Int32

        /// Start-up is complete: the waiting command exits 0, and stderr goes to /dev/null.
        func started() {
            var byte: UInt8 = 0
            _ = write(channel, &byte, 1)
            close(channel)
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 {
                dup2(null, 2)
                if null > 2 { close(null) }
            }
        }
    }

    /// In the command that was started: waits for the daemon's word. End of file without it
    /// means the daemon exited during start-up.
    private static func waitForStart(_ channel: Int32) -> Int32 {
        var byte: UInt8 = 1
        while true {
            let got = read(channel, &byte, 1)
            if got < 0 && errno == EINTR { continue }
            if got == 1 && byte == 0 { return 0 }
            standardError("stapler: the daemon stopped during start-up; see its log, or run it without -D")
            return 1
        }
    }

    /// Closes every descriptor above stderr but `kept`. Whatever started us may have left
    /// some open (a pipe or socket it reads to learn when we exit, as a supervisor or a test
    /// harness does); a detached daemon that keeps them makes its launcher look like it never
    /// ends.
    static func closeInheritedDescriptors(keeping kept: Int32) {
        var open: [Int32] = []
        if let entries = try? FileSystem.listDirectory("/proc/self/fd") {
            // The listing's own descriptor is among them; it is closed by then, so closing
            // it again only fails with EBADF.
            open = entries.compactMap { $0.name.string.flatMap { Int32($0) } }
        } else {
            let limit = sysconf(Int32(_SC_OPEN_MAX))
            open = Array(3..<Int32(clamping: limit > 0 ? min(limit, 65536) : 1024))
        }
        for fd in open where fd > 2 && fd != kept { close(fd) }
    }

    /// Writes our pid, atomically so a reader never sees an empty file.
    static func writePidFile(_ path: FilePath) throws(FileError) {
        try FileSystem.writeAtomically(Array("\(getpid())\n".utf8), to: path, mode: 0o644)
    }

    /// Removes the pid file if it still names us (a successor may have taken it over).
    static func removePidFile(_ path: FilePath) {
        guard let bytes = try? FileSystem.readFile(path, limit: 64), pidFile(bytes, names: getpid()) else { return }
        try? FileSystem.remove(path)
    }

    /// Whether a pid file's text names `pid` on its first line.
    static func pidFile(_ bytes: [UInt8], names pid: pid_t) -> Bool {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").first == "\(pid)"[...]
    }
}
