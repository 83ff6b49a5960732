import Glibc

/// A file system path as the kernel sees it: bytes, not necessarily UTF-8.
///
/// Certificate directories can hold names that are not valid UTF-8; a `String` would repair
/// them into names that cannot be opened. Logs use `description`, which shows such bytes as
/// `\xNN` escapes.
public struct FilePath: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public private(set) var bytes: [UInt8]

    public init(_ string: String) { bytes = Array(string.utf8) }
    public init(stringLiteral value: String) { self.init(value) }
    public init<S: Sequence>(bytes: S) where S.Element == UInt8 { self.bytes = Array(bytes) }

    public init(cString: UnsafePointer<CChar>) {
        bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(cString).assumingMemoryBound(to: UInt8.self),
                                          count: strlen(cString)))
    }

    /// The path as a String when it is valid UTF-8.
    public var string: String? {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var result = ""
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): result.unicodeScalars.append(scalar)
            case .emptyInput: return result
            case .error: return nil
            }
        }
    }

    public var description: String {
        if let string { return string }
        // Keep every valid sequence and escape only the offending bytes.
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count + 8)
        var index = 0
        while index < bytes.count {
            let width = Self.utf8SequenceLength(bytes, at: index)
            if width > 0 {
                result.append(contentsOf: bytes[index..<index + width])
                index += width
            } else {
                ASCII.appendEscape(bytes[index], to: &result)
                index += 1
            }
        }
        return String(decoding: result, as: UTF8.self)
    }

    public var isEmpty: Bool { bytes.isEmpty }
    public var isAbsolute: Bool { bytes.first == UInt8(ascii: "/") }

    /// The last component ("cert.pem" of "/etc/ssl/cert.pem"); the whole path if it has no slash.
    public var lastComponent: FilePath {
        let trimmed = bytes.last == UInt8(ascii: "/") && bytes.count > 1 ? Array(bytes.dropLast()) : bytes
        guard let slash = trimmed.lastIndex(of: UInt8(ascii: "/")) else { return FilePath(bytes: trimmed) }
        return FilePath(bytes: trimmed[(slash + 1)...])
    }

    /// Everything before the last component: "/etc/ssl" for "/etc/ssl/cert.pem", "." for "cert.pem".
    public var directory: FilePath {
        let trimmed = bytes.last == UInt8(ascii: "/") && bytes.count > 1 ? Array(bytes.dropLast()) : bytes
        guard let slash = trimmed.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        if slash == 0 { return "/" }
        return FilePath(bytes: trimmed[..<slash])
    }

    public func appending(_ component: FilePath) -> FilePath {
        if bytes.isEmpty { return component }
        // Sized once: the daemon keeps one path per certificate, and growing a copy of the
        // directory's bytes twice left each with a third of its buffer unused.
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count + 1 + component.bytes.count)
        result.append(contentsOf: bytes)
        if result.last != UInt8(ascii: "/") { result.append(UInt8(ascii: "/")) }
        result.append(contentsOf: component.bytes.drop(while: { $0 == UInt8(ascii: "/") }))
        return FilePath(bytes: result)
    }

    public func appending(_ component: String) -> FilePath { appending(FilePath(component)) }

    /// The same path with `suffix` added to its last component ("cert.pem" + ".ocsp").
    public func addingSuffix(_ suffix: String) -> FilePath {
        FilePath(bytes: bytes + Array(suffix.utf8))
    }

    public func hasSuffix(_ suffix: String) -> Bool {
        bytes.withUnsafeBufferPointer { $0.endsWith(suffix) }
    }

    public func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        // On the stack for short paths: a rescan stats every file by name, and would otherwise
        // copy each name to the heap once per file per rescan.
        try withUnsafeTemporaryAllocation(of: CChar.self, capacity: bytes.count + 1) { buffer in
            bytes.withUnsafeBufferPointer { source in
                for index in source.indices { buffer[index] = CChar(bitPattern: source[index]) }
            }
            buffer[bytes.count] = 0
            return try body(UnsafePointer(buffer.baseAddress!))
        }
    }

    // Hashing and comparing the bytes as one buffer: the synthesised versions go element by
    // element, which dominated a rescan of 10,000 unchanged files.
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public static func == (lhs: FilePath, rhs: FilePath) -> Bool {
        guard lhs.bytes.count == rhs.bytes.count else { return false }
        guard !lhs.bytes.isEmpty else { return true }
        return lhs.bytes.withUnsafeBytes { left in
            rhs.bytes.withUnsafeBytes { right in memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0 }
        }
    }

    public static func < (lhs: FilePath, rhs: FilePath) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// Length of the well-formed UTF-8 sequence starting at `index`, or 0 if it is not one.
    private static func utf8SequenceLength(_ bytes: [UInt8], at index: Int) -> Int {
        let lead = bytes[index]
        let width: Int
        switch lead {
        case 0x00...0x7f: return 1
        case 0xc2...0xdf: width = 2
        case 0xe0...0xef: width = 3
        case 0xf0...0xf4: width = 4
        default: return 0
        }
        guard index + width <= bytes.count else { return 0 }
        var iterator = bytes[index..<index + width].makeIterator()
        var decoder = UTF8()
        if case .scalarValue = decoder.decode(&iterator) { return width }
        return 0
    }
}

extension UnsafeBufferPointer where Element == UInt8 {
    /// Whether these bytes end with `suffix`'s UTF-8. Runs several times for every name of
    /// every scan (paths and listed names alike): a comparison of the two buffers, since
    /// walking the String's UTF-8 view backwards was the costliest step of a rescan.
    public func endsWith(_ suffix: String) -> Bool {
        var suffix = suffix
        return suffix.withUTF8 { tail in
            guard !tail.isEmpty else { return true }
            guard tail.count <= count else { return false }
            return memcmp(baseAddress! + (count - tail.count), tail.baseAddress!, tail.count) == 0
        }
    }
}
