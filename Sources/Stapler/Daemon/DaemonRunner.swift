import Glibc
import Reactor

/// Runs the daemon for `stapler [options]`: the order of start-up steps matters and lives here.
enum DaemonRunner {
    static func run(options: Options, arguments: [String], environment: [String: String]) -> Int32 {
        // Detach before anything creates a thread or a descriptor the daemon keeps.
        var startReport: ProcessControl.StartReport?
        if options.daemonize && !options.oneOff {
            do {
                startReport = try ProcessControl.daemonize()
            } catch {
                standardError("stapler: cannot daemonize: \(error)")
                return 1
            }
        }
        // SIGPIPE: a write to a closed HAProxy socket fails with EPIPE instead of killing us.
        // SIGXFSZ: under a file-size limit a staple write fails with EFBIG (and is retried)
        // instead of killing the daemon.
        SignalSource.ignore([SIGPIPE, SIGXFSZ])
        // SIGCHLD: the default (ignored, but children stay zombies until reaped), never
        // SIG_IGN, even if whatever started us set it: with SIG_IGN the kernel reaps the
        // --on-update command itself and waitpid can no longer report its exit status. The
        // child's pidfd tells the loop when to reap it, so no SIGCHLD handler is needed.
        SignalSource.restoreDefault([SIGCHLD])
        let logger: Logger
        do {
            logger = try Logger(verbosity: options.verbosity, toStandardOutput: !options.quiet && !options.daemonize,
                                standardOutputIsJournal: JournalStream.isStandardOutput(environment: environment),
                                directory: options.logDirectory, syslog: options.syslog)
        } catch {
            standardError("stapler: \(error)")
            return 2
        }
        // Confined, the daemon cannot exec: the --on-update command is started by a launcher
        // forked here, still single-threaded, before anything opens a certificate.
        let hookLaunch: UpdateHook.Launch
        do {
            hookLaunch = try UpdateHook.Launch.choose(command: options.onUpdateCommand, confined: options.sandbox)
        } catch {
            logger.critical("cannot start the on-update launcher: \(error)")
            return 1
        }
        if case .launcher(let launcher) = hookLaunch {
            logger.info("on-update: commands start from the launcher, pid \(launcher.pid), forked before confinement")
        }
        do {
            // curl_global_init must run before any thread exists.
            try HTTPClient.globalInit()
            let loop = try EventLoop()
            let daemon = try Daemon(options: options, loop: loop, logger: logger,
                                    hookLaunch: hookLaunch) { () throws(ConfigurationError) -> Options in
                guard case .run(let fresh) = try ConfigurationLoader.load(arguments: arguments, environment: environment) else {
                    throw ConfigurationError.invalidSettings("the configuration no longer describes a daemon run")
                }
                return fresh
            }
            if let pidFile = options.pidFile { try ProcessControl.writePidFile(pidFile) }
            defer { if let pidFile = options.pidFile { ProcessControl.removePidFile(pidFile) } }
            daemon.serviceNotifier = ServiceNotifier(environment: environment)
            // Confined from here on: after everything opened once at start (the log, curl, the
            // pid file; the --on-update launcher is forked before all of them) and before the
            // first certificate is read in daemon.start().
            daemon.sandbox = confine(options: options, environment: environment, logger: logger)
            daemon.sandboxConfined()
            try daemon.start()
            startReport?.started()
            daemon.notifyService(.ready)
            try loop.run()
            daemon.notifyService(.stopping)
            return daemon.exitStatus
        } catch {
            logger.critical("cannot run: \(error)")
            return 1
        }
    }

    /// Applies the sandbox the options ask for; one info line saying what is in force, or one
    /// warning when the kernel refused part of it (the daemon runs on either way).
    private static func confine(options: Options, environment: [String: String], logger: Logger) -> Sandbox? {
        let sandbox = Sandbox.confine(SandboxPlan(options: options, environment: environment))
        if sandbox.isComplete { logger.info(sandbox.summary) } else { logger.warning(sandbox.summary) }
        for notice in sandbox.notices { logger.warning(notice) }
        return options.sandbox ? sandbox : nil
    }
}
