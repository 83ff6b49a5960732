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
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes base64, skipping ASCII white space (PEM bodies are wrapped). Returns nil on any
    /// other stray byte, bad padding or a truncated final group.
    static func decode<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        var output: [UInt8] = []
        output.reserveCapacity(text.count / 4 * 3)
        var group: UInt32 = 0
        var count = 0
        var padding = 0
        for byte in text {
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0D: continue
            default: break
            }
            let value = decodeTable[Int(byte)]
            if value == 0xFF { return nil }
            if value == 0xFE {
                padding += 1
                // '=' may only end a group, at its third or fourth position.
                if count < 2 || padding > 2 { return nil }
                group <<= 6
                count += 1
            } else {
                if padding > 0 { return nil }
                group = group << 6 | UInt32(value)
                count += 1
            }
            if count == 4 {
                output.append(UInt8(group >> 16 & 0xFF))
                if padding < 2 { output.append(UInt8(group >> 8 & 0xFF)) }
                if padding < 1 { output.append(UInt8(group & 0xFF)) }
                group = 0
                count = 0
                if padding > 0 { padding = 3 } // nothing may follow a padded group
            } else if padding == 3 {
                return nil
            }
        }
        return count == 0 ? output : nil
    }
}
