import Reactor

/// Keeps each certificate's staple fresh: the staple on disk at start, the refresh timers,
/// the fetch queue, the OCSP exchange, the batched write. A certificate goes in; one outcome
/// per refresh comes out (`onOutcome`), for the daemon to push to HAProxy or to count.
///
/// Every line about a refresh is logged here, once per change of state, not per retry:
/// stapled, revoked (CRITICAL every time), failed with the reason and the retry, recovered;
/// and once when a proxy starts failing and once when it answers again.
///
/// Through a proxy (a shared cache), a failed attempt is retried straight to the responder
/// in the same attempt when the certificate has no staple or one within the minimum
/// validity, unless `proxyOnly`: a cache that is down costs the CA requests only for the
/// staples that would otherwise run out, and the others wait for it with backoff. An answer
/// through the proxy that is itself within the minimum validity (a cache holding it past
/// the refresh window) is asked for directly in the same way.
final class StapleRefresher: StapleSource {
    struct Settings {
        /// Fetches at once (`--renewal-threads`).
        var fetchSlots = 8
        var includeNonce = false
        var minimumValidity: Int64 = 7200
        /// Whether a good staple on disk is served until its refresh instead of fetched anew.
        var recycleStaples = true
        /// `--one-off`: no timers, no next refresh.
        var onePass = false
        /// Beside each certificate, or below `--staple-dir`.
        var stapleLocation = StapleLocation.besideCertificate
        /// Where requests go (`--ocsp-proxy`, or the environment).
        var proxy = ProxySetting.environment
        /// `--ocsp-proxy-only`: never fall back to asking a responder directly.
        var proxyOnly = false
    }

    enum Outcome {
        /// A verified staple is on disk; `written` is false when the file held these bytes.
        case stapled(der: [UInt8], written: Bool)
        /// A verified staple that could not be written (read-only or full disk): it is still
        /// worth serving, and the write is retried like a failed fetch.
        case unwritten(der: [UInt8])
        /// Nothing new; the staple being served, if any, stays. A retry is planned.
        case failed
        /// The certificate expired: nothing to ask for any more (the reason, as logged).
        case certificateExpired(reason: String)
        /// `--push-only` (`StapleReader`): a verified staple another Stapler wrote, to push.
        /// `changed` when it says something else than the one served before (the
        /// `--on-update` command runs); false for the staple found at start.
        case read(der: [UInt8], changed: Bool)
    }

    private let loop: EventLoop
    private let logger: Logger
    private let statistics: Statistics
    private let http: HTTPClient
    /// Verified staples are written in batches: one disk flush for many files.
    private let writer: BatchedFileWriter
    private var settings: Settings
    private let onOutcome: (TrackedCertificate, Outcome) -> Void
    private var queue = FetchQueue<TrackedCertificate>()
    private(set) var activeFetches = 0
    /// Staples written but not yet committed to disk (`--one-off` waits for them).
    private(set) var pendingWrites = 0
    private var pumpScheduled = false
    private var isStopped = false
    /// Responder URL → origin, for grouping the queue (see `responderOrigin(of:)`).
    private var responderOrigins: [String: String] = [:]
    private var random = JitterRandom()
    private let retryBackoff = RetryBackoff()
    /// Every certificate's next refresh, behind one loop timer.
    private var refreshTimes: RefreshSchedule<TrackedCertificate>!

    /// `http`: the daemon's client, shared with other fetches (configured with
    /// `OCSPExchange.clientConfiguration`); nil makes one of its own.
    init(loop: EventLoop, logger: Logger, statistics: Statistics, settings: Settings, http: HTTPClient? = nil,
         onOutcome: @escaping (TrackedCertificate, Outcome) -> Void) throws(HTTPClient.SetupError) {
        self.loop = loop
        self.logger = logger
        self.statistics = statistics
        self.settings = settings
        self.onOutcome = onOutcome
        if let http {
            self.http = http
        } else {
            self.http = try HTTPClient(loop: loop,
                                       configuration: try OCSPExchange.clientConfiguration(fetchSlots: settings.fetchSlots))
        }
        writer = BatchedFileWriter(loop: loop)
        refreshTimes = RefreshSchedule(loop: loop, isCurrent: { $0.refresh.timer == $1 }) { [unowned self] certificate in
            certificate.refresh.timer = nil
            self.enqueue(certificate)
        }
    }

