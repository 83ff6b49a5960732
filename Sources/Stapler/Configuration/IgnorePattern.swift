import Reactor

/// A `--ignore` glob, with the predecessor's rules: `*` matches any run of characters
/// (slashes included, as Python's fnmatch does), `?` one character, `[abc]`, `[a-z]` and
/// `[!abc]` one character from (or not from) a set. A pattern that starts with `/` must match
/// the whole path; any other pattern must match the end of the path at a component boundary,
/// so `cert/snakeoil.pem` matches `/etc/ssl/cert/snakeoil.pem` but not
/// `/etc/ssl/mycert/snakeoil.pem` (the predecessor's `**pattern` matched both).
public struct IgnorePattern: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    private let units: [UInt32]

    public init(_ pattern: String) { self.init(bytes: Array(pattern.utf8)) }

    public init(bytes: [UInt8]) {
        self.bytes = bytes
        self.units = Self.characterUnits(bytes)
    }

    public var isAbsolute: Bool { bytes.first == UInt8(ascii: "/") }
    public var description: String { FilePath(bytes: bytes).description }

    public static func == (lhs: IgnorePattern, rhs: IgnorePattern) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }

    public func matches(_ path: FilePath) -> Bool {
        let subject = Self.characterUnits(path.bytes)
        if Self.glob(units[...], matches: subject[...]) { return true }
        if isAbsolute { return false }
        // A relative pattern may start right after any slash.
        for (index, unit) in subject.enumerated() where unit == Self.slash {
            if Self.glob(units[...], matches: subject[(index + 1)...]) { return true }
        }
        return false
    }

    // MARK: - Matching

    private static let slash = UInt32(UInt8(ascii: "/"))
    private static let star = UInt32(UInt8(ascii: "*"))
    private static let question = UInt32(UInt8(ascii: "?"))
    private static let open = UInt32(UInt8(ascii: "["))
    private static let close = UInt32(UInt8(ascii: "]"))
    private static let bang = UInt32(UInt8(ascii: "!"))
    private static let dash = UInt32(UInt8(ascii: "-"))

    /// Iterative wildcard matching with one backtrack point (the last `*`): linear in
    /// practice and never recursive, whatever the pattern.
    private static func glob(_ pattern: ArraySlice<UInt32>, matches subject: ArraySlice<UInt32>) -> Bool {
        var p = pattern.startIndex
        var s = subject.startIndex
        var starAt: Int?
        var starSubject = s
        while s < subject.endIndex {
            if p < pattern.endIndex {
                let token = pattern[p]
                if token == star {
                    starAt = p
                    starSubject = s
                    p += 1
                    continue
                }
                if token == question {
                    p += 1
                    s += 1
                    continue
                }
                if token == open, let (matched, next) = matchClass(pattern, at: p, unit: subject[s]) {
                    if matched {
                        p = next
                        s += 1
                        continue
                    }
                } else if token == subject[s] {
                    p += 1
                    s += 1
                    continue
                }
            }
            guard let star = starAt else { return false }
            p = star + 1
            starSubject += 1
            s = starSubject
        }
        while p < pattern.endIndex && pattern[p] == star { p += 1 }
        return p == pattern.endIndex
    }

    /// A `[...]` set at `start`: whether `unit` is in it and where the pattern continues, or
    /// nil when the bracket is never closed (then `[` is an ordinary character, as in fnmatch).
    private static func matchClass(_ pattern: ArraySlice<UInt32>, at start: Int, unit: UInt32) -> (Bool, Int)? {
        var index = start + 1
        var negated = false
        if index < pattern.endIndex && pattern[index] == bang {
            negated = true
            index += 1
        }
        var matched = false
        var first = true
        while index < pattern.endIndex {
            let low = pattern[index]
            if low == close && !first { return (matched != negated, index + 1) }
            first = false
            if index + 2 < pattern.endIndex && pattern[index + 1] == dash && pattern[index + 2] != close {
                if low <= unit && unit <= pattern[index + 2] { matched = true }
                index += 3
            } else {
                if low == unit { matched = true }
                index += 1
            }
        }
        return nil
    }

    /// One unit per character: a valid UTF-8 sequence becomes its scalar, a stray byte
    /// becomes a value no scalar can take, so `?` spans "é" and bytes still compare exactly.
    private static func characterUnits(_ bytes: [UInt8]) -> [UInt32] {
        var units: [UInt32] = []
        units.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            let width: Int
            switch lead {
            case 0x00...0x7f: width = 1
            case 0xc2...0xdf: width = 2
            case 0xe0...0xef: width = 3
            case 0xf0...0xf4: width = 4
            default: width = 0
            }
            if width > 1, index + width <= bytes.count {
                var iterator = bytes[index..<index + width].makeIterator()
                var decoder = UTF8()
                if case .scalarValue(let scalar) = decoder.decode(&iterator) {
                    units.append(scalar.value)
                    index += width
                    continue
                }
            }
            units.append(width == 1 ? UInt32(lead) : 0x11_0000 + UInt32(lead))
            index += 1
        }
        return units
    }
}
