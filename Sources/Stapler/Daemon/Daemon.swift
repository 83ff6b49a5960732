import Glibc
import Reactor

/// The running daemon: the table of certificate files and the lifecycle (start, SIGHUP,
/// SIGUSR1, stop, the end of a `--one-off` pass), wiring four pieces that each own their
/// state:
///
///     CertificateWatcher ──► Daemon (table) ──► StapleRefresher ──► HAProxyFanOut
///       scans, inotify        parse, decide      fetch, verify,       push to each
///                                                write, schedule      stats socket
///
/// plus the `--on-update` command, told of staples that changed, and the `--metrics` server
/// and the service manager, which only read.
final class Daemon {
    private(set) var options: Options
    let loop: EventLoop
    let logger: Logger
    /// Re-reads the configuration (SIGHUP); nil when there is nothing to re-read.
    private let reloadOptions: (() throws(ConfigurationError) -> Options)?

    /// Every certificate file found, by path (`Daemon+Certificates.swift`).
    var certificates = CertificateTable()
    let issuers = IssuerStore()
    let statistics = Statistics()
    private(set) var watcher: CertificateWatcher!
    /// Files found new or changed, parsed a slice per pass of the loop (`Daemon+Certificates.swift`).
    private(set) var loads: CertificateLoadQueue!
    /// Fetches staples, or with `--push-only` reads those another Stapler writes.
    private(set) var refresher: StapleSource!
    /// Downloads issuers missing from bundles (`Daemon+Certificates.swift` asks).
    private(set) var issuerFetcher: IssuerFetcher!
    private(set) var haproxy: HAProxyFanOut!
    private(set) var updateHook: UpdateHook!
    private var metrics: MetricsServer!
    private var signals: SignalSource?
    private var clockSteps: WallClockSteps?
    /// The confinement in force (Daemon+Sandbox.swift); nil when none was asked for.
    var sandbox: Sandbox?
    /// Where to tell systemd about start, reload and stop (Daemon+ServiceNotifier.swift).
    var serviceNotifier: ServiceNotifier?

    private(set) var isStopping = false
    /// Wall clock steps not yet acted on (nanoseconds, summed), and how many they were.
    private var unjudgedClockStep: (nanoseconds: Int64, steps: Int) = (0, 0)
    /// The process exit status once `run` returns.
    private(set) var exitStatus: Int32 = 0
    private var oneOffDeadline: TimerHandle?

    /// How long `--one-off` waits for HAProxy to take the staples before giving up on it.
    static let oneOffPushTimeout: Duration = .seconds(15)

    init(options: Options, loop: EventLoop, logger: Logger, hookLaunch: UpdateHook.Launch = .direct,
         reloadOptions: (() throws(ConfigurationError) -> Options)? = nil) throws {
        self.options = options
        self.loop = loop
        self.logger = logger
        self.reloadOptions = reloadOptions
        watcher = CertificateWatcher(loop: loop, logger: logger) { [unowned self] in self.observe($0) }
        loads = CertificateLoadQueue(loop: loop) { [unowned self] in self.load($0, changed: $1) }
        // One client for OCSP and issuer fetches: one connection cache, one set of limits.
        let http = try HTTPClient(loop: loop,
                                  configuration: try OCSPExchange.clientConfiguration(
                                      fetchSlots: options.renewalThreads, proxy: OCSPExchange.proxySetting(options.ocspProxy)))
        if options.pushOnly {
            refresher = try StapleReader(loop: loop, logger: logger, settings: Self.refreshSettings(options),
                                         watch: Self.stapleWatchSettings(options)) { [unowned self] in
                self.refreshed($0, $1)
            }
        } else {
            refresher = try StapleRefresher(loop: loop, logger: logger, statistics: statistics,
                                            settings: Self.refreshSettings(options), http: http) { [unowned self] in
                self.refreshed($0, $1)
            }
        }
        issuerFetcher = IssuerFetcher(loop: loop, logger: logger, http: http, onePass: options.oneOff)
        issuerFetcher.onFetched = { [unowned self] in self.issuersFetched(for: $0) }
        issuerFetcher.onIdle = { [unowned self] in self.finishOneOffIfDone() }
        haproxy = HAProxyFanOut(loop: loop, logger: logger, statistics: statistics)
        updateHook = UpdateHook(loop: loop, logger: logger, settings: Self.updateHookSettings(options), launch: hookLaunch)
        if options.stapleDirectory != nil {
            // HAProxy loads staples only from beside the certificates: with --staple-dir, every
            // HAProxy process that answers is given every staple through its socket.
            haproxy.onNewProcess = { [unowned self] in self.pushAllStaples(to: $0) }
        }
        metrics = MetricsServer(loop: loop, logger: logger) { [unowned self] in self.renderMetrics() }
        refresher.onIdle = { [unowned self] in self.finishOneOffIfDone() }
        loads.onDrained = { [unowned self] in
            self.sandboxCertificatesLoaded()
            self.finishOneOffIfDone()
        }
        haproxy.onPushEnded = { [unowned self] in self.finishOneOffIfDone() }
        updateHook.onIdle = { [unowned self] in self.finishOneOffIfDone() }
    }

