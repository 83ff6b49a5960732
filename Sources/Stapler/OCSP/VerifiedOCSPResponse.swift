import COpenSSL

/// An OCSP response that passed every check and may be stapled, with the times the
/// scheduler needs. The DER is exactly what was checked.
struct VerifiedOCSPResponse: Equatable, Sendable {
    enum Status: Equatable, Sendable {
        case good
        /// `reason` is the CRLReason code (RFC 5280 §5.3.1), nil when the responder gave none.
        case revoked(time: Int64, reason: Int?)
    }

    let status: Status
    /// Unix seconds.
    let thisUpdate: Int64
    let nextUpdate: Int64
    let producedAt: Int64
    let der: [UInt8]

    /// "good", or "revoked at 2026-11-25 10:00:00 UTC (keyCompromise)" for log lines.
    var statusDescription: String {
        switch status {
        case .good:
            return "good"
        case .revoked(let time, let reason):
            let why = reason.map { " (" + String(cString: OCSP_crl_reason_str($0)) + ")" } ?? ""
            return "revoked at \(UTCTime.format(time))\(why)"
        }
    }
}