    /// Applies from the next fetch (SIGHUP). The fetch slots stay as at start: curl's limits
    /// are set once; so does the staple location (the staples on disk are where they are).
    func update(_ settings: Settings) {
        self.settings.includeNonce = settings.includeNonce
        self.settings.minimumValidity = settings.minimumValidity
        self.settings.recycleStaples = settings.recycleStaples
        self.settings.proxy = settings.proxy
        self.settings.proxyOnly = settings.proxyOnly
        http.proxy = settings.proxy
    }

    var queuedCount: Int { queue.count }
    /// Nothing queued, fetching or waiting for the disk.
    var isIdle: Bool { queue.isEmpty && activeFetches == 0 && pendingWrites == 0 }

    private var policy: RefreshPolicy { RefreshPolicy(minimumValidity: settings.minimumValidity) }

    // MARK: What the daemon asks

    /// A certificate seen for the first time: the staple already on disk is served until its
    /// refresh if it still verifies and has time left ("recycling"); otherwise a fetch.
    func adopt(_ certificate: TrackedCertificate) {
        guard let record = certificate.record else { return }
        if !recycle(certificate, record: record, now: UTCTime.now()) { enqueue(certificate) }
    }

    /// The file changed on disk (replaced, edited, or `touch`ed: the operator's way to force a
    /// refresh): a fetch at once, in the urgent lane.
    func refreshNow(_ certificate: TrackedCertificate) {
        enqueue(certificate, urgent: true)
    }

    /// A periodic scan found a refresh whose time has passed without its timer firing (lost
    /// to a clock jump): catch up.
    func catchUpIfLate(_ certificate: TrackedCertificate, now: Int64) {
        // Field by field, not a copy of the whole state: this runs for every file of every rescan.
        guard let due = certificate.refresh.nextRefresh, due <= now, certificate.refresh.timer == nil,
              !certificate.refresh.isFetching,
              !queue.contains(certificate), !settings.onePass else { return }
        enqueue(certificate)
    }

    /// The wall clock was set: every staple's validity and refresh were judged by the old
    /// clock. Those now expired or within the minimum validity are fetched at once (urgent
    /// lane), the others rescheduled from their own dates. Refreshes in progress, and retries
    /// (delays on the boot clock, which a step does not move), stay as they are.
    func clockStepped(_ certificates: some Sequence<TrackedCertificate>, now: Int64) -> (fetched: Int, rescheduled: Int) {
        var fetched = 0
        var rescheduled = 0
        for certificate in certificates {
            guard let record = certificate.record, let staple = certificate.refresh.staple,
                  !certificate.refresh.isFetching, !queue.contains(certificate), certificate.refresh.lastError == nil
            else { continue }
            switch policy.afterClockStep(thisUpdate: staple.thisUpdate, nextUpdate: staple.nextUpdate,
                                         fetchedAt: staple.fetchedAt, cacheMaxAge: staple.cacheMaxAge,
                                         certificateNotAfter: record.notAfter, now: now, random: randomFraction()) {
            case .fetchNow:
                enqueue(certificate, urgent: true)
                fetched += 1
            case .refreshAt(let due):
                schedule(certificate, at: due, now: now)
                rescheduled += 1
            }
        }
        return (fetched, rescheduled)
    }

    /// Stops whatever is planned or running for a certificate; what it knows stays.
    func cancel(_ certificate: TrackedCertificate) {
        cancelTimer(certificate)
        certificate.refresh.nextRefresh = nil
        queue.remove(certificate)
        guard let attempt = certificate.refresh.attempt else { return }
        certificate.refresh.attempt = nil
        if let transfer = attempt.transfer {
            attempt.transfer = nil
            http.cancel(transfer)
        }
        if let write = attempt.pendingWrite {
            // The staple for what the file held before: the fetch that follows writes anew.
            attempt.pendingWrite = nil
            pendingWrites -= 1
            writer.cancel(write)
        }
    }

    /// Cancels, and forgets the staple and failures: the file now holds another certificate,
    /// or none.
    func forget(_ certificate: TrackedCertificate) {
        cancel(certificate)
        certificate.refresh = RefreshState()
    }

    /// Puts verified staples in place, abandons transfers and timers.
    func stop() {
        guard !isStopped else { return }
        isStopped = true
        writer.commit()
        queue.removeAll()
        refreshTimes.removeAll()
        http.cancelAll()
    }

    /// Stops a certificate's timer (the daemon is stopping).
    func cancelTimer(_ certificate: TrackedCertificate) {
        if let timer = certificate.refresh.timer { refreshTimes.cancel(timer) }
        certificate.refresh.timer = nil
    }

