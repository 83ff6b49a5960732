import Glibc
import Reactor

/// The running daemon: certificates found on disk, their refreshes, HAProxy pushes, file
/// system events and signals, all on one event loop.
///
/// Decisions live in plain values elsewhere (discovery rules, the refresh policy, the
/// verifier, the HAProxy protocol); this class holds the state and does the I/O. Its work is
/// split by concern over `Daemon+*.swift`.
final class Daemon {
    private(set) var options: Options
    let loop: EventLoop
    let logger: Logger
    let http: HTTPClient
    let issuers = IssuerStore()
    /// Re-reads the configuration (SIGHUP); nil when there is nothing to re-read.
    private let reloadOptions: (() throws(ConfigurationError) -> Options)?

    var certificates: [FilePath: TrackedCertificate] = [:]
    var queue = FetchQueue<TrackedCertificate>()
    var activeFetches = 0
    var pumpScheduled = false
    /// Responder URL → origin, for grouping the queue (see `responderOrigin(of:)`).
    var responderOrigins: [String: String] = [:]
    var haproxy: [FilePath: HAProxySocketClient] = [:]
    var pendingPushes = 0
    /// Verified staples are written in batches: one disk flush for many files.
    let stapleWriter: BatchedFileWriter
    /// Staples written but not yet committed to disk (`--one-off` waits for them).
    var pendingWrites = 0

    var watcher: DirectoryWatcher?
    var watches: [WatchDescriptor: FilePath] = [:]
    var watchedDirectories: [FilePath: (watch: WatchDescriptor, location: Int)] = [:]
    var parentWatches = ParentWatches()
    var pendingChanges = FileSystemChanges()
    var changeTimer: TimerHandle?
    var rescanTimer: TimerHandle?
    /// Unreadable paths, with the reason last logged, so each is reported once per change.
    var reportedProblems: [FilePath: String] = [:]
    private var signals: SignalSource?
    /// The `--metrics` HTTP endpoint (Daemon+Metrics.swift).
    var metricsEndpoint: MetricsEndpoint?
    /// Where to tell systemd about start, reload and stop (Daemon+ServiceNotifier.swift).
    var serviceNotifier: ServiceNotifier?

    var random = SystemRandomNumberGenerator()
    let statistics = Statistics()
    private(set) var isStopping = false
    /// The process exit status once `run` returns.
    private(set) var exitStatus: Int32 = 0
    var oneOffDeadline: TimerHandle?

    /// Coalescing window for file system events: long enough to gather an editor's save or a
    /// copy of many files into one pass, short enough that a new certificate is stapled
    /// within a second.
    static let changeDelay: Duration = .milliseconds(100)
    /// How long `--one-off` waits for HAProxy to take the staples before giving up on it.
    static let oneOffPushTimeout: Duration = .seconds(15)

    init(options: Options, loop: EventLoop, logger: Logger,
         reloadOptions: (() throws(ConfigurationError) -> Options)? = nil) throws(HTTPClient.SetupError) {
        self.options = options
        self.loop = loop
        self.logger = logger
        self.reloadOptions = reloadOptions
        var configuration = HTTPClient.Configuration()
        configuration.userAgent = "stapler/\(Usage.programVersion)"
        configuration.maxConcurrentTransfers = options.renewalThreads
        configuration.maxConnectionsPerHost = 4
        configuration.maxTotalConnections = max(options.renewalThreads, 4)
        http = try HTTPClient(loop: loop, configuration: configuration)
        stapleWriter = BatchedFileWriter(loop: loop)
    }

    // MARK: Policy from options

    var minimumValidity: Int64 { options.minimumValidity.components.seconds }
    var refreshPolicy: RefreshPolicy { RefreshPolicy(minimumValidity: minimumValidity) }
    let retryBackoff = RetryBackoff()

    var discoveryRules: DiscoveryRules {
        DiscoveryRules(extensions: options.fileExtensions, ignorePatterns: options.ignorePatterns,
                       recursive: options.recursive)
    }

    func randomFraction() -> Double { Double.random(in: 0..<1, using: &random) }

    // MARK: Lifecycle

