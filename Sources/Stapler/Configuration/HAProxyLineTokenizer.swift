/// Cuts one haproxy.cfg line into words the way HAProxy does (configuration manual 2.2 and
/// 2.3): blanks separate words; `#` starts a comment; a backslash escapes a blank, `#`,
/// a quote or itself and encodes `\t`, `\r`, `\n`, `\xNN`; double quotes protect blanks,
/// `#` and single quotes but still honour escapes and expand `$VAR`, `${VAR}` and
/// `${VAR-default}`; single quotes protect everything. Quoted and unquoted pieces join into
/// one word: `/etc/"my certs"/a.pem`.
enum HAProxyLineTokenizer {
    struct UnbalancedQuote: Error, Equatable {
        /// `"` or `'`.
        let quote: Character
    }

    static func words(_ line: ArraySlice<UInt8>, environment: [String: String]) throws(UnbalancedQuote) -> [[UInt8]] {
        var words: [[UInt8]] = []
        var current: [UInt8] = []
        var inWord = false
        var inSingle = false
        var inDouble = false
        var index = line.startIndex

        func finishWord() {
            if inWord { words.append(current) }
            current = []
            inWord = false
        }

        while index < line.endIndex {
            let byte = line[index]
            if inSingle {
                if byte == UInt8(ascii: "'") { inSingle = false } else { current.append(byte) }
                index += 1
                continue
            }
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), 0x0b, 0x0c:
                if inDouble { current.append(byte) } else { finishWord() }
                index += 1
            case UInt8(ascii: "#") where !inDouble:
                finishWord()
                return words
            case UInt8(ascii: "'") where !inDouble:
                inSingle = true
                inWord = true
                index += 1
            case UInt8(ascii: "\""):
                inDouble.toggle()
                inWord = true
                index += 1
            case UInt8(ascii: "\\"):
                inWord = true
                index = escape(line, at: index, inDouble: inDouble, into: &current)
            case UInt8(ascii: "$") where inDouble:
                inWord = true
                index = expand(line, at: index, environment: environment, into: &current)
            default:
                current.append(byte)
                inWord = true
                index += 1
            }
        }
        if inSingle { throw UnbalancedQuote(quote: "'") }
        if inDouble { throw UnbalancedQuote(quote: "\"") }
        finishWord()
        return words
    }

    /// Handles the backslash at `index`; returns where to continue. Sequences HAProxy does
    /// not know keep their backslash (`\1` stays `\1`).
    private static func escape(_ line: ArraySlice<UInt8>, at index: Int, inDouble: Bool, into current: inout [UInt8]) -> Int {
        let next = index + 1
        guard next < line.endIndex else {
            current.append(UInt8(ascii: "\\"))
            return next
        }
        switch line[next] {
        case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "#"):
            current.append(line[next])
        case UInt8(ascii: "t"): current.append(0x09)
        case UInt8(ascii: "r"): current.append(0x0d)
        case UInt8(ascii: "n"): current.append(0x0a)
        case UInt8(ascii: "$") where inDouble:
            current.append(UInt8(ascii: "$"))
        case UInt8(ascii: "x"):
            if next + 2 < line.endIndex, let high = hexValue(line[next + 1]), let low = hexValue(line[next + 2]) {
                current.append(high << 4 | low)
                return next + 3
            }
            current.append(UInt8(ascii: "\\"))
            return next
        default:
            current.append(UInt8(ascii: "\\"))
            return next
        }
        return next + 1
    }

    /// Expands the `$` at `index` inside double quotes; returns where to continue. A `$` that
    /// starts no variable name is kept. Unset variables expand to nothing, as in HAProxy.
    private static func expand(_ line: ArraySlice<UInt8>, at index: Int, environment: [String: String],
                               into current: inout [UInt8]) -> Int {
        var cursor = index + 1
        let braced = cursor < line.endIndex && line[cursor] == UInt8(ascii: "{")
        if braced { cursor += 1 }
        let nameStart = cursor
        while cursor < line.endIndex, isNameByte(line[cursor], first: cursor == nameStart) { cursor += 1 }
        guard cursor > nameStart else {
            current.append(UInt8(ascii: "$"))
            return index + 1
        }
        let name = String(decoding: line[nameStart..<cursor], as: UTF8.self)
        var fallback: [UInt8]?
        if braced {
            if cursor < line.endIndex && line[cursor] == UInt8(ascii: "-") {
                let defaultStart = cursor + 1
                guard let close = line[defaultStart...].firstIndex(of: UInt8(ascii: "}")) else {
                    current.append(UInt8(ascii: "$"))
                    return index + 1
                }
                fallback = Array(line[defaultStart..<close])
                cursor = close
            } else if line[cursor...].starts(with: Array("[*]".utf8)) {
                cursor += 3  // "${LIST[*]}" splits into words in HAProxy; one word is enough here
            }
            guard cursor < line.endIndex, line[cursor] == UInt8(ascii: "}") else {
                current.append(UInt8(ascii: "$"))
                return index + 1
            }
            cursor += 1
        }
        if let value = environment[name] {
            current.append(contentsOf: value.utf8)
        } else if let fallback {
            current.append(contentsOf: fallback)
        }
        return cursor
    }

    private static func isNameByte(_ byte: UInt8, first: Bool) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"): return true
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return !first
        default: return false
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
