import Reactor

/// The refresh of one certificate: queue, fetch, verify, write, push, schedule the next.
extension Daemon {
    /// Puts a certificate in line for a fetch slot (at most `--renewal-threads` at once).
    /// Must-Staple certificates and staples about to run out take the urgent lane. A first
    /// fetch (no staple yet) waits in the normal lane: when a start-up scan queues thousands
    /// of certificates without staples, the Must-Staple ones, for which a missing staple is
    /// an outage rather than a slower handshake, must not wait behind them.
    func enqueue(_ certificate: TrackedCertificate, urgent: Bool = false) {
        guard let record = certificate.record, !certificate.isFetching, !isStopping else { return }
        if let timer = certificate.timer { loop.cancel(timer) }
        certificate.timer = nil
        let now = UTCTime.now()
        let runningOut = certificate.staple.map { $0.nextUpdate.saturatingSubtract(now) < minimumValidity } ?? false
        queue.push(certificate, group: responderOrigin(of: record), urgent: urgent || record.mustStaple || runningOut)
        schedulePump()
    }

    /// Starting transfers waits for the end of the current pass, so a scan that queues
    /// thousands of certificates lets Must-Staple ones go first.
    private func schedulePump() {
        guard !pumpScheduled else { return }
        pumpScheduled = true
        loop.executeSoon { [unowned self] in
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
        while activeFetches < options.renewalThreads, !isStopping,
              let certificate = queue.pop(available: { self.http.activeTransferCount(origin: $0) < limit }) {
            guard certificate.record != nil, certificates[certificate.path] === certificate else { continue }
            certificate.urlIndex = 0
            certificate.attemptErrors = []
            startFetch(certificate)
        }
        finishOneOffIfDone()
    }

    /// The responder a certificate's fetch goes to first, as the queue groups them.
    func responderOrigin(of record: CertificateRecord) -> String {
        let url = record.ocspURLs[0]
        if let known = responderOrigins[url] { return known }
        // Bounded: a directory of certificates with distinct URLs must not grow it forever.
        if responderOrigins.count >= 1024 { responderOrigins.removeAll() }
        let origin = HTTPClient.origin(of: url)
        responderOrigins[url] = origin
        return origin
    }

    /// Stops whatever is planned or running for a certificate.
    func cancelRefresh(_ certificate: TrackedCertificate) {
        if let timer = certificate.timer { loop.cancel(timer) }
        certificate.timer = nil
        certificate.nextRefresh = nil
        queue.remove(certificate)
        if let transfer = certificate.transfer {
            certificate.transfer = nil
            http.cancel(transfer)
        }
        if let write = certificate.pendingWrite {
            // The staple for what the file held before: the fetch that follows writes anew.
            certificate.pendingWrite = nil
            pendingWrites -= 1
            stapleWriter.cancel(write)
        }
    }

    private func startFetch(_ certificate: TrackedCertificate) {
        guard let record = certificate.record else { return }
        let now = UTCTime.now()
        if record.notAfter <= now {
            certificate.inactiveReason = "\(certificate.path): certificate expired at \(UTCTime.format(record.notAfter))"
            logger.warning("\(certificate.inactiveReason!), not querying OCSP any more")
            certificate.record = nil
            return
        }
        let url = record.ocspURLs[certificate.urlIndex]
        let request: OCSPRequest
        do {
            request = try OCSPRequest(certID: record.certID, includeNonce: options.nonce)
        } catch {
            fail(certificate, reason: "\(error)")
            return
        }
        var httpRequest = request.httpRequest(responderURL: url).reactorRequest
        httpRequest.connectTimeout = .seconds(5)
        httpRequest.totalTimeout = .seconds(15)
        activeFetches += 1
        statistics.fetchesStarted += 1
        var handle: HTTPTransferHandle?
        handle = http.start(httpRequest) { [weak self, weak certificate] result in
            guard let self else { return }
            self.activeFetches -= 1
            // Transfers cut short by `stop` are no failure worth a log line.
            guard !self.isStopping else { return }
            if let certificate, let handle, certificate.transfer == handle {
                certificate.transfer = nil
                self.finishFetch(certificate, url: url, result: result, nonce: request.nonce)
            }
            self.schedulePump()
        }
        certificate.transfer = handle
    }

    private func finishFetch(_ certificate: TrackedCertificate, url: String, result: Result<HTTPResponse, HTTPError>,
                             nonce: [UInt8]?) {
        guard let record = certificate.record else { return }
        let now = UTCTime.now()
        let response: HTTPResponse
        switch result {
        case .failure(let error):
            // The responder URL, not the request URL with its base64 CertID: one readable line.
            return attemptFailed(certificate, reason: "\(url): \(error.reason)")
        case .success(let success):
            response = success
        }
        if let type = response.contentType, !Self.isOCSPContentType(type) {
            return attemptFailed(certificate, reason: "\(url): unexpected Content-Type \"\(type)\"")
        }
        let verified: VerifiedOCSPResponse
        do {
            verified = try OCSPResponseVerifier.verify(response.body, for: record, now: now, expectedNonce: nonce)
        } catch {
            return attemptFailed(certificate, reason: "\(url): \(error)")
        }
        let cacheMaxAge = CacheControl.maxAge(response.cacheControl)
        do {
            let outcome = try StapleFile.write(verified.der, forCertificate: certificate.path, using: stapleWriter) {
                [weak self, weak certificate] error in
                guard let self else { return }
                self.pendingWrites -= 1
                if let certificate {
                    certificate.pendingWrite = nil
                    if let error {
                        if !self.isStopping { self.fail(certificate, reason: "\(error)", failure: "staple not written") }
                    } else {
                        self.stapleStored(certificate, verified, written: true, url: url, fetchedAt: now,
                                          cacheMaxAge: cacheMaxAge)
                    }
                }
                self.finishOneOffIfDone()
            }
            switch outcome {
            case .staged(let ticket):
                certificate.pendingWrite = ticket
                pendingWrites += 1
            case .unchanged:
                stapleStored(certificate, verified, written: false, url: url, fetchedAt: now, cacheMaxAge: cacheMaxAge)
            }
        } catch {
            // The previous staple is untouched; the retry fetches and writes again.
            fail(certificate, reason: "\(error)", failure: "staple not written")
        }
    }

    /// A verified staple is on disk (or was already): serve it, log it, push it, plan the next.
    private func stapleStored(_ certificate: TrackedCertificate, _ verified: VerifiedOCSPResponse, written: Bool,
                              url: String, fetchedAt now: Int64, cacheMaxAge: Int64?) {
        guard let record = certificate.record else { return }
        statistics.fetchesSucceeded += 1
        certificate.staple = StapleSummary(verified, fetchedAt: now, cacheMaxAge: cacheMaxAge)
        if certificate.lastError != nil {
            logger.warning("\(certificate.path): recovered after \(certificate.failures) failed attempt(s)")
        }
        certificate.failures = 0
        certificate.lastError = nil
        if case .revoked = verified.status {
            logger.critical("\(certificate.path): \(record.subject) is REVOKED: \(verified.statusDescription) "
                            + "(according to \(url))")
        }
        let due = refreshPolicy.nextRefresh(thisUpdate: verified.thisUpdate, nextUpdate: verified.nextUpdate,
                                            fetchedAt: now, cacheMaxAge: cacheMaxAge,
                                            certificateNotAfter: record.notAfter, now: now, random: randomFraction())
        logger.info("\(certificate.path): \(written ? "staple written" : "staple unchanged"): "
                    + "\(verified.statusDescription), valid until \(UTCTime.format(verified.nextUpdate))"
                    + (options.oneOff ? "" : ", next refresh \(UTCTime.format(due))"))
        // Stopping: the file is in place; HAProxy and timers are being shut down.
        guard !isStopping else { return }
        if written { push(verified.der, for: certificate) }
        if !options.oneOff { scheduleRefresh(certificate, at: due, now: now) }
    }

    /// `application/ocsp-response`, with or without parameters, in any case.
    /// Compared byte by byte (it runs for every response; lowercased() maps all of Unicode).
    static func isOCSPContentType(_ type: String) -> Bool {
        let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        let media = Array(type.utf8.prefix { $0 != UInt8(ascii: ";") }.drop(while: isSpace).reversed()
            .drop(while: isSpace).reversed())
        let expected = Array("application/ocsp-response".utf8)
        guard media.count == expected.count else { return false }
        return zip(media, expected).allSatisfy { byte, wanted in
            byte == wanted || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) && byte | 0x20 == wanted
        }
    }