    /// The staple file as written: only verified staples are ever written there.
    func stapleToPush(for certificate: TrackedCertificate) -> [UInt8]? {
        guard certificate.refresh.staple != nil else { return nil }
        return try? StapleFile.read(forCertificate: certificate.path, in: settings.stapleLocation)
    }

    // MARK: Recycling

    /// The staple file already on disk, if it verifies: it is what HAProxy serves now, so it
    /// counts for urgency and status even when `--no-recycle` asks for a fresh one. Kept as
    /// it is until its refresh when it has time left and recycling is on.
    private func recycle(_ certificate: TrackedCertificate, record: CertificateRecord, now: Int64) -> Bool {
        let stapleBytes: [UInt8]?
        do {
            stapleBytes = try StapleFile.read(forCertificate: certificate.path, in: settings.stapleLocation)
        } catch {
            logger.warning("\(error)")
            return false
        }
        guard let stapleBytes else { return false }
        let verified: VerifiedOCSPResponse
        do {
            verified = try OCSPResponseVerifier.verify(stapleBytes, for: record, now: now)
        } catch {
            logger.info("\(StapleFile.path(forCertificate: certificate.path, in: settings.stapleLocation)): "
                        + "not reusable: \(error)")
            return false
        }
        certificate.refresh.staple = StapleSummary(verified, fetchedAt: nil, cacheMaxAge: nil)
        guard settings.recycleStaples, policy.isRecyclable(nextUpdate: verified.nextUpdate, now: now) else {
            return false
        }
        if certificate.refresh.staple?.isRevoked == true {
            logger.critical("\(certificate.path): \(record.subject) is REVOKED: \(verified.statusDescription)")
        }
        let due = policy.nextRefresh(thisUpdate: verified.thisUpdate, nextUpdate: verified.nextUpdate,
                                     fetchedAt: now, cacheMaxAge: nil, certificateNotAfter: record.notAfter,
                                     now: now, random: randomFraction())
        logger.debug("\(certificate.path): staple on disk is \(verified.statusDescription) until "
                     + "\(UTCTime.format(verified.nextUpdate)), refresh at \(UTCTime.format(due))")
        schedule(certificate, at: due, now: now)
        return true
    }

    // MARK: The queue

    /// Puts a certificate in line for a fetch slot. Must-Staple certificates and staples about
    /// to run out take the urgent lane. A first fetch (no staple yet) waits in the normal
    /// lane: when a start-up scan queues thousands of certificates without staples, the
    /// Must-Staple ones, for which a missing staple is an outage rather than a slower
    /// handshake, must not wait behind them.
    private func enqueue(_ certificate: TrackedCertificate, urgent: Bool = false) {
        guard let record = certificate.record, !certificate.refresh.isFetching, !isStopped else { return }
        cancelTimer(certificate)
        queue.push(certificate, group: responderOrigin(of: record),
                   urgent: urgent || record.mustStaple || isRunningOut(certificate, now: UTCTime.now()))
        schedulePump()
    }

    private func isRunningOut(_ certificate: TrackedCertificate, now: Int64) -> Bool {
        certificate.refresh.staple.map { $0.nextUpdate.saturatingSubtract(now) < settings.minimumValidity } ?? false
    }

    /// Starting transfers waits for the end of the current pass, so a scan that queues
    /// thousands of certificates lets Must-Staple ones go first.
    private func schedulePump() {
        guard !pumpScheduled else { return }
        pumpScheduled = true
        loop.executeSoon { [weak self] in
            guard let self else { return }
            self.pumpScheduled = false
            self.pump()
        }
    }

    /// Starts fetches while slots are free. A responder gets at most as many fetches as curl
    /// opens connections to one host (more would wait inside curl, their timeouts running);
    /// the queue then serves the other responders' certificates. So a responder that hangs
    /// holds a few slots until its timeouts, never every slot, and the certificates of
    /// healthy responders are stapled meanwhile.
    private func pump() {
        let limit = http.connectionsPerHost
        while activeFetches < settings.fetchSlots, !isStopped,
              let certificate = queue.pop(available: { self.http.activeTransferCount(origin: $0) < limit }) {
            guard certificate.record != nil else { continue }
            certificate.refresh.attempt = FetchAttempt()
            startFetch(certificate)
        }
        if isIdle { onIdle?() }
    }

    /// Called when the last queued, running or unwritten refresh ends (`--one-off` waits for it).
    var onIdle: (() -> Void)?

