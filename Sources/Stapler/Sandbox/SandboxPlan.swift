import Reactor

/// What the daemon may touch once it has confined itself, derived from its options and
/// environment alone: the paths it may read, those it may write, the TCP ports it may connect
/// to and bind. `Sandbox` applies it; `admit` judges a configuration reloaded by SIGHUP
/// against it. Every option that makes the daemon read, write or connect somewhere new adds
/// its line in `init(options:environment:pathKinds:)`, and only there.
struct SandboxPlan: Equatable, Sendable {
    /// What a path rule allows beneath its path.
    enum Access: Int, Comparable, Sendable {
        /// Read files and list directories.
        case read
        /// Also create, write, truncate and remove files and directories (not rename across
        /// directories, not execute).
        case write
        /// A device the C libraries open read-write and may ioctl (/dev/null, /dev/urandom).
        case device

        static func < (lhs: Access, rhs: Access) -> Bool { lhs.rawValue < rhs.rawValue }

        /// Whether a rule of this access grants what `needed` asks.
        func grants(_ needed: Access) -> Bool {
            self == needed || (self == .write && needed == .read) || (self == .device && needed == .read)
        }
    }

    struct PathRule: Equatable, Sendable {
        let path: FilePath
        let access: Access
    }

    /// How a path exists at start; the plan is pure, so the caller looks (`PathKinds.live`).
    enum PathKind: Equatable, Sendable { case directory, file, missing }
    typealias PathKinds = (FilePath) -> PathKind

    /// Whether to confine at all (`--no-sandbox`, `sandbox = false` turn it off).
    var enabled: Bool
    /// Beneath each path, its access; one rule per path, the strongest asked for.
    private(set) var paths: [PathRule] = []
    /// TCP ports the daemon may connect to before any certificate is read: responders' usual
    /// ports, DNS over TCP, proxies. `Sandbox` adds the ports of the AIA URLs it sees in the
    /// first scan before it closes the network.
    private(set) var connectPorts: Set<UInt16> = []
    /// Whether the ports of the certificates' OCSP and CA Issuers URLs join `connectPorts`
    /// (the TCP layer then waits for the first certificates); false lays the TCP layer at
    /// start with `connectPorts` alone (a mode that asks no responder).
    private(set) var learnsResponderPorts = true
    /// The metrics endpoint's TCP port, if it has one.
    private(set) var bindPorts: Set<UInt16> = []
    /// Directories to create before confining (the staple directory), so that a rule can
    /// be set on them.
    private(set) var directoriesToCreate: [FilePath] = []
    /// One line each: paths left out of the ruleset (they do not exist, nor their parent).
    private(set) var notices: [String] = []
    /// Landlock ABI 6 can forbid connecting to abstract unix sockets made outside the
    /// sandbox; systemd's notify socket may be one ("@..." in NOTIFY_SOCKET), then not.
    private(set) var scopesAbstractUnixSockets = true
    /// Landlock ABI 6 can forbid signalling processes outside the sandbox (processes started
    /// before it, such as the --on-update launcher, included).
    var scopesSignals = true

