import CLandlock
import Glibc
import Reactor

/// The kernel's Landlock: rulesets of allowed file-system accesses beneath paths, and of
/// allowed TCP ports, that a process lays on itself layer by layer and can never loosen.
/// What each ABI version handles decides which rights a ruleset may name.
enum Landlock {
    /// Why a step failed, with the errno and what was being done.
    struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        let step: String
        let errno: Int32
        var description: String { "\(step): \(String(cString: strerror(errno)))" }
    }

    /// ABI 4 added TCP port rules; ABI 6 the abstract unix socket and signal scopes.
    static let firstNetworkABI: Int32 = 4
    static let firstScopeABI: Int32 = 6

    /// The kernel's ABI version, or why there is none (ENOSYS, EOPNOTSUPP).
    static func abiVersion() throws(Failure) -> Int32 {
        let version = clandlock_abi_version()
        guard version > 0 else { throw Failure(step: "landlock_create_ruleset", errno: errno) }
        return version
    }

    // MARK: Rights by ABI

    /// The read side: files and directory listings.
    static let readRights = CLANDLOCK_ACCESS_FS_READ_FILE | CLANDLOCK_ACCESS_FS_READ_DIR
    /// Staples go through a temporary file renamed within its directory, --staple-dir makes
    /// the mirrored directories, the metrics socket is a file: no rename across directories
    /// (REFER), no links, devices or execution.
    static let writeRights = readRights | CLANDLOCK_ACCESS_FS_WRITE_FILE | CLANDLOCK_ACCESS_FS_REMOVE_FILE
        | CLANDLOCK_ACCESS_FS_MAKE_REG | CLANDLOCK_ACCESS_FS_MAKE_DIR | CLANDLOCK_ACCESS_FS_MAKE_SOCK
        | CLANDLOCK_ACCESS_FS_TRUNCATE
    static let deviceRights = readRights | CLANDLOCK_ACCESS_FS_WRITE_FILE | CLANDLOCK_ACCESS_FS_IOCTL_DEV

    /// Every file-system right the kernel of `abi` knows: all of them are handled, so what a
    /// rule does not grant is forbidden.
    static func handledFileSystemRights(abi: Int32) -> UInt64 {
        var rights: UInt64 = (CLANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1  // ABI 1: bits 0 to 12
        if abi >= 2 { rights |= CLANDLOCK_ACCESS_FS_REFER }
        if abi >= 3 { rights |= CLANDLOCK_ACCESS_FS_TRUNCATE }
        if abi >= 5 { rights |= CLANDLOCK_ACCESS_FS_IOCTL_DEV }
        return rights
    }

    static func rights(_ access: SandboxPlan.Access, abi: Int32) -> UInt64 {
        let wanted: UInt64
        switch access {
        case .read: wanted = readRights
        case .write: wanted = writeRights
        case .device: wanted = deviceRights
        }
        return wanted & handledFileSystemRights(abi: abi)
    }

    static func scopes(abi: Int32, abstractUnixSockets: Bool, signals: Bool) -> UInt64 {
        guard abi >= firstScopeABI else { return 0 }
        return (abstractUnixSockets ? CLANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET : 0) | (signals ? CLANDLOCK_SCOPE_SIGNAL : 0)
    }

    // MARK: Layers

    /// Lays the file-system layer: every handled right is forbidden except beneath the
    /// plan's paths. A path that cannot be opened now is skipped and named in the result.
    static func restrictFileSystem(_ plan: SandboxPlan, abi: Int32) throws(Failure) -> (rules: Int, skipped: [FilePath]) {
        let ruleset = clandlock_create_ruleset(handledFileSystemRights(abi: abi), 0,
                                               scopes(abi: abi, abstractUnixSockets: plan.scopesAbstractUnixSockets,
                                                      signals: plan.scopesSignals))
        guard ruleset >= 0 else { throw Failure(step: "landlock_create_ruleset", errno: errno) }
        defer { close(ruleset) }
        var rules = 0
        var skipped: [FilePath] = []
        for rule in plan.paths {
            let descriptor = rule.path.withCString { clandlock_open_path($0) }
            guard descriptor >= 0 else {
                // System files differ between distributions: a missing one is nothing to grant.
                if !SandboxPlan.systemReadPaths.contains(rule.path) && !SandboxPlan.systemDevices.contains(rule.path) {
                    skipped.append(rule.path)
                }
                continue
            }
            defer { close(descriptor) }
            var rights = rights(rule.access, abi: abi)
            // A rule on a file may only name rights that apply to files.
            var status = stat()
            if fstat(descriptor, &status) == 0 && (status.st_mode & S_IFMT) != S_IFDIR {
                rights &= CLANDLOCK_ACCESS_FS_READ_FILE | CLANDLOCK_ACCESS_FS_WRITE_FILE | CLANDLOCK_ACCESS_FS_TRUNCATE
                    | CLANDLOCK_ACCESS_FS_IOCTL_DEV | CLANDLOCK_ACCESS_FS_EXECUTE
            }
            guard clandlock_add_path_rule(ruleset, descriptor, rights) == 0 else {
                throw Failure(step: "landlock_add_rule \(rule.path)", errno: errno)
            }
            rules += 1
        }
        try restrictSelf(ruleset)
        return (rules, skipped)
    }

    /// Lays the network layer (ABI 4 and later): TCP connect only to `connectPorts`, bind
    /// only `bindPorts`.
    static func restrictNetwork(connectPorts: Set<UInt16>, bindPorts: Set<UInt16>) throws(Failure) {
        let connect = CLANDLOCK_ACCESS_NET_CONNECT_TCP, bind = CLANDLOCK_ACCESS_NET_BIND_TCP
        let ruleset = clandlock_create_ruleset(0, connect | bind, 0)
        guard ruleset >= 0 else { throw Failure(step: "landlock_create_ruleset (network)", errno: errno) }
        defer { close(ruleset) }
        for port in connectPorts.union(bindPorts).sorted() {
            let allowed = (connectPorts.contains(port) ? connect : 0) | (bindPorts.contains(port) ? bind : 0)
            guard clandlock_add_port_rule(ruleset, UInt64(port), allowed) == 0 else {
                throw Failure(step: "landlock_add_rule port \(port)", errno: errno)
            }
        }
        try restrictSelf(ruleset)
    }

    private static func restrictSelf(_ ruleset: Int32) throws(Failure) {
        guard clandlock_restrict_self(ruleset) == 0 else { throw Failure(step: "landlock_restrict_self", errno: errno) }
    }

    static func setNoNewPrivileges() throws(Failure) {
        guard clandlock_set_no_new_privs() == 0 else { throw Failure(step: "prctl(PR_SET_NO_NEW_PRIVS)", errno: errno) }
    }
}
