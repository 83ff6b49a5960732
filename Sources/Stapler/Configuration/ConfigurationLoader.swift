import Glibc
import Reactor

/// Turns the command line, the config file and any haproxy.cfg into one `Command`.
/// Precedence per setting: command line, then config file, then built-in default (a list
/// given on the command line replaces the config file's list, as with configargparse).
public enum ConfigurationLoader {
    /// Where a config file is looked for when `-c` is not given; the first that exists is
    /// read, the others are not. Stapler's own names come first; the predecessor's
    /// (`/etc/stapled/stapled.conf`, `~/.stapled.conf`) keep an upgraded host working
    /// unchanged. The predecessor also read `./stapled.conf`; a daemon reading its working
    /// directory is a trap, so that one is gone.
    public static func defaultConfigFiles(environment: [String: String]) -> [FilePath] {
        var files: [FilePath] = ["/etc/stapler/stapler.conf"]
        if let home = ConfigurationPaths.home(".stapler.conf", environment: environment) { files.append(home) }
        files.append("/etc/stapled/stapled.conf")
        if let home = ConfigurationPaths.home(".stapled.conf", environment: environment) { files.append(home) }
        return files
    }

    /// - Parameters:
    ///   - arguments: the words after the program name (`CommandLine.arguments.dropFirst()`).
    ///   - environment: for HOME (default config locations) and `"${VAR}"` in haproxy.cfg.
    ///   - workingDirectory: what relative paths are relative to; the process's by default.
    public static func load(arguments: [String], environment: [String: String],
                            workingDirectory: FilePath? = nil) throws(ConfigurationError) -> Command {
        try load(arguments: arguments, environment: environment, workingDirectory: workingDirectory,
                 defaultConfigFiles: defaultConfigFiles(environment: environment))
    }

    /// The same, with the default config locations supplied (tests must not depend on what
    /// this machine has in /etc).
    static func load(arguments: [String], environment: [String: String], workingDirectory: FilePath?,
                     defaultConfigFiles: [FilePath]) throws(ConfigurationError) -> Command {
        let base = workingDirectory ?? ConfigurationPaths.currentDirectory()
        if arguments.first == "check" {
            return try loadCheck(Array(arguments.dropFirst()), base: base, defaultConfigFiles: defaultConfigFiles)
        }
        let parser = CommandLineParser(options: OptionTable.run, positionalSetting: .certPaths, positionalName: "CERT_PATH")
        let commandLine: SettingsLayer
        switch try parser.parse(arguments) {
        case .help: return .help(Usage.run)
        case .version: return .version(Usage.version)
        case .settings(let layer, _): commandLine = layer
        }
        let (file, fileLayer) = try readConfigFile(commandLine.configFile, base: base, defaults: defaultConfigFiles)
        var options = try resolve(commandLine: commandLine, file: fileLayer, environment: environment, base: base)
        options.configFile = file
        return .run(options)
    }

    // MARK: - check

    private static func loadCheck(_ arguments: [String], base: FilePath,
                                  defaultConfigFiles: [FilePath]) throws(ConfigurationError) -> Command {
        let parser = CommandLineParser(options: OptionTable.check)
        let commandLine: SettingsLayer
        let words: [String]
        switch try parser.parse(arguments) {
        case .help: return .help(Usage.check)
        case .version: return .version(Usage.version)
        case .settings(let layer, let positionals):
            commandLine = layer
            words = positionals
        }
        var check = CheckOptions()
        for word in words {
            guard !word.isEmpty else { throw .invalidValue(option: "check", reason: "empty certificate path") }
            check.certificates.append(ConfigurationPaths.absolute(FilePath(word), base: base))
        }
        guard !check.certificates.isEmpty else {
            throw .invalidSettings("check: give at least one certificate file (see stapler check --help)")
        }
        let (file, fileLayer) = try readConfigFile(commandLine.configFile, base: base, defaults: defaultConfigFiles)
        check.configFile = file
        check.fetch = commandLine.fetch ?? false
        check.minimumValidity = commandLine.minimumValidity ?? fileLayer?.minimumValidity ?? check.minimumValidity
        check.warning = commandLine.warning ?? check.minimumValidity
        check.critical = commandLine.critical ?? check.critical
        check.timeout = commandLine.timeout ?? check.timeout
        check.verbose = commandLine.verboseCount > 0
        check.nonce = commandLine.nonce ?? fileLayer?.nonce ?? false
        check.ocspProxy = commandLine.ocspProxy ?? fileLayer?.ocspProxy
        check.stapleDirectory = (commandLine.stapleDirectory ?? fileLayer?.stapleDirectory)?.value
            .map { ConfigurationPaths.absolute($0, base: base) }
        check.warnings = (fileLayer?.warnings ?? []) + commandLine.warnings
        return .check(check)
    }

