import Reactor

/// A setting that can also be switched off explicitly (`--no-haproxy-sockets`, `logdir=`),
/// which is not the same as leaving it unset: an explicit "off" on the command line beats
/// a value from the config file.
enum Switchable<Value: Equatable & Sendable>: Equatable, Sendable {
    case disabled
    case enabled(Value)

    var value: Value? {
        if case .enabled(let value) = self { return value }
        return nil
    }
}

/// One option's value as the command line or the config file spelled it, before conversion.
enum GivenValue: Equatable {
    /// A flag: on from the command line; on or off (`daemon = false`) from a config file.
    case flag(Bool)
    /// An optional-value option given without one (`-l`, bare `logdir`).
    case omitted
    /// One value, or several for list options. Bytes, since config files may hold paths
    /// that are not UTF-8.
    case values([[UInt8]])
}

/// The settings one source gave explicitly; nil means "not given here", so the next source
/// down (config file, then defaults) decides.
struct SettingsLayer: Equatable {
    var certPaths: [FilePath]?
    var directories: [FilePath]?
    var recursive: Bool?
    var fileExtensions: [String]?
    var ignorePatterns: [IgnorePattern]?
    var minimumValidity: Duration?
    var renewalThreads: Int?
    var refreshInterval: Duration?
    var noRecycle: Bool?
    var noFetchIssuers: Bool?
    /// Confine the daemon (`sandbox = false`, `--no-sandbox` turn it off).
    var sandbox: Bool?
    var oneOff: Bool?
    var pushOnly: Bool?
    /// How many times `-v` was given.
    var verboseCount = 0
    var verbosity: Verbosity?
    var quiet: Bool?
    var logDirectory: Switchable<FilePath>?
    var syslog: Bool?
    var daemon: Bool?
    var pidFile: Switchable<FilePath>?
    var stapleDirectory: Switchable<FilePath>?
    var configFile: FilePath?
    var nonce: Bool?
    /// `--ocsp-proxy`: a proxy URL as given, or "" for none (the environment's ignored too).
    var ocspProxy: String?
    var ocspProxyOnly: Bool?
    var metrics: Switchable<MetricsAddress>?
    var metricsPerCertificate: Bool?
    var haproxySockets: Switchable<[FilePath]>?
    var haproxyConfigs: [FilePath]?
    var haproxySocketKeepalive: Duration?
    var fetch: Bool?
    var warning: Duration?
    var critical: Duration?
    var timeout: Duration?
    /// `--on-update`, split into argv; an empty value switches a config file's command off.
    var onUpdate: Switchable<[[UInt8]]>?
    var onUpdateInterval: Duration?
    var onUpdateTimeout: Duration?
    var warnings: [String] = []

    /// Where `-l` and a bare `logdir` write logs.
    static let defaultLogDirectory: FilePath = "/var/log/stapler/"

