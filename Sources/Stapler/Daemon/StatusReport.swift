/// The SIGUSR1 status table: one line per certificate, for an operator at a terminal.
extension Daemon {
    func statusReport() -> [String] {
        let now = UTCTime.now()
        var lines = ["status: \(certificates.count) certificate file(s), \(activeFetches) fetch(es) running, "
                     + "\(queue.count) queued, \(pendingPushes) HAProxy push(es) pending"]
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
        if let staple = certificate.staple {
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
        if certificate.isFetching {
            fields.append("fetching now")
        } else if let due = certificate.nextRefresh {
            fields.append("next refresh \(UTCTime.format(due))")
        }
        if let error = certificate.lastError {
            fields.append("last error (\(certificate.failures) attempt(s)): \(error)")
        }
        return "\(certificate.path): " + fields.joined(separator: ", ")
    }
}
