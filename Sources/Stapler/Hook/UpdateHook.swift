import Glibc
import Reactor

/// `--on-update COMMAND`: tells servers that read staple files only when they start or
/// reload (nginx's `ssl_stapling_file`, Apache, a sync to other hosts) that staples changed.
///
/// Changed staple paths are collected; the command runs once a burst is over (no change for
/// `settlingDelay`, or `maximumDelay` after the first change of a steady stream), never
/// sooner than `minimumInterval` after its previous start, and never twice at once: changes
/// that arrive while it runs wait for the next run. It gets the paths, one per line, on
/// standard input and in `STAPLER_UPDATED_STAPLES` (newline-separated; left out when the list
/// is longer than `environmentLimit`, which execve could refuse), their number in
/// `STAPLER_UPDATED_COUNT`. It runs without a shell (`CommandWords`), from the loop
/// (`ChildProcess`): stapling goes on meanwhile, and a command still running after `timeout`
/// (`--on-update-timeout`) is killed. A failed run is logged with its output and not
/// retried: the next change runs it again.
///
/// Confined, the daemon cannot exec: the command is then started by the launcher forked
/// before confinement (`HookLauncher`), which holds the command of start for good, so a
/// SIGHUP that changes it is refused while the rest of the settings apply.
final class UpdateHook {
    struct Settings: Equatable {
        /// argv; nil runs nothing.
        var command: [[UInt8]]?
        var minimumInterval: Duration
        var settlingDelay: Duration = UpdateHook.settlingDelay
        var maximumDelay: Duration = UpdateHook.maximumDelay
        var timeout: Duration
        var killGrace: Duration = UpdateHook.killGrace
        /// `--one-off`: collect only, and run once when `flush()` says the pass is over.
        var waitsForFlush = false
    }

    /// A batch of staple writes lands within milliseconds; a second of quiet means it is over.
    static let settlingDelay: Duration = .seconds(1)
    /// A stream of changes that never pauses for a second still runs the command this soon.
    static let maximumDelay: Duration = .seconds(10)
    /// From SIGTERM to SIGKILL.
    static let killGrace: Duration = .seconds(5)
    /// A single environment string may not exceed 128 KiB (MAX_ARG_STRLEN); half of it leaves
    /// room for the rest of the environment. Standard input always has the whole list.
    static let environmentLimit = 64 * 1024
    static let listVariable = "STAPLER_UPDATED_STAPLES"
    static let countVariable = "STAPLER_UPDATED_COUNT"
    /// How much of a failed run's output its log line shows.
    static let loggedOutputLimit = 512
    /// The most one run lists on standard input (about 100,000 paths of 160 bytes), which
    /// bounds what the launcher must take from the daemon; later paths wait for the next run.
    static let inputLimit = 16 * 1024 * 1024
    static let fixedCommandRefusal =
        "SIGHUP: restart Stapler to change --on-update: the command is fixed when the sandbox is set at start"

    /// Where runs start, chosen once at start.
    enum Launch {
        /// From the daemon itself: any command, changed by SIGHUP at will (no sandbox).
        case direct
        /// By the launcher forked before confinement, which runs its command and no other.
        case launcher(HookLauncher)
        /// Confined without a command at start: none can be added later.
        case none

        /// Without confinement the daemon starts commands itself; confined, a configured
        /// command gets its launcher, forked now (see `HookLauncher.start` for when).
        static func choose(command: [[UInt8]]?, confined: Bool) throws(SystemError) -> Launch {
            guard confined else { return .direct }
            guard let command else { return .none }
            return .launcher(try HookLauncher.start(command: command))
        }
    }

    private let loop: EventLoop
    private let logger: Logger
    private(set) var settings: Settings