    // MARK: - Config file

    /// The file named by `-c` (which must be readable), or else the first default location
    /// that exists. Returns which file was read, and what it set.
    private static func readConfigFile(_ explicit: FilePath?, base: FilePath,
                                       defaults: [FilePath]) throws(ConfigurationError) -> (FilePath?, SettingsLayer?) {
        if let explicit {
            let path = ConfigurationPaths.absolute(explicit, base: base)
            return (path, try ConfigFile.load(path, options: OptionTable.run))
        }
        for candidate in defaults {
            do {
                return (candidate, try ConfigFile.load(candidate, options: OptionTable.run))
            } catch {
                if case .unreadableFile(_, let fileError) = error, fileError.errno == ENOENT || fileError.errno == ENOTDIR {
                    continue
                }
                throw error
            }
        }
        return (nil, nil)
    }

    // MARK: - Merging

    static func resolve(commandLine cli: SettingsLayer, file: SettingsLayer?, environment: [String: String],
                        base: FilePath) throws(ConfigurationError) -> Options {
        var options = Options()
        var warnings = (file?.warnings ?? []) + cli.warnings
        func absolute(_ path: FilePath) -> FilePath { ConfigurationPaths.absolute(path, base: base) }

        // Certificate paths: -p, -d and plain words together, else the config file's.
        let fromCommandLine = cli.certPaths != nil || cli.directories != nil
        let certificateSource = fromCommandLine ? cli : (file ?? cli)
        let explicitPaths = ((certificateSource.certPaths ?? []) + (certificateSource.directories ?? [])).map(absolute)
        if certificateSource.directories != nil {
            warnings.append(fromCommandLine
                ? "--directories (-d) is deprecated; use --cert-paths (-p) or plain paths"
                : "the config file key \"directories\" is deprecated; use \"cert-paths\"")
        }

        let socketSetting = cli.haproxySockets ?? file?.haproxySockets
        let socketsDisabled = socketSetting == .disabled
        let explicitSockets = (socketSetting?.value ?? []).map(absolute)
        let haproxyConfigs = (cli.haproxyConfigs ?? file?.haproxyConfigs ?? []).map(absolute)

        var summaries: [HAProxyConfigSummary] = []
        for config in haproxyConfigs {
            summaries.append(try HAProxyConfigReader.read(config, environment: environment, workingDirectory: base))
        }
        let learnedPaths = summaries.flatMap(\.certificatePaths)

        var locations = LocationList()
        if socketsDisabled || explicitSockets.isEmpty {
            for path in explicitPaths { locations.add(path, sockets: []) }
        } else if explicitSockets.count == explicitPaths.count {
            for (path, socket) in zip(explicitPaths, explicitSockets) { locations.add(path, sockets: [socket]) }
        } else if explicitSockets.count == 1 {
            // One socket for everything: the paths given, or else those haproxy.cfg named.
            for path in explicitPaths.isEmpty ? learnedPaths : explicitPaths {
                locations.add(path, sockets: explicitSockets)
            }
        } else {
            throw .invalidSettings("\(explicitSockets.count) HAProxy sockets for \(explicitPaths.count) certificate "
                + "paths: give one socket per path, in the same order, or a single socket for all of them")
        }
        for summary in summaries {
            let sockets = socketsDisabled ? [] : summary.statsSockets.map(\.path)
            for path in summary.certificatePaths { locations.add(path, sockets: sockets) }
            warnings += summary.notices
            if !socketsDisabled {
                for socket in summary.statsSockets where !socket.hasAdminLevel {
                    warnings.append("\(socket.file):\(socket.line): stats socket \(socket.path) has no \"level admin\"; "
                        + "HAProxy will refuse staples for certificates that had no .ocsp file when it started")
                }
            }
        }
        guard !locations.items.isEmpty else {
            throw .invalidSettings(haproxyConfigs.isEmpty
                ? "no certificates to watch: give CERT_PATH, --cert-paths or --haproxy-config (see stapler --help)"
                : "no certificates to watch: the HAProxy config names no crt or crt-list, and no --cert-paths were given")
        }
        options.certificateLocations = locations.items
        options.haproxyConfigFiles = haproxyConfigs

        options.recursive = cli.recursive ?? file?.recursive ?? options.recursive
        options.fileExtensions = cli.fileExtensions ?? file?.fileExtensions ?? options.fileExtensions
        options.ignorePatterns = cli.ignorePatterns ?? file?.ignorePatterns ?? []
        options.minimumValidity = cli.minimumValidity ?? file?.minimumValidity ?? options.minimumValidity
        options.renewalThreads = cli.renewalThreads ?? file?.renewalThreads ?? options.renewalThreads
        options.refreshInterval = cli.refreshInterval ?? file?.refreshInterval ?? options.refreshInterval
        options.recycleStaples = !(cli.noRecycle ?? file?.noRecycle ?? false)
        options.fetchIssuers = !(cli.noFetchIssuers ?? file?.noFetchIssuers ?? false)
        options.oneOff = cli.oneOff ?? file?.oneOff ?? false
        options.pushOnly = cli.pushOnly ?? file?.pushOnly ?? false
        if options.pushOnly && !options.recycleStaples {
            warnings.append("--no-recycle has no effect with --push-only: staples are read, never fetched")
        }
        // Each -v raises the level one step from --verbosity (default: warning).
        let level = cli.verbosity ?? file?.verbosity ?? options.verbosity
        options.verbosity = Verbosity(clamping: level.rawValue + cli.verboseCount)
        options.quiet = cli.quiet ?? file?.quiet ?? false
        options.logDirectory = (cli.logDirectory ?? file?.logDirectory)?.value.map(absolute)
        options.syslog = cli.syslog ?? file?.syslog ?? false
        // --one-off never detaches, whatever the config file says (as before).
        options.daemonize = !options.oneOff && (cli.daemon ?? file?.daemon ?? false)
        options.pidFile = (cli.pidFile ?? file?.pidFile)?.value.map(absolute)
        options.stapleDirectory = (cli.stapleDirectory ?? file?.stapleDirectory)?.value.map(absolute)
        options.nonce = cli.nonce ?? file?.nonce ?? false
        options.ocspProxy = cli.ocspProxy ?? file?.ocspProxy
        options.ocspProxyOnly = cli.ocspProxyOnly ?? file?.ocspProxyOnly ?? false
        options.metricsAddress = (cli.metrics ?? file?.metrics)?.value.map { address in
            if case .unix(let path) = address { return .unix(absolute(path)) }
            return address
        }
        options.metricsPerCertificate = cli.metricsPerCertificate ?? file?.metricsPerCertificate
            ?? options.metricsPerCertificate
        options.haproxySocketKeepalive = cli.haproxySocketKeepalive ?? file?.haproxySocketKeepalive
            ?? options.haproxySocketKeepalive
        options.onUpdateCommand = (cli.onUpdate ?? file?.onUpdate)?.value
        options.onUpdateInterval = cli.onUpdateInterval ?? file?.onUpdateInterval ?? options.onUpdateInterval
        options.onUpdateTimeout = cli.onUpdateTimeout ?? file?.onUpdateTimeout ?? options.onUpdateTimeout
        options.sandbox = cli.sandbox ?? file?.sandbox ?? options.sandbox
        options.warnings = warnings + Self.proxyWarnings(options, environment: environment)
        return options
    }
}

