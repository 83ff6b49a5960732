import Reactor

/// A `stats socket` line of a haproxy.cfg: where HAProxy's runtime API listens.
public struct HAProxyStatsSocket: Equatable, Sendable {
    public var path: FilePath
    /// `level admin` was given. The default level, `operator`, can replace a staple with
    /// `set ssl ocsp-response` (2.6.12), but not install one for a certificate that had no
    /// `.ocsp` file at start: `set ssl cert` needs admin ("Permission denied").
    public var hasAdminLevel: Bool
    /// Where it was declared, for the warning when `hasAdminLevel` is false.
    public var file: FilePath
    public var line: Int
}

/// What one haproxy.cfg (or a directory of them) says about certificates and sockets.
public struct HAProxyConfigSummary: Equatable, Sendable {
    public var configFile: FilePath
    /// Absolute certificate files and directories from `crt` and `crt-list` on `bind`,
    /// `server` and `default-server` lines, each once, in order of appearance.
    public var certificatePaths: [FilePath] = []
    /// Unix stats sockets of the `global` section, each once.
    public var statsSockets: [HAProxyStatsSocket] = []
    /// Things skipped on purpose (TCP stats sockets, crt-store references), one line each.
    public var notices: [String] = []
}

/// Learns certificate paths and stats sockets from haproxy.cfg, so `--haproxy-config` can
/// stand in for `--cert-paths` and `--haproxy-sockets`. Follows HAProxy 2.6's rules:
/// `crt-base` applies (from where it appears on) to relative `crt` paths and to relative
/// certificate paths inside crt-lists, but not to the crt-list file itself; `unix-bind
/// prefix` applies to stats socket paths. Conditional blocks (`.if`) are not evaluated:
/// both branches count. Other relative paths are taken against `workingDirectory`.
public enum HAProxyConfigReader {
    /// A haproxy.cfg for 10,000 sites with a crt per bind line stays well below this.
    public static let sizeLimit = 16 << 20

    /// `path` may be a file or, as with `haproxy -f`, a directory whose `*.cfg` files are
    /// read in name order as one configuration.
    public static func read(_ path: FilePath, environment: [String: String] = [:],
                            workingDirectory: FilePath) throws(ConfigurationError) -> HAProxyConfigSummary {
        let configPath = ConfigurationPaths.absolute(path, base: workingDirectory)
        var parser = HAProxyConfigParser(environment: environment, workingDirectory: workingDirectory,
                                         load: { (file, role) throws(ConfigurationError) in try readCapped(file, role: role) })
        var files = [configPath]
        if let status = try? FileSystem.status(configPath), status.kind == .directory {
            do {
                files = try FileSystem.listDirectory(configPath)
                    .map(\.name)
                    .filter { $0.hasSuffix(".cfg") && $0.bytes.first != UInt8(ascii: ".") }
                    .sorted()
                    .map { configPath.appending($0) }
            } catch {
                throw .unreadableFile(role: "HAProxy config directory", error: error)
            }
        }
        for file in files {
            try parser.parse(try readCapped(file, role: "HAProxy config"), file: file)
        }
        return parser.summary(for: configPath)
    }

    private static func readCapped(_ path: FilePath, role: String) throws(ConfigurationError) -> [UInt8] {
        do {
            return try FileSystem.readFile(path, limit: sizeLimit)
        } catch {
            throw .unreadableFile(role: role, error: error)
        }
    }
}

/// The state of reading one HAProxy configuration: which section we are in and the
/// `crt-base` and `unix-bind prefix` in force. File access goes through `load`, so tests
/// can feed text directly.
struct HAProxyConfigParser {
    typealias Loader = (FilePath, String) throws(ConfigurationError) -> [UInt8]

    let environment: [String: String]
    let workingDirectory: FilePath
    let load: Loader

    private var inGlobal = false
    private var crtBase: FilePath?
    private var unixPrefix: [UInt8] = []
    private var certificatePaths: [FilePath] = []
    private var seenPaths = Set<FilePath>()
    private var sockets: [HAProxyStatsSocket] = []
    private var notices: [String] = []
    /// crt-lists already read with a given crt-base: the same list is often named on an
    /// IPv4 and an IPv6 bind line, and need not be read twice.
    private var listsRead = Set<[FilePath?]>()

    init(environment: [String: String], workingDirectory: FilePath, load: @escaping Loader) {
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.load = load
    }

    /// Every keyword that opens a section, up to HAProxy 3.x.
    private static let sectionKeywords: Set<String> = [
        "global", "defaults", "frontend", "backend", "listen", "userlist", "peers", "resolvers",
        "mailers", "program", "http-errors", "ring", "cache", "fcgi-app", "log-forward",
        "crt-store", "traces", "acme", "dynamic-update",
    ]

