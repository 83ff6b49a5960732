/// Parses arguments the way Python's argparse did for the predecessor, so existing unit
/// files and scripts keep working:
/// - long options by any unique prefix (`--min` for `--minimum-validity`), exact names win;
/// - `--opt=value` and `--opt value`; `--list=value` gives that list one value;
/// - a toggle is on by itself and takes only a glued value (`--x=false`);
/// - short flags clustered (`-vvv`, `-Rv`), short values attached (`-t4`, `-t=4`) or not;
/// - list options take every following word up to the next option;
/// - `-l` takes the next word only if it is not an option;
/// - `--` ends the options; a lone `-` and negative numbers are plain words.
/// Unlike argparse, plain words may appear anywhere (between options too), and repeating a
/// list option adds to it.
struct CommandLineParser {
    enum Outcome: Equatable {
        case settings(SettingsLayer, positionals: [String])
        case help
        case version
    }

    let options: [OptionSpec]
    /// What plain words set (cert paths for the daemon); nil collects them in `positionals`.
    var positionalSetting: Setting? = nil
    /// How errors about plain words name them ("CERT_PATH").
    var positionalName = "argument"

    func parse(_ arguments: [String]) throws(ConfigurationError) -> Outcome {
        var layer = SettingsLayer()
        var positionals: [String] = []
        var index = 0
        var optionsEnded = false

        while index < arguments.count {
            let word = arguments[index]
            index += 1
            if optionsEnded || !Self.looksLikeOption(word) {
                if let setting = positionalSetting {
                    do {
                        try layer.apply(setting, .values([Array(word.utf8)]), context: positionalName)
                    } catch {
                        throw .invalidValue(option: positionalName, reason: error.reason)
                    }
                } else {
                    positionals.append(word)
                }
                continue
            }
            if word == "--" {
                optionsEnded = true
                continue
            }

            if word.hasPrefix("--") {
                let body = word.dropFirst(2)
                let name: Substring
                let attached: String?
                if let equals = body.firstIndex(of: "=") {
                    name = body[..<equals]
                    attached = String(body[body.index(after: equals)...])
                } else {
                    name = body
                    attached = nil
                }
                let spec = try longOption(String(name), as: word)
                if let request = try consume(spec, attached: attached, arguments: arguments, index: &index, into: &layer) {
                    return request
                }
                continue
            }

            // "-daemon" would otherwise quietly mean "-d aemon": refuse a long name written
            // with one dash.
            let body = word.dropFirst().split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            if body.count > 1, options.contains(where: { $0.longNames.contains(body) }) {
                throw .unknownOption(word, suggestion: "-" + word)
            }

            // A cluster of short options: flags until one that takes a value, which takes
            // the rest of the word (or the next word).
            var letters = Substring(word.dropFirst())
            while let letter = letters.first {
                letters = letters.dropFirst()
                guard let spec = options.first(where: { $0.shortName == letter }) else {
                    throw .unknownOption("-\(letter)", suggestion: nil)
                }
                var attached: String? = letters.isEmpty ? nil : String(letters)
                if spec.arity == .flag {
                    // "-Rv": the rest is more flags. "-R=x" is a value a flag cannot take.
                    attached = letters.hasPrefix("=") ? String(letters.dropFirst()) : nil
                } else if let value = attached, value.hasPrefix("=") {
                    attached = String(value.dropFirst())
                }
                if let request = try consume(spec, attached: attached, arguments: arguments, index: &index, into: &layer) {
                    return request
                }
                if spec.arity != .flag { break }
            }
        }
        return .settings(layer, positionals: positionals)
    }

    /// The value glued to the option ("--x=v", "-tv"), else the next word unless it is an
    /// option itself (then the index moves past it), else nil.
    private static func singleValue(attached: String?, arguments: [String], index: inout Int) -> [UInt8]? {
        if let attached { return Array(attached.utf8) }
        guard index < arguments.count, !looksLikeOption(arguments[index]) else { return nil }
        index += 1
        return Array(arguments[index - 1].utf8)
    }

    /// Applies one option, taking its values from `attached` or the following words.
    /// Returns a request when the option is --help or --version.
    private func consume(_ spec: OptionSpec, attached: String?, arguments: [String], index: inout Int,
                         into layer: inout SettingsLayer) throws(ConfigurationError) -> Outcome? {
        let raw: GivenValue
        switch spec.arity {
        case .flag:
            if let attached {
                throw .invalidValue(option: spec.displayName, reason: "takes no value (got \(quoted(attached)))")
            }
            if spec.setting == .help { return .help }
            if spec.setting == .version { return .version }
            raw = .flag(true)
        case .toggle:
            raw = attached.map { .values([Array($0.utf8)]) } ?? .flag(true)
        case .one:
            guard let value = Self.singleValue(attached: attached, arguments: arguments, index: &index) else {
                throw .invalidValue(option: spec.displayName, reason: "needs a value (\(spec.valueName))")
            }
            raw = .values([value])
        case .optional:
            raw = Self.singleValue(attached: attached, arguments: arguments, index: &index).map { .values([$0]) } ?? .omitted
        case .oneOrMore:
            if let attached {
                raw = .values([Array(attached.utf8)])
            } else {
                var values: [[UInt8]] = []
                while index < arguments.count, !Self.looksLikeOption(arguments[index]) {
                    values.append(Array(arguments[index].utf8))
                    index += 1
                }
                guard !values.isEmpty else {
                    throw .invalidValue(option: spec.displayName, reason: "needs at least one \(spec.valueName)")
                }
                raw = .values(values)
            }
        }
        do {
            try layer.apply(spec.setting, raw, context: spec.displayName)
        } catch {
            throw .invalidValue(option: spec.displayName, reason: error.reason)
        }
        return nil
    }

    /// Exact name first, then a unique prefix; aliases of one option count once.
    private func longOption(_ name: String, as typed: String) throws(ConfigurationError) -> OptionSpec {
        if let exact = options.first(where: { $0.longNames.contains(name) }) { return exact }
        var candidates: [(spec: OptionSpec, name: String)] = []
        for spec in options {
            for long in spec.longNames where !name.isEmpty && long.hasPrefix(name) {
                if !candidates.contains(where: { $0.spec.setting == spec.setting }) {
                    candidates.append((spec, long))
                }
            }
        }
        if candidates.count == 1 { return candidates[0].spec }
        if candidates.count > 1 {
            throw .ambiguousOption(typed, candidates: candidates.map { "--" + $0.name })
        }
        throw .unknownOption(typed, suggestion: suggestion(for: name))
    }

    /// The long option a typo most likely meant, if one is close.
    private func suggestion(for name: String) -> String? {
        var best: (name: String, distance: Int)?
        for spec in options {
            for long in spec.longNames {
                let distance = ConfigurationText.editDistance(Array(name.utf8), Array(long.utf8))
                if distance <= max(1, long.count / 4), distance < (best?.distance ?? .max) { best = (long, distance) }
            }
        }
        return best.map { "--" + $0.name }
    }

    /// Options start with '-', except a lone "-" and negative numbers (argparse treats those
    /// as values when no option looks like a number, which is the case here).
    static func looksLikeOption(_ word: String) -> Bool {
        guard word.hasPrefix("-"), word.count > 1 else { return false }
        let rest = word.dropFirst()
        let isNumber = !rest.isEmpty && rest.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") }
            && rest.contains(where: { $0.isNumber })
        return !isNumber
    }
}

/// Short spellings of `ConfigurationText.quoted` for this file's messages.
private func quoted(_ text: String) -> String { ConfigurationText.quoted(text) }
