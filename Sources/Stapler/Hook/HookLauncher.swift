import CEpoll
import Glibc
import Reactor

/// The `--on-update` launcher: a small process forked before the daemon confines itself,
/// which starts the command for it. Landlock and seccomp are inherited by every child, so a
/// command started by the confined daemon could neither exec nor read nginx's configuration
/// nor signal its master; the launcher was never confined.
///
/// It holds the command's argv from the fork on: the daemon can ask it for one thing only,
/// "run it now for these staples" (`LauncherRequest`), and it checks every byte of that. It
/// keeps nothing of the daemon but its end of a socketpair (no certificate has been opened,
/// no connection made, no thread started when it forks), dies with the daemon
/// (PR_SET_PDEATHSIG) and leaves when its socket reaches end of file, SIGTERMing a running
/// command on the way out as the daemon did. The signals an operator sends Stapler (SIGHUP,
/// SIGINT, SIGTERM, SIGUSR1, also sent to the whole group or cgroup) are the daemon's: the
/// launcher ignores them and follows the daemon through its socket.
///
/// This value is the daemon's view of it: its pid, the daemon's end, the command.
struct HookLauncher {
    let pid: pid_t
    /// The daemon's end of the socketpair (non-blocking, close-on-exec).
    let socket: Int32
    let command: [[UInt8]]

    /// What `ps` shows (/proc/PID/comm holds 15 bytes).
    static let processName = "stapler-hook"

    /// Forks the launcher. Call it single-threaded, before the event loop, libcurl or anything
    /// that opens a certificate: the child runs Swift code after the fork, and keeps none of
    /// what exists by then but its end of the socketpair.
    static func start(command: [[UInt8]]) throws(SystemError) -> HookLauncher {
        precondition(!command.isEmpty, "a launcher needs a command")
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, CEPOLL_SOCK_STREAM_NONBLOCK_CLOEXEC, 0, &ends) == 0 else {
            throw SystemError("socketpair")
        }
        let daemon = getpid()
        switch fork() {
        case -1:
            let error = SystemError("fork")
            for end in ends { close(end) }
            throw error
        case 0:
            close(ends[0])
            HookLauncherProcess.run(command: command, socket: ends[1], daemon: daemon)
        case let pid:
            close(ends[1])
            return HookLauncher(pid: pid, socket: ends[0], command: command)
        }
    }
}

/// The launcher's side, in the forked child. Never returns.
enum HookLauncherProcess {
    static func run(command: [[UInt8]], socket: Int32, daemon: pid_t) -> Never {
        // SIGKILL, not a signal it could handle: a launcher stuck anywhere still goes.
        _ = cepoll_set_parent_death_signal(SIGKILL)
        // The daemon died between the fork and the line above: no signal will come.
        if getppid() != daemon { _exit(0) }
        _ = cepoll_set_process_name(HookLauncher.processName)
        SignalSource.ignore([SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE])
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        pthread_sigmask(SIG_SETMASK, &noSignals, nil)
        let kept = keepOnly(socket)
        do {
            let launcher = try Launcher(command: command, socket: kept)
            try launcher.loop.run()
            _exit(launcher.exitStatus)
        } catch {
            _exit(1)
        }
    }

    /// Closes every descriptor but `socket` (log files, the start-up pipe of `-D`, whatever
    /// started Stapler left open) and puts /dev/null on the standard streams. Returns where
    /// the socket ended up: moved above 2 if it was among them.
    private static func keepOnly(_ socket: Int32) -> Int32 {
        var kept = socket
        if kept <= 2 {
            kept = fcntl(socket, F_DUPFD_CLOEXEC, 3)
            if kept < 0 { _exit(1) }
        }
        ProcessControl.closeInheritedDescriptors(keeping: kept)
        let null = open("/dev/null", O_RDWR)
        guard null >= 0 else { _exit(1) }
        for fd in Int32(0)...2 where fd != null { dup2(null, fd) }
        if null > 2 { close(null) }
        return kept
    }
}

/// The launcher's loop: one request at a time from the daemon, one command at a time.
private final class Launcher {
    let loop: EventLoop
    private let command: [[UInt8]]
    private var stream: UnixStream!
    private var decoder = FrameDecoder(limit: LauncherRequest.maximumFrame)
    private var child: ChildProcess?
    private var ending = false
    private(set) var exitStatus: Int32 = 0

    /// How long a refusal may take to leave before the launcher goes without it.
    private static let refusalDrainLimit: Duration = .seconds(1)
    private static let refusalDrainStep: Duration = .milliseconds(10)

    init(command: [[UInt8]], socket: Int32) throws {
        self.command = command
        loop = try EventLoop()
        // Reports are small and one run's worth at most is in flight; a daemon that stops
        // reading fills this and the launcher ends.
        let configuration = UnixStream.Configuration(maxQueuedBytes: 4 * LauncherReport.maximumFrame,
                                                     readChunkBytes: 64 * 1024)
        stream = try UnixStream(loop: loop, connected: socket, name: "on-update launcher",
                                configuration: configuration) { [unowned self] in self.handle($0) }
    }

    private func handle(_ event: UnixStream.Event) {
        switch event {
        case .connected:
            break
        case .received(let bytes):
            guard !ending else { return }
            decoder.append(bytes)
            takeRequests()
        case .closed:
            // The daemon stopped (or died): so does the command, as it did when the daemon
            // started it itself.
            end(status: 0)
        }
    }

    private func takeRequests() {
        while !ending {
            let request: LauncherRequest?
            do {
                request = try decoder.nextMessage(LauncherRequest.decode)
            } catch {
                return refuse(error.description)
            }
            guard let request else { return }
            guard child == nil else { return refuse("a run request while the command still runs") }
            run(request)
        }
    }

    private func run(_ request: LauncherRequest) {
        // Checked by decode; counted again here rather than trusted from the daemon.
        guard let count = try? LauncherRequest.stapleCount(request.staples) else { return refuse("bad staple list") }
        let settings = ChildProcess.Settings(arguments: command,
                                             environment: UpdateCommandRun.environment(staples: request.staples, count: count),
                                             input: request.staples, timeout: request.timeout, killGrace: request.killGrace)
        do {
            let started = try ChildProcess(loop: loop, settings: settings) { [unowned self] completion in
                self.child = nil
                self.send(.finished(completion))
            }
            child = started
            send(.started(pid: started.pid))
        } catch {
            send(.spawnFailed(call: error.call, errno: error.errno))
        }
    }

    private func send(_ report: LauncherReport) {
        guard !ending else { return }
        do {
            try stream.write(FrameDecoder.frame(report.encoded()))
        } catch {
            end(status: 1)
        }
    }

    /// The daemon sent something no healthy daemon sends: say why, then end.
    private func refuse(_ reason: String) {
        send(.refused(reason: reason))
        ending = true
        exitStatus = 1
        child?.terminate()
        let deadline = MonotonicInstant.now() + Self.refusalDrainLimit
        func waitForDrain() {
            if stream.isClosed || stream.queuedBytes == 0 || MonotonicInstant.now() >= deadline { return end(status: 1) }
            loop.schedule(after: Self.refusalDrainStep) { waitForDrain() }
        }
        waitForDrain()
    }

    private func end(status: Int32) {
        child?.terminate()
        child = nil
        stream.close()
        if exitStatus == 0 { exitStatus = status }
        loop.stop()
    }
}
