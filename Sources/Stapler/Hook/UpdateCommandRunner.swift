import Glibc
import Reactor

/// How `UpdateHook` starts its command: from the daemon itself (`DirectCommandRunner`,
/// without the sandbox), or through the launcher forked before confinement
/// (`LauncherCommandRunner`). The hook keeps the batching, the interval and the log lines;
/// a runner only starts one run at a time and reports how it goes.
protocol UpdateCommandRunner: AnyObject {
    /// Starts one run. `report` then gets `.started` and `.finished`, or `.failed` (a run that
    /// could not start, or whose launcher went away), from the loop, never from inside this
    /// call. A failure known at once is thrown instead, and nothing is reported.
    func start(_ run: UpdateCommandRun, report: @escaping (UpdateCommandEvent) -> Void) throws(UpdateCommandError)

    /// The daemon stops: a running command gets SIGTERM and is not waited for. Nothing more
    /// is reported.
    func stop()
}

/// One run of the `--on-update` command.
struct UpdateCommandRun {
    /// argv.
    var command: [[UInt8]]
    /// The changed staples, each followed by a line feed: the command's standard input.
    var staples: [UInt8]
    var count: Int
    var timeout: Duration
    var killGrace: Duration

    /// What the command finds in its environment on top of Stapler's: the number of staples,
    /// and the list itself unless longer than `UpdateHook.environmentLimit`. Both runners
    /// build it here, the launcher from a list it has checked.
    static func environment(staples: [UInt8], count: Int) -> [[UInt8]] {
        var environment = [Array("\(UpdateHook.countVariable)=\(count)".utf8)]
        if staples.count <= UpdateHook.environmentLimit {
            environment.append(Array("\(UpdateHook.listVariable)=".utf8) + staples.dropLast())
        }
        return environment
    }
}

enum UpdateCommandEvent {
    case started(pid: pid_t)
    case finished(ChildProcess.Completion)
    case failed(UpdateCommandError)
}

/// Why a run did not start, or did not end with an exit status.
enum UpdateCommandError: Error, CustomStringConvertible {
    /// The program could not be started (`cannot run "ngnix": No such file or directory`).
    case spawn(ChildProcess.SpawnError)
    /// The launcher is gone (or was given up on): no command can run until Stapler restarts.
    case launcherGone(pid: pid_t, reason: String)

    var description: String {
        switch self {
        case .spawn(let error): "\(error)"
        case .launcherGone(let pid, let reason):
            "the launcher (pid \(pid)) is gone (\(reason)): restart Stapler to run the command again"
        }
    }
}

/// Starts the command from this process: without the sandbox, where the daemon may exec.
final class DirectCommandRunner: UpdateCommandRunner {
    private let loop: EventLoop
    private var running: ChildProcess?

    init(loop: EventLoop) {
        self.loop = loop
    }

    func start(_ run: UpdateCommandRun, report: @escaping (UpdateCommandEvent) -> Void) throws(UpdateCommandError) {
        let settings = ChildProcess.Settings(arguments: run.command,
                                             environment: UpdateCommandRun.environment(staples: run.staples, count: run.count),
                                             input: run.staples, timeout: run.timeout, killGrace: run.killGrace)
        let child: ChildProcess
        do {
            child = try ChildProcess(loop: loop, settings: settings) { [unowned self] completion in
                self.running = nil
                report(.finished(completion))
            }
        } catch {
            throw .spawn(error)
        }
        running = child
        loop.executeSoon { report(.started(pid: child.pid)) }
    }

    func stop() {
        running?.terminate()
        running = nil
    }
}
