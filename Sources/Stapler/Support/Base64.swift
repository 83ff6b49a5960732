/// Standard base64 (RFC 4648 §4), as PEM bodies, OCSP GET URLs and the HAProxy runtime API
/// use it. Written here because the daemon does without Foundation.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// 0...63 for alphabet bytes, 0xFE for '=', 0xFF for anything else.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        table[Int(UInt8(ascii: "="))] = 0xFE
        return table
    }()

    static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        String(decoding: encodedBytes(bytes), as: UTF8.self)
    }

    /// The base64 text of `bytes` as ASCII bytes, for callers that escape or append it
    /// without going through `String` (an OCSP GET URL is built for every fetch).
    static func encodedBytes<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = iterator.next()
            let value = UInt32(first) << 16 | UInt32(second ?? 0) << 8 | UInt32(third ?? 0)
            output.append(alphabet[Int(value >> 18 & 63)])
            output.append(alphabet[Int(value >> 12 & 63)])
            output.append(second == nil ? UInt8(ascii: "=") : alphabet[Int(value >> 6 & 63)])
            output.append(third == nil ? UInt8(ascii: "=") : alphabet[Int(value & 63)])
        }
        return output
    }

    /// Decodes base64, skipping ASCII white space (PEM bodies are wrapped). Returns nil on any
    /// other stray byte, bad padding or a truncated final group.
    static func decode<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        // Every PEM block of every bundle comes through here: one pass over contiguous bytes
        // into a buffer of the largest possible size, without per-byte bounds checks or
        // appends (four times fewer instructions than the generic loop).
        if let decoded = text.withContiguousStorageIfAvailable(decode(contiguous:)) { return decoded }
        return Array(text).withUnsafeBufferPointer(decode(contiguous:))
    }

    private static func decode(contiguous text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var failed = false
        let decoded = [UInt8](unsafeUninitializedCapacity: text.count / 4 * 3 + 3) { output, written in
            written = 0
            decodeTable.withUnsafeBufferPointer { table in
                var group: UInt32 = 0
                var count = 0
                var padding = 0
                var index = 0
                while index < text.count {
                    // At a group boundary, four alphabet bytes (the bulk of a PEM line) are
                    // four lookups and three stores; white space, padding and stray bytes
                    // take the byte-by-byte path below.
                    if count == 0 && padding == 0 && index + 4 <= text.count {
                        let a = table[Int(text[index])], b = table[Int(text[index + 1])]
                        let c = table[Int(text[index + 2])], d = table[Int(text[index + 3])]
                        if (a | b | c | d) & 0xC0 == 0 {
                            let value = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                            output[written] = UInt8(truncatingIfNeeded: value >> 16)
                            output[written + 1] = UInt8(truncatingIfNeeded: value >> 8)
                            output[written + 2] = UInt8(truncatingIfNeeded: value)
                            written += 3
                            index += 4
                            continue
                        }
                    }
                    let byte = text[index]
                    index += 1
                    switch byte {
                    case 0x20, 0x09, 0x0A, 0x0D: continue
                    default: break
                    }
                    let value = table[Int(byte)]
                    if value == 0xFF { failed = true; return }
                    if value == 0xFE {
                        padding += 1
                        // '=' may only end a group, at its third or fourth position.
                        if count < 2 || padding > 2 { failed = true; return }
                        group <<= 6
                        count += 1
                    } else {
                        if padding > 0 { failed = true; return }
                        group = group << 6 | UInt32(value)
                        count += 1
                    }
                    if count == 4 {
                        output[written] = UInt8(truncatingIfNeeded: group >> 16)
                        written += 1
                        if padding < 2 { output[written] = UInt8(truncatingIfNeeded: group >> 8); written += 1 }
                        if padding < 1 { output[written] = UInt8(truncatingIfNeeded: group); written += 1 }
                        group = 0
                        count = 0
                        if padding > 0 { padding = 3 } // nothing may follow a padded group
                    } else if padding == 3 {
                        failed = true
                        return
                    }
                }
                if count != 0 { failed = true }
            }
        }
        return failed ? nil : decoded
    }
}
