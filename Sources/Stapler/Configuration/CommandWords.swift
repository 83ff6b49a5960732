/// Splits an `--on-update` command into the words of its argv, without a shell, by the
/// quoting rules every operator knows from sh, and no others:
///
///     nginx -s reload                    three words
///     rsync -a "/etc/my certs/" host:    blanks inside quotes stay in the word
///     sh -c 'nginx -t && nginx -s reload'   a shell only when the operator writes one:
///                                        the quotes hand sh its script as one word
///
/// - Blanks (space, tab, line feed, carriage return) separate words.
/// - Single quotes keep everything up to the next single quote as it is.
/// - Double quotes keep everything up to the next unescaped double quote; inside them a
///   backslash escapes only `"` and `\` (and is kept before any other byte).
/// - Outside quotes a backslash makes the next byte literal.
/// - Pieces next to each other form one word (`a'b c'd` is `ab cd`); `''` is an empty word.
/// - Nothing is expanded. Unquoted shell syntax (`| & ; < > ( ) $` and backquote) is refused
///   with a hint rather than passed on as a literal argument the operator did not mean;
///   quoted, those bytes are ordinary.
enum CommandWords {
    struct Problem: Error, Equatable, CustomStringConvertible {
        let reason: String
        var description: String { reason }
    }

    /// Bytes that only a shell gives meaning to.
    private static let shellSyntax: Set<UInt8> = Set("|&;<>()$`".utf8)

    static func split(_ text: [UInt8]) throws(Problem) -> [[UInt8]] {
        // No argument can hold a NUL (a C string ends there), quoted or not.
        guard !text.contains(0) else { throw Problem(reason: "contains a NUL byte") }
        var words: [[UInt8]] = []
        var word: [UInt8] = []
        var inWord = false
        var index = 0
        while index < text.count {
            let byte = text[index]
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                if inWord {
                    words.append(word)
                    word = []
                    inWord = false
                }
                index += 1
            case UInt8(ascii: "'"):
                guard let close = text[(index + 1)...].firstIndex(of: UInt8(ascii: "'")) else {
                    throw Problem(reason: "a single quote is not closed")
                }
                word += text[(index + 1)..<close]
                inWord = true
                index = close + 1
            case UInt8(ascii: "\""):
                index += 1
                var closed = false
                while index < text.count {
                    let inner = text[index]
                    if inner == UInt8(ascii: "\"") {
                        closed = true
                        index += 1
                        break
                    }
                    if inner == UInt8(ascii: "\\"), index + 1 < text.count,
                       text[index + 1] == UInt8(ascii: "\"") || text[index + 1] == UInt8(ascii: "\\") {
                        word.append(text[index + 1])
                        index += 2
                        continue
                    }
                    word.append(inner)
                    index += 1
                }
                guard closed else { throw Problem(reason: "a double quote is not closed") }
                inWord = true
            case UInt8(ascii: "\\"):
                guard index + 1 < text.count else { throw Problem(reason: "ends with a backslash") }
                word.append(text[index + 1])
                inWord = true
                index += 2
            default:
                if shellSyntax.contains(byte) {
                    throw Problem(reason: "\"\(Character(Unicode.Scalar(byte)))\" means something only to a shell, and "
                                  + "the command runs without one: write sh -c '...' for a shell, or quote it")
                }
                word.append(byte)
                inWord = true
                index += 1
            }
        }
        if inWord { words.append(word) }
        guard !words.isEmpty else { throw Problem(reason: "no command given") }
        return words
    }

    /// The words quoted so that `split` gives them back: each in single quotes, a single
    /// quote itself as `'\''`. For log lines and for checking the splitter against itself.
    static func quoted(_ words: [[UInt8]]) -> [UInt8] {
        var result: [UInt8] = []
        for (position, word) in words.enumerated() {
            if position > 0 { result.append(UInt8(ascii: " ")) }
            result.append(UInt8(ascii: "'"))
            for byte in word {
                if byte == UInt8(ascii: "'") { result += Array("'\\''".utf8) } else { result.append(byte) }
            }
            result.append(UInt8(ascii: "'"))
        }
        return result
    }
}
