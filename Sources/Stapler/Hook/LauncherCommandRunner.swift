import CEpoll
import Glibc
import Reactor

/// Starts the command through the launcher forked before confinement (`HookLauncher`): the
/// daemon's side of the socketpair. The launcher's reports are decoded as untrusted bytes;
/// one that is malformed or out of turn ends the launcher (SIGKILL), since a launcher that
/// says what it was not asked cannot be told what it runs. Once the launcher is gone, every
/// run fails at once with a line that says to restart Stapler: a confined daemon cannot
/// fork a new, unconfined one.
final class LauncherCommandRunner: UpdateCommandRunner {
    private let loop: EventLoop
    private let logger: Logger
    private let launcher: HookLauncher
    private var stream: UnixStream?
    private var decoder = FrameDecoder(limit: LauncherReport.maximumFrame)
    /// The run in progress: who hears of it, and whether the launcher said it started.
    private var report: ((UpdateCommandEvent) -> Void)?
    private var started = false
    private var goneReason: String?
    private var stopped = false
    private var pidFD: Int32 = -1
    private var exitWatch: IORegistration?
    /// How long the end of the launcher's socket waits for its exit status.
    private static let exitStatusWait: Duration = .seconds(1)

    init(loop: EventLoop, logger: Logger, launcher: HookLauncher) {
        self.loop = loop
        self.logger = logger
        self.launcher = launcher
        do {
            // Room for the largest request: one run's list of staples.
            let configuration = UnixStream.Configuration(maxQueuedBytes: FrameDecoder.headerSize + LauncherRequest.maximumFrame)
            stream = try UnixStream(loop: loop, connected: launcher.socket, name: "on-update launcher",
                                    configuration: configuration) { [unowned self] in self.handle($0) }
        } catch {
            gone(error.reasonDescription)
        }
        watchExit()
    }

    deinit {
        exitWatch?.cancel()
        if pidFD >= 0 { close(pidFD) }
    }

    func start(_ run: UpdateCommandRun, report: @escaping (UpdateCommandEvent) -> Void) throws(UpdateCommandError) {
        precondition(run.command == launcher.command, "the launcher runs the command it was forked with")
        precondition(self.report == nil, "one run at a time")
        guard let stream, goneReason == nil else { throw .launcherGone(pid: launcher.pid, reason: goneReason ?? "its connection closed") }
        let request = LauncherRequest(staples: run.staples,
                                      timeout: run.timeout.clamped(to: LauncherRequest.timeoutRange),
                                      killGrace: run.killGrace.clamped(to: LauncherRequest.killGraceRange))
        do {
            try stream.write(FrameDecoder.frame(request.encoded()))
        } catch {
            let reason = error.reasonDescription
            gone(reason)
            throw .launcherGone(pid: launcher.pid, reason: reason)
        }
        self.report = report
        started = false
    }

    /// Closing our end is the word: the launcher SIGTERMs a running command and exits.
    func stop() {
        stopped = true
        report = nil
        stream?.close()
        stream = nil
    }

    // MARK: Reports

    private func handle(_ event: UnixStream.Event) {
        switch event {
        case .connected:
            break
        case .received(let bytes):
            decoder.append(bytes)
            takeReports()
        case .closed(let error):
            stream = nil
            let reason = decoder.pendingBytes > 0 ? LauncherProtocolError.cutShort(pendingBytes: decoder.pendingBytes).description
                                                  : error.reasonDescription
            // Its exit status says more than the end of its socket, and follows within
            // moments: wait a little for it.
            guard exitWatch != nil else { return gone(reason) }
            loop.schedule(after: Self.exitStatusWait) { [weak self] in self?.gone(reason) }
        }
    }

    private func takeReports() {
        while goneReason == nil {
            let received: LauncherReport?
            do {
                received = try decoder.nextMessage(LauncherReport.decode)
            } catch {
                return misbehaved(error.description)
            }
            guard let received else { return }
            take(received)
        }
    }

    private func take(_ received: LauncherReport) {
        switch received {
        case .started(let pid) where report != nil && !started:
            started = true
            report?(.started(pid: pid))
        case .spawnFailed(let call, let errno) where report != nil && !started:
            finish(.failed(.spawn(ChildProcess.SpawnError(program: launcher.command[0], call: call, errno: errno))))
        case .finished(let completion) where started:
            finish(.finished(completion))
        case .refused(let reason):
            gone("it refused the daemon's request: \(reason)")
        case .started, .spawnFailed, .finished:
            misbehaved("a report out of turn")
        }
    }

    private func finish(_ event: UpdateCommandEvent) {
        let handler = report
        report = nil
        started = false
        handler?(event)
    }

    // MARK: The launcher's end

    private func misbehaved(_ reason: String) {
        // Landlock's signal scoping (ABI 6+) refuses this kill: the launcher was forked
        // before the sandbox. Closing the socket in `gone` ends it then, on end of file.
        _ = kill(launcher.pid, SIGKILL)
        gone(reason)
    }

    /// No run can start from now on. A run in progress fails with the reason; without one,
    /// the reason gets a line of its own.
    private func gone(_ reason: String) {
        guard goneReason == nil else { return }
        goneReason = reason
        stream?.close()
        stream = nil
        guard !stopped else { return }
        if report != nil {
            finish(.failed(.launcherGone(pid: launcher.pid, reason: reason)))
        } else {
            logger.error("on-update: \(UpdateCommandError.launcherGone(pid: launcher.pid, reason: reason))")
        }
    }

    /// Reaps the launcher when it exits, so no zombie is left behind.
    private func watchExit() {
        pidFD = cepoll_pidfd_open(launcher.pid)
        guard pidFD >= 0 else { return }
        exitWatch = try? loop.register(fd: pidFD, interest: .readable) { [unowned self] _ in
            var status: Int32 = 0
            guard waitpid(self.launcher.pid, &status, WNOHANG) != 0 else { return }
            self.exitWatch?.cancel()
            self.exitWatch = nil
            close(self.pidFD)
            self.pidFD = -1
            let termination: ChildProcess.Termination = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
            self.gone((status & 0x7f == 0 ? "it " : "it was ") + "\(termination)")
        }
    }
}

private extension Duration {
    func clamped(to range: ClosedRange<Duration>) -> Duration { min(max(self, range.lowerBound), range.upperBound) }
}