    /// The ports every responder and DNS server listens on by default.
    static let httpPort: UInt16 = 80
    static let httpsPort: UInt16 = 443
    static let dnsPort: UInt16 = 53
    /// curl's port for a proxy named without one, except https:// proxies (443).
    static let defaultProxyPort: UInt16 = 1080
    /// The variables curl reads a proxy from (HTTP_PROXY included: harmless to allow).
    static let proxyVariables = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]

    /// What glibc, OpenSSL, libcurl and c-ares read on their own: TLS configuration and CA
    /// certificates, name service files, time zones, shared libraries loaded at run time
    /// (NSS modules, OpenSSL providers), and the /proc files the metrics read. Measured with
    /// strace (see `SystemCallAllowList`); /etc/ssl/private is deliberately not among them.
    static let systemReadPaths: [FilePath] = [
        "/etc/ssl/openssl.cnf", "/etc/ssl/certs", "/usr/lib/ssl", "/usr/share/ca-certificates",
        "/usr/local/share/ca-certificates", "/etc/ca-certificates.conf",
        "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
        "/etc/services", "/etc/protocols", "/etc/localtime", "/usr/share/zoneinfo",
        "/etc/gnutls", "/usr/lib", "/lib", "/usr/local/lib",
        "/proc/self", "/proc/stat", "/sys/devices/system/cpu",
    ]
    static let systemDevices: [FilePath] = ["/dev/null", "/dev/urandom", "/dev/random"]
    /// Variables naming files or directories OpenSSL, libcurl or glibc read.
    static let pathVariables = ["SSL_CERT_FILE", "SSL_CERT_DIR", "OPENSSL_CONF", "CURL_CA_BUNDLE", "HOSTALIASES"]

    /// Where the symbolic links of a certificate location lead (the location itself, the
    /// entries of its directory, and of its subdirectories with -R): each link's resolved
    /// target and whether it is a directory. The plan is pure; `SymbolicLinks.live` looks.
    typealias LinkTargets = (_ location: FilePath, _ recursive: Bool) -> [(target: FilePath, isDirectory: Bool)]

    init(options: Options, environment: [String: String], pathKinds: PathKinds = SandboxPlan.liveKind,
         linkTargets: LinkTargets = SymbolicLinks.live) {
        enabled = options.sandbox
        for path in Self.systemReadPaths { add(path, .read) }
        for path in Self.systemDevices { add(path, .device) }
        for name in Self.pathVariables {
            // SSL_CERT_DIR may list several directories, as OpenSSL's X509_CERT_DIR does.
            for item in (environment[name] ?? "").split(separator: ":") where item.hasPrefix("/") {
                add(FilePath(String(item)), .read)
            }
        }
        let home = environment["HOME"].map { FilePath($0) }
        if let configFile = options.configFile { addConfiguration(configFile, home: home, pathKinds: pathKinds) }
        for file in options.haproxyConfigFiles { addConfiguration(file, home: home, pathKinds: pathKinds) }
        // --push-only reads the staples another Stapler writes: it writes no staple and asks
        // no responder (nor DNS, nor a proxy).
        let certificateAccess: Access = options.stapleDirectory == nil && !options.pushOnly ? .write : .read
        // Made at start if missing (also on a push-only host, before the writer has made it):
        // a rule needs its directory to exist.
        if let stapleDirectory = options.stapleDirectory {
            directoriesToCreate.append(stapleDirectory)
            add(stapleDirectory, options.pushOnly ? .read : .write)
        }
        for location in options.certificateLocations {
            addCertificateLocation(location.path, access: certificateAccess, pathKinds: pathKinds)
            addLinkTargets(linkTargets(location.path, options.recursive), access: certificateAccess)
        }
        if let logDirectory = options.logDirectory { addExisting(logDirectory, .write, pathKinds: pathKinds) }
        // The pid file is removed at exit.
        if let pidFile = options.pidFile { addExisting(pidFile.directory, .write, pathKinds: pathKinds) }
        switch options.metricsAddress {
        case .unix(let path)?: addExisting(path.directory, .write, pathKinds: pathKinds)
        case .tcp(_, let port)?: bindPorts.insert(port)
        case nil: break
        }

        var dnsPorts: Set<UInt16> = [Self.dnsPort]
        if let servers = environment[OCSPExchange.nameServersVariable],
           let list = try? NameServerList(parsing: servers) {
            for server in list.servers { dnsPorts.insert(server.port) }
        }
        connectPorts = dnsPorts.union([Self.httpPort, Self.httpsPort])
        for name in Self.proxyVariables {
            if let value = environment[name], let port = Self.proxyPort(value) { connectPorts.insert(port) }
        }
        if let proxy = options.ocspProxy.flatMap({ try? ProxyURL(parsing: $0) }) {
            connectPorts.insert(proxy.port)
            // --ocsp-proxy-only: every request goes through the proxy, whose name DNS resolves.
            if options.ocspProxyOnly {
                connectPorts = dnsPorts.union([proxy.port])
                learnsResponderPorts = false
            }
        }
        if options.pushOnly {
            connectPorts = []
            learnsResponderPorts = false
        }
        scopesAbstractUnixSockets = !(environment["NOTIFY_SOCKET"]?.hasPrefix("@") ?? false)
    }

    /// The live file system's answer for `PathKinds`.
    static func liveKind(_ path: FilePath) -> PathKind {
        guard let status = try? FileSystem.status(path) else { return .missing }
        return status.kind == .directory ? .directory : .file
    }

    // MARK: Building

    /// A directory of certificates is read beneath, and written beneath unless staples go to
    /// --staple-dir; a certificate file is covered through its directory, where its staple,
    /// temporary files and `.issuer` go. A path that does not exist yet is taken as a file
    /// to come in its parent directory; without that parent it is left out.
    private mutating func addCertificateLocation(_ path: FilePath, access: Access, pathKinds: PathKinds) {
        switch pathKinds(path) {
        case .directory: add(path, access)
        case .file: add(path.directory, access)
        case .missing: addExisting(path.directory, access, pathKinds: pathKinds, named: path)
        }
    }

    /// Editors and configuration tools replace a file by renaming a new one over it, and a
    /// rule on a file holds its inode: a configuration file is read through its directory
    /// (where crt-list files and a directory's .cfg files sit too), unless that directory is
    /// one of `broadDirectories` or a home directory (~/.stapler.conf: ~/.ssh is beside it),
    /// where only the file itself is.
    private mutating func addConfiguration(_ path: FilePath, home: FilePath?, pathKinds: PathKinds) {
        if pathKinds(path) == .directory { return add(path, .read) }
        let directory = path.directory
        let isBroad = Self.broadDirectories.contains(directory) || directory == home || directory.directory == "/home"
        add(isBroad ? path : directory, .read)
    }

    /// Directories that hold far more than Stapler's files (/etc holds /etc/shadow).
    static let broadDirectories: [FilePath] = ["/", "/etc", "/root", "/home", "/usr", "/var", "/tmp"]

    /// A link to a directory is ruled through the directory holding its target, so that a
    /// deploy tool's `current -> releases/v2` repointed later is still covered; a link to a
    /// file (certbot's `live/site/cert.pem -> ../../archive/site/cert1.pem`) only needs its
    /// target read, through the target's directory where renewals add `cert2.pem`. Staples
    /// go beside the link, or into the linked directory.
    private mutating func addLinkTargets(_ targets: [(target: FilePath, isDirectory: Bool)], access: Access) {
        for (target, isDirectory) in targets {
            add(Self.broadDirectories.contains(target.directory) ? target : target.directory, isDirectory ? access : .read)
        }
    }

    /// A directory that must exist at start: without it, one notice and no rule.
    private mutating func addExisting(_ directory: FilePath, _ access: Access, pathKinds: PathKinds,
                                      named: FilePath? = nil) {
        guard pathKinds(directory) == .directory else {
            notices.append("sandbox: \(named ?? directory) is left out: \(directory) does not exist at start; "
                           + "restart Stapler once it does")
            return
        }
        add(directory, access)
    }

    private mutating func add(_ path: FilePath, _ access: Access) {
        if let index = paths.firstIndex(where: { $0.path == path }) {
            if paths[index].access < access { paths[index] = PathRule(path: path, access: access) }
            return
        }
        paths.append(PathRule(path: path, access: access))
    }

    // MARK: Questions

    /// Whether some rule grants `access` at or above `path` (lexically: symbolic links are
    /// the kernel's to follow).
    func covers(_ path: FilePath, _ access: Access) -> Bool {
        paths.contains { rule in rule.access.grants(access) && Self.isBeneath(path, rule.path) }
    }

    static func isBeneath(_ path: FilePath, _ ancestor: FilePath) -> Bool {
        let inner = path.bytes, outer = ancestor.bytes
        guard inner.count >= outer.count, inner.starts(with: outer) else { return false }
        return inner.count == outer.count || outer.last == UInt8(ascii: "/") || inner[outer.count] == UInt8(ascii: "/")
    }

    /// The TCP port a proxy setting connects to: `host:port`, `scheme://user@host:port/`,
    /// `[v6]:port`; nil when it names none that can be read.
    static func proxyPort(_ value: String) -> UInt16? {
        var rest = Substring(value)
        var defaultPort = defaultProxyPort
        if let scheme = rest.firstRange(of: "://") {
            if rest[..<scheme.lowerBound].lowercased() == "https" { defaultPort = httpsPort }
            rest = rest[scheme.upperBound...]
        }
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        guard !rest.isEmpty else { return nil }
        let afterHost: Substring
        if rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            afterHost = rest[rest.index(after: close)...]
        } else if let colon = rest.firstIndex(of: ":") {
            afterHost = rest[colon...]
        } else {
            afterHost = ""
        }
        guard afterHost.first == ":" else { return afterHost.isEmpty ? defaultPort : nil }
        guard let port = UInt16(afterHost.dropFirst()), port > 0 else { return nil }
        return port
    }
}
