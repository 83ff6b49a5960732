/// Reads strict DER element headers one after the other within a range of bytes: one-byte
/// tags, definite lengths in their shortest form, at most three length bytes (nothing read
/// here comes near 16 MiB: files are capped at 1 MiB). Anything else is refused, so callers
/// that see nil fall back to OpenSSL's more forgiving decoders.
struct DERCursor {
    struct Element {
        let tag: UInt8
        /// Tag, length and content.
        let whole: Range<Int>
        let content: Range<Int>
    }

    private let bytes: [UInt8]
    private var position: Int
    private let end: Int

    init(_ bytes: [UInt8], _ range: Range<Int>) {
        self.bytes = bytes
        position = range.lowerBound
        end = range.upperBound
    }

    /// A cursor over the content of `element`.
    init(_ bytes: [UInt8], inside element: Element) { self.init(bytes, element.content) }

    var isAtEnd: Bool { position == end }

    /// The tag of the next element, without reading it.
    var nextTag: UInt8? { position < end ? bytes[position] : nil }

    /// The next element if it has `tag` and a strict DER length that fits; nil otherwise.
    mutating func next(_ tag: UInt8) -> Element? {
        guard nextTag == tag else { return nil }
        return next()
    }

    /// The next element, whatever its one-byte tag (high tag numbers, 0x1F, are refused).
    mutating func next() -> Element? {
        guard end - position >= 2, bytes[position] & 0x1F != 0x1F else { return nil }
        let tag = bytes[position]
        var cursor = position + 1
        let first = bytes[cursor]
        cursor += 1
        var length = Int(first)
        if first >= 0x80 {
            let count = Int(first & 0x7F)
            guard (1...3).contains(count), end - cursor >= count, bytes[cursor] != 0 else { return nil }
            length = 0
            for _ in 0..<count {
                length = length << 8 | Int(bytes[cursor])
                cursor += 1
            }
            guard length >= 0x80 else { return nil }
        }
        guard length <= end - cursor else { return nil }
        let element = Element(tag: tag, whole: position..<(cursor + length), content: cursor..<(cursor + length))
        position = cursor + length
        return element
    }

    /// The next element if it has `tag` and is the last one in range.
    mutating func only(_ tag: UInt8) -> Element? {
        guard let element = next(tag), isAtEnd else { return nil }
        return element
    }
}
