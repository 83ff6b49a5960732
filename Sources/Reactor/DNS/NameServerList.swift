import Glibc

/// DNS servers to ask instead of those in /etc/resolv.conf, as an operator (or a test) writes
/// them: `127.0.0.1:5353,[::1]:53,192.0.2.1`. IP literals only (a server's name would need a
/// resolver to find the resolver); a missing port is 53.
public struct NameServerList: Equatable, Sendable, CustomStringConvertible {
    public struct Server: Equatable, Sendable {
        /// The address as written, without brackets.
        public let address: String
        public let port: UInt16
        public let isIPv6: Bool
    }

    /// Why a list was refused, naming the entry at fault.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// More is a typo or an attack on memory; resolv.conf itself allows three.
    public static let maxServers = 16
    /// Longer than any IPv6 literal with an IPv4 tail and a port.
    public static let maxEntryLength = 64
    public static let defaultPort: UInt16 = 53

    public let servers: [Server]

    public init(parsing text: String) throws(ParseError) {
        var servers: [Server] = []
        for rawEntry in Array(text.utf8).split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let entry = ASCII.trimmingSpaces(rawEntry)
            let shown = ASCII.printable(entry, limit: Self.maxEntryLength)
            guard !entry.isEmpty else {
                throw ParseError(description: "an empty entry in \"\(ASCII.printable(text.utf8, limit: Self.maxEntryLength * 2))\"")
            }
            guard entry.count <= Self.maxEntryLength else {
                throw ParseError(description: "\"\(shown)\" is longer than \(Self.maxEntryLength) bytes")
            }
            guard servers.count < Self.maxServers else {
                throw ParseError(description: "more than \(Self.maxServers) servers")
            }
            servers.append(try Self.server(entry, shown: shown))
        }
        self.servers = servers
    }

    /// The list as c-ares takes it (`ares_set_servers_ports_csv`), brackets around IPv6.
    public var description: String {
        servers.map { server in
            let host = server.isIPv6 ? "[\(server.address)]" : server.address
            return "\(host):\(server.port)"
        }.joined(separator: ",")
    }

    private static func server(_ entry: ArraySlice<UInt8>, shown: String) throws(ParseError) -> Server {
        let host: ArraySlice<UInt8>
        var portText: ArraySlice<UInt8>?
        let bracketed = entry.first == UInt8(ascii: "[")
        if bracketed {
            guard let close = entry.firstIndex(of: UInt8(ascii: "]")) else {
                throw ParseError(description: "\"\(shown)\" has no closing bracket")
            }
            host = entry[(entry.startIndex + 1)..<close]
            let rest = entry[(close + 1)...]
            if !rest.isEmpty {
                guard rest.first == UInt8(ascii: ":") else {
                    throw ParseError(description: "\"\(shown)\": only \":port\" may follow \"]\"")
                }
                portText = rest.dropFirst()
            }
        } else if let colon = entry.firstIndex(of: UInt8(ascii: ":")) {
            guard entry[(colon + 1)...].firstIndex(of: UInt8(ascii: ":")) == nil else {
                throw ParseError(description: "\"\(shown)\": write an IPv6 server in brackets, [address]:port")
            }
            host = entry[..<colon]
            portText = entry[(colon + 1)...]
        } else {
            host = entry
        }
        let address = ASCII.printable(host)
        let family = bracketed ? AF_INET6 : AF_INET
        guard isLiteral(address, family: family) else {
            throw ParseError(description: "\"\(shown)\": \"\(address)\" is not an IPv\(bracketed ? 6 : 4) address")
        }
        var port = defaultPort
        if let portText {
            guard let value = decimal(portText), value >= 1, value <= Int(UInt16.max) else {
                throw ParseError(description: "\"\(shown)\": the port is not a number from 1 to 65535")
            }
            port = UInt16(value)
        }
        return Server(address: address, port: port, isIPv6: bracketed)
    }

    private static func isLiteral(_ address: String, family: Int32) -> Bool {
        guard !address.utf8.contains(0) else { return false }
        var storage = in6_addr()
        return address.withCString { inet_pton(family, $0, &storage) } == 1
    }

    /// Up to five digits and nothing else, or nil.
    private static func decimal(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 5 else { return nil }
        var value = 0
        for byte in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }
}
