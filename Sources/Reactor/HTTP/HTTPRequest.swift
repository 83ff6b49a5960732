/// One HTTP exchange to perform: where, how, and the limits that keep a hostile or broken
/// server from holding the daemon's memory or time.
public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable {
        case get = "GET"
        case post = "POST"
    }

    /// An `http://` or `https://` URL. Other schemes are refused by curl, also on redirects.
    public var url: String
    public var method: Method
    /// Extra request header fields, sent in this order. Names and values must not contain
    /// CR, LF or NUL (the request fails with `.invalidRequest` otherwise).
    public var headers: [(name: String, value: String)]
    /// The POST body; ignored for GET.
    public var body: [UInt8]
    /// Limit for establishing the TCP (and TLS) connection.
    public var connectTimeout: Duration
    /// Limit for the whole exchange, counted from the moment the client hands the transfer
    /// to curl (time spent in the client's own queue does not count; time curl spends
    /// waiting for a free connection to the host does).
    public var totalTimeout: Duration
    /// Largest body accepted; a longer one (announced or not) fails with `.tooLarge`.
    public var maxBodyBytes: Int
    /// Largest total size of all response header lines (redirects included).
    public var maxHeaderBytes: Int
    /// When true (the default) a final status of 400 or above fails with `.httpStatus`.
    public var errorStatusIsFailure: Bool
    /// Connect to the URL's host even when the client's proxy setting would send the request
    /// through a proxy (asking a responder directly while the proxy is down).
    public var bypassesProxy = false

    public init(url: String, method: Method = .get, headers: [(name: String, value: String)] = [],
                body: [UInt8] = [], connectTimeout: Duration = .seconds(5),
                totalTimeout: Duration = .seconds(15), maxBodyBytes: Int = 256 * 1024,
                maxHeaderBytes: Int = 16 * 1024, errorStatusIsFailure: Bool = true) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.errorStatusIsFailure = errorStatusIsFailure
    }

    public static func get(_ url: String, headers: [(name: String, value: String)] = []) -> HTTPRequest {
        HTTPRequest(url: url, method: .get, headers: headers)
    }

    public static func post(_ url: String, body: [UInt8], contentType: String) -> HTTPRequest {
        HTTPRequest(url: url, method: .post, headers: [("Content-Type", contentType)], body: body)
    }
}
