import Reactor

/// `--push-only`: serves the staples another Stapler writes, and never asks a responder.
/// Each certificate's staple file (beside it, or below `--staple-dir`) is followed by a
/// `StapleWatcher`; when it changes it is read and checked by the same `OCSPResponseVerifier`
/// as a fetched answer (signature, CertID, thisUpdate/nextUpdate), and only then handed on
/// to be pushed (`Outcome.read`). A file that does not verify, has expired or is gone is
/// refused with one line naming it and why; the staple being served stays, so HAProxy keeps
/// the last good one. Revoked staples are served, logged at CRITICAL, as fetched ones are.
///
/// A staple the writer stops refreshing ages visibly: once less than half of
/// `--minimum-validity` is left (the writer would have replaced it at `--minimum-validity`
/// at the latest), the certificate counts as failing with "not refreshed by the writer",
/// and again when it expires, in the log, the status table, the metrics and `--one-off`'s
/// exit status.
final class StapleReader: StapleSource {
    private let loop: EventLoop
    private let logger: Logger
    private var settings: StapleRefresher.Settings
    private let onOutcome: (TrackedCertificate, StapleRefresher.Outcome) -> Void
    private var watcher: StapleWatcher!
    /// Staple path → the certificate it belongs to, and its staleness check.
    private var followed: [FilePath: Followed] = [:]
    private var isStopped = false
    /// Outcomes read and not handed on yet (see `deliver`).
    private var undelivered: [(TrackedCertificate, StapleRefresher.Outcome)] = []
    private var delivering = 0
    private var deliveryScheduled = false

    private struct Followed {
        let certificate: TrackedCertificate
        var check: TimerHandle?
    }

    /// Reading is synchronous: only outcomes waiting to be handed on are in flight.
    var isIdle: Bool { undelivered.isEmpty && delivering == 0 }
    var onIdle: (() -> Void)?
    var activeFetches: Int { 0 }
    var queuedCount: Int { 0 }

    init(loop: EventLoop, logger: Logger, settings: StapleRefresher.Settings, watch: StapleWatcher.Settings,
         onOutcome: @escaping (TrackedCertificate, StapleRefresher.Outcome) -> Void) throws(SystemError) {
        self.loop = loop
        self.logger = logger
        self.settings = settings
        self.onOutcome = onOutcome
        watcher = try StapleWatcher(loop: loop, settings: watch) { [unowned self] in self.stapleChanged($0) }
    }

    private func staplePath(_ certificate: TrackedCertificate) -> FilePath {
        StapleFile.path(forCertificate: certificate.path, in: settings.stapleLocation)
    }

    // MARK: What the daemon asks

    /// Follows the certificate's staple file and serves what it holds now. HAProxy gets it
    /// even when it looks like the one HAProxy loaded at its start: that may be older.
    func adopt(_ certificate: TrackedCertificate) {
        guard certificate.record != nil, !isStopped else { return }
        read(certificate, from: follow(certificate), atStart: true)
    }

    /// The certificate file changed: its staple is judged again against what it holds now.
    func refreshNow(_ certificate: TrackedCertificate) {
        guard certificate.record != nil, !isStopped else { return }
        read(certificate, from: follow(certificate), atStart: false)
    }

    /// Has the watcher follow the certificate's staple file; returns its path.
    private func follow(_ certificate: TrackedCertificate) -> FilePath {
        let path = staplePath(certificate)
        if followed[path] == nil {
            followed[path] = Followed(certificate: certificate)
            watcher.follow(path)
        }
        return path
    }

    /// The staple watcher's own rescan covers unchanged certificates.
    func catchUpIfLate(_ certificate: TrackedCertificate, now: Int64) {}