    /// Applies one occurrence of an option. List options add to what the same source gave
    /// before (`-i a -i b` ignores both; argparse kept only the last), single values replace.
    /// `context` names the option for warnings ("--verbosity", "stapler.conf:4: verbosity").
    mutating func apply(_ setting: Setting, _ raw: GivenValue, context: String) throws(ValueProblem) {
        switch setting {
        case .certPaths:
            certPaths = (certPaths ?? []) + (try paths(raw))
        case .directories:
            directories = (directories ?? []) + (try paths(raw))
        case .recursive:
            recursive = try flag(raw)
        case .fileExtensions:
            fileExtensions = try SettingValueParser.fileExtensions(try values(raw), warnings: &warnings, context: context)
        case .ignore:
            ignorePatterns = (ignorePatterns ?? []) + (try ignore(raw, context: context))
        case .minimumValidity:
            minimumValidity = try SettingValueParser.seconds(try single(raw), range: 0...SettingValueParser.secondsInAYear)
        case .renewalThreads:
            renewalThreads = try SettingValueParser.wholeNumber(try single(raw), range: 1...1024)
        case .refreshInterval:
            refreshInterval = try SettingValueParser.seconds(try single(raw), range: 1...604_800)
        case .noRecycle:
            noRecycle = try flag(raw)
        case .noFetchIssuers:
            noFetchIssuers = try flag(raw)
        case .sandbox:
            switch raw {
            case .flag(let on): sandbox = on
            default: sandbox = try SettingValueParser.boolean(try single(raw))
            }
        case .noSandbox:
            if try flag(raw) { sandbox = false }
        case .oneOff:
            oneOff = try flag(raw)
        case .pushOnly:
            pushOnly = try flag(raw)
        case .verbose:
            verboseCount += 1
        case .verbosity:
            let bytes = try single(raw)
            let level = try SettingValueParser.wholeNumber(bytes, range: -1_000_000...1_000_000)
            let clamped = Verbosity(clamping: level)
            if clamped.rawValue != level {
                warnings.append("\(context): \(level) is outside 0 to 4; using \(clamped.rawValue) (\(clamped))")
            }
            verbosity = clamped
        case .quiet:
            quiet = try flag(raw)
        case .logDirectory:
            switch raw {
            case .omitted: logDirectory = .enabled(Self.defaultLogDirectory)
            default: logDirectory = try switchablePath(raw)
            }
        case .syslog:
            syslog = try flag(raw)
        case .daemon:
            daemon = try flag(raw)
        case .interactive:
            // `no-daemon = false` in a config file says nothing, as with configargparse.
            if try flag(raw) { daemon = false }
        case .pidFile:
            pidFile = try switchablePath(raw)
        case .stapleDirectory:
            stapleDirectory = try switchablePath(raw)
        case .config:
            configFile = try SettingValueParser.path(try single(raw))
        case .version, .help:
            break  // handled by the parser before values matter
        case .nonce:
            nonce = try flag(raw)
        case .ocspProxy:
            ocspProxy = try SettingValueParser.proxyURL(try single(raw))
        case .ocspProxyOnly:
            ocspProxyOnly = try flag(raw)
        case .metrics:
            let bytes = try single(raw)
            metrics = bytes.isEmpty ? .disabled : .enabled(try SettingValueParser.metricsAddress(bytes))
        case .metricsPerCertificate:
            switch raw {
            case .flag(let on): metricsPerCertificate = on
            default: metricsPerCertificate = try SettingValueParser.boolean(try single(raw))
            }
        case .haproxySockets:
            let sockets = try paths(raw)
            haproxySockets = .enabled((haproxySockets?.value ?? []) + sockets)
        case .noHAProxySockets:
            if try flag(raw) { haproxySockets = .disabled }
        case .haproxyConfig:
            haproxyConfigs = (haproxyConfigs ?? []) + (try paths(raw))
        case .haproxySocketKeepalive:
            haproxySocketKeepalive = try SettingValueParser.seconds(try single(raw), range: 1...86_400)
        case .fetch:
            fetch = try flag(raw)
        case .warning:
            warning = try SettingValueParser.seconds(try single(raw), range: 0...SettingValueParser.secondsInAYear)
        case .critical:
            critical = try SettingValueParser.seconds(try single(raw), range: 0...SettingValueParser.secondsInAYear)
        case .timeout:
            timeout = try SettingValueParser.seconds(try single(raw), range: 1...SettingValueParser.longestCheckTimeout)
        case .onUpdate:
            let bytes = try single(raw)
            do {
                onUpdate = SettingValueParser.trimmed(bytes).isEmpty ? .disabled : .enabled(try CommandWords.split(bytes))
            } catch {
                throw ValueProblem(error.reason)
            }
        case .onUpdateInterval:
            onUpdateInterval = try SettingValueParser.seconds(try single(raw), range: 0...86_400)
        case .onUpdateTimeout:
            onUpdateTimeout = try SettingValueParser.seconds(try single(raw), range: 1...86_400)
        }
    }

    private func flag(_ raw: GivenValue) throws(ValueProblem) -> Bool {
        guard case .flag(let on) = raw else { throw ValueProblem("takes no value") }
        return on
    }

    private func values(_ raw: GivenValue) throws(ValueProblem) -> [[UInt8]] {
        switch raw {
        case .values(let values): return values
        case .flag, .omitted: throw ValueProblem("needs a value")
        }
    }

    private func single(_ raw: GivenValue) throws(ValueProblem) -> [UInt8] {
        let given = try values(raw)
        guard given.count == 1 else { throw ValueProblem("takes one value, not a list") }
        return given[0]
    }

    /// Empty items are dropped: `cert-paths = [a, ]` and `cert-paths =` mean no extra path.
    private func paths(_ raw: GivenValue) throws(ValueProblem) -> [FilePath] {
        var result: [FilePath] = []
        for item in try values(raw) where !item.isEmpty {
            result.append(try SettingValueParser.path(item))
        }
        return result
    }

    /// An empty value (`logdir =` in a config file) switches the setting off.
    private func switchablePath(_ raw: GivenValue) throws(ValueProblem) -> Switchable<FilePath> {
        let bytes = try single(raw)
        return bytes.isEmpty ? .disabled : .enabled(try SettingValueParser.path(bytes))
    }

    /// The predecessor dropped patterns that look like relative paths ("./x", "../certs/*"),
    /// which never match an absolute certificate path; keep that, and say so.
    private mutating func ignore(_ raw: GivenValue, context: String) throws(ValueProblem) -> [IgnorePattern] {
        var result: [IgnorePattern] = []
        for item in try values(raw) {
            let text = SettingValueParser.trimmed(item)
            if text.isEmpty { continue }
            guard !text.contains(0) else { throw ValueProblem("\(quoted(bytes: item)) contains a NUL byte") }
            let leadingDots = text.prefix(while: { $0 == UInt8(ascii: ".") }).count
            if leadingDots > 0 && leadingDots < text.count && text[leadingDots] == UInt8(ascii: "/") {
                warnings.append("\(context): ignoring pattern \(quoted(bytes: text)): it looks like a relative path; "
                    + "write the end of the path (\"certs/*.pem\") or an absolute pattern")
                continue
            }
            result.append(IgnorePattern(bytes: text))
        }
        return result
    }
}

/// Short spellings of `ConfigurationText.quoted` for this file's messages.
private func quoted(bytes: [UInt8]) -> String { ConfigurationText.quoted(bytes: bytes) }
