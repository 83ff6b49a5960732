import CSeccomp
import Glibc

/// The seccomp filter: `SystemCallAllowList.allowed` pass, threads may be started but no
/// process, everything else fails with EPERM (see the README, "Confinement", for why EPERM
/// and not a kill).
enum SeccompFilter {
    struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        let step: String
        let errno: Int32
        var description: String { "\(step): \(String(cString: strerror(errno)))" }
    }

    /// What every call outside the list answers.
    static let defaultErrno = EPERM
    /// clone's flag that makes a thread, not a process.
    static let cloneThreadFlag: UInt64 = 0x0001_0000

    /// Installs the filter; the number of system calls it allows.
    @discardableResult
    static func install() throws(Failure) -> Int {
        guard let filter = cseccomp_new(defaultErrno) else { throw Failure(step: "seccomp_init", errno: ENOMEM) }
        defer { cseccomp_release(filter) }
        var allowed = 0
        for name in SystemCallAllowList.allowed {
            let result = cseccomp_allow(filter, name)
            if result == -EDOM { continue }  // not a system call on this architecture
            guard result == 0 else { throw Failure(step: "seccomp_rule_add \(name)", errno: -result) }
            allowed += 1
        }
        // glibc starts threads with clone3 and falls back to clone on ENOSYS; clone3's flags
        // sit in memory a filter cannot read, clone's in a register it can: a thread
        // (CLONE_THREAD) is allowed, a new process (fork, posix_spawn) is not.
        try check(cseccomp_fail(filter, "clone3", ENOSYS), "clone3")
        try check(cseccomp_allow_masked(filter, "clone", 0, cloneThreadFlag, cloneThreadFlag), "clone")
        allowed += 1
        try check(cseccomp_load(filter), "seccomp_load")
        return allowed
    }

    private static func check(_ result: Int32, _ step: String) throws(Failure) {
        guard result == 0 else { throw Failure(step: step, errno: -result) }
    }
}