    /// Staleness checks were timed by the old clock: time them again.
    func clockStepped(_ certificates: some Sequence<TrackedCertificate>, now: Int64) -> (fetched: Int, rescheduled: Int) {
        var rescheduled = 0
        for certificate in certificates {
            guard let staple = certificate.refresh.staple, followed[staplePath(certificate)] != nil else { continue }
            scheduleCheck(certificate, for: staple, now: now)
            rescheduled += 1
        }
        return (0, rescheduled)
    }

    func cancel(_ certificate: TrackedCertificate) {
        let path = staplePath(certificate)
        guard let entry = followed.removeValue(forKey: path) else { return }
        if let check = entry.check { loop.cancel(check) }
        certificate.refresh.planCheck(at: nil)
        watcher.unfollow(path)
    }

    func forget(_ certificate: TrackedCertificate) {
        cancel(certificate)
        certificate.refresh = RefreshState()
    }

    func cancelTimer(_ certificate: TrackedCertificate) {
        let path = staplePath(certificate)
        if let check = followed[path]?.check { loop.cancel(check) }
        followed[path]?.check = nil
    }

    func stop() {
        isStopped = true
        watcher.close()
    }

    func update(_ settings: StapleRefresher.Settings) {
        self.settings.minimumValidity = settings.minimumValidity
    }

    /// What the file holds now, if it still verifies: never a staple planted since.
    func stapleToPush(for certificate: TrackedCertificate) -> [UInt8]? {
        guard let record = certificate.record,
              let bytes = try? StapleFile.read(forCertificate: certificate.path, in: settings.stapleLocation),
              (try? OCSPResponseVerifier.verify(bytes, for: record, now: UTCTime.now())) != nil else { return nil }
        return bytes
    }

    // MARK: Reading

    private func stapleChanged(_ path: FilePath) {
        guard let certificate = followed[path]?.certificate, !isStopped else { return }
        read(certificate, from: path, atStart: false)
    }

    /// Reads and verifies the staple file; a staple that passes is served and pushed, any
    /// other outcome leaves the one being served in place.
    private func read(_ certificate: TrackedCertificate, from path: FilePath, atStart: Bool) {
        guard let record = certificate.record else { return }
        let now = UTCTime.now()
        let bytes: [UInt8]?
        do {
            bytes = try StapleFile.read(forCertificate: certificate.path, in: settings.stapleLocation)
        } catch {
            return refuse(certificate, "\(error)")
        }
        guard let bytes else {
            return refuse(certificate, certificate.refresh.staple == nil
                          ? "\(path): no staple yet (none written by the fetching Stapler)"
                          : "\(path): staple file gone", quietly: certificate.refresh.staple == nil)
        }
        let verified: VerifiedOCSPResponse
        do {
            verified = try OCSPResponseVerifier.verify(bytes, for: record, now: now)
        } catch {
            return refuse(certificate, "\(path): refused: \(error)")
        }
        let staple = StapleSummary(verified, fetchedAt: nil, cacheMaxAge: nil)
        let previous = certificate.refresh.staple
        let isNew = previous.map { !Self.sameAnswer($0, staple) } ?? true
        let previousError = certificate.refresh.lastError
        certificate.refresh.serve(staple)
        scheduleCheck(certificate, for: staple, now: now, previousError: previousError)
        if previousError != nil && previous != nil && certificate.refresh.lastError == nil {
            logger.warning("\(certificate.path): recovered: \(path) verifies again")
        }
        guard atStart || isNew else {
            logger.debug("\(path): touched, same staple: \(verified.statusDescription)")
            return
        }
        if case .revoked = verified.status {
            logger.critical("\(certificate.path): \(record.subject) is REVOKED: \(verified.statusDescription) "
                            + "(according to \(path))")
        }
        logger.info("\(certificate.path): staple \(atStart ? "found" : "changed") in \(path): "
                    + "\(verified.statusDescription), valid until \(UTCTime.format(verified.nextUpdate))")
        deliver(certificate, .read(der: bytes, changed: !atStart && isNew))
    }