    /// The responder a certificate's fetch goes to first, as the queue groups them.
    private func responderOrigin(of record: CertificateRecord) -> String {
        let url = record.ocspURLs[0]
        if let known = responderOrigins[url] { return known }
        // Bounded: a directory of certificates with distinct URLs must not grow it forever.
        if responderOrigins.count >= 1024 { responderOrigins.removeAll() }
        let origin = HTTPClient.origin(of: url)
        responderOrigins[url] = origin
        return origin
    }

    // MARK: One fetch

    private func startFetch(_ certificate: TrackedCertificate) {
        guard let record = certificate.record, let attempt = certificate.refresh.attempt else { return }
        let now = UTCTime.now()
        if record.notAfter <= now {
            certificate.refresh.attempt = nil
            let reason = "\(certificate.path): certificate expired at \(UTCTime.format(record.notAfter))"
            logger.warning("\(reason), not querying OCSP any more")
            onOutcome(certificate, .certificateExpired(reason: reason))
            return
        }
        var exchange: OCSPExchange
        do {
            exchange = try OCSPExchange(certID: record.certID, responderURL: record.ocspURLs[attempt.urlIndex],
                                        includeNonce: settings.includeNonce)
        } catch {
            return fail(certificate, reason: "\(error)")
        }
        exchange.httpRequest.bypassesProxy = attempt.bypassesProxy
        let proxy = attempt.bypassesProxy ? nil : http.proxy(for: exchange.httpRequest.url)
        attempt.proxy = proxy
        if proxy != nil { statistics.requestsViaProxy += 1 } else { statistics.requestsDirect += 1 }
        activeFetches += 1
        statistics.fetchesStarted += 1
        var handle: HTTPTransferHandle?
        // The certificate is held strongly until the transfer ends or is cancelled (as
        // `cancel` does when it is forgotten): a weak reference would give each of 100,000
        // certificates a side table for the rest of its life.
        handle = http.start(exchange.httpRequest) { [weak self, certificate, attempt] result in
            guard let self else { return }
            self.activeFetches -= 1
            // Transfers cut short by `stop` are no failure worth a log line.
            guard !self.isStopped else { return }
            if let handle, certificate.refresh.attempt === attempt, attempt.transfer == handle {
                attempt.transfer = nil
                self.finishFetch(certificate, attempt, exchange: exchange, result: result)
            }
            self.schedulePump()
        }
        attempt.transfer = handle
    }

    private func finishFetch(_ certificate: TrackedCertificate, _ attempt: FetchAttempt, exchange: OCSPExchange,
                             result: Result<HTTPResponse, HTTPError>) {
        guard let record = certificate.record else {
            certificate.refresh.attempt = nil
            return
        }
        let now = UTCTime.now()
        let answer: OCSPExchange.Answer
        do {
            answer = try exchange.accept(result, for: record, now: now)
        } catch {
            if case .response(let refusal) = error.reason,
               case .thisUpdateInFuture(let thisUpdate, _) = refusal.reason {
                statistics.noteResponder(thisUpdate: thisUpdate, now: now)
            }
            guard let proxy = attempt.proxy else { return attemptFailed(certificate, attempt, reason: "\(error)") }
            if OCSPExchange.isProxyFault(error) { noteProxy(proxy, failing: "\(error)") }
            return attemptFailed(certificate, attempt, reason: "\(error) (through the proxy \(proxy))")
        }
        if let proxy = attempt.proxy {
            noteProxy(proxy, failing: nil)
            // A cache keeps an answer as long as the responder's max-age says, which RFC 5019
            // lets run up to nextUpdate: stapled, this one would be due again at once and the
            // cache would hand it out until it expires. The responder has a fresher one.
            if !settings.proxyOnly, answer.verified.nextUpdate.saturatingSubtract(now) < settings.minimumValidity {
                return attemptFailed(certificate, attempt, reason: "\(exchange.responderURL): the answer through the proxy \(proxy) "
                    + "is valid only until \(UTCTime.format(answer.verified.nextUpdate)), within --minimum-validity "
                    + "(a cached copy whose max-age outlasts the refresh window)")
            }
        }
        statistics.noteResponder(thisUpdate: answer.verified.thisUpdate, now: now)
        do {
            let outcome = try StapleFile.write(answer.verified.der, forCertificate: certificate.path,
                                               in: settings.stapleLocation, using: writer) { [weak self, certificate, attempt] error in
                guard let self else { return }
                self.pendingWrites -= 1
                attempt.pendingWrite = nil
                if let error {
                    if !self.isStopped { self.writeFailed(certificate, error, der: answer.verified.der) }
                } else {
                    self.stapled(certificate, answer, written: true, url: exchange.responderURL, fetchedAt: now)
                }
                if self.isIdle { self.onIdle?() }
            }
            switch outcome {
            case .staged(let ticket):
                attempt.pendingWrite = ticket
                pendingWrites += 1
            case .unchanged:
                stapled(certificate, answer, written: false, url: exchange.responderURL, fetchedAt: now)
            }
        } catch {
            writeFailed(certificate, error, der: answer.verified.der)
        }
    }

