import Glibc

/// Where an http or https URL connects to, read the way curl reads it, so the client can
/// resolve the host itself and hand curl the answer (`CURLOPT_RESOLVE "host:port:addr"`).
/// URLs come from certificates and from responders' redirects: hostile bytes.
struct URLEndpoint: Equatable {
    /// The host as curl keys its DNS cache: without brackets, user info, port or a final dot.
    let host: String
    /// The name to ask DNS for: `host`, with its final dot when the URL had one.
    let lookupName: String
    let port: UInt16
    /// An IPv4 or IPv6 literal, or a numeric form curl turns into one (`127.1`): curl
    /// connects to it without resolving.
    let isAddressLiteral: Bool
    /// A host name of letters, digits, `-`, `_` and dots that is no address literal: the
    /// client resolves it. Anything else is left to curl, which refuses a malformed host
    /// and converts an international one (IDNA) before resolving it on its own thread: an
    /// entry under our spelling would not match it.
    let isPlainName: Bool

    /// Nil for anything but `http://` or `https://` with a host and, if any, a port of 1 to
    /// 65535 (curl refuses those URLs itself).
    init?(url: String) {
        let bytes = Array(url.utf8)
        let separator = Array("://".utf8)
        guard bytes.count > separator.count,
              let schemeEnd = (0...(bytes.count - separator.count)).first(where: { bytes[$0..<$0 + 3].elementsEqual(separator) })
        else { return nil }
        let scheme = bytes[..<schemeEnd]
        let defaultPort: UInt16
        if ASCII.equalsIgnoringCase(scheme, "http") {
            defaultPort = 80
        } else if ASCII.equalsIgnoringCase(scheme, "https") {
            defaultPort = 443
        } else {
            return nil
        }
        let authorityStart = schemeEnd + separator.count
        let authorityEnd = bytes[authorityStart...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?")
            || $0 == UInt8(ascii: "#") } ?? bytes.count
        var authority = bytes[authorityStart..<authorityEnd]
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) { authority = authority[(at + 1)...] }

        var hostBytes: ArraySlice<UInt8>
        var portBytes: ArraySlice<UInt8>?
        let bracketed = authority.first == UInt8(ascii: "[")
        if bracketed {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            hostBytes = authority[(authority.startIndex + 1)..<close]
            let rest = authority[(close + 1)...]
            if !rest.isEmpty {
                guard rest.first == UInt8(ascii: ":") else { return nil }
                portBytes = rest.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: UInt8(ascii: ":")) {
            hostBytes = authority[..<colon]
            portBytes = authority[(colon + 1)...]
        } else {
            hostBytes = authority
        }
        guard !hostBytes.isEmpty else { return nil }
        var port = defaultPort
        if let portBytes, !portBytes.isEmpty {
            guard portBytes.count <= 5, portBytes.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                  let value = Int(String(decoding: portBytes, as: UTF8.self)), (1...Int(UInt16.max)).contains(value)
            else { return nil }
            port = UInt16(value)
        }
        lookupName = String(decoding: hostBytes, as: UTF8.self)
        if !bracketed, hostBytes.count > 1, hostBytes.last == UInt8(ascii: ".") { hostBytes = hostBytes.dropLast() }
        host = String(decoding: hostBytes, as: UTF8.self)
        self.port = port
        isAddressLiteral = bracketed || Self.isNumeric(hostBytes)
        isPlainName = !isAddressLiteral && hostBytes.allSatisfy(Self.isNameByte)
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }

    /// An IPv4 literal, or any name whose last label starts with a digit: no top-level
    /// domain does, and curl reads such hosts as numbers (`127.1`, `0x7f.1`) or refuses them.
    private static func isNumeric(_ host: ArraySlice<UInt8>) -> Bool {
        let lastLabel = host.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: true).last ?? host
        guard let first = lastLabel.first else { return false }
        return (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first)
    }

    /// The `CURLOPT_RESOLVE` entry giving curl `addresses` for this host and port (curl
    /// tries them in this order, switching family on failure).
    func resolveEntry(_ addresses: [ResolvedAddresses.Address]) -> String {
        "\(host):\(port):" + addresses.map(\.description).joined(separator: ",")
    }
}

/// The TCP port an http or https URL connects to, read as curl reads it; nil for any other
/// URL. The sandbox allows connections to the ports of the responders' URLs.
public func connectPort(ofURL url: String) -> UInt16? { URLEndpoint(url: url)?.port }
