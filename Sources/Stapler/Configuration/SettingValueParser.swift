import Glibc
import Reactor

/// Why one value cannot be used, phrased to follow "option: " or "file:line: key: ".
struct ValueProblem: Error, Equatable {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Turns the text of one option value into the typed setting. Shared by the command line and
/// the config file so both accept exactly the same spellings.
enum SettingValueParser {
    static let secondsInAYear = 31_536_000
    /// `stapler check --timeout`: a monitoring system kills a check long before an hour.
    static let longestCheckTimeout = 3600

    /// `--ocsp-proxy`: an http URL curl and Stapler read alike (`ProxyURL`), or empty for
    /// "no proxy". The value is not echoed in the error: it may carry a password.
    static func proxyURL(_ bytes: [UInt8]) throws(ValueProblem) -> String {
        let text = trimmed(bytes)
        if text.isEmpty { return "" }
        guard let string = String(validating: text, as: UTF8.self) else { throw ValueProblem("is not UTF-8") }
        do {
            _ = try ProxyURL(parsing: string)
        } catch {
            throw ValueProblem("not a proxy URL (http://host:port): \(error.description)")
        }
        return string
    }

    /// A whole, non-negative number like Python's int(): surrounding blanks and a leading '+'
    /// are fine, fractions and units are not.
    static func wholeNumber(_ bytes: [UInt8], range: ClosedRange<Int>, unit: String = "") throws(ValueProblem) -> Int {
        let unitSuffix = unit.isEmpty ? "" : " " + unit
        let notANumber = ValueProblem("\(quoted(bytes: bytes)) is not a whole number\(unit.isEmpty ? "" : " of " + unit)")
        var digits = trimmed(bytes)[...]
        var negative = false
        if let sign = digits.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            negative = sign == UInt8(ascii: "-")
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw notANumber
        }
        let outOfRange = ValueProblem(
            "\(quoted(bytes: bytes)) is out of range (\(range.lowerBound) to \(range.upperBound)\(unitSuffix))")
        // Past 18 digits an Int could overflow; every accepted range is far smaller anyway.
        let significant = digits.drop(while: { $0 == UInt8(ascii: "0") })
        guard significant.count <= 18 else { throw outOfRange }
        var value = 0
        for digit in significant { value = value * 10 + Int(digit - UInt8(ascii: "0")) }
        if negative { value = -value }
        guard range.contains(value) else { throw outOfRange }
        return value
    }

    static func seconds(_ bytes: [UInt8], range: ClosedRange<Int>) throws(ValueProblem) -> Duration {
        .seconds(try wholeNumber(bytes, range: range, unit: "seconds"))
    }

    /// A path as given; made absolute later, by the loader, against the working directory.
    static func path(_ bytes: [UInt8]) throws(ValueProblem) -> FilePath {
        guard !bytes.isEmpty else { throw ValueProblem("empty path") }
        guard !bytes.contains(0) else { throw ValueProblem("\(quoted(bytes: bytes)) contains a NUL byte") }
        return FilePath(bytes: bytes)
    }

    /// configargparse's spellings of a flag's value in a config file.
    static func boolean(_ bytes: [UInt8]) throws(ValueProblem) -> Bool {
        switch String(decoding: trimmed(bytes), as: UTF8.self).lowercased() {
        case "true", "yes", "1", "on": return true
        case "false", "no", "0", "off": return false
        default: throw ValueProblem("\(quoted(bytes: bytes)) is not true or false")
        }
    }