extension ConfigurationLoader {
    /// A nonce makes every request unique: a shared cache can answer none of them for
    /// another host, so the fleet's saving is gone (RFC 5019 §2.1.1 asks for no nonce).
    static func proxyWarnings(_ options: Options, environment: [String: String]) -> [String] {
        guard options.nonce else { return [] }
        let fromEnvironment = ["http_proxy", "all_proxy", "ALL_PROXY"].first { !(environment[$0] ?? "").isEmpty }
        let proxy: String
        switch options.ocspProxy {
        case .some(let url) where !url.isEmpty: proxy = "--ocsp-proxy"
        case .some: return []
        case .none:
            guard let fromEnvironment else { return [] }
            proxy = fromEnvironment
        }
        return ["--nonce with a proxy (\(proxy)): every OCSP request is unique, so a shared cache "
                + "cannot answer it for other hosts; drop --nonce to let the cache work"]
    }
}

/// Certificate locations in first-seen order; a path named twice keeps one entry with the
/// sockets of both.
private struct LocationList {
    var items: [CertificateLocation] = []
    private var indexByPath: [FilePath: Int] = [:]

    mutating func add(_ path: FilePath, sockets: [FilePath]) {
        if let index = indexByPath[path] {
            for socket in sockets where !items[index].haproxySockets.contains(socket) {
                items[index].haproxySockets.append(socket)
            }
            return
        }
        var unique: [FilePath] = []
        for socket in sockets where !unique.contains(socket) { unique.append(socket) }
        indexByPath[path] = items.count
        items.append(CertificateLocation(path: path, haproxySockets: unique))
    }
}
