/// Why a transfer produced no usable response, with the URL it was for, ready for one log
/// line: `http://127.0.0.1:8080/x: timed out after 15 s`.
public struct HTTPError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable, CustomStringConvertible {
        /// The whole exchange took longer than the request's total timeout.
        case timedOut(after: Duration)
        /// No connection within the request's connect timeout.
        case connectTimedOut(after: Duration)
        /// The URL's host name gave no address (NXDOMAIN, no record, no DNS answer in time).
        case nameNotResolved(host: String, detail: String)
        /// The TCP connection failed (or curl's own name resolution, for a proxy); curl's
        /// message says which.
        case connectFailed(String)
        /// TLS handshake or certificate verification failed.
        case tlsFailed(String)
        /// The body exceeded the request's `maxBodyBytes`.
        case tooLarge(limit: Int)
        /// The response header lines exceeded the request's `maxHeaderBytes`.
        case headersTooLarge(limit: Int)
        /// The final response had an error status (400 or above).
        case httpStatus(Int)
        /// More redirects than the client follows.
        case tooManyRedirects(limit: Int)
        /// The server broke HTTP: nothing, garbage, a cut-off body, a reset connection, a
        /// redirect to a scheme other than http/https.
        case protocolError(String)
        /// The URL or a header cannot be sent (bad syntax, a scheme other than http/https,
        /// line breaks in a header). Nothing was sent.
        case invalidRequest(String)
        /// `HTTPClient.cancel` or `cancelAll` ended the transfer.
        case cancelled
        /// Anything else curl reported, with its code and message.
        case curl(code: Int, message: String)

        public var description: String {
            switch self {
            case .timedOut(let limit): return "timed out after \(limit.shortDescription)"
            case .connectTimedOut(let limit): return "connect timed out after \(limit.shortDescription)"
            case .nameNotResolved(let host, let detail): return "\(host): name not resolved: \(detail)"
            case .connectFailed(let message): return "connect failed: \(message)"
            case .tlsFailed(let message): return "TLS failed: \(message)"
            case .tooLarge(let limit): return "response body larger than \(limit) bytes"
            case .headersTooLarge(let limit): return "response headers larger than \(limit) bytes"
            case .httpStatus(let status): return "HTTP status \(status)"
            case .tooManyRedirects(let limit): return "more than \(limit) redirects"
            case .protocolError(let message): return "protocol error: \(message)"
            case .invalidRequest(let message): return "invalid request: \(message)"
            case .cancelled: return "cancelled"
            case .curl(let code, let message): return "curl error \(code): \(message)"
            }
        }
    }

    public let url: String
    public let reason: Reason

    public init(url: String, reason: Reason) {
        self.url = url
        self.reason = reason
    }

    public var description: String { "\(url): \(reason)" }
}

extension Duration {
    /// `300 ms`, `15 s`, `1.5 s`: short enough for a log line.
    var shortDescription: String {
        let ms = millisecondsRoundedUp
        if ms < 1000 { return "\(ms) ms" }
        if ms % 1000 == 0 { return "\(ms / 1000) s" }
        let tenths = (ms + 50) / 100
        return tenths % 10 == 0 ? "\(tenths / 10) s" : "\(tenths / 10).\(tenths % 10) s"
    }
}