    mutating func parse(_ bytes: [UInt8], file: FilePath) throws(ConfigurationError) {
        var lineNumber = 0
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.contains(0) {
                throw .invalidHAProxyConfig(file: file, line: lineNumber, reason: "contains a NUL byte")
            }
            let words: [[UInt8]]
            do {
                words = try HAProxyLineTokenizer.words(line, environment: environment)
            } catch {
                let name = error.quote == "\"" ? "double" : "single"
                throw .invalidHAProxyConfig(file: file, line: lineNumber, reason: "unbalanced \(name) quote (\(error.quote))")
            }
            guard let keyword = words.first.flatMap({ String(validating: $0, as: UTF8.self) }) else { continue }
            if keyword.hasPrefix(".") { continue }  // .if/.else/.endif/.notice...
            if Self.sectionKeywords.contains(keyword) {
                inGlobal = keyword == "global"
                continue
            }
            switch keyword {
            case "crt-base" where inGlobal:
                guard words.count >= 2, !words[1].isEmpty else {
                    throw .invalidHAProxyConfig(file: file, line: lineNumber, reason: "crt-base without a directory")
                }
                crtBase = ConfigurationPaths.absolute(FilePath(bytes: words[1]), base: workingDirectory)
            case "unix-bind" where inGlobal:
                if let prefixAt = words.firstIndex(of: Array("prefix".utf8)), prefixAt + 1 < words.count {
                    unixPrefix = words[prefixAt + 1]
                }
            case "stats" where inGlobal && words.count >= 2 && words[1] == Array("socket".utf8):
                try statsSocket(words, file: file, line: lineNumber)
            case "bind", "server", "default-server":
                try certificates(words, file: file, line: lineNumber)
            default:
                break
            }
        }
    }

    private mutating func statsSocket(_ words: [[UInt8]], file: FilePath, line: Int) throws(ConfigurationError) {
        guard words.count >= 3, !words[2].isEmpty else {
            throw .invalidHAProxyConfig(file: file, line: line, reason: "stats socket without an address")
        }
        var address = words[2]
        let unixScheme = Array("unix@".utf8)
        if address.starts(with: unixScheme) {
            address.removeFirst(unixScheme.count)
        } else if address.contains(UInt8(ascii: "@")) || !address.contains(UInt8(ascii: "/")) && address.contains(UInt8(ascii: ":")) {
            notices.append("\(file):\(line): stats socket \(quoted(bytes: words[2])) is not a unix socket; "
                + "stapler only talks to unix sockets, so it is skipped")
            return
        }
        let path = ConfigurationPaths.absolute(FilePath(bytes: unixPrefix + address), base: workingDirectory)
        var hasAdmin = false
        var index = 3
        while index + 1 < words.count {
            if words[index] == Array("level".utf8) {
                hasAdmin = words[index + 1] == Array("admin".utf8)
            }
            index += 1
        }
        if let existing = sockets.firstIndex(where: { $0.path == path }) {
            sockets[existing].hasAdminLevel = sockets[existing].hasAdminLevel || hasAdmin
        } else {
            sockets.append(HAProxyStatsSocket(path: path, hasAdminLevel: hasAdmin, file: file, line: line))
        }
    }

    private mutating func certificates(_ words: [[UInt8]], file: FilePath, line: Int) throws(ConfigurationError) {
        let crt = Array("crt".utf8)
        let crtList = Array("crt-list".utf8)
        var index = 1
        while index < words.count {
            let word = words[index]
            guard word == crt || word == crtList else {
                index += 1
                continue
            }
            let keyword = String(decoding: word, as: UTF8.self)
            guard index + 1 < words.count, !words[index + 1].isEmpty else {
                throw .invalidHAProxyConfig(file: file, line: line, reason: "\(keyword) without a path")
            }
            let value = words[index + 1]
            if word == crt {
                addCertificate(value, file: file, line: line)
            } else {
                let listPath = ConfigurationPaths.absolute(FilePath(bytes: value), base: workingDirectory)
                try readCrtList(listPath)
            }
            index += 2
        }
    }

    /// HAProxy reads crt-lists without quoting: the first blank-separated word of each line
    /// is the certificate, `[ssl options]` and SNI filters follow and do not matter here.
    private mutating func readCrtList(_ listPath: FilePath) throws(ConfigurationError) {
        guard listsRead.insert([listPath, crtBase]).inserted else { return }
        let bytes = try load(listPath, "crt-list")
        var lineNumber = 0
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if rawLine.contains(0) {
                throw .invalidHAProxyConfig(file: listPath, line: lineNumber, reason: "contains a NUL byte")
            }
            let line = rawLine.drop(while: { SettingValueParser.isBlank($0) })
            guard let first = line.first, first != UInt8(ascii: "#") else { continue }
            if first == UInt8(ascii: "[") {
                throw .invalidHAProxyConfig(file: listPath, line: lineNumber, reason: "a crt-list line must start with a certificate")
            }
            let certificate = line.prefix(while: { !SettingValueParser.isBlank($0) && $0 != UInt8(ascii: "[") })
            addCertificate(Array(certificate), file: listPath, line: lineNumber)
        }
    }

    private mutating func addCertificate(_ value: [UInt8], file: FilePath, line: Int) {
        if value.first == UInt8(ascii: "@") {
            notices.append("\(file):\(line): \(quoted(bytes: value)) refers to a crt-store; stapler does not read "
                + "crt-store sections, so it is skipped")
            return
        }
        let given = FilePath(bytes: value)
        let base = given.isAbsolute ? workingDirectory : (crtBase ?? workingDirectory)
        let path = ConfigurationPaths.absolute(given, base: base)
        if seenPaths.insert(path).inserted { certificatePaths.append(path) }
    }

    func summary(for configFile: FilePath) -> HAProxyConfigSummary {
        HAProxyConfigSummary(configFile: configFile, certificatePaths: certificatePaths,
                             statsSockets: sockets, notices: notices)
    }
}

/// Short spellings of `ConfigurationText.quoted` for this file's messages.
private func quoted(bytes: [UInt8]) -> String { ConfigurationText.quoted(bytes: bytes) }