    /// Sets everything up and makes the first pass; `loop.run()` does the rest.
    func start() throws(SystemError) {
        for warning in options.warnings { logger.warning(warning) }
        signals = try SignalSource(loop: loop, signals: [SIGHUP, SIGTERM, SIGINT, SIGUSR1]) { [unowned self] in
            self.handle(signal: $0)
        }
        try startMetrics()
        if !options.oneOff {
            watcher = try DirectoryWatcher(loop: loop) { [unowned self] events in self.absorb(events) }
        }
        configureHAProxyClients()
        logger.info("starting: \(options.certificateLocations.count) certificate path(s), "
                    + "\(options.allHAProxySockets.count) HAProxy socket(s)"
                    + (options.oneOff ? ", one pass" : ""))
        rescanAll()
        if options.oneOff {
            // Checked once the loop runs: stopping a loop that has not started does nothing.
            loop.executeSoon { [unowned self] in self.finishOneOffIfDone() }
        } else {
            scheduleRescan()
        }
    }

    /// Ends the loop soon: staples already verified are put in place, transfers are aborted
    /// (no staple is ever half written: writes are atomic), sockets closed.
    func stop(status: Int32 = 0) {
        guard !isStopping else { return }
        isStopping = true
        exitStatus = status
        stapleWriter.commit()
        queue.removeAll()
        http.cancelAll()
        for certificate in certificates.values {
            if let timer = certificate.timer { loop.cancel(timer) }
            certificate.timer = nil
        }
        for client in haproxy.values { client.shutDown() }
        for timer in [changeTimer, rescanTimer, oneOffDeadline] { if let timer { loop.cancel(timer) } }
        watcher?.close()
        signals?.close()
        stopMetrics()
        loop.stop()
    }

    private func handle(signal: Int32) {
        switch signal {
        case SIGTERM, SIGINT:
            logger.info("received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"), stopping")
            stop(status: 0)
        case SIGHUP:
            reload()
        case SIGUSR1:
            logger.report(statusReport())
        default:
            break
        }
    }

    /// SIGHUP: read the configuration again, reopen the log file, rescan. A configuration
    /// that no longer parses is refused with one line, and the running one stays.
    private func reload() {
        notifyService(.reloading)
        defer { notifyService(.ready) }
        do {
            try logger.reopen()
        } catch {
            logger.error("cannot reopen the log file: \(error)")
        }
        if let reloadOptions {
            do {
                let fresh = try reloadOptions()
                if fresh.oneOff != options.oneOff || fresh.daemonize != options.daemonize {
                    logger.warning("SIGHUP: --one-off and --daemon changes take effect at the next start")
                }
                options = fresh
                logger.verbosity = fresh.verbosity
                for warning in fresh.warnings { logger.warning(warning) }
                configureHAProxyClients()
                reconfigureMetrics()
                logger.info("configuration reloaded")
            } catch {
                logger.error("SIGHUP: keeping the running configuration: \(error)")
            }
        }
        rescanAll()
        scheduleRescan()
    }

    /// Periodic rescan, for file systems inotify cannot see into (NFS) and as a safety net.
    func scheduleRescan() {
        if let rescanTimer { loop.cancel(rescanTimer) }
        rescanTimer = loop.schedule(after: options.refreshInterval) { [unowned self] in
            self.rescanTimer = nil
            self.rescanAll()
            self.scheduleRescan()
        }
    }

    // MARK: One-off mode

    /// In `--one-off`, ends the run once nothing is queued, fetching or pushing.
    func finishOneOffIfDone() {
        guard options.oneOff, !isStopping else { return }
        if pendingPushes > 0 && queue.isEmpty && activeFetches == 0 && pendingWrites == 0 && oneOffDeadline == nil {
            oneOffDeadline = loop.schedule(after: Self.oneOffPushTimeout) { [unowned self] in
                self.oneOffDeadline = nil
                self.logger.error("HAProxy did not take every staple within "
                                  + "\(Self.oneOffPushTimeout.components.seconds) s; staple files are written")
                for client in self.haproxy.values { client.shutDown() }
            }
        }
        guard queue.isEmpty, activeFetches == 0, pendingWrites == 0, pendingPushes == 0 else { return }
        // Each failure was logged once as it happened, with its path, URL and reason.
        let failed = certificates.values.filter { $0.lastError != nil || $0.isBroken }.count
        let stapled = certificates.values.filter { $0.staple != nil && $0.lastError == nil }.count
        // "Not served" is no failure: one socket given for several paths need not serve all.
        let undelivered = ["rejected", "too_large", "queue_full", "cancelled"]
            .reduce(0) { $0 + statistics.pushes[$1, default: 0] }
        let ok = failed == 0 && undelivered == 0
        logger.log(ok ? .info : .error, "one pass done: \(stapled) stapled, \(failed) failed"
                   + (undelivered > 0 ? ", \(undelivered) staple(s) not taken by HAProxy" : ""))
        stop(status: ok ? 0 : 1)
    }
}
