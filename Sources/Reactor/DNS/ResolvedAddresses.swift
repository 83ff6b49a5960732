import CCares
import Glibc

/// The addresses a name resolved to and how long the answer may be kept: what c-ares
/// delivered, copied out of its `ares_addrinfo` (which holds bytes a DNS server sent).
public struct ResolvedAddresses: Equatable, Sendable {
    public struct Address: Hashable, Sendable, CustomStringConvertible {
        /// The numeric form (`192.0.2.1`, `2001:db8::1`), without brackets.
        public let text: String
        public let isIPv6: Bool

        public init(text: String, isIPv6: Bool) {
            self.text = text
            self.isIPv6 = isIPv6
        }

        public var description: String { isIPv6 ? "[\(text)]" : text }
    }

    /// More is of no use to a client that tries them in turn, and a hostile server could
    /// send hundreds.
    public static let maxAddresses = 16

    /// In the resolver's order (RFC 6724 preference), without duplicates; never empty.
    public let addresses: [Address]
    /// The smallest TTL among the records used, in seconds (0: do not keep).
    public let timeToLive: Int

    public init(addresses: [Address], timeToLive: Int) {
        self.addresses = addresses
        self.timeToLive = max(0, timeToLive)
    }

    /// Reads c-ares' answer: IPv4 and IPv6 nodes whose address length fits their family;
    /// other nodes are skipped. Nil when no usable address is left.
    public init?(_ info: UnsafePointer<ares_addrinfo>) {
        var addresses: [Address] = []
        var timeToLive = Int.max
        var node = UnsafePointer(info.pointee.nodes)
        // Bounded walk: the list comes from c-ares, but a cycle must not hang the loop.
        var visited = 0
        while let current = node, visited < Self.maxAddresses * 4 {
            visited += 1
            node = UnsafePointer(current.pointee.ai_next)
            guard let address = Self.address(of: current.pointee), !addresses.contains(address) else { continue }
            guard addresses.count < Self.maxAddresses else { break }
            addresses.append(address)
            timeToLive = min(timeToLive, Int(current.pointee.ai_ttl))
        }
        var cname = UnsafePointer(info.pointee.cnames)
        var aliases = 0
        while let current = cname, aliases < Self.maxAddresses * 4 {
            aliases += 1
            timeToLive = min(timeToLive, Int(current.pointee.ttl))
            cname = UnsafePointer(current.pointee.next)
        }
        guard !addresses.isEmpty else { return nil }
        self.init(addresses: addresses, timeToLive: timeToLive)
    }

    private static func address(of node: ares_addrinfo_node) -> Address? {
        guard let socketAddress = node.ai_addr else { return nil }
        let length = Int(node.ai_addrlen)
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch node.ai_family {
        case AF_INET where length >= MemoryLayout<sockaddr_in>.size && socketAddress.pointee.sa_family == sa_family_t(AF_INET):
            var ip = UnsafeRawPointer(socketAddress).loadUnaligned(as: sockaddr_in.self).sin_addr
            guard inet_ntop(AF_INET, &ip, &text, socklen_t(text.count)) != nil else { return nil }
            return Address(text: Self.string(text), isIPv6: false)
        case AF_INET6 where length >= MemoryLayout<sockaddr_in6>.size && socketAddress.pointee.sa_family == sa_family_t(AF_INET6):
            var ip = UnsafeRawPointer(socketAddress).loadUnaligned(as: sockaddr_in6.self).sin6_addr
            guard inet_ntop(AF_INET6, &ip, &text, socklen_t(text.count)) != nil else { return nil }
            return Address(text: Self.string(text), isIPv6: true)
        default:
            return nil
        }
    }

    private static func string(_ characters: [CChar]) -> String {
        String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Why a name gave no address, ready for one log line: `ocsp.example.test: name not
/// resolved: NXDOMAIN`.
public struct NameResolutionError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// The name does not exist (NXDOMAIN, or in no hosts file).
        case noSuchName
        /// The name exists but has no A or AAAA record.
        case noAddress
        /// No DNS server answered in time.
        case timedOut
        /// The servers answered with a failure (SERVFAIL, REFUSED, a broken answer).
        case serverFailure
        /// The name cannot be looked up (too long, bad characters).
        case badName
        /// The resolver went away or ran out of memory.
        case other
    }

    public let host: String
    public let kind: Kind
    public let detail: String

    public init(host: String, kind: Kind, detail: String) {
        self.host = host
        self.kind = kind
        self.detail = detail
    }

    /// Names c-ares' status for a person reading a log.
    init(host: String, aresStatus status: Int32) {
        let kind: Kind
        let detail: String
        switch status {
        case ARES_ENOTFOUND: (kind, detail) = (.noSuchName, "NXDOMAIN")
        case ARES_ENODATA: (kind, detail) = (.noAddress, "no address record")
        case ARES_ETIMEOUT: (kind, detail) = (.timedOut, "DNS timeout")
        case ARES_ESERVFAIL: (kind, detail) = (.serverFailure, "SERVFAIL")
        case ARES_EREFUSED: (kind, detail) = (.serverFailure, "REFUSED")
        case ARES_ECONNREFUSED: (kind, detail) = (.serverFailure, "DNS server unreachable")
        case ARES_EBADNAME: (kind, detail) = (.badName, "not a valid host name")
        default: (kind, detail) = (.other, String(cString: ares_strerror(status)))
        }
        self.init(host: host, kind: kind, detail: detail)
    }

    public var description: String { "\(host): name not resolved: \(detail)" }
}
