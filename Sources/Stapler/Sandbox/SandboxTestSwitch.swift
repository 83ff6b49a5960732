import Glibc

/// `STAPLER_TEST_KERNEL_REFUSES=landlock`, `=seccomp` or `=landlock,seccomp`: the test suite's
/// stand-in for a kernel without Landlock (ENOSYS) or seccomp (EINVAL), to show that the
/// daemon then runs unconfined with one warning. Not for operators: `--no-sandbox` is.
enum SandboxTestSwitch {
    static let variable = "STAPLER_TEST_KERNEL_REFUSES"

    enum Mechanism: String { case landlock, seccomp }

    /// The errno the simulated kernel answers with, or nil to ask the real one.
    static func refusal(_ mechanism: Mechanism) -> Int32? {
        guard let value = getenv(variable) else { return nil }
        let names = String(cString: value).split(separator: ",").map(String.init)
        guard names.contains(mechanism.rawValue) else { return nil }
        return mechanism == .landlock ? ENOSYS : EINVAL
    }
}
