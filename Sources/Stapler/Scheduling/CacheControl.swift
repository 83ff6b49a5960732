import Reactor

/// The parts of an HTTP Cache-Control header that matter for OCSP (RFC 5019 §6).
///
/// The header comes from the network (a responder, or anyone on the plain-HTTP path to it),
/// so the parser works on bytes, never indexes past what it checked, and turns every shape
/// it does not understand into "no promise" rather than an error or a trap.
enum CacheControl {
    /// The largest max-age taken at its word: RFC 9111 §1.2.2 has caches treat any larger
    /// delta-seconds as 2^31. Anything beyond it would only feed overflow into time arithmetic.
    static let maximumMaxAge: Int64 = 2_147_483_648

    /// `max-age` in seconds (capped at `maximumMaxAge`), or nil when absent or malformed.
    /// `no-cache`/`no-store` mean nothing fresher is promised, so they yield nil as well.
    static func maxAge(_ header: String?) -> Int64? {
        guard let header else { return nil }
        var maxAge: Int64?
        for directive in header.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
            let equals = directive.firstIndex(of: UInt8(ascii: "="))
            let name = ASCII.trimmingSpaces(directive[..<(equals ?? directive.endIndex)])
            if ASCII.equalsIgnoringCase(name, "no-cache") || ASCII.equalsIgnoringCase(name, "no-store") { return nil }
            guard ASCII.equalsIgnoringCase(name, "max-age"), let equals else { continue }
            guard let seconds = deltaSeconds(ASCII.trimmingSpaces(directive[directive.index(after: equals)...]))
            else { return nil }
            maxAge = seconds
        }
        return maxAge
    }

    /// Digits, optionally in double quotes; saturates at `maximumMaxAge`. Nil for anything
    /// else: empty, signed, fractional, an unbalanced quote.
    private static func deltaSeconds(_ value: Substring.UTF8View) -> Int64? {
        var digits = value
        let quote = UInt8(ascii: "\"")
        if digits.first == quote || digits.last == quote {
            guard digits.count >= 2, digits.first == quote, digits.last == quote else { return nil }
            digits = digits.dropFirst().dropLast()
        }
        guard !digits.isEmpty else { return nil }
        var seconds: Int64 = 0
        for byte in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            seconds = min(seconds * 10 + Int64(byte - UInt8(ascii: "0")), maximumMaxAge)
        }
        return seconds
    }
}
