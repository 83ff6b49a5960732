import Glibc

/// The hosts `no_proxy` exempts from the proxy, read as curl 7.88 reads it: names separated
/// by commas or blanks; `*` alone exempts every host; a name matches itself and every name
/// below it (`example.org` and `.example.org` both match `ocsp.example.org`, not
/// `badexample.org`), case aside, a final dot aside; an IPv4 address matches itself, or a
/// network with `/bits`; an IPv6 address matches itself. The value is outside bytes (the
/// environment): anything unreadable is an entry that matches nothing.
public struct NoProxyList: Equatable, Sendable {
    private enum Entry: Equatable, Sendable {
        case domain([UInt8])
        case ipv4Network(address: UInt32, bits: Int)
        case ipv6Address([UInt8])
    }

    private var exemptsEverything = false
    private var entries: [Entry] = []

    /// Entries beyond this are ignored: a hostile environment must not make every request
    /// walk a list of millions.
    public static let maximumEntries = 1024

    public init(parsing text: String) {
        let trimmed = ASCII.trimmingSpaces(text.utf8)
        if trimmed.elementsEqual("*".utf8) {
            exemptsEverything = true
            return
        }
        for token in text.utf8.split(whereSeparator: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: " ") || $0 == 0x09 }) {
            guard entries.count < Self.maximumEntries else { break }
            if let entry = Self.entry(Array(token)) { entries.append(entry) }
        }
    }

    /// The list of `no_proxy` (or `NO_PROXY`, curl's order), empty when neither is set.
    public static func fromEnvironment() -> NoProxyList {
        for name in ["no_proxy", "NO_PROXY"] {
            if let value = getenv(name), value.pointee != 0 { return NoProxyList(parsing: String(cString: value)) }
        }
        return NoProxyList(parsing: "")
    }

    public var isEmpty: Bool { !exemptsEverything && entries.isEmpty }

    /// Whether requests to `host` (as `URLEndpoint.host` spells it: no brackets, no final
    /// dot) go direct.
    public func exempts(host: String) -> Bool {
        if exemptsEverything { return true }
        let name = Array(host.utf8).map(ASCII.lowercased)
        let ipv4 = Self.ipv4(name)
        let ipv6 = ipv4 == nil ? Self.ipv6(name) : nil
        return entries.contains { entry in
            switch entry {
            case .domain(let domain):
                guard ipv4 == nil, ipv6 == nil || domain == name else { return false }
                if domain == name { return true }
                return name.count > domain.count && name[name.count - domain.count - 1] == UInt8(ascii: ".")
                    && name.suffix(domain.count).elementsEqual(domain)
            case .ipv4Network(let network, let bits):
                guard let ipv4 else { return false }
                let mask: UInt32 = bits == 0 ? 0 : UInt32.max << UInt32(32 - bits)
                return ipv4 & mask == network & mask
            case .ipv6Address(let address):
                return ipv6 == address
            }
        }
    }

    private static func entry(_ token: [UInt8]) -> Entry? {
        var token = token.map(ASCII.lowercased)
        if token.first == UInt8(ascii: "[") && token.last == UInt8(ascii: "]") { token = Array(token.dropFirst().dropLast()) }
        if let slash = token.firstIndex(of: UInt8(ascii: "/")) {
            let bitsText = token[(slash + 1)...]
            guard let address = ipv4(Array(token[..<slash])), (1...2).contains(bitsText.count),
                  bitsText.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                  let bits = Int(String(decoding: bitsText, as: UTF8.self)), bits <= 32 else { return nil }
            return .ipv4Network(address: address, bits: bits)
        }
        if let address = ipv4(token) { return .ipv4Network(address: address, bits: 32) }
        if let address = ipv6(token) { return .ipv6Address(address) }
        if token.first == UInt8(ascii: ".") { token.removeFirst() }
        if token.last == UInt8(ascii: ".") { token.removeLast() }
        return token.isEmpty ? nil : .domain(token)
    }

    static func ipv4(_ text: [UInt8]) -> UInt32? {
        guard !text.isEmpty, text.count < 16 else { return nil }
        var address = in_addr()
        let parsed = (text + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { inet_pton(AF_INET, $0.baseAddress, &address) }
        }
        return parsed == 1 ? UInt32(bigEndian: address.s_addr) : nil
    }

    static func ipv6(_ text: [UInt8]) -> [UInt8]? {
        guard text.contains(UInt8(ascii: ":")), text.count < 64 else { return nil }
        var address = in6_addr()
        let parsed = (text + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { inet_pton(AF_INET6, $0.baseAddress, &address) }
        }
        guard parsed == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }
}
