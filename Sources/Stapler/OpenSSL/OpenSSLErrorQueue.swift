import COpenSSL
import Glibc

/// One entry of OpenSSL's per-thread error queue, reduced to what a log line and a
/// classification need.
struct OpenSSLError: Equatable, Sendable {
    let library: Int32
    let reason: Int32
    /// The detail OpenSSL attached, if any ("Verify error: certificate has expired").
    let detail: String?
    /// The reason text plus the detail ("certificate verify error: Verify error: certificate
    /// has expired").
    let text: String
}

/// OpenSSL reports failures on a per-thread queue that outlives the call which failed. Every
/// operation here drains it when done, so one failure never leaks into the next log line.
enum OpenSSLErrorQueue {
    /// Removes every queued error and returns them, oldest first (at most a few: a hostile
    /// input must not make a long message).
    static func drain() -> [OpenSSLError] {
        var errors: [OpenSSLError] = []
        while true {
            var data: UnsafePointer<CChar>?
            var flags: Int32 = 0
            let code = ERR_get_error_all(nil, nil, nil, &data, &flags)
            if code == 0 { break }
            guard errors.count < 4 else { continue }
            let reason = ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)"
            var detail: String?
            if let data, flags & ERR_TXT_STRING != 0, data.pointee != 0 {
                detail = LogText.sanitised(String(cString: data), limit: 200)
            }
            errors.append(OpenSSLError(library: ERR_GET_LIB(code), reason: ERR_GET_REASON(code), detail: detail,
                                       text: LogText.sanitised(reason, limit: 100) + (detail.map { ": " + $0 } ?? "")))
        }
        return errors
    }

    /// The queued errors as one clause ("; "-separated), or `fallback` when OpenSSL said nothing.
    static func drainDescription(fallback: String) -> String {
        let errors = drain()
        return errors.isEmpty ? fallback : errors.map(\.text).joined(separator: "; ")
    }

    static func clear() { ERR_clear_error() }
}
