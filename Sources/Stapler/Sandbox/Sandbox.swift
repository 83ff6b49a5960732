import Glibc
import Reactor

/// The daemon's confinement once applied: `confine` lays NO_NEW_PRIVS, the Landlock
/// file-system layer and the seccomp filter; `closeNetwork` lays the Landlock TCP layer once
/// the first scan has named the responders' ports; `admit` trims a reloaded configuration
/// to what the ruleset set at start can serve. Nothing here stops the daemon: a kernel that
/// refuses a mechanism leaves it unconfined by that mechanism, with one warning.
final class Sandbox {
    let plan: SandboxPlan
    /// The Landlock ABI of the file-system layer in force; nil when none is.
    private(set) var landlockABI: Int32?
    private(set) var landlockFailure: Landlock.Failure?
    private(set) var pathRules = 0
    /// Paths of the plan that could not be opened when the ruleset was built.
    private(set) var skippedPaths: [FilePath] = []
    private(set) var seccompCalls: Int?
    private(set) var seccompFailure: SeccompFilter.Failure?
    private(set) var noNewPrivilegesFailure: Landlock.Failure?
    /// Ports allowed for TCP connect: the plan's and those of the URLs seen before
    /// `closeNetwork`.
    private(set) var connectPorts: Set<UInt16>
    /// Whether the TCP layer is in force (ABI 4 and later, after the first scan).
    private(set) var networkClosed = false
    /// Ports a later certificate named and that were refused, each reported once.
    private var refusedPorts: Set<UInt16> = []
    private(set) var networkClosingScheduled = false

    private init(plan: SandboxPlan) {
        self.plan = plan
        connectPorts = plan.connectPorts
    }

    /// Applies the plan to this process (the only thread) for the rest of its life.
    static func confine(_ plan: SandboxPlan) -> Sandbox {
        let sandbox = Sandbox(plan: plan)
        guard plan.enabled else { return sandbox }
        for directory in plan.directoriesToCreate { makeDirectories(directory) }
        do {
            try Landlock.setNoNewPrivileges()
        } catch {
            sandbox.noNewPrivilegesFailure = error
        }
        do {
            let abi = try Landlock.abiVersion()
            let (rules, skipped) = try Landlock.restrictFileSystem(plan, abi: abi)
            sandbox.landlockABI = abi
            sandbox.pathRules = rules
            sandbox.skippedPaths = skipped
        } catch {
            sandbox.landlockFailure = error
        }
        do {
            sandbox.seccompCalls = try SeccompFilter.install()
        } catch {
            sandbox.seccompFailure = error
        }
        return sandbox
    }

    /// `mkdir -p`: a Landlock rule needs its directory to exist. A failure shows later, when
    /// the path is used, with its own message.
    private static func makeDirectories(_ path: FilePath) {
        var prefix: [UInt8] = []
        for component in path.bytes.split(separator: UInt8(ascii: "/")) {
            prefix += [UInt8(ascii: "/")] + component
            try? FileSystem.makeDirectory(FilePath(bytes: prefix), mode: 0o755)
        }
    }

    /// Whether everything asked for is in force (nothing to warn about).
    var isComplete: Bool {
        !plan.enabled || (landlockABI != nil && seccompCalls != nil && noNewPrivilegesFailure == nil)
    }

    /// The start-up line: what was applied, or what the kernel refused.
    var summary: String {
        guard plan.enabled else { return "sandbox: off (--no-sandbox or sandbox = false)" }
        var parts: [String] = []
        if let landlockABI {
            let network = landlockABI >= Landlock.firstNetworkABI
                ? "TCP connect and bind by port once certificates name their responders"
                : "no TCP rules before ABI \(Landlock.firstNetworkABI)"
            let scopes = landlockABI >= Landlock.firstScopeABI
                ? (plan.scopesAbstractUnixSockets ? ", abstract unix sockets and signals scoped" : ", signals scoped")
                : ""
            parts.append("Landlock ABI \(landlockABI): \(pathRules) path rule(s), \(network)\(scopes)")
        } else if let landlockFailure {
            parts.append("Landlock refused by the kernel (\(landlockFailure)): file access NOT confined")
        }
        if let seccompCalls {
            parts.append("seccomp: \(seccompCalls) system calls allowed, execve and the rest fail with EPERM")
        } else if let seccompFailure {
            parts.append("seccomp refused by the kernel (\(seccompFailure)): system calls NOT confined")
        }
        if let noNewPrivilegesFailure { parts.append("\(noNewPrivilegesFailure)") }
        return "sandbox: " + parts.joined(separator: "; ")
    }

    /// One line each: paths named by the options that the ruleset leaves out.
    var notices: [String] {
        guard plan.enabled, landlockABI != nil else { return [] }
        return plan.notices + skippedPaths.map { "sandbox: \($0) could not be opened at start and is left out; restart Stapler once it exists" }
    }

    // MARK: TCP ports

    /// Ports of responder and CA Issuers URLs met in certificates. Before `closeNetwork`
    /// they join the allowed set; after it, one line names each new port once.
    func urlsSeen(_ urls: [String]) -> [String] {
        guard plan.learnsResponderPorts else { return [] }
        var lines: [String] = []
        for url in urls {
            guard let port = connectPort(ofURL: url), !connectPorts.contains(port) else { continue }
            if !networkClosed {
                connectPorts.insert(port)
            } else if refusedPorts.insert(port).inserted {
                lines.append("restart Stapler to reach port \(port) (\(url)): outside the sandbox set at start")
            }
        }
        return lines
    }

    /// True the first time only: the caller lays the TCP layer (`closeNetwork`) once the
    /// certificates being read with this one are all read.
    func scheduleNetworkClosing() -> Bool {
        guard plan.enabled, plan.learnsResponderPorts, !networkClosingScheduled else { return false }
        networkClosingScheduled = true
        return true
    }

    /// Lays the TCP layer; nil when there is none to lay, else the line saying what it allows
    /// (or why the kernel refused it).
    func closeNetwork() -> (ok: Bool, line: String)? {
        guard plan.enabled, !networkClosed, let abi = landlockABI, abi >= Landlock.firstNetworkABI else { return nil }
        networkClosed = true
        do {
            try Landlock.restrictNetwork(connectPorts: connectPorts, bindPorts: plan.bindPorts)
        } catch {
            return (false, "sandbox: TCP rules refused by the kernel (\(error)): connections NOT confined")
        }
        let connect = connectPorts.isEmpty ? "none" : connectPorts.sorted().map(String.init).joined(separator: ", ")
        let bind = plan.bindPorts.isEmpty ? "none" : plan.bindPorts.sorted().map(String.init).joined(separator: ", ")
        return (true, "sandbox: TCP connect only to \(connect == "none" ? "no port" : "port(s) \(connect)"); bind only \(bind)")
    }

    // MARK: SIGHUP

    /// The reloaded configuration trimmed to what the ruleset can serve, and one line for
    /// each part refused.
    func admit(_ fresh: Options, running: Options) -> (Options, [String]) {
        guard plan.enabled, landlockABI != nil else { return (fresh, []) }
        return plan.admit(fresh, running: running, checksPorts: networkClosed)
    }
}
