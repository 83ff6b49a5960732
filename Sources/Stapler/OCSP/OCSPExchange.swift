import Glibc
import Reactor

/// One OCSP question to one responder URL and the rules its answer must pass before it may
/// be stapled, for the daemon and `stapler check --fetch` alike:
/// - only a final HTTP status 200 is an answer (a 203 or 204 with a valid body is not, nor a
///   3xx curl did not follow); redirects at most `HTTPClient.Configuration.maxRedirects`,
///   http and https only (the Reactor's client refuses other schemes);
/// - a Content-Type, when present, is `application/ocsp-response` (parameters and case aside);
/// - the body verifies for this certificate (`OCSPResponseVerifier`), nonce included;
/// - the responder's Cache-Control max-age comes with it, for the refresh policy.
struct OCSPExchange {
    /// Sent as User-Agent on every request.
    static let userAgent = "stapler/\(Usage.programVersion)"
    static let connectTimeout: Duration = .seconds(5)
    static let totalTimeout: Duration = .seconds(15)
    /// Connections curl opens to one responder; also the fetch slots one responder may hold.
    static let connectionsPerResponder = 4

    /// Replaces the DNS servers of /etc/resolv.conf for responder names (tests point it at
    /// their own server); documented in stapler(8), ENVIRONMENT.
    static let nameServersVariable = "STAPLER_DNS_SERVERS"

    /// The client settings for `fetchSlots` fetches at once; throws when
    /// `STAPLER_DNS_SERVERS` is set but is no list of server addresses.
    static func clientConfiguration(fetchSlots: Int, proxy: ProxySetting = .environment)
        throws(HTTPClient.SetupError) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.proxy = proxy
        if let value = getenv(nameServersVariable) {
            do {
                configuration.nameResolution.nameServers = try NameServerList(parsing: String(cString: value))
            } catch {
                throw HTTPClient.SetupError(description: "\(nameServersVariable): \(error)")
            }
        }
        configuration.userAgent = userAgent
        configuration.maxConcurrentTransfers = fetchSlots
        configuration.maxConnectionsPerHost = connectionsPerResponder
        configuration.maxTotalConnections = max(fetchSlots, connectionsPerResponder)
        return configuration
    }

    /// `--ocsp-proxy` as the client takes it: nil leaves the environment to decide, "" is
    /// no proxy. The loader has checked the URL; one that no longer parses means none.
    static func proxySetting(_ ocspProxy: String?) -> ProxySetting {
        guard let ocspProxy else { return .environment }
        guard !ocspProxy.isEmpty, let proxy = try? ProxyURL(parsing: ocspProxy) else { return .none }
        return .proxy(proxy)
    }

    /// Whether a failed exchange says the proxy itself is in trouble (it did not answer, or
    /// answered 502, 503 or 504, which is how caches report an upstream they cannot reach
    /// or their own overload) rather than the responder's answer being wrong.
    static func isProxyFault(_ error: OCSPExchangeError) -> Bool {
        switch error.reason {
        case .transport: return true
        case .status(let code): return (502...504).contains(code)
        case .contentType, .response: return false
        }
    }

    /// What a good answer yields.
    struct Answer {
        let verified: VerifiedOCSPResponse
        /// The responder's Cache-Control max-age (capped), if it promised one.
        let cacheMaxAge: Int64?
    }

    let responderURL: String
    let request: OCSPRequest
    /// GET or POST as RFC 5019 §5 asks, with the timeouts and the size cap of an answer.
    var httpRequest: HTTPRequest

    init(certID: CertID, responderURL: String, includeNonce: Bool) throws(OCSPRequestError) {
        self.responderURL = responderURL
        request = try OCSPRequest(certID: certID, includeNonce: includeNonce)
        var http = request.httpRequest(responderURL: responderURL)
        http.connectTimeout = Self.connectTimeout
        http.totalTimeout = Self.totalTimeout
        // Every status is judged here, with the same words for all of them.
        http.errorStatusIsFailure = false
        httpRequest = http
    }

    /// The answer if every rule holds, or why not, naming the responder URL (not the request
    /// URL with its base64 CertID: one readable line).
    func accept(_ result: Result<HTTPResponse, HTTPError>, for record: CertificateRecord,
                now: Int64) throws(OCSPExchangeError) -> Answer {
        let response: HTTPResponse
        switch result {
        case .failure(let error): throw failure(.transport(error.reason))
        case .success(let success): response = success
        }
        guard response.statusCode == 200 else { throw failure(.status(response.statusCode)) }
        if let type = response.contentType, !Self.isOCSPContentType(type) {
            throw failure(.contentType(type))
        }
        do {
            let verified = try OCSPResponseVerifier.verify(response.body, for: record, now: now,
                                                           expectedNonce: request.nonce)
            return Answer(verified: verified, cacheMaxAge: CacheControl.maxAge(response.cacheControl))
        } catch {
            throw failure(.response(error))
        }
    }

    private func failure(_ reason: OCSPExchangeError.Reason) -> OCSPExchangeError {
        OCSPExchangeError(responderURL: responderURL, reason: reason)
    }

    /// `application/ocsp-response`, with or without parameters, in any case. Compared byte by
    /// byte: it runs for every response, and `lowercased()` maps all of Unicode.
    static func isOCSPContentType(_ type: String) -> Bool {
        let media = ASCII.trimmingSpaces(type.utf8.prefix { $0 != UInt8(ascii: ";") })
        return ASCII.equalsIgnoringCase(media, "application/ocsp-response")
    }
}

/// Why one responder URL gave nothing to staple, as one log clause:
/// `http://ocsp.example/: HTTP status 203 (only 200 carries an OCSP answer)`.
struct OCSPExchangeError: Error, CustomStringConvertible {
    enum Reason {
        /// No HTTP response: connection, timeout, size caps, redirects, TLS.
        case transport(HTTPError.Reason)
        /// A final status other than 200.
        case status(Int)
        case contentType(String)
        case response(OCSPResponseError)
    }

    let responderURL: String
    let reason: Reason

    var description: String {
        switch reason {
        case .transport(let reason): return "\(responderURL): \(reason)"
        case .status(let code) where (200..<400).contains(code):
            return "\(responderURL): HTTP status \(code) (only 200 carries an OCSP answer)"
        case .status(let code): return "\(responderURL): HTTP status \(code)"
        case .contentType(let type): return "\(responderURL): unexpected Content-Type \"\(LogText.singleLine(type))\""
        case .response(let error): return "\(responderURL): \(error)"
        }
    }
}