    // MARK: Settings from options

    static func refreshSettings(_ options: Options) -> StapleRefresher.Settings {
        StapleRefresher.Settings(fetchSlots: options.renewalThreads, includeNonce: options.nonce,
                                 minimumValidity: options.minimumValidity.components.seconds,
                                 recycleStaples: options.recycleStaples, onePass: options.oneOff,
                                 stapleLocation: stapleLocation(options),
                                 proxy: OCSPExchange.proxySetting(options.ocspProxy),
                                 proxyOnly: options.ocspProxyOnly)
    }

    static func stapleLocation(_ options: Options) -> StapleLocation {
        options.stapleDirectory.map { .under($0) } ?? .besideCertificate
    }

    static func stapleWatchSettings(_ options: Options) -> StapleWatcher.Settings {
        StapleWatcher.Settings(rescanInterval: options.oneOff ? nil : options.refreshInterval, watchesEvents: !options.oneOff)
    }

    static func updateHookSettings(_ options: Options) -> UpdateHook.Settings {
        UpdateHook.Settings(command: options.onUpdateCommand, minimumInterval: options.onUpdateInterval,
                            timeout: options.onUpdateTimeout, waitsForFlush: options.oneOff)
    }

    static func watchSettings(_ options: Options) -> CertificateWatcher.Settings {
        CertificateWatcher.Settings(locations: options.certificateLocations.map(\.path),
                                    rules: DiscoveryRules(extensions: options.fileExtensions,
                                                          ignorePatterns: options.ignorePatterns,
                                                          recursive: options.recursive),
                                    rescanInterval: options.oneOff ? nil : options.refreshInterval,
                                    watchesEvents: !options.oneOff, stapleLocation: stapleLocation(options))
    }

    // MARK: Lifecycle

    /// Sets everything up and makes the first pass; `loop.run()` does the rest.
    func start() throws(SystemError) {
        for warning in options.warnings { logger.warning(warning) }
        signals = try SignalSource(loop: loop, signals: [SIGHUP, SIGTERM, SIGINT, SIGUSR1]) { [unowned self] in
            self.handle(signal: $0)
        }
        try metrics.start(at: options.oneOff ? nil : options.metricsAddress)
        if !options.oneOff {
            clockSteps = try WallClockSteps(loop: loop) { [unowned self] in self.clockStepped(by: $0) }
        }
        try watcher.configure(Self.watchSettings(options))
        watcher.knownInodes = { [unowned self] in knownInodesForRescan() }
        haproxy.configure(sockets: options.allHAProxySockets, keepalive: options.haproxySocketKeepalive)
        logger.info("starting: \(options.certificateLocations.count) certificate path(s), "
                    + "\(options.allHAProxySockets.count) HAProxy socket(s)"
                    + (options.oneOff ? ", one pass" : "")
                    + (options.pushOnly ? ", push-only: serving the staples another Stapler writes" : ""))
        watcher.rescan()
        if options.oneOff {
            // Checked once the loop runs: stopping a loop that has not started does nothing.
            loop.executeSoon { [unowned self] in self.finishOneOffIfDone() }
        }
    }

