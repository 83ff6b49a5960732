/// Byte-level ASCII helpers for protocol text (header names, media types, origins, hex
/// dumps). They run on hot paths and on hostile input, so they never build a String to
/// compare and never use Unicode case mapping. Inlinable: the generic ones are called from
/// the Stapler module, where only an inlinable body can be specialised for the caller's
/// collection type (unspecialised, each call looked up generic metadata at run time).
public enum ASCII {
    /// `A`-`Z` folded to `a`-`z`; every other byte as it is.
    @inlinable @inline(__always)
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
    }

    /// Whether `bytes` spell `lowercase` in any ASCII case. `lowercase` must be lower case.
    @inlinable
    public static func equalsIgnoringCase<Bytes: Collection>(_ bytes: Bytes, _ lowercase: StaticString) -> Bool
    where Bytes.Element == UInt8 {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let wanted = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return zip(bytes, wanted).allSatisfy { lowercased($0) == $1 }
    }

    @inlinable @inline(__always)
    public static func isSpaceOrTab(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    /// `bytes` without leading and trailing spaces and tabs.
    @inlinable
    public static func trimmingSpaces<Bytes: BidirectionalCollection>(_ bytes: Bytes) -> Bytes.SubSequence
    where Bytes.Element == UInt8 {
        guard let first = bytes.firstIndex(where: { !isSpaceOrTab($0) }),
              let last = bytes.lastIndex(where: { !isSpaceOrTab($0) }) else { return bytes[bytes.endIndex...] }
        return bytes[first...last]
    }

    /// Two hex digits per byte.
    @inlinable
    public static func hex<Bytes: Collection>(_ bytes: Bytes, uppercase: Bool = false) -> String
    where Bytes.Element == UInt8 {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count * 2)
        for byte in bytes { appendHex(byte, uppercase: uppercase, to: &output) }
        return String(decoding: output, as: UTF8.self)
    }

    @inlinable
    public static func appendHex(_ byte: UInt8, uppercase: Bool = false, to output: inout [UInt8]) {
        let digits: StaticString = uppercase ? "0123456789ABCDEF" : "0123456789abcdef"
        output.append(digits.utf8Start[Int(byte >> 4)])
        output.append(digits.utf8Start[Int(byte & 0xf)])
    }

    /// `\xNN` for a byte a one-line message must not carry as it is.
    @inlinable
    public static func appendEscape(_ byte: UInt8, to output: inout [UInt8]) {
        output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "x")])
        appendHex(byte, to: &output)
    }

    /// Hostile bytes made fit for a one-line message: printable ASCII as it is, anything
    /// else as `\xNN`, at most `limit` bytes of input (then `...`).
    public static func printable<Bytes: Collection>(_ bytes: Bytes, limit: Int = 200) -> String
    where Bytes.Element == UInt8 {
        var output: [UInt8] = []
        for byte in bytes.prefix(limit) {
            if (0x20..<0x7F).contains(byte) { output.append(byte) } else { appendEscape(byte, to: &output) }
        }
        if bytes.count > limit { output.append(contentsOf: "...".utf8) }
        return String(decoding: output, as: UTF8.self)
    }
}