    /// The previous staple file is untouched and the retry fetches and writes again; the
    /// verified staple still goes to HAProxy, which never depends on the file.
    private func writeFailed(_ certificate: TrackedCertificate, _ error: StapleFileError, der: [UInt8]) {
        fail(certificate, reason: "\(error)", failure: "staple not written", outcome: .unwritten(der: der))
    }

    /// A verified staple is on disk (or was already): log it, plan the next, hand it on.
    private func stapled(_ certificate: TrackedCertificate, _ answer: OCSPExchange.Answer, written: Bool,
                         url: String, fetchedAt now: Int64) {
        certificate.refresh.attempt = nil
        guard let record = certificate.record else { return }
        let verified = answer.verified
        statistics.fetchesSucceeded += 1
        certificate.refresh.staple = StapleSummary(verified, fetchedAt: now, cacheMaxAge: answer.cacheMaxAge)
        if certificate.refresh.lastError != nil {
            logger.warning("\(certificate.path): recovered after \(certificate.refresh.failures) failed attempt(s)")
        }
        certificate.refresh.failures = 0
        certificate.refresh.lastError = nil
        if case .revoked = verified.status {
            logger.critical("\(certificate.path): \(record.subject) is REVOKED: \(verified.statusDescription) "
                            + "(according to \(url))")
        }
        let due = policy.nextRefresh(thisUpdate: verified.thisUpdate, nextUpdate: verified.nextUpdate,
                                     fetchedAt: now, cacheMaxAge: answer.cacheMaxAge,
                                     certificateNotAfter: record.notAfter, now: now, random: randomFraction())
        let implausible = verified.nextUpdate.saturatingSubtract(now) > RefreshPolicy.implausibleValidity
        logger.info("\(certificate.path): \(written ? "staple written" : "staple unchanged"): "
                    + "\(verified.statusDescription), valid until \(UTCTime.format(verified.nextUpdate))"
                    + (implausible ? " (more than a year ahead by our clock: is it behind?)" : "")
                    + (settings.onePass ? "" : ", next refresh \(UTCTime.format(due))"))
        // Stopping: the file is in place; HAProxy and timers are being shut down.
        guard !isStopped else { return }
        schedule(certificate, at: due, now: now)
        onOutcome(certificate, .stapled(der: verified.der, written: written))
    }

    /// One responder URL failed: ask it directly if it went through a proxy and the staple
    /// is missing or running out, else try the next URL, or give up on this attempt.
    private func attemptFailed(_ certificate: TrackedCertificate, _ attempt: FetchAttempt, reason: String) {
        attempt.errors.append(reason)
        guard !isStopped else { return fail(certificate, reason: attempt.errors.joined(separator: "; ")) }
        if attempt.proxy != nil, !settings.proxyOnly,
           certificate.refresh.staple.map({ $0.nextUpdate.saturatingSubtract(UTCTime.now()) < settings.minimumValidity })
            ?? true {
            logger.info("\(certificate.path): \(reason); the staple is missing or within --minimum-validity: "
                        + "asking the responder directly")
            attempt.bypassesProxy = true
            startFetch(certificate)
            return
        }
        if let record = certificate.record, attempt.urlIndex + 1 < record.ocspURLs.count {
            attempt.urlIndex += 1
            attempt.bypassesProxy = false
            startFetch(certificate)
            return
        }
        fail(certificate, reason: attempt.errors.joined(separator: "; "))
    }