    private var pending: [FilePath] = []
    private var pendingSet: Set<FilePath> = []
    private var firstChange: MonotonicInstant?
    private var lastChange: MonotonicInstant?
    private var lastStart: MonotonicInstant?
    private var timer: TimerHandle?
    private let runner: UpdateCommandRunner?
    /// The command SIGHUP cannot change, when confined (nil: none may be added).
    private let fixedCommand: [[UInt8]]??
    private var running = false
    /// The running command's pid, once its runner has said.
    private var runningPID: pid_t?
    /// `--one-off`: run what is pending now, without waiting for quiet or the interval.
    private var flushing = false
    private var stopped = false

    /// Runs started so far (spawn failures included).
    private(set) var runs = 0
    /// Whether the last run failed (could not start, exited non-zero, was killed).
    private(set) var lastRunFailed = false
    /// Called when nothing is pending and nothing runs any more (the end of `--one-off`).
    var onIdle: (() -> Void)?

    init(loop: EventLoop, logger: Logger, settings: Settings, launch: Launch = .direct) {
        self.loop = loop
        self.logger = logger
        self.settings = settings
        switch launch {
        case .direct:
            runner = DirectCommandRunner(loop: loop)
            fixedCommand = .none
        case .launcher(let launcher):
            precondition(settings.command == launcher.command, "the launcher runs the command of start")
            runner = LauncherCommandRunner(loop: loop, logger: logger, launcher: launcher)
            fixedCommand = .some(launcher.command)
        case .none:
            precondition(settings.command == nil, "a command needs a runner")
            runner = nil
            fixedCommand = .some(nil)
        }
    }

    var isIdle: Bool { !running && pending.isEmpty }
    var isRunning: Bool { running }

    /// SIGHUP. A run in progress finishes under the old settings; without a command, what
    /// was pending is forgotten. Confined, only the command of start can run: another is
    /// refused with one line and the one in force stays (removing it is allowed).
    func update(_ settings: Settings) {
        var settings = settings
        if case .some(let fixed) = fixedCommand, let wanted = settings.command, wanted != fixed {
            logger.warning(Self.fixedCommandRefusal)
            settings.command = self.settings.command
        }
        self.settings = settings
        if settings.command == nil {
            pending.removeAll()
            pendingSet.removeAll()
            firstChange = nil
            cancelTimer()
        } else {
            plan()
        }
    }

    /// A staple file was replaced with new content.
    func stapleChanged(_ path: FilePath) {
        guard settings.command != nil, !stopped else { return }
        // One path per line: a path with a line feed would read as two, one of them forged.
        guard !path.bytes.contains(UInt8(ascii: "\n")) else {
            logger.warning("\(path): on-update: not listed for the command: the path contains a line feed")
            return
        }
        let now = MonotonicInstant.now()
        lastChange = now
        if firstChange == nil { firstChange = now }
        if pendingSet.insert(path).inserted { pending.append(path) }
        // An armed timer re-plans when it fires: a burst of changes costs no timer churn.
        if timer == nil { plan() }
    }

    /// `--one-off` is done stapling: run now for what is pending; `onIdle` follows.
    func flush() {
        flushing = true
        if !running, !pending.isEmpty {
            cancelTimer()
            plan()
        }
    }

    /// The daemon stops: a running command gets SIGTERM (and is not waited for).
    func stop() {
        stopped = true
        cancelTimer()
        if running {
            logger.info("on-update: stopping; \(programName)" + (runningPID.map { " (pid \($0))" } ?? "") + " sent SIGTERM")
        }
        runner?.stop()
    }

    // MARK: Planning

    private func plan() {
        guard settings.command != nil, !running, !pending.isEmpty, !stopped, timer == nil,
              flushing || !settings.waitsForFlush else { return }
        let now = MonotonicInstant.now()
        let due = dueTime(now: now)
        if due <= now {
            start()
        } else {
            timer = loop.schedule(at: due) { [unowned self] in
                self.timer = nil
                self.plan()
            }
        }
    }

