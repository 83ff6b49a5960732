import Reactor

/// `stapler check CERT...`: what Stapler knows about each certificate and its staple file,
/// as a monitoring plugin (`CheckReport` prints it). Exit codes: 0 OK, 1 WARNING (a staple
/// has less than `--warning` seconds left), 2 CRITICAL (missing, invalid, revoked or expired
/// staple, less than `--critical` seconds left, unreadable certificate), 3 UNKNOWN (bad
/// arguments, unreadable config file, internal error).
enum CheckCommand {
    static func run(_ options: CheckOptions) -> Int32 {
        let issuers = IssuerStore()
        var fetcher: CheckFetcher?
        if options.fetch {
            do {
                try HTTPClient.globalInit()
                fetcher = try CheckFetcher(timeout: options.timeout, proxy: OCSPExchange.proxySetting(options.ocspProxy))
            } catch {
                standardOutput(CheckReport.unknown("cannot set up --fetch: \(error)"))
                return CheckReport.Status.unknown.rawValue
            }
        }
        let results = options.certificates.map { check($0, options: options, issuers: issuers, fetcher: fetcher) }
        let report = CheckReport(results: results, warning: options.warning.components.seconds,
                                 critical: options.critical.components.seconds, verbose: options.verbose)
        standardOutput(report.text)
        return report.status.rawValue
    }

    /// A usage error or an unreadable config file: UNKNOWN, on standard output where a
    /// monitoring system reads it.
    static func usageFailure(_ error: ConfigurationError) -> Int32 {
        let message = error.description
        let prefix = "stapler: "
        standardOutput(CheckReport.unknown(message.hasPrefix(prefix) ? String(message.dropFirst(prefix.count)) : message))
        return CheckReport.Status.unknown.rawValue
    }

    static func check(_ path: FilePath, options: CheckOptions, issuers: IssuerStore,
                      fetcher: CheckFetcher?) -> CheckReport.Result {
        let now = UTCTime.now()
        var result = CheckReport.Result(path: path, status: .critical, summary: "", secondsLeft: 0)
        let record: CertificateRecord
        do {
            record = try CertificateBundle.load(path: path, now: now, issuers: issuers,
                                                issuerLocation: options.stapleDirectory.map { .under($0) } ?? .besideCertificate)
        } catch {
            // The error's text starts with the path, which the report prints already.
            let text = error.description
            let prefix = "\(path): "
            result.summary = text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
            if case .noOCSPURL = error.reason {
                result.status = .ok
                result.secondsLeft = nil
            }
            return result
        }
        result.details = ["subject: \(record.subject)",
                          "OCSP URLs: \(record.ocspURLs.joined(separator: " "))",
                          "CertID: \(record.certID.hex)",
                          "must-staple: \(record.mustStaple ? "yes" : "no")"]
        result.fetch = fetcher.map { $0.fetch(record, nonce: options.nonce, now: now) }
        let location = options.stapleDirectory.map { StapleLocation.under($0) } ?? .besideCertificate
        let staplePath = StapleFile.path(forCertificate: path, in: location)
        let bytes: [UInt8]?
        do {
            bytes = try StapleFile.read(forCertificate: path, in: location)
        } catch {
            result.summary = "staple unreadable: \(error)"
            return result
        }
        guard let bytes else {
            result.summary = "staple missing (\(staplePath))"
            return result
        }
        let verified: VerifiedOCSPResponse
        do {
            verified = try OCSPResponseVerifier.verify(bytes, for: record, now: now)
        } catch {
            result.summary = "staple does not verify: \(error)"
            return result
        }
        let left = max(0, verified.nextUpdate - now)
        result.secondsLeft = left
        result.details.append("staple: \(staplePath) verifies: \(verified.statusDescription)")
        result.details.append("thisUpdate: \(UTCTime.format(verified.thisUpdate)), "
                              + "nextUpdate: \(UTCTime.format(verified.nextUpdate))")
        let policy = RefreshPolicy(minimumValidity: options.minimumValidity.components.seconds, jitterFraction: 0)
        let due = policy.nextRefresh(thisUpdate: verified.thisUpdate, nextUpdate: verified.nextUpdate, fetchedAt: now,
                                     cacheMaxAge: nil, certificateNotAfter: record.notAfter, now: now, random: 0)
        result.details.append("refresh due: \(UTCTime.format(due))")

        let validity = "valid for \(left) s (until \(UTCTime.format(verified.nextUpdate)))"
        let critical = options.critical.components.seconds
        let warning = options.warning.components.seconds
        if case .revoked = verified.status {
            result.summary = "certificate REVOKED: \(verified.statusDescription)"
        } else if left < critical {
            result.summary = "staple \(validity), under the critical \(critical) s"
        } else if left < warning {
            result.status = .warning
            result.summary = "staple \(validity), under the warning \(warning) s"
        } else {
            result.status = .ok
            result.summary = "staple good, \(validity)"
        }
        return result
    }
}

/// Asks a certificate's responders once, on an event loop of its own, with the daemon's own
/// exchange (`OCSPExchange`: the same request, limits and acceptance rules), and says what
/// came back. Nothing is written.
/// All exchanges together end by `--timeout`: a monitoring system kills a plugin that
/// overruns its own time limit, and then shows nothing of what was learnt.
final class CheckFetcher {
    private let loop: EventLoop
    private let http: HTTPClient
    private let timeout: Duration
    private let deadline: MonotonicInstant

    init(timeout: Duration, proxy: ProxySetting) throws {
        loop = try EventLoop()
        http = try HTTPClient(loop: loop, configuration: try OCSPExchange.clientConfiguration(fetchSlots: 1, proxy: proxy))
        self.timeout = timeout
        deadline = MonotonicInstant.now() + timeout
    }

    func fetch(_ record: CertificateRecord, nonce: Bool, now: Int64) -> String {
        var answers: [String] = []
        for url in record.ocspURLs {
            let exchange: OCSPExchange
            do {
                exchange = try OCSPExchange(certID: record.certID, responderURL: url, includeNonce: nonce)
            } catch {
                return "\(error)"
            }
            let remaining = deadline.duration(since: MonotonicInstant.now())
            guard remaining > .zero else {
                answers.append("\(url): not asked, the --timeout of \(timeout.components.seconds) s ran out")
                continue
            }
            var request = exchange.httpRequest
            request.totalTimeout = min(request.totalTimeout, remaining)
            request.connectTimeout = min(request.connectTimeout, remaining)
            var result: Result<HTTPResponse, HTTPError>?
            http.start(request) { [loop] in
                result = $0
                loop.stop()
            }
            try? loop.run()
            guard let result else {
                answers.append("\(url): no answer")
                continue
            }
            do {
                let verified = try exchange.accept(result, for: record, now: now).verified
                return "\(url): \(verified.statusDescription), valid until \(UTCTime.format(verified.nextUpdate))"
            } catch {
                answers.append("\(error)")
            }
        }
        return answers.joined(separator: "; ")
    }
}
