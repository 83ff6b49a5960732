/// The SIGUSR1 status table: one line per certificate, for an operator at a terminal.
extension Daemon {
    func statusReport() -> [String] {
        let now = UTCTime.now()
        var lines = ["status: \(certificates.count) certificate file(s), \(refresher.activeFetches) fetch(es) running, "
                     + "\(refresher.queuedCount) queued, \(haproxy.pendingPushes) HAProxy push(es) pending"]
        for certificate in certificates.values.sorted(by: { $0.path < $1.path }) {
            lines.append(Self.statusLine(certificate, now: now))
        }
        return lines
    }

    static func statusLine(_ certificate: TrackedCertificate, now: Int64) -> String {
        if let reason = certificate.inactiveReason, certificate.record == nil {
            // The reason is a log line that starts with the path already.
            let prefix = "\(certificate.path): "
            return prefix + "inactive (\(reason.hasPrefix(prefix) ? String(reason.dropFirst(prefix.count)) : reason))"
        }
        var fields: [String] = []
        if let staple = certificate.refresh.staple {
            let status: String
            switch staple.status {
            case .good: status = "good"
            case .revoked: status = "REVOKED"
            }
            fields.append("staple \(status), valid until \(UTCTime.format(staple.nextUpdate))"
                          + (staple.nextUpdate <= now ? " (EXPIRED)" : ""))
        } else {
            fields.append("no staple")
        }
        if certificate.record?.mustStaple == true { fields.append("must-staple") }
        if certificate.refresh.isFetching {
            fields.append("fetching now")
        } else if let due = certificate.refresh.nextRefresh {
            fields.append("next refresh \(UTCTime.format(due))")
        }
        if let error = certificate.refresh.lastError {
            fields.append("last error (\(certificate.refresh.failures) attempt(s)): \(error)")
        }
        return "\(certificate.path): " + fields.joined(separator: ", ")
    }
}
