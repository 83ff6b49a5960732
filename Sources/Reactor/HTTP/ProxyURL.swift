/// A forward HTTP proxy as curl reads `CURLOPT_PROXY` and the proxy environment variables:
/// `[http://][user[:password]@]host[:port][/...]`, port 1080 when none is given (curl's
/// default). Only plain-HTTP proxies: an HTTP cache for OCSP, which is plain HTTP itself.
/// Values come from the command line, config files and the environment: outside bytes.
public struct ProxyURL: Equatable, Sendable, CustomStringConvertible {
    /// The value as given, credentials included: what curl is handed.
    public let text: String
    /// The proxy's host and port, to resolve on the loop instead of in curl.
    let endpoint: URLEndpoint
    public var port: UInt16 { endpoint.port }

    /// curl's port for a proxy named without one (CURL_DEFAULT_PROXY_PORT).
    public static let defaultPort: UInt16 = 1080

    /// Why a value names no proxy Stapler can use.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    public init(parsing text: String) throws(ParseError) {
        let bytes = Array(text.utf8)
        if bytes.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            throw ParseError(description: "contains a blank or a control character")
        }
        let separator = Array("://".utf8)
        let schemeEnd = bytes.count >= separator.count
            ? (0...(bytes.count - separator.count)).first { bytes[$0..<$0 + 3].elementsEqual(separator) } : nil
        if let schemeEnd, !ASCII.equalsIgnoringCase(bytes[..<schemeEnd], "http") {
            throw ParseError(description: "scheme \"\(ASCII.printable(bytes[..<schemeEnd]))\" is not http "
                + "(an HTTP cache for OCSP is spoken to in plain HTTP)")
        }
        let rest = schemeEnd.map { Array(bytes[($0 + separator.count)...]) } ?? bytes
        // The port is read from the URL as given; curl is handed the same default through
        // CURLOPT_PROXYPORT, so both always agree on where the proxy is.
        let hasPort = Self.authorityHasPort(rest)
        let withPort = hasPort ? rest : Self.insertPort(Self.defaultPort, into: rest)
        guard let endpoint = URLEndpoint(url: "http://" + String(decoding: withPort, as: UTF8.self))
        else { throw ParseError(description: "no host, or a port outside 1 to 65535") }
        // A name, a dotted IPv4 address, or an IPv6 address in brackets: what curl and the
        // resolver read alike (curl's numeric shorthands like 127.1 are refused here).
        let host = Array(endpoint.host.utf8)
        let valid = Self.authority(of: rest).first == UInt8(ascii: "[")
            ? NoProxyList.ipv6(host) != nil
            : (endpoint.isPlainName && Self.hasNoEmptyLabel(endpoint.lookupName)) || NoProxyList.ipv4(host) != nil
        guard valid else {
            throw ParseError(description: "the host is no name of letters, digits, '-' and dots, nor an IPv4 "
                + "address, nor an IPv6 address in brackets (write an international name in its xn-- form)")
        }
        self.text = text
        self.endpoint = endpoint
    }

    /// `http://host:port`, without credentials: how logs and errors name the proxy.
    public var description: String {
        let host = endpoint.host.utf8.contains(UInt8(ascii: ":")) ? "[\(endpoint.host)]" : endpoint.host
        return "http://\(host):\(endpoint.port)"
    }

    /// `a.b` or `a.b.` (a final dot), not `.a`, `a..b` or `a..`.
    private static func hasNoEmptyLabel(_ name: String) -> Bool {
        var labels = name.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        if labels.count > 1, labels.last?.isEmpty == true { labels.removeLast() }
        return !labels.contains { $0.isEmpty }
    }

    /// The authority of `rest` (up to the first `/`, `?` or `#`, after any user info)
    /// ends in `:digits` outside brackets.
    private static func authorityHasPort(_ rest: [UInt8]) -> Bool {
        let authority = authority(of: rest)
        guard let colon = authority.lastIndex(of: UInt8(ascii: ":")) else { return false }
        if let close = authority.lastIndex(of: UInt8(ascii: "]")), close > colon { return false }
        return true
    }

    private static func authority(of rest: [UInt8]) -> ArraySlice<UInt8> {
        let end = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }
            ?? rest.count
        var authority = rest[..<end]
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) { authority = authority[(at + 1)...] }
        return authority
    }

    private static func insertPort(_ port: UInt16, into rest: [UInt8]) -> [UInt8] {
        let end = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }
            ?? rest.count
        return Array(rest[..<end]) + Array(":\(port)".utf8) + Array(rest[end...])
    }
}