    /// Ends the loop soon: staples already verified are put in place, transfers are aborted
    /// (no staple is ever half written: writes are atomic), sockets closed.
    func stop(status: Int32 = 0) {
        guard !isStopping else { return }
        isStopping = true
        exitStatus = status
        loads.removeAll()
        refresher.stop()
        issuerFetcher.stop()
        for certificate in certificates.values { refresher.cancelTimer(certificate) }
        haproxy.shutDown()
        updateHook.stop()
        if let oneOffDeadline { loop.cancel(oneOffDeadline) }
        watcher.close()
        signals?.close()
        clockSteps?.close()
        metrics.close()
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
                var fresh = admitToSandbox(try reloadOptions())
                if fresh.oneOff != options.oneOff || fresh.daemonize != options.daemonize || fresh.pushOnly != options.pushOnly {
                    logger.warning("SIGHUP: --one-off, --push-only and --daemon changes take effect at the next start")
                }
                fresh.pushOnly = options.pushOnly
                options = fresh
                logger.verbosity = fresh.verbosity
                for warning in fresh.warnings { logger.warning(warning) }
                refresher.update(Self.refreshSettings(fresh))
                try? watcher.configure(Self.watchSettings(fresh))
                haproxy.configure(sockets: fresh.allHAProxySockets, keepalive: fresh.haproxySocketKeepalive)
                updateHook.update(Self.updateHookSettings(fresh))
                metrics.move(to: fresh.oneOff ? nil : fresh.metricsAddress)
                logger.info("configuration reloaded")
            } catch {
                logger.error("SIGHUP: keeping the running configuration: \(error)")
            }
        }
        watcher.rescan()
    }

    /// The wall clock was set (NTP, an operator, a restored VM): judge every staple again.
    func clockStepped(by nanoseconds: Int64) {
        unjudgedClockStep.nanoseconds &+= nanoseconds
        unjudgedClockStep.steps += 1
        let (total, steps) = unjudgedClockStep
        guard total.magnitude >= Self.clockStepThreshold.magnitude else {
            logger.debug("wall clock set by \(Self.describe(step: nanoseconds)) (\(Self.describe(step: total)) in "
                         + "\(steps) step(s) since the staples were last judged): too little to judge them again")
            return
        }
        unjudgedClockStep = (0, 0)
        let (fetched, rescheduled) = refresher.clockStepped(certificates.values, now: UTCTime.now())
        let outcome = "\(fetched) staple(s) expired or within --minimum-validity, fetching now; "
            + "\(rescheduled) refresh(es) rescheduled"
        let text = "wall clock stepped by \(Self.describe(step: total))" + (steps > 1 ? " in \(steps) steps" : "")
            + ": " + outcome
        // Small steps that added up (a time daemon or a hypervisor setting the clock bit by
        // bit) are routine; one large step is worth an operator's attention.
        if nanoseconds.magnitude >= Self.clockStepThreshold.magnitude {
            logger.warning(text)
        } else {
            logger.info(text)
        }
    }

    /// Wall clock steps smaller than this, alone or summed, change no judgement of a staple
    /// (its dates are whole seconds, and clients allow minutes of skew). Some VMs have their
    /// clock set by the host every fraction of a second, by half a millisecond: judging
    /// 100,000 staples again at each of those would be a busy loop with a warning each time.
    static let clockStepThreshold: Int64 = 1_000_000_000

    private static func describe(step nanoseconds: Int64) -> String {
        let seconds = Double(nanoseconds) / 1e9
        let size = abs(seconds) >= 1 ? "\(Int64(seconds.rounded())) s" : "\(Int64((seconds * 1000).rounded())) ms"
        return (nanoseconds >= 0 ? "+" : "") + size
    }

    // MARK: Refresh outcomes

    /// A refresh ended: a new staple goes to every HAProxy serving the certificate, and
    /// to the `--on-update` command's next run.
    private func refreshed(_ certificate: TrackedCertificate, _ outcome: StapleRefresher.Outcome) {
        switch outcome {
        case .stapled(let der, written: true):
            updateHook.stapleChanged(StapleFile.path(forCertificate: certificate.path, in: Self.stapleLocation(options)))
            haproxy.push(der, for: certificate.path, to: sockets(serving: certificate))
        case .unwritten(let der):
            haproxy.push(der, for: certificate.path, to: sockets(serving: certificate))
        case .read(let der, let changed):
            if changed {
                updateHook.stapleChanged(StapleFile.path(forCertificate: certificate.path, in: Self.stapleLocation(options)))
            }
            haproxy.push(der, for: certificate.path, to: sockets(serving: certificate))
        case .stapled(_, written: false):
            break
        case .failed:
            break
        case .certificateExpired(let reason):
            certificate.inactiveReason = reason
            certificate.inactiveKind = .expired
            certificate.record = nil
        }
        finishOneOffIfDone()
    }

    /// Every staple being served, read back from `--staple-dir`, to one HAProxy socket.
    private func pushAllStaples(to socket: FilePath) {
        guard options.stapleDirectory != nil else { return }
        for certificate in certificates.values where certificate.refresh.staple != nil
            && sockets(serving: certificate).contains(socket) {
            guard let der = refresher.stapleToPush(for: certificate) else { continue }
            haproxy.push(der, for: certificate.path, to: [socket])
        }
    }

    /// The stats sockets of the HAProxy instances that serve this certificate.
    func sockets(serving certificate: TrackedCertificate) -> [FilePath] {
        guard certificate.location < options.certificateLocations.count else { return [] }
        return options.certificateLocations[certificate.location].haproxySockets
    }

    // MARK: One-off mode

    /// In `--one-off`, ends the run once nothing is queued, fetching, writing or pushing,
    /// and the `--on-update` command has run for the staples that changed.
    private func finishOneOffIfDone() {
        guard options.oneOff, !isStopping, loads.isEmpty, refresher.isIdle, issuerFetcher.isIdle else { return }
        if haproxy.pendingPushes > 0 {
            guard oneOffDeadline == nil else { return }
            oneOffDeadline = loop.schedule(after: Self.oneOffPushTimeout) { [unowned self] in
                self.oneOffDeadline = nil
                self.logger.error("HAProxy did not take every staple within "
                                  + "\(Self.oneOffPushTimeout.components.seconds) s; staple files are written")
                self.haproxy.shutDown()
            }
            return
        }
        if !updateHook.isIdle {
            updateHook.flush()
            return
        }
        // Each failure was logged once as it happened, with its path, URL and reason.
        let failed = certificates.values.filter { $0.refresh.lastError != nil || $0.isBroken }.count
        let stapled = certificates.values.filter { $0.refresh.staple != nil && $0.refresh.lastError == nil }.count
        let undelivered = statistics.undeliveredPushes
        let hookFailed = updateHook.lastRunFailed
        let ok = failed == 0 && undelivered == 0 && !hookFailed
        logger.log(ok ? .info : .error, "one pass done: \(stapled) stapled, \(failed) failed"
                   + (undelivered > 0 ? ", \(undelivered) staple(s) not taken by HAProxy" : "")
                   + (hookFailed ? ", the on-update command failed" : ""))
        stop(status: ok ? 0 : 1)
    }

    // MARK: Metrics

    /// The exposition of the current state, from the fields the status table reads.
    private func renderMetrics() -> [UInt8] {
        let process = Metrics.Process(fetchesRunning: refresher.activeFetches, fetchesQueued: refresher.queuedCount,
                                      pushesPending: haproxy.pendingPushes, startTime: ProcessStartTime.seconds,
                                      version: Usage.programVersion)
        return Metrics.render(certificates: certificates.values.map(Metrics.Certificate.init),
                              statistics: statistics, process: process,
                              perCertificate: options.metricsPerCertificate, now: UTCTime.now())
    }
}
