import Reactor

/// Why the command line, a config file or a haproxy.cfg cannot be used. Each case renders as
/// one line that names the option, or the file and line, at fault. The daemon prints it to
/// stderr and exits with `exitCode` (2, like argparse).
public enum ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A command-line word that starts like an option but names none.
    case unknownOption(String, suggestion: String?)
    /// An abbreviated long option that fits several options.
    case ambiguousOption(String, candidates: [String])
    /// An option (spelled canonically, e.g. `--minimum-validity`) with a bad or missing value.
    case invalidValue(option: String, reason: String)
    /// A line of a stapler/stapled config file that cannot be used.
    case invalidConfigFile(file: FilePath, line: Int, reason: String)
    /// A line of a haproxy.cfg or crt-list that cannot be parsed.
    case invalidHAProxyConfig(file: FilePath, line: Int, reason: String)
    /// A file that had to be read and could not be; `role` says what it was for.
    case unreadableFile(role: String, error: FileError)
    /// Settings that are fine one by one but not together (e.g. 3 sockets for 2 paths).
    case invalidSettings(String)

    public var exitCode: Int32 { 2 }

    public var description: String {
        switch self {
        case .unknownOption(let word, let suggestion):
            let hint = suggestion.map { " (did you mean \($0)?)" } ?? " (see stapler --help)"
            return "stapler: unknown option \(quoted(word))\(hint)"
        case .ambiguousOption(let word, let candidates):
            return "stapler: ambiguous option \(quoted(word)): could be \(candidates.joined(separator: ", "))"
        case .invalidValue(let option, let reason):
            return "stapler: \(option): \(reason)"
        case .invalidConfigFile(let file, let line, let reason):
            return "\(file):\(line): \(reason)"
        case .invalidHAProxyConfig(let file, let line, let reason):
            return "\(file):\(line): \(reason)"
        case .unreadableFile(let role, let error):
            return "stapler: cannot read \(role) \(error.path): \(error.reasonDescription)"
        case .invalidSettings(let reason):
            return "stapler: \(reason)"
        }
    }
}

/// Rendering of user-supplied text inside one-line messages.
enum ConfigurationText {
    /// `"text"` with quotes, backslashes and control bytes escaped, so a hostile value
    /// cannot break the one-line shape of an error or forge a second log line.
    static func quoted(_ text: String) -> String {
        quoted(bytes: Array(text.utf8))
    }

    static func quoted(bytes: [UInt8]) -> String {
        var escaped: [UInt8] = []
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): escaped += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): escaped += Array("\\\\".utf8)
            case 0..<0x20, 0x7f: ASCII.appendEscape(byte, to: &escaped)
            default: escaped.append(byte)
            }
        }
        // FilePath's description keeps valid UTF-8 and escapes the rest as \xNN.
        return "\"" + FilePath(bytes: escaped).description + "\""
    }

    /// Levenshtein distance, for "did you mean" hints on misspelled options and keys.
    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

private func quoted(_ text: String) -> String { ConfigurationText.quoted(text) }
