import Reactor

/// `stapler check CERT...`: what Stapler knows about each certificate and its staple file,
/// for an operator or a monitoring system. Exit codes follow the monitoring-plugin
/// convention: 0 OK, 1 WARNING (the staple runs out within --minimum-validity), 2 CRITICAL
/// (missing, invalid, revoked or expired staple, unreadable certificate).
enum CheckCommand {
    enum Verdict: Int32, Comparable {
        case ok = 0, warning = 1, critical = 2
        static func < (lhs: Verdict, rhs: Verdict) -> Bool { lhs.rawValue < rhs.rawValue }
        var label: String {
            switch self {
            case .ok: return "OK"
            case .warning: return "WARNING"
            case .critical: return "CRITICAL"
            }
        }
    }

    static func run(_ options: CheckOptions) -> Int32 {
        let issuers = IssuerStore()
        var worst = Verdict.ok
        var fetcher: CheckFetcher?
        if options.fetch {
            do {
                try HTTPClient.globalInit()
                fetcher = try CheckFetcher()
            } catch {
                standardError("stapler check: \(error)")
                return Verdict.critical.rawValue
            }
        }
        for path in options.certificates {
            let (verdict, lines) = check(path, options: options, issuers: issuers, fetcher: fetcher)
            standardOutput("\(verdict.label): " + lines.joined(separator: "\n    ") + "\n")
            worst = max(worst, verdict)
        }
        return worst.rawValue
    }

    static func check(_ path: FilePath, options: CheckOptions, issuers: IssuerStore,
                      fetcher: CheckFetcher?) -> (Verdict, [String]) {
        let now = UTCTime.now()
        let record: CertificateRecord
        do {
            record = try CertificateBundle.load(path: path, now: now, issuers: issuers)
        } catch {
            switch error.reason {
            case .noOCSPURL: return (.ok, ["\(error)"])
            default: return (.critical, ["\(error)"])
            }
        }
        var lines = ["\(path): \(record.subject)",
                     "OCSP URLs: \(record.ocspURLs.joined(separator: " "))",
                     "CertID: \(record.certID.hex)",
                     "must-staple: \(record.mustStaple ? "yes" : "no")"]
        if let fetcher {
            lines.append("fetch: " + fetcher.fetch(record, nonce: options.nonce, now: now))
        }
        let staplePath = StapleFile.path(forCertificate: path)
        let bytes: [UInt8]?
        do {
            bytes = try StapleFile.read(forCertificate: path)
        } catch {
            return (.critical, lines + ["staple: \(error)"])
        }
        guard let bytes else { return (.critical, lines + ["staple: \(staplePath) is missing"]) }
        let verified: VerifiedOCSPResponse
        do {
            verified = try OCSPResponseVerifier.verify(bytes, for: record, now: now)
        } catch {
            return (.critical, lines + ["staple: \(staplePath) does not verify: \(error)"])
        }
        lines.append("staple: \(staplePath) verifies: \(verified.statusDescription)")
        lines.append("thisUpdate: \(UTCTime.format(verified.thisUpdate)), nextUpdate: \(UTCTime.format(verified.nextUpdate))")
        let policy = RefreshPolicy(minimumValidity: options.minimumValidity.components.seconds, jitterFraction: 0)
        let due = policy.nextRefresh(thisUpdate: verified.thisUpdate, nextUpdate: verified.nextUpdate, fetchedAt: now,
                                     cacheMaxAge: nil, certificateNotAfter: record.notAfter, now: now, random: 0)
        lines.append("refresh due: \(UTCTime.format(due))")
        if case .revoked = verified.status { return (.critical, lines) }
        if !policy.isRecyclable(nextUpdate: verified.nextUpdate, now: now) {
            lines.append("the staple runs out within \(options.minimumValidity.components.seconds) s")
            return (.warning, lines)
        }
        return (.ok, lines)
    }
}

/// Asks a certificate's responders once, on an event loop of its own, with the daemon's own
/// exchange (`OCSPExchange`: the same request, limits and acceptance rules), and says what
/// came back. Nothing is written.
final class CheckFetcher {
    private let loop: EventLoop
    private let http: HTTPClient

    init() throws {
        loop = try EventLoop()
        http = try HTTPClient(loop: loop, configuration: try OCSPExchange.clientConfiguration(fetchSlots: 1))
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
            var result: Result<HTTPResponse, HTTPError>?
            http.start(exchange.httpRequest) { [loop] in
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
