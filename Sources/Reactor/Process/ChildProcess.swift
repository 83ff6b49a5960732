import CEpoll
import Glibc

/// A program started from the loop and watched by it, so that running it never blocks the
/// loop: posix_spawn, its exit seen through a pidfd on the epoll set, its output read from a
/// non-blocking pipe, its input written to another as it takes it, and a timeout after which
/// its process group gets SIGTERM, then SIGKILL.
///
/// The child inherits nothing but standard input (a pipe holding `input`), standard output
/// and standard error (one pipe, read by us), and this process's environment plus
/// `environment`: every other descriptor is closed in the child, whatever its close-on-exec
/// flag (libcurl's sockets, say, are opened without it). Signal dispositions and the signal
/// mask are reset to the defaults (the daemon blocks SIGTERM for its signalfd and ignores
/// SIGPIPE; a child inheriting either would survive our SIGTERM or misbehave in a pipeline).
/// The child leads a process group of its own, so the timeout also reaches what it started
/// (`sh -c 'sleep 100'`).
///
/// Needs Linux 5.3 (pidfd_open), and SIGCHLD not ignored: with SIG_IGN the kernel reaps
/// children itself and their exit status is lost (`Termination.unknown`).
public final class ChildProcess {
    public struct Settings: Sendable {
        /// argv; the first word is looked up on PATH unless it contains a slash. Bytes,
        /// since operators' paths need not be UTF-8. Never empty.
        public var arguments: [[UInt8]]
        /// `NAME=value` entries set on top of this process's own environment; one replaces
        /// a variable of the same name.
        public var environment: [[UInt8]]
        /// Written to the child's standard input, then closed. What the child does not read
        /// before it exits or closes its end is dropped.
        public var input: [UInt8]
        /// How much of standard output and standard error (together, in order) is kept; the
        /// rest is read and counted, so a chatty child never blocks on a full pipe.
        public var outputLimit: Int
        /// From the spawn to SIGTERM.
        public var timeout: Duration
        /// From SIGTERM to SIGKILL.
        public var killGrace: Duration

        public init(arguments: [[UInt8]], environment: [[UInt8]] = [], input: [UInt8] = [],
                    outputLimit: Int = ChildProcess.defaultOutputLimit, timeout: Duration,
                    killGrace: Duration = .seconds(5)) {
            self.arguments = arguments
            self.environment = environment
            self.input = input
            self.outputLimit = outputLimit
            self.timeout = timeout
            self.killGrace = killGrace
        }
    }

    /// Enough for the first lines of an error message; a log line shows no more anyway.
    public static let defaultOutputLimit = 4096