    /// Two staples that say the same thing: a rewrite or a `touch` is no news.
    private static func sameAnswer(_ a: StapleSummary, _ b: StapleSummary) -> Bool {
        a.status == b.status && a.thisUpdate == b.thisUpdate && a.nextUpdate == b.nextUpdate
    }

    /// Logs once per new reason and counts a failure; the staple being served stays.
    /// `quietly`: a staple not written yet, normal for a while at a fleet's first start.
    /// `previousError`: the reason logged before a staple that verifies was served again.
    private func refuse(_ certificate: TrackedCertificate, _ reason: String, quietly: Bool = false,
                        previousError: String? = nil) {
        let now = UTCTime.now()
        if (previousError ?? certificate.refresh.lastError) != reason {
            let served = certificate.refresh.staple.map {
                $0.nextUpdate > now ? "serving the staple valid until \(UTCTime.format($0.nextUpdate))"
                                    : "the staple served expired at \(UTCTime.format($0.nextUpdate))"
            } ?? "no staple to serve"
            let line = "\(reason) (\(served))"
            let urgent = !(certificate.refresh.staple.map { $0.nextUpdate > now } ?? false)
            if quietly {
                logger.info(line)
            } else if urgent && certificate.record?.mustStaple == true {
                logger.critical(line)
            } else {
                logger.error(line)
            }
        }
        certificate.refresh.readFailed(reason)
    }

    // MARK: Staleness

    /// The writer replaces a staple once `--minimum-validity` is left, at the latest; once
    /// half of it is left, this host says the writer did not, and again at expiry.
    private func scheduleCheck(_ certificate: TrackedCertificate, for staple: StapleSummary, now: Int64,
                               previousError: String? = nil) {
        cancelTimer(certificate)
        certificate.refresh.planCheck(at: nil)
        guard !settings.onePass, !isStopped else { return }
        let path = staplePath(certificate)
        if staple.nextUpdate <= now {
            return refuse(certificate, "\(path): not refreshed by the fetching Stapler: expired at "
                          + "\(UTCTime.format(staple.nextUpdate)), HAProxy no longer serves it",
                          previousError: previousError)
        }
        let stale = staple.nextUpdate.saturatingSubtract(settings.minimumValidity / 2)
        var due = stale
        if stale <= now {
            refuse(certificate, "\(path): not refreshed by the fetching Stapler: valid only until "
                   + "\(UTCTime.format(staple.nextUpdate))", previousError: previousError)
            due = staple.nextUpdate
        }
        certificate.refresh.planCheck(at: due)
        followed[path]?.check = loop.schedule(after: .seconds(due.saturatingSubtract(now))) {
            [weak self, weak certificate] in
            guard let self, let certificate else { return }
            self.followed[path]?.check = nil
            // A newer staple rescheduled its own check; this one is about the old one.
            guard let current = certificate.refresh.staple, Self.sameAnswer(current, staple) else { return }
            self.scheduleCheck(certificate, for: staple, now: UTCTime.now())
        }
    }

    // MARK: Handing staples on

    /// Outcomes go out from the loop, not from inside the scan that read them: the daemon
    /// ends a `--one-off` pass on an outcome once nothing is left, and the scan has not
    /// read every certificate yet.
    private func deliver(_ certificate: TrackedCertificate, _ outcome: StapleRefresher.Outcome) {
        undelivered.append((certificate, outcome))
        guard !deliveryScheduled else { return }
        deliveryScheduled = true
        loop.executeSoon { [weak self] in
            guard let self else { return }
            self.deliveryScheduled = false
            let batch = self.undelivered
            self.undelivered = []
            self.delivering = batch.count
            for (certificate, outcome) in batch {
                self.delivering -= 1
                guard !self.isStopped, certificate.record != nil else { continue }
                self.onOutcome(certificate, outcome)
            }
            if self.isIdle { self.onIdle?() }
        }
    }
}