    /// One responder URL failed: try the next, or give up on this attempt.
    private func attemptFailed(_ certificate: TrackedCertificate, reason: String) {
        certificate.attemptErrors.append(reason)
        if let record = certificate.record, certificate.urlIndex + 1 < record.ocspURLs.count, !isStopping {
            certificate.urlIndex += 1
            startFetch(certificate)
            return
        }
        fail(certificate, reason: certificate.attemptErrors.joined(separator: "; "))
    }

    /// The attempt failed: keep the staple we have, log once per new reason, back off. Every
    /// failure is retried while the certificate is valid, the permanent-looking ones too: a
    /// responder's broken signing setup gets fixed, and the backoff keeps the cost small.
    /// `failure` says which step failed: the fetch (and its checks) or writing the file.
    private func fail(_ certificate: TrackedCertificate, reason: String, failure: String = "OCSP fetch failed") {
        statistics.fetchesFailed += 1
        certificate.failures += 1
        let now = UTCTime.now()
        let urgent = certificate.staple.map { $0.nextUpdate.saturatingSubtract(now) < minimumValidity } ?? true
        let mustStaple = certificate.record?.mustStaple ?? false
        let delay = retryBackoff.delay(failures: certificate.failures, urgent: urgent || mustStaple,
                                       random: randomFraction())
        if certificate.lastError != reason {
            let served = certificate.staple.map { "serving the staple valid until \(UTCTime.format($0.nextUpdate))" }
                ?? "no staple to serve"
            let retry = options.oneOff ? "" : "; retrying in \(delay) s"
            let line = "\(certificate.path): \(failure): \(reason) (\(served)\(retry))"
            if urgent && mustStaple { logger.critical(line) } else if urgent { logger.error(line) } else { logger.warning(line) }
        }
        certificate.lastError = reason
        if !options.oneOff { scheduleRefresh(certificate, at: now.saturatingAdd(delay), now: now) }
    }

    func scheduleRefresh(_ certificate: TrackedCertificate, at due: Int64, now: Int64) {
        if let timer = certificate.timer { loop.cancel(timer) }
        certificate.nextRefresh = due
        guard !options.oneOff else {
            certificate.timer = nil
            return
        }
        certificate.timer = loop.schedule(after: .seconds(max(0, due.saturatingSubtract(now)))) { [weak self, weak certificate] in
            guard let self, let certificate else { return }
            certificate.timer = nil
            self.enqueue(certificate)
        }
    }
}
