import Reactor

/// What the command line asked for, once parsed and merged with the config file.
public enum Command: Equatable, Sendable {
    /// Run the daemon (or one pass of it with `--one-off`).
    case run(Options)
    /// `stapler check ...`: report on some certificates and their staples, then exit.
    case check(CheckOptions)
    /// `-h/--help`: print this text to stdout and exit 0.
    case help(String)
    /// `-V/--version`: print this text to stdout and exit 0.
    case version(String)
}

/// How much the daemon logs: the predecessor's 0 to 4 scale.
public enum Verbosity: Int, Comparable, CaseIterable, Sendable, CustomStringConvertible {
    case critical = 0, error, warning, info, debug

    public static func < (lhs: Verbosity, rhs: Verbosity) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The predecessor clamped out-of-range levels instead of refusing them; so do we.
    init(clamping level: Int) {
        self = Verbosity(rawValue: min(max(level, 0), Verbosity.debug.rawValue))!
    }

    public var description: String {
        switch self {
        case .critical: return "critical"
        case .error: return "error"
        case .warning: return "warning"
        case .info: return "info"
        case .debug: return "debug"
        }
    }
}

/// Where the metrics endpoint listens: `.tcp` on an IP literal and a port, or `.unix` on a
/// socket path (absolute once loaded).
public typealias MetricsAddress = ListenAddress

/// A certificate file or directory to watch, and the HAProxy stats sockets that serve the
/// certificates found there (empty: write staple files only).
public struct CertificateLocation: Equatable, Sendable {
    public var path: FilePath
    public var haproxySockets: [FilePath]

    public init(path: FilePath, haproxySockets: [FilePath] = []) {
        self.path = path
        self.haproxySockets = haproxySockets
    }
}

/// Everything the daemon needs to run, resolved: defaults < config file < command line.
/// All paths are absolute and lexically normalised.
public struct Options: Equatable, Sendable {
    /// Certificate files and directories, each with the sockets to push its staples to.
    /// Never empty: the loader refuses a configuration with nothing to watch.
    public var certificateLocations: [CertificateLocation] = []
    public var recursive = false
    /// Without the dot, as given ("crt", "pem", "cer" by default).
    public var fileExtensions: [String] = ["crt", "pem", "cer"]
    public var ignorePatterns: [IgnorePattern] = []
    /// Download a missing issuer from the certificate's CA Issuers URL (off with
    /// `--no-fetch-issuers`).
    public var fetchIssuers = true
    /// Fetch a new staple when the current one is valid for less than this.
    public var minimumValidity: Duration = .seconds(7200)
    /// The predecessor's thread count, kept as the bound on concurrent OCSP fetches.
    public var renewalThreads = 8
    /// How often certificate paths are rescanned.
    public var refreshInterval: Duration = .seconds(60)
    /// Reuse staple files that are still valid long enough (off with `--no-recycle`).
    public var recycleStaples = true
    /// Scan, fetch what is due, write, push, exit.
    public var oneOff = false
    /// `--push-only`: never ask a responder or fetch an issuer; serve the staple files another
    /// Stapler writes (beside the certificates or below `stapleDirectory`), each verified
    /// before it is pushed to HAProxy.
    public var pushOnly = false
    public var verbosity: Verbosity = .warning
    /// No log output on stdout/stderr.
    public var quiet = false
    /// Write `stapler.log` (and crash traces) in this directory.
    public var logDirectory: FilePath?
    public var syslog = false
    /// Detach from the terminal. Always false with `oneOff`.
    public var daemonize = false
    public var pidFile: FilePath?
    /// Where staples go instead of beside each certificate (read-only certificate
    /// directories); nil: `<certificate file>.ocsp`.
    public var stapleDirectory: FilePath?
    /// Add a nonce to OCSP requests (many responders ignore it and serve cached answers).
    public var nonce = false
    /// `--ocsp-proxy`: the HTTP proxy (a site's shared cache) for OCSP and issuer requests,
    /// as given (a valid http URL, credentials and all); "" for none even when the
    /// environment names one; nil: the proxy environment variables decide.
    public var ocspProxy: String?
    /// `--ocsp-proxy-only`: never ask a responder directly, even when the proxy fails and a
    /// staple is about to run out.
    public var ocspProxyOnly = false
    public var metricsAddress: MetricsAddress?
    /// Serve the per-certificate metric families (one series per certificate each); off
    /// leaves only the aggregates, whose size does not grow with the certificates.
    public var metricsPerCertificate = true
    /// The haproxy.cfg files that contributed certificate paths and sockets.
    public var haproxyConfigFiles: [FilePath] = []
    /// How long an idle connection to a HAProxy stats socket stays open.
    public var haproxySocketKeepalive: Duration = .seconds(10)
    /// The config file that was read, if any.
    public var configFile: FilePath?
    /// `--on-update`: run after staples change (argv, no shell); nil for none.
    public var onUpdateCommand: [[UInt8]]?
    /// `--on-update-interval`: the least time from one start of the command to the next.
    public var onUpdateInterval: Duration = .seconds(30)
    /// `--on-update-timeout`: how long it may run before SIGTERM (SIGKILL 5 s later).
    public var onUpdateTimeout: Duration = .seconds(60)
    /// Confine the daemon with Landlock and seccomp once started (off with `--no-sandbox`
    /// or `sandbox = false`).
    public var sandbox = true
    /// Things worth one log line each once logging is up: deprecated spellings, clamped
    /// values, stats sockets without `level admin`.
    public var warnings: [String] = []

    public init() {}

    /// Every socket any certificate location pushes to, each once, in first-seen order.
    public var allHAProxySockets: [FilePath] {
        var seen = Set<FilePath>()
        var result: [FilePath] = []
        for location in certificateLocations {
            for socket in location.haproxySockets where seen.insert(socket).inserted { result.append(socket) }
        }
        return result
    }
}

/// `stapler check [-w S] [-c S] [-t S] [-v] [--fetch] [--nonce] [--config FILE] CERT...`
public struct CheckOptions: Equatable, Sendable {
    /// Absolute, normalised; never empty.
    public var certificates: [FilePath] = []
    /// Ask the responder for a fresh staple instead of only inspecting the staple file.
    public var fetch = false
    /// The daemon's margin, for the "refresh due" detail; also `warning`'s default.
    public var minimumValidity: Duration = .seconds(7200)
    /// WARNING when a staple has less validity left than this.
    public var warning: Duration = .seconds(7200)
    /// CRITICAL when a staple has less validity left than this (0: only a missing, invalid,
    /// expired or revoked staple is critical).
    public var critical: Duration = .zero
    /// The longest all `--fetch` exchanges together may take.
    public var timeout: Duration = .seconds(10)
    /// `-v`: every detail of every certificate instead of one line each.
    public var verbose = false
    public var nonce = false
    /// `--ocsp-proxy` for `--fetch`, as the daemon takes it (nil: the environment decides).
    public var ocspProxy: String?
    /// Where the daemon writes staples (`--staple-dir`); nil: beside each certificate.
    public var stapleDirectory: FilePath?
    public var configFile: FilePath?
    public var warnings: [String] = []

    public init() {}
}