    /// "crt,pem,cer" (the predecessor's comma-separated string). Blanks and leading dots
    /// are dropped. An old ocspd.conf shipped `file-extensions=default=crt,pem,cer`; the
    /// stray "default=" is dropped with a warning rather than breaking .crt discovery.
    static func fileExtensions(_ items: [[UInt8]], warnings: inout [String], context: String) throws(ValueProblem) -> [String] {
        var result: [String] = []
        for item in items {
            var text = trimmed(item)
            let strayPrefix = Array("default=".utf8)
            if text.starts(with: strayPrefix) {
                text.removeFirst(strayPrefix.count)
                warnings.append("\(context): ignoring the stray \"default=\" in \(quoted(bytes: item))")
            }
            for part in text.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                let extensionBytes = Array(trimmed(Array(part)).drop(while: { $0 == UInt8(ascii: ".") }))
                if extensionBytes.isEmpty { continue }
                guard let name = String(validating: extensionBytes, as: UTF8.self),
                      !extensionBytes.contains(where: { $0 == UInt8(ascii: "/") || $0 < 0x20 || $0 == 0x7f })
                else {
                    throw ValueProblem("\(quoted(bytes: extensionBytes)) is not a file extension")
                }
                if !result.contains(name) { result.append(name) }
            }
        }
        guard !result.isEmpty else { throw ValueProblem("no file extensions given") }
        return result
    }

    /// "HOST:PORT", "[IPV6]:PORT", ":PORT" or "PORT". Without a host the endpoint listens on
    /// loopback only; "0.0.0.0:PORT" or "[::]:PORT" opens it to the network on purpose.
    /// Anything with a slash is a Unix socket path ("/run/stapler/metrics.sock",
    /// "./metrics.sock"), taken as given: relative ones are resolved by the loader.
    static func metricsAddress(_ bytes: [UInt8]) throws(ValueProblem) -> MetricsAddress {
        if bytes.contains(UInt8(ascii: "/")) { return .unix(try unixSocketPath(bytes)) }
        let bad = ValueProblem("\(quoted(bytes: bytes)) is not an address (HOST:PORT, [IPV6]:PORT or PORT)")
        guard let text = String(validating: trimmed(bytes), as: UTF8.self), !text.isEmpty else { throw bad }
        var host = "127.0.0.1"
        var portText = text
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                  text[text.index(after: close)...].hasPrefix(":") else { throw bad }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[text.index(close, offsetBy: 2)...])
            guard isIPLiteral(host, family: AF_INET6) else {
                throw ValueProblem("\(quoted(host)) is not an IPv6 address")
            }
        } else if let colon = text.lastIndex(of: ":") {
            let given = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
            if given == "localhost" {
                host = "127.0.0.1"
            } else if given == "*" {
                host = "0.0.0.0"
            } else if !given.isEmpty {
                guard !given.contains(":") else { throw ValueProblem("write an IPv6 address in brackets: [\(given)]:PORT") }
                guard isIPLiteral(given, family: AF_INET) else {
                    throw ValueProblem("\(quoted(given)) is not an IP address (a host name would need a DNS lookup)")
                }
                host = given
            }
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw bad }
        let port = try wholeNumber(Array(portText.utf8), range: 1...65535)
        return MetricsAddress(host: host, port: UInt16(port))
    }

    /// A path bind can take: it names a file, not a directory, and fits `sockaddr_un`.
    /// The length is checked as given; a relative path that grows too long once resolved
    /// fails at bind (ENAMETOOLONG) instead.
    private static func unixSocketPath(_ bytes: [UInt8]) throws(ValueProblem) -> FilePath {
        let path = try self.path(bytes)
        guard path.bytes.last != UInt8(ascii: "/") else {
            throw ValueProblem("\(quoted(bytes: bytes)) names a directory, not a socket file")
        }
        guard path.bytes.count <= maxUnixSocketPathBytes else {
            throw ValueProblem("\(quoted(bytes: bytes)) is too long for a socket path (at most \(maxUnixSocketPathBytes) bytes)")
        }
        return path
    }

    static let maxUnixSocketPathBytes = UnixSocketAddress.maxPathLength

    private static func isIPLiteral(_ text: String, family: Int32) -> Bool {
        var storage = in6_addr()
        return text.withCString { inet_pton(family, $0, &storage) } == 1
    }

    static func trimmed(_ bytes: [UInt8]) -> [UInt8] {
        guard let first = bytes.firstIndex(where: { !isBlank($0) }),
              let last = bytes.lastIndex(where: { !isBlank($0) }) else { return [] }
        return Array(bytes[first...last])
    }

    static func isBlank(_ byte: UInt8) -> Bool {
        byte == 0x20 || (byte >= 0x09 && byte <= 0x0d)
    }
}

/// Short spellings of `ConfigurationText.quoted` for this file's messages.
private func quoted(bytes: [UInt8]) -> String { ConfigurationText.quoted(bytes: bytes) }
private func quoted(_ text: String) -> String { ConfigurationText.quoted(text) }
