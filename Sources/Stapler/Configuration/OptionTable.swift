/// The vocabulary shared by the command line, the config file and the help text: every
/// option once, with its spellings and how many values it takes.

/// What an option sets. Several spellings can set the same thing (`--daemon` and
/// `--no-daemon` both set whether to daemonise).
enum Setting: Equatable, Sendable {
    case certPaths, directories, recursive, fileExtensions, ignore
    case minimumValidity, renewalThreads, refreshInterval, noRecycle, oneOff
    case verbose, verbosity, quiet, logDirectory, syslog
    case daemon, interactive, pidFile, config, version, help
    case nonce, metrics, metricsPerCertificate
    case stapleDirectory
    case haproxySockets, noHAProxySockets, haproxyConfig, haproxySocketKeepalive
    case fetch, warning, critical, timeout
    case onUpdate, onUpdateInterval, onUpdateTimeout
    case noFetchIssuers
    case sandbox, noSandbox
    case pushOnly
    case ocspProxy, ocspProxyOnly
}

/// How many values an option takes, as argparse's `nargs` would say.
enum Arity: Equatable, Sendable {
    /// No value (`store_true`, `count`).
    case flag
    /// On by itself (`--x`), or on or off by a value glued to it (`--x=false`); it never
    /// takes the next word, so a path after it stays a path. A flag in a config file.
    case toggle
    /// Exactly one value.
    case one
    /// One value if the next word is not an option (`nargs='?'`).
    case optional
    /// One or more values: every following word up to the next option (`nargs='+'`).
    case oneOrMore
}

struct OptionSpec: Sendable {
    let setting: Setting
    /// Long names without the leading dashes: "cert-paths".
    let longNames: [String]
    let shortName: Character?
    let arity: Arity
    /// The value placeholder in the help text: "PATH", "SECONDS".
    let valueName: String
    /// Whether the config file may set it (help, version and -v may not).
    let configurable: Bool

    init(_ setting: Setting, _ longNames: [String], short: Character? = nil, _ arity: Arity,
         value valueName: String = "", configurable: Bool = true) {
        self.setting = setting
        self.longNames = longNames
        self.shortName = short
        self.arity = arity
        self.valueName = valueName
        self.configurable = configurable
    }

    /// "--cert-paths": how errors name the option, whatever abbreviation the user typed.
    var displayName: String {
        if let long = longNames.first { return "--" + long }
        return "-" + String(shortName!)
    }
}

enum OptionTable {
    /// `stapler [options] [CERT_PATH ...]`. Names, short letters and arities follow the
    /// predecessor (stapled's configargparse parser); `--pidfile`, `--nonce` and `--metrics`
    /// are new.
    static let run: [OptionSpec] = [
        OptionSpec(.certPaths, ["cert-paths"], short: "p", .oneOrMore, value: "PATH"),
        OptionSpec(.directories, ["directories"], short: "d", .oneOrMore, value: "PATH"),
        OptionSpec(.recursive, ["recursive"], short: "R", .flag),
        OptionSpec(.fileExtensions, ["file-extensions"], .one, value: "LIST"),
        OptionSpec(.ignore, ["ignore"], short: "i", .oneOrMore, value: "PATTERN"),
        OptionSpec(.noFetchIssuers, ["no-fetch-issuers"], .flag),
        OptionSpec(.minimumValidity, ["minimum-validity"], .one, value: "SECONDS"),
        OptionSpec(.renewalThreads, ["renewal-threads"], short: "t", .one, value: "N"),
        OptionSpec(.refreshInterval, ["refresh-interval"], short: "r", .one, value: "SECONDS"),
        OptionSpec(.noRecycle, ["no-recycle"], .flag),
        OptionSpec(.oneOff, ["one-off"], .flag),
        OptionSpec(.stapleDirectory, ["staple-dir"], .one, value: "DIR"),
        OptionSpec(.pushOnly, ["push-only"], .flag),
        OptionSpec(.verbose, [], short: "v", .flag, configurable: false),
        OptionSpec(.verbosity, ["verbosity"], .one, value: "0-4"),
        OptionSpec(.quiet, ["quiet"], short: "q", .flag),
        OptionSpec(.logDirectory, ["logdir"], short: "l", .optional, value: "DIR"),
        OptionSpec(.syslog, ["syslog"], .flag),
        OptionSpec(.daemon, ["daemon"], short: "D", .flag),
        OptionSpec(.interactive, ["interactive", "no-daemon"], .flag),
        OptionSpec(.pidFile, ["pidfile"], .one, value: "FILE"),
        OptionSpec(.noSandbox, ["no-sandbox"], .flag),
        OptionSpec(.sandbox, ["sandbox"], .toggle, value: "BOOL"),
        OptionSpec(.config, ["config"], short: "c", .one, value: "FILE"),
        OptionSpec(.version, ["version"], short: "V", .flag, configurable: false),
        OptionSpec(.help, ["help"], short: "h", .flag, configurable: false),
        OptionSpec(.nonce, ["nonce"], .flag),
        OptionSpec(.ocspProxy, ["ocsp-proxy"], .one, value: "URL"),
        OptionSpec(.ocspProxyOnly, ["ocsp-proxy-only"], .flag),
        OptionSpec(.metrics, ["metrics"], .one, value: "ADDRESS"),
        OptionSpec(.metricsPerCertificate, ["metrics-per-certificate"], .toggle, value: "BOOL"),
        OptionSpec(.haproxySockets, ["haproxy-sockets"], short: "s", .oneOrMore, value: "SOCKET"),
        OptionSpec(.noHAProxySockets, ["no-haproxy-sockets"], .flag),
        OptionSpec(.haproxyConfig, ["haproxy-config"], .oneOrMore, value: "FILE"),
        OptionSpec(.haproxySocketKeepalive, ["haproxy-socket-keepalive"], .one, value: "SECONDS"),
        OptionSpec(.onUpdate, ["on-update"], .one, value: "COMMAND"),
        OptionSpec(.onUpdateInterval, ["on-update-interval"], .one, value: "SECONDS"),
        OptionSpec(.onUpdateTimeout, ["on-update-timeout"], .one, value: "SECONDS"),
    ]

    /// `stapler check [options] CERT ...`: a monitoring plugin, so `-w`, `-c`, `-t`, `-v`,
    /// `-h` and `-V` mean what the monitoring-plugins guidelines reserve them for; the config
    /// file is `--config`, long only.
    static let check: [OptionSpec] = [
        OptionSpec(.warning, ["warning"], short: "w", .one, value: "SECONDS"),
        OptionSpec(.critical, ["critical"], short: "c", .one, value: "SECONDS"),
        OptionSpec(.timeout, ["timeout"], short: "t", .one, value: "SECONDS"),
        OptionSpec(.fetch, ["fetch"], .flag),
        OptionSpec(.minimumValidity, ["minimum-validity"], .one, value: "SECONDS"),
        OptionSpec(.nonce, ["nonce"], .flag),
        OptionSpec(.ocspProxy, ["ocsp-proxy"], .one, value: "URL"),
        OptionSpec(.stapleDirectory, ["staple-dir"], .one, value: "DIR"),
        OptionSpec(.verbose, [], short: "v", .flag, configurable: false),
        OptionSpec(.config, ["config"], .one, value: "FILE"),
        OptionSpec(.version, ["version"], short: "V", .flag, configurable: false),
        OptionSpec(.help, ["help"], short: "h", .flag, configurable: false),
    ]
}