    public enum Termination: Equatable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)
        /// waitpid could not tell: SIGCHLD was ignored, and the kernel reaped the child.
        case unknown

        public var description: String {
            switch self {
            case .exited(let status): return "exited \(status)"
            case .signalled(let signal):
                return "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
            case .unknown: return "ended (exit status unknown: SIGCHLD is ignored)"
            }
        }
    }

    /// How a run ended, with what it printed.
    public struct Completion: Sendable {
        public let termination: Termination
        /// The timeout passed and the child's process group was sent SIGTERM (and SIGKILL
        /// after the grace if it was still there).
        public let timedOut: Bool
        /// Standard output and standard error, the first `outputLimit` bytes.
        public let output: [UInt8]
        /// Output bytes beyond the limit, read and dropped.
        public let outputDropped: Int
        /// Input bytes the child never took.
        public let inputUnread: Int
        public let duration: Duration

        /// For a completion reported by another process (the `--on-update` launcher).
        public init(termination: Termination, timedOut: Bool, output: [UInt8], outputDropped: Int, inputUnread: Int,
                    duration: Duration) {
            self.termination = termination
            self.timedOut = timedOut
            self.output = output
            self.outputDropped = outputDropped
            self.inputUnread = inputUnread
            self.duration = duration
        }

        public var succeeded: Bool { termination == .exited(0) && !timedOut }
    }

    /// A program that could not be started: which, the failed call and its errno
    /// (`cannot run "ngnix": No such file or directory`).
    public struct SpawnError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The program as given, printable (control bytes escaped).
        public let program: String
        public let call: String
        public let errno: Int32

        /// For a failure reported by another process (the `--on-update` launcher): the
        /// program as the argv word it was given.
        public init(program: [UInt8], call: String, errno: Int32) {
            self.init(program: ChildProcess.printable(program), call: call, errno: errno)
        }

        init(program: String, call: String, errno: Int32) {
            self.program = program
            self.call = call
            self.errno = errno
        }

        public var description: String {
            "cannot run \"\(program)\": " + (call == "posix_spawn" ? "" : "\(call): ") + String(cString: strerror(errno))
        }
    }

    public let pid: pid_t
    public private(set) var isRunning = true

    private let loop: EventLoop
    private let settings: Settings
    private let started: MonotonicInstant
    private var onExit: ((Completion) -> Void)?

    private var pidFD: Int32
    private var exitWatch: IORegistration?
    private var outputFD: Int32
    private var outputWatch: IORegistration?
    private var inputFD: Int32
    private var inputWatch: IORegistration?
    private var inputOffset = 0

    private var output: [UInt8] = []
    private var outputDropped = 0
    private var timeoutTimer: TimerHandle?
    private var killTimer: TimerHandle?
    private var timedOut = false

    /// How much is read from the output pipe per call: a pipe holds 64 KiB by default.
    private static let readChunk = 16 * 1024

    /// Starts the program; `onExit` runs on the loop once it has exited and been reaped.
    public init(loop: EventLoop, settings: Settings,
                onExit: @escaping (Completion) -> Void) throws(SpawnError) {
        precondition(!settings.arguments.isEmpty, "a child process needs a program")
        // A C string ends at its first NUL: such an argument cannot be passed as given.
        if settings.arguments.contains(where: { $0.contains(0) }) || settings.environment.contains(where: { $0.contains(0) }) {
            throw SpawnError(program: Self.printable(settings.arguments[0]), call: "posix_spawn", errno: EINVAL)
        }
        self.loop = loop
        self.settings = settings
        self.onExit = onExit
        let program = Self.printable(settings.arguments[0])
        func failure(_ call: String, _ code: Int32 = Glibc.errno) -> SpawnError {
            SpawnError(program: program, call: call, errno: code)
        }

        // Our ends are non-blocking; the child's ends stay blocking (the flag belongs to the
        // open file, so it must be set on our ends only, after pipe2).
        let stdinPipe = try Self.pipe(failure)
        let outputPipe: (read: Int32, write: Int32)
        do {
            outputPipe = try Self.pipe(failure)
        } catch {
            close(stdinPipe.read)
            close(stdinPipe.write)
            throw error
        }
        func closePipes() {
            for fd in [stdinPipe.read, stdinPipe.write, outputPipe.read, outputPipe.write] { close(fd) }
        }
        _ = fcntl(stdinPipe.write, F_SETFL, fcntl(stdinPipe.write, F_GETFL) | O_NONBLOCK)
        _ = fcntl(outputPipe.read, F_SETFL, fcntl(outputPipe.read, F_GETFL) | O_NONBLOCK)

        let spawned: pid_t
        do {
            spawned = try Self.spawn(settings, stdin: stdinPipe.read, output: outputPipe.write, failure)
        } catch {
            closePipes()
            throw error
        }
        close(stdinPipe.read)
        close(outputPipe.write)
        pid = spawned
        started = .now()
        inputFD = stdinPipe.write
        outputFD = outputPipe.read

        // The child cannot be reaped by anyone but us, so its pid stays valid (a zombie at
        // worst) until waitpid below: pidfd_open cannot race with its exit.
        pidFD = cepoll_pidfd_open(spawned)
        if pidFD < 0 {
            let code = Glibc.errno
            _ = kill(-spawned, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(spawned, &status, 0)
            close(inputFD)
            close(outputFD)
            inputFD = -1
            outputFD = -1
            throw failure("pidfd_open", code)
        }
        do {
            exitWatch = try loop.register(fd: pidFD, interest: .readable) { [unowned self] _ in self.reap() }
            outputWatch = try loop.register(fd: outputFD, interest: .readable) { [unowned self] _ in self.readOutput() }
            if settings.input.isEmpty {
                closeInput()
            } else {
                inputWatch = try loop.register(fd: inputFD, interest: .writable) { [unowned self] _ in self.writeInput() }
            }
        } catch {
            exitWatch?.cancel()
            outputWatch?.cancel()
            inputWatch?.cancel()
            _ = kill(-spawned, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(spawned, &status, 0)
            for fd in [pidFD, inputFD, outputFD] where fd >= 0 { close(fd) }
            (pidFD, inputFD, outputFD) = (-1, -1, -1)
            throw failure(error.call, error.errno)
        }
        timeoutTimer = loop.schedule(after: settings.timeout) { [unowned self] in
            self.timeoutTimer = nil
            self.timedOut = true
            self.terminate()
        }
    }

    deinit {
        // An owner that drops a running child leaves it running; its descriptors go.
        for watch in [exitWatch, outputWatch, inputWatch] { watch?.cancel() }
        for fd in [pidFD, inputFD, outputFD] where fd >= 0 { close(fd) }
        if let timeoutTimer { loop.cancel(timeoutTimer) }
        if let killTimer { loop.cancel(killTimer) }
    }

    /// SIGTERM to the child's process group now, SIGKILL after the grace. The completion
    /// still comes, through the loop, once the child has exited.
    public func terminate() {
        guard isRunning, killTimer == nil else { return }
        signalGroup(SIGTERM)
        killTimer = loop.schedule(after: settings.killGrace) { [unowned self] in
            self.killTimer = nil
            self.signalGroup(SIGKILL)
        }
    }

    /// Until the child is reaped its pid cannot be reused, so signalling it is safe. A child
    /// that left its group (setsid) is signalled alone.
    private func signalGroup(_ signal: Int32) {
        guard isRunning else { return }
        if kill(-pid, signal) != 0 { _ = kill(pid, signal) }
    }

    // MARK: Spawning

    private static func pipe(_ failure: (String, Int32) -> SpawnError) throws(SpawnError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard cepoll_pipe2(&fds, O_CLOEXEC) == 0 else { throw failure("pipe2", errno) }
        // Started with a standard stream closed, we could be handed 0, 1 or 2 here, which
        // the spawn's dup2s onto 0, 1 and 2 would overwrite: move such an end above them.
        for index in 0..<2 where fds[index] <= 2 {
            let moved = fcntl(fds[index], F_DUPFD_CLOEXEC, 3)
            let code = errno
            close(fds[index])
            fds[index] = moved
            if moved < 0 {
                for fd in fds where fd >= 0 { close(fd) }
                throw failure("fcntl(F_DUPFD_CLOEXEC)", code)
            }
        }
        return (fds[0], fds[1])
    }

    private static func spawn(_ settings: Settings, stdin: Int32, output: Int32,
                              _ failure: (String, Int32) -> SpawnError) throws(SpawnError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Both pipes sit above 2 (`pipe`), so no dup2 here overwrites one a later one needs.
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
        // Nothing else crosses: HAProxy sockets, metrics connections, curl's sockets.
        var code = cepoll_spawn_file_actions_addclosefrom(&actions, 3)
        guard code == 0 else { throw failure("posix_spawn_file_actions_addclosefrom_np", code) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = CStringArray(settings.arguments)
        let envp = CStringArray(mergedEnvironment(settings.environment))
        var pid: pid_t = 0
        // glibc reports a failed exec (ENOENT, EACCES, ENOEXEC...) as posix_spawnp's result.
        code = posix_spawnp(&pid, argv.pointers[0]!, &actions, &attributes, argv.pointers, envp.pointers)
        guard code == 0 else { throw failure("posix_spawn", code) }
        return pid
    }

    /// This process's environment with `additions` on top.
    private static func mergedEnvironment(_ additions: [[UInt8]]) -> [[UInt8]] {
        func name(_ entry: [UInt8]) -> ArraySlice<UInt8> { entry.prefix(while: { $0 != UInt8(ascii: "=") }) }
        let replaced = Set(additions.map { Array(name($0)) })
        var result: [[UInt8]] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(entry).assumingMemoryBound(to: UInt8.self),
                                                  count: strlen(entry)))
            if !replaced.contains(Array(name(bytes))) { result.append(bytes) }
            cursor += 1
        }
        return result + additions
    }

    static func printable(_ bytes: [UInt8]) -> String {
        var result: [UInt8] = []
        for byte in bytes {
            if byte < 0x20 || byte == 0x7f || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                ASCII.appendEscape(byte, to: &result)
            } else {
                result.append(byte)
            }
        }
        return String(decoding: result, as: UTF8.self)
    }

    // MARK: Input

    private func writeInput() {
        while inputOffset < settings.input.count {
            let written = Self.writeWithoutSIGPIPE(inputFD, settings.input, from: inputOffset)
            if written > 0 {
                inputOffset += written
                continue
            }
            if written < 0 && (errno == EAGAIN || errno == EINTR) { return } // wait for room
            break // EPIPE: the child closed its end or exited; what is left is dropped
        }
        closeInput()
    }

    private func closeInput() { Self.closeWatched(&inputFD, &inputWatch) }

    /// Cancels the watch before closing, so the number is never reused under it.
    private static func closeWatched(_ fd: inout Int32, _ watch: inout IORegistration?) {
        watch?.cancel()
        watch = nil
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    /// A write to a pipe whose reader is gone raises SIGPIPE, which would kill a process
    /// that does not ignore it (a test runner, a library user). Blocked for the write, the
    /// signal stays pending instead, and is taken back before unblocking.
    private static func writeWithoutSIGPIPE(_ fd: Int32, _ bytes: [UInt8], from offset: Int) -> Int {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previous)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        let code = errno
        if written < 0 && code == EPIPE && sigismember(&previous, SIGPIPE) == 0 {
            var immediately = timespec()
            _ = sigtimedwait(&pipeSignal, nil, &immediately)
        }
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        errno = code
        return written
    }

    // MARK: Output

    private func readOutput() {
        guard outputFD >= 0 else { return }
        var chunk = [UInt8](repeating: 0, count: Self.readChunk)
        while true {
            let got = chunk.withUnsafeMutableBytes { read(outputFD, $0.baseAddress!, $0.count) }
            if got > 0 {
                let room = max(0, settings.outputLimit - output.count)
                output.append(contentsOf: chunk[0..<min(room, got)])
                outputDropped += got - min(room, got)
                continue
            }
            if got < 0 && errno == EINTR { continue }
            if got < 0 && errno == EAGAIN { return }
            break // end of file (every writer gone) or an error: nothing more will come
        }
        closeOutput()
    }

    private func closeOutput() { Self.closeWatched(&outputFD, &outputWatch) }

    // MARK: Exit

    private func reap() {
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == 0 { return } // not yet: the pidfd stays readable until it has exited
        let termination: Termination
        if reaped < 0 {
            termination = .unknown
        } else if status & 0x7f == 0 {
            // Linux's wait status: WIFEXITED is a zero low 7 bits, WEXITSTATUS the next byte.
            termination = .exited((status >> 8) & 0xff)
        } else {
            termination = .signalled(status & 0x7f)
        }
        isRunning = false
        // What it wrote before it exited is in the pipe: take it now. A grandchild that
        // still holds the pipe does not hold up the completion.
        readOutput()
        closeOutput()
        let inputUnread = settings.input.count - inputOffset
        closeInput()
        Self.closeWatched(&pidFD, &exitWatch)
        if let timeoutTimer { loop.cancel(timeoutTimer) }
        if let killTimer { loop.cancel(killTimer) }
        timeoutTimer = nil
        killTimer = nil
        let completion = Completion(termination: termination, timedOut: timedOut, output: output,
                                    outputDropped: outputDropped, inputUnread: inputUnread,
                                    duration: MonotonicInstant.now().duration(since: started))
        let handler = onExit
        onExit = nil
        handler?(completion)
    }
}

/// A NULL-terminated array of C strings, freed with the value.
private final class CStringArray {
    let pointers: [UnsafeMutablePointer<CChar>?]

    init(_ items: [[UInt8]]) {
        pointers = items.map { item in
            let copy = UnsafeMutablePointer<CChar>.allocate(capacity: item.count + 1)
            item.withUnsafeBytes { raw in
                UnsafeMutableRawPointer(copy).copyMemory(from: raw.baseAddress ?? UnsafeRawPointer(copy), byteCount: item.count)
            }
            copy[item.count] = 0
            return copy
        } + [nil]
    }

    deinit {
        for pointer in pointers { pointer?.deallocate() }
    }
}