    private func dueTime(now: MonotonicInstant) -> MonotonicInstant {
        if flushing { return now }
        var due = min(lastChange! + settings.settlingDelay, firstChange! + settings.maximumDelay)
        if let lastStart { due = max(due, lastStart + settings.minimumInterval) }
        return due
    }

    private func cancelTimer() {
        if let timer { loop.cancel(timer) }
        timer = nil
    }

    // MARK: Running

    private var programName: String {
        LogText.sanitised(String(decoding: settings.command?.first ?? [], as: UTF8.self), limit: 200)
    }

    private func start() {
        guard let command = settings.command, let runner else { return }
        var list: [UInt8] = []
        var taken = 0
        for path in pending {
            guard taken == 0 || list.count + path.bytes.count + 1 <= Self.inputLimit else { break }
            list += path.bytes + [UInt8(ascii: "\n")]
            taken += 1
        }
        let count = taken
        for path in pending.prefix(count) { pendingSet.remove(path) }
        pending.removeFirst(count)
        if pending.isEmpty { firstChange = nil }
        lastStart = .now()
        runs += 1

        let shown = LogText.sanitised(String(decoding: CommandWords.quoted(command), as: UTF8.self), limit: 200)
        logger.info("on-update: running \(shown) for \(count) changed staple(s)")
        running = true
        runningPID = nil
        let run = UpdateCommandRun(command: command, staples: list, count: count, timeout: settings.timeout,
                                   killGrace: settings.killGrace)
        do throws(UpdateCommandError) {
            try runner.start(run) { [unowned self] event in
                guard !self.stopped else { return }
                switch event {
                case .started(let pid): self.runningPID = pid
                case .finished(let completion): self.finished(completion)
                case .failed(let error): self.failedToStart(error, count: count)
                }
            }
        } catch {
            failedToStart(error, count: count)
        }
    }

    private func failedToStart(_ error: UpdateCommandError, count: Int) {
        running = false
        runningPID = nil
        logger.error("on-update: \(LogText.singleLine(error.description)); \(count) changed staple(s) not announced")
        lastRunFailed = true
        afterRun()
    }

    private func finished(_ completion: ChildProcess.Completion) {
        running = false
        runningPID = nil
        lastRunFailed = !completion.succeeded
        let after = "after \(Self.seconds(completion.duration))"
        let output = Self.excerpt(completion)
        if completion.timedOut {
            logger.error("on-update: \(programName) did not finish within \(Self.seconds(settings.timeout)), "
                         + "\(completion.termination) \(after)" + (output.isEmpty ? "" : ": \(output)"))
        } else if completion.succeeded {
            logger.info("on-update: \(programName) exited 0 \(after)")
            if !output.isEmpty { logger.debug("on-update: \(programName) said: \(output)") }
        } else {
            logger.error("on-update: \(programName) \(completion.termination) \(after)" + (output.isEmpty ? "" : ": \(output)"))
        }
        afterRun()
    }

    /// Changes that came in meanwhile get their run; otherwise the hook is idle.
    private func afterRun() {
        if pending.isEmpty {
            flushing = false
            onIdle?()
        } else {
            plan()
        }
    }

    /// "0.12 s": hundredths are enough for a command's run time.
    static func seconds(_ duration: Duration) -> String {
        let hundredths = duration.components.seconds * 100 + duration.components.attoseconds / 10_000_000_000_000_000
        var text = "\(hundredths / 100).\(String(hundredths % 100 + 100).dropFirst())"
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text + " s"
    }

    /// The output on one line, cut short.
    static func excerpt(_ completion: ChildProcess.Completion) -> String {
        let kept = completion.output.prefix(loggedOutputLimit)
        var text = LogText.singleLine(String(decoding: kept, as: UTF8.self))
        while text.hasSuffix("\\n") { text.removeLast(2) }
        let more = completion.output.count - kept.count + completion.outputDropped
        return more > 0 ? text + " ... (\(more) more bytes)" : text
    }
}