    /// The attempt failed: keep the staple we have, log once per new reason, back off. Every
    /// failure is retried while the certificate is valid, the permanent-looking ones too: a
    /// responder's broken signing setup gets fixed, and the backoff keeps the cost small.
    /// `failure` says which step failed: the fetch (and its checks) or writing the file.
    private func fail(_ certificate: TrackedCertificate, reason: String, failure: String = "OCSP fetch failed",
                      outcome: Outcome = .failed) {
        certificate.refresh.attempt = nil
        statistics.fetchesFailed += 1
        certificate.refresh.failures += 1
        let now = UTCTime.now()
        let urgent = certificate.refresh.staple.map { $0.nextUpdate.saturatingSubtract(now) < settings.minimumValidity }
            ?? true
        let mustStaple = certificate.record?.mustStaple ?? false
        let delay = retryBackoff.delay(failures: certificate.refresh.failures, urgent: urgent || mustStaple,
                                       random: randomFraction())
        if certificate.refresh.lastError != reason {
            let served = certificate.refresh.staple.map { "serving the staple valid until \(UTCTime.format($0.nextUpdate))" }
                ?? "no staple to serve"
            let retry = settings.onePass ? "" : "; retrying in \(delay) s"
            let line = "\(certificate.path): \(failure): \(reason) (\(served)\(retry))"
            if urgent && mustStaple { logger.critical(line) } else if urgent { logger.error(line) } else { logger.warning(line) }
        }
        certificate.refresh.lastError = reason
        schedule(certificate, at: now.saturatingAdd(delay), now: now)
        onOutcome(certificate, outcome)
    }

    /// Logs a proxy's change of state once: failing (`failing` is why) or answering again.
    private func noteProxy(_ proxy: ProxyURL, failing reason: String?) {
        let wasFailing = statistics.proxyFailing
        statistics.proxyFailing = reason != nil
        if let reason, !wasFailing {
            logger.warning("proxy \(proxy) is failing: \(reason); staples are kept and retried through it"
                           + (settings.proxyOnly ? " (--ocsp-proxy-only: never directly)"
                                                 : ", those within --minimum-validity are asked for directly"))
        } else if reason == nil, wasFailing {
            logger.warning("proxy \(proxy) answers again")
        }
    }

    // MARK: Timers

    private func schedule(_ certificate: TrackedCertificate, at due: Int64, now: Int64) {
        cancelTimer(certificate)
        certificate.refresh.nextRefresh = due
        guard !settings.onePass else { return }
        certificate.refresh.timer = refreshTimes.schedule(certificate, after: .seconds(max(0, due.saturatingSubtract(now))))
    }

    private func randomFraction() -> Double { Double.random(in: 0..<1, using: &random) }
}

/// Where a certificate's refresh stands. Only `StapleRefresher` changes it (its setters are
/// private to that file), and `StapleReader` through the methods below; the status table
/// and the metrics read it.
struct RefreshState {
    /// The staple being served, as last verified.
    fileprivate(set) var staple: StapleSummary?
    /// Failed attempts since the last success.
    fileprivate(set) var failures = 0
    /// The reason of the last failure, as logged: a retry failing the same way logs nothing.
    fileprivate(set) var lastError: String?
    /// Unix time of the next planned fetch.
    fileprivate(set) var nextRefresh: Int64? {
        get { nextRefreshOrNone == Int64.min ? nil : nextRefreshOrNone }
        set { nextRefreshOrNone = newValue ?? Int64.min }
    }
    /// `nextRefresh`, Int64.min for none: an optional's tag byte costs 8 with padding.
    private var nextRefreshOrNone = Int64.min
    /// Only while a refresh is in progress: out of the idle state of every certificate.
    fileprivate var attempt: FetchAttempt?
    /// Last, where its tag byte shares the padding with what follows.
    fileprivate var timer: RefreshSchedule<TrackedCertificate>.Ticket?

    init() {}

    /// A state as the status table and metrics would see it (tests).
    init(staple: StapleSummary?, failures: Int = 0, lastError: String? = nil, nextRefresh: Int64? = nil) {
        self.staple = staple
        self.failures = failures
        self.lastError = lastError
        self.nextRefresh = nextRefresh
    }

    /// From the request until the staple is on disk: a refresh in progress.
    var isFetching: Bool { attempt?.isBusy ?? false }
}

/// What `StapleReader` (`--push-only`) may change: it serves staples another Stapler
/// fetched, so it knows no transfers, writes or responder URLs.
extension RefreshState {
    /// A staple that verified is served from now on; failures are over.
    mutating func serve(_ staple: StapleSummary) {
        self.staple = staple
        failures = 0
        lastError = nil
    }

    /// The staple file cannot be served (missing, refused, not refreshed in time): the
    /// staple being served, if any, stays.
    mutating func readFailed(_ reason: String) {
        failures += 1
        lastError = reason
    }

    /// When the reader next looks at the staple by itself (its staleness check).
    mutating func planCheck(at time: Int64?) {
        nextRefresh = time
    }
}
