import Reactor

/// The predecessor's config file format (configargparse's default parser), read line by line:
///
///     [section]                  ignored, as are blank lines and lines starting with # or ;
///     key = value                also "key: value" and "key value"; the key is a long
///                                option name ("cert-paths"; "--cert-paths" and
///                                "cert_paths" work too)
///     key = "value"              matching quotes around a value are removed
///     key = [a, b, "c"]          a list, for options that take several values
///     key                        a bare key turns a flag on; "key = false" leaves it off
///     key = value  ; comment     a comment after a value needs a blank before it
///
/// Unknown keys and unusable values stop the daemon with the file, line and key, as
/// configargparse's "unrecognized arguments" did (without the line).
enum ConfigFile {
    /// Config files are a few KiB; anything bigger is a mistake or an attack.
    static let sizeLimit = 1 << 20

    struct Entry: Equatable {
        let line: Int
        let key: String
        let value: Value
    }

    enum Value: Equatable {
        /// `key` alone.
        case bare
        /// `key = text` (possibly empty).
        case text([UInt8])
        /// `key = [a, b]`.
        case list([[UInt8]])
    }

    /// Reads and applies the file at `path` to a fresh layer.
    static func load(_ path: FilePath, options: [OptionSpec]) throws(ConfigurationError) -> SettingsLayer {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(path, limit: sizeLimit)
        } catch {
            throw .unreadableFile(role: "config file", error: error)
        }
        return try settings(from: try parse(bytes, file: path), file: path, options: options)
    }

    /// Splits the file into entries; refuses lines that fit no form.
    static func parse(_ bytes: [UInt8], file: FilePath) throws(ConfigurationError) -> [Entry] {
        var entries: [Entry] = []
        var lineNumber = 0
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = SettingValueParser.trimmed(Array(rawLine))
            if line.isEmpty { continue }
            if line.contains(0) {
                throw .invalidConfigFile(file: file, line: lineNumber, reason: "contains a NUL byte")
            }
            let first = line[0]
            if first == UInt8(ascii: "#") || first == UInt8(ascii: ";") || first == UInt8(ascii: "[")
                || line.starts(with: Array("---".utf8)) {
                continue
            }
            entries.append(try parseLine(line, number: lineNumber, file: file))
        }
        return entries
    }

    private static func parseLine(_ line: [UInt8], number: Int, file: FilePath) throws(ConfigurationError) -> Entry {
        let keyEnd = line.firstIndex(where: { isKeyTerminator($0) }) ?? line.endIndex
        guard keyEnd > 0 else {
            throw .invalidConfigFile(file: file, line: number,
                                     reason: "expected \"key = value\", found \(quoted(bytes: Array(line.prefix(80))))")
        }
        guard let key = String(validating: line[..<keyEnd], as: UTF8.self) else {
            throw .invalidConfigFile(file: file, line: number, reason: "key \(quoted(bytes: Array(line[..<keyEnd]))) is not UTF-8")
        }
        let rest = line[keyEnd...]
        if rest.isEmpty { return Entry(line: number, key: key, value: .bare) }

        // The separator: '=' or ':' after optional blanks, or else the blanks themselves.
        let afterBlanks = rest.firstIndex(where: { !SettingValueParser.isBlank($0) }) ?? rest.endIndex
        let valueStart: Int
        if afterBlanks < rest.endIndex, line[afterBlanks] == UInt8(ascii: "=") || line[afterBlanks] == UInt8(ascii: ":") {
            valueStart = afterBlanks + 1
        } else if afterBlanks > rest.startIndex {
            valueStart = rest.startIndex + 1
        } else {
            throw .invalidConfigFile(file: file, line: number,
                                     reason: "expected \"=\" after \(quoted(key)), found \(quoted(bytes: Array(rest.prefix(40))))")
        }
        let valueText = Array(line[valueStart...].drop(while: { SettingValueParser.isBlank($0) }))
        let value = stripComment(valueText)
        if value.first == UInt8(ascii: "["), value.last == UInt8(ascii: "]") {
            return Entry(line: number, key: key, value: .list(listItems(Array(value.dropFirst().dropLast()))))
        }
        return Entry(line: number, key: key, value: .text(value))
    }

    /// configargparse keys stop at blanks and at `:=;#`.
    private static func isKeyTerminator(_ byte: UInt8) -> Bool {
        SettingValueParser.isBlank(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "=")
            || byte == UInt8(ascii: ";") || byte == UInt8(ascii: "#")
    }

    /// Removes a trailing " ; comment" or " # comment" and one pair of matching quotes.
    /// A quoted value may contain " ;" itself: `key = "a ;b" ; note` is `a ;b`.
    private static func stripComment(_ text: [UInt8]) -> [UInt8] {
        if let quote = text.first, quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") {
            var close = 1
            while close < text.count {
                if text[close] == quote, isEndOrComment(text[(close + 1)...]) {
                    return Array(text[1..<close])
                }
                close += 1
            }
        }
        var index = 1
        while index + 1 < text.count {
            if SettingValueParser.isBlank(text[index]) {
                let next = text[(index + 1)...].firstIndex(where: { !SettingValueParser.isBlank($0) }) ?? text.endIndex
                if next < text.endIndex, text[next] == UInt8(ascii: ";") || text[next] == UInt8(ascii: "#") {
                    return SettingValueParser.trimmed(Array(text[..<index]))
                }
                index = next
                continue
            }
            index += 1
        }
        return text
    }

    /// True when `tail` is blank, or blanks followed by a comment marker.
    private static func isEndOrComment(_ tail: ArraySlice<UInt8>) -> Bool {
        guard let next = tail.firstIndex(where: { !SettingValueParser.isBlank($0) }) else { return true }
        return next > tail.startIndex && (tail[next] == UInt8(ascii: ";") || tail[next] == UInt8(ascii: "#"))
    }

    /// `a, b` or JSON-style `"a", "b"`; commas inside double quotes stay in the item.
    private static func listItems(_ text: [UInt8]) -> [[UInt8]] {
        var items: [[UInt8]] = []
        var current: [UInt8] = []
        var inQuotes = false
        var index = 0
        while index < text.count {
            let byte = text[index]
            if inQuotes && byte == UInt8(ascii: "\\") && index + 1 < text.count {
                current.append(text[index + 1])
                index += 2
                continue
            }
            if byte == UInt8(ascii: "\"") {
                inQuotes.toggle()
            } else if byte == UInt8(ascii: ",") && !inQuotes {
                items.append(unquoted(current))
                current = []
            } else {
                current.append(byte)
            }
            index += 1
        }
        items.append(unquoted(current))
        // "[]" is an empty list, and "[a, ]" has no empty third item.
        return items.filter { !$0.isEmpty }
    }

    private static func unquoted(_ item: [UInt8]) -> [UInt8] {
        SettingValueParser.trimmed(item)
    }

    /// Applies parsed entries to a settings layer, matching keys to long option names.
    static func settings(from entries: [Entry], file: FilePath, options: [OptionSpec]) throws(ConfigurationError) -> SettingsLayer {
        var layer = SettingsLayer()
        for entry in entries {
            var key = entry.key
            if key.hasPrefix("--") { key.removeFirst(2) }
            let normalized = key.replacingUnderscores()
            if normalized == "config" {
                // configargparse accepted the key and did nothing with it; so do we.
                layer.warnings.append("\(file):\(entry.line): \"config\" in a config file has no effect")
                continue
            }
            if let spec = options.first(where: { $0.longNames.contains(normalized) }), !spec.configurable {
                throw .invalidConfigFile(file: file, line: entry.line, reason: "\(quoted(entry.key)) cannot be set in a config file")
            }
            guard let spec = options.first(where: { $0.configurable && $0.longNames.contains(normalized) }) else {
                throw .invalidConfigFile(file: file, line: entry.line,
                                         reason: "unknown key \(quoted(entry.key))\(suggestion(for: normalized, options: options))")
            }
            let context = "\(file):\(entry.line): \(entry.key)"
            let raw: GivenValue
            switch (spec.arity, entry.value) {
            case (.flag, .bare), (.toggle, .bare):
                raw = .flag(true)
            case (.flag, .text(let text)), (.toggle, .text(let text)):
                do {
                    raw = .flag(try SettingValueParser.boolean(text))
                } catch {
                    throw .invalidConfigFile(file: file, line: entry.line, reason: "\(entry.key): \(error.reason)")
                }
            case (.flag, .list), (.toggle, .list):
                throw .invalidConfigFile(file: file, line: entry.line, reason: "\(entry.key): takes true or false, not a list")
            case (.optional, .bare):
                raw = .omitted
            case (_, .bare):
                throw .invalidConfigFile(file: file, line: entry.line, reason: "\(entry.key): needs a value")
            case (.oneOrMore, .text(let text)):
                raw = .values([text])
            case (.oneOrMore, .list(let items)):
                raw = .values(items)
            case (_, .text(let text)):
                raw = .values([text])
            case (_, .list(let items)):
                if spec.setting == .fileExtensions {
                    raw = .values(items)
                } else {
                    throw .invalidConfigFile(file: file, line: entry.line, reason: "\(entry.key): takes one value, not a list")
                }
            }
            do {
                try layer.apply(spec.setting, raw, context: context)
            } catch {
                throw .invalidConfigFile(file: file, line: entry.line, reason: "\(entry.key): \(error.reason)")
            }
        }
        return layer
    }

    private static func suggestion(for key: String, options: [OptionSpec]) -> String {
        let names = options.filter(\.configurable).flatMap(\.longNames)
        let prefixed = names.filter { $0.hasPrefix(key) }
        if prefixed.count == 1 { return " (did you mean \(quoted(prefixed[0]))?)" }
        let close = names.map { ($0, ConfigurationText.editDistance(Array(key.utf8), Array($0.utf8))) }
            .filter { $0.1 <= max(1, $0.0.count / 4) }
            .min(by: { $0.1 < $1.1 })
        return close.map { " (did you mean \(quoted($0.0))?)" } ?? ""
    }
}

private extension String {
    func replacingUnderscores() -> String {
        String(map { $0 == "_" ? "-" : $0 })
    }
}

/// Short spellings of `ConfigurationText.quoted` for this file's messages.
private func quoted(bytes: [UInt8]) -> String { ConfigurationText.quoted(bytes: bytes) }
private func quoted(_ text: String) -> String { ConfigurationText.quoted(text) }
