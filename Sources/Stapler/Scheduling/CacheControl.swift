/// The parts of an HTTP Cache-Control header that matter for OCSP (RFC 5019 §6).
enum CacheControl {
    /// `max-age` in seconds, or nil when absent or malformed. `no-cache`/`no-store` mean
    /// nothing fresher is promised, so they yield nil as well.
    static func maxAge(_ header: String?) -> Int64? {
        guard let header else { return nil }
        var maxAge: Int64?
        for directive in header.split(separator: ",") {
            let parts = directive.split(separator: "=", maxSplits: 1)
            let name = parts[0].trimmingASCIISpaces().lowercased()
            if name == "no-cache" || name == "no-store" { return nil }
            guard name == "max-age", parts.count == 2 else { continue }
            var value = parts[1].trimmingASCIISpaces()
            if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 {
                value = String(value.dropFirst().dropLast())
            }
            guard let seconds = Int64(value), seconds >= 0 else { return nil }
            maxAge = seconds
        }
        return maxAge
    }
}

extension Substring {
    func trimmingASCIISpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
