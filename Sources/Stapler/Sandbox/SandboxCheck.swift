import CSeccomp
import Glibc
import Reactor

/// `stapler sandbox-check [options]`: confines this process as the daemon with these options
/// would be confined (the TCP layer at once, with the ports known before any certificate is
/// read), then tries a fixed list of forbidden and allowed actions, one line each. Exit
/// status 0 when every forbidden action failed with EACCES or EPERM and every allowed one
/// got past the sandbox; 1 otherwise.
enum SandboxCheck {
    enum Expectation: String { case forbidden, allowed }

    struct Action {
        let expectation: Expectation
        let name: String
        /// 0 when the action succeeded, else the errno it failed with.
        let attempt: () -> Int32
        /// Errnos that show the action got past the sandbox (nothing listens on the port).
        var pastTheSandbox: Set<Int32> = []
    }

    /// The errnos by which Landlock and seccomp refuse.
    static let refusals: Set<Int32> = [EACCES, EPERM]
    /// A pid above Linux's largest pid_max: ptrace and kill reach no process if allowed.
    static let absentPid: Int32 = 4_194_305
    static let refusedPort: UInt16 = 9
    static let allowedPort = SandboxPlan.httpPort

    static func run(options: Options, environment: [String: String]) -> Int32 {
        let plan = SandboxPlan(options: options, environment: environment)
        let sandbox = Sandbox.confine(plan)
        standardOutput(sandbox.summary + "\n")
        for notice in sandbox.notices { standardOutput(notice + "\n") }
        if let network = sandbox.closeNetwork() { standardOutput(network.line + "\n") }
        var failures = 0
        for action in actions(plan: plan, options: options, sandbox: sandbox) {
            let errno = action.attempt()
            let ok: Bool
            switch action.expectation {
            case .forbidden: ok = refusals.contains(errno)
            case .allowed: ok = errno == 0 || action.pastTheSandbox.contains(errno)
            }
            if !ok { failures += 1 }
            let result = errno == 0 ? "succeeded" : "\(errnoName(errno)) (\(String(cString: strerror(errno))))"
            standardOutput("\(ok ? "ok  " : "FAIL") \(action.expectation.rawValue.padding(9)) \(action.name): \(result)\n")
        }
        // Last: should execve work, this process becomes the shell, which says so and fails.
        let message = "FAIL forbidden  execve /bin/sh: succeeded"
        let execveErrno = execute(["/bin/sh", "-c", "echo '\(message)'; exit 1"])
        let refused = refusals.contains(execveErrno)
        if !refused { failures += 1 }
        standardOutput("\(refused ? "ok  " : "FAIL") \(Expectation.forbidden.rawValue.padding(9)) execve /bin/sh: "
                       + "\(errnoName(execveErrno)) (\(String(cString: strerror(execveErrno))))\n")
        standardOutput(failures == 0 ? "sandbox-check: every forbidden action refused, every allowed one done\n"
                                     : "sandbox-check: \(failures) action(s) not as expected\n")
        return failures == 0 ? 0 : 1
    }

    // MARK: The list

    static func actions(plan: SandboxPlan, options: Options, sandbox: Sandbox) -> [Action] {
        let marker = FilePath(".stapler-sandbox-check.\(getpid())")
        var list: [Action] = []
        func forbid(_ name: String, _ attempt: @escaping () -> Int32) {
            list.append(Action(expectation: .forbidden, name: name, attempt: attempt))
        }
        func allow(_ name: String, past: Set<Int32> = [], _ attempt: @escaping () -> Int32) {
            list.append(Action(expectation: .allowed, name: name, attempt: attempt, pastTheSandbox: past))
        }

        // Forbidden: files.
        let outside = ["/tmp", "/var/tmp", "/dev/shm", "/etc"].map { FilePath($0) }
            .first { !plan.covers($0, .write) && (try? FileSystem.status($0))?.kind == .directory }
        if let outside { forbid("create a file in \(outside)") { createFile(outside.appending(marker)) } }
        forbid("read /etc/shadow") { readFile("/etc/shadow") }
        if let configFile = options.configFile {
            forbid("open the config file \(configFile) for writing") { openForWriting(configFile) }
        }
        if options.stapleDirectory != nil, let first = options.certificateLocations.first {
            let directory = SandboxPlan.liveKind(first.path) == .directory ? first.path : first.path.directory
            forbid("create a file beside the certificates in \(directory) (--staple-dir)") {
                createFile(directory.appending(marker))
            }
        }
        // Forbidden: network (the TCP layer needs ABI 4).
        if sandbox.networkClosed {
            forbid("connect to 127.0.0.1:\(refusedPort)") { connectTCP(port: refusedPort) }
            let otherPort = (plan.bindPorts.max() ?? refusedPort) &+ 1
            forbid("bind 127.0.0.1:\(otherPort)") { bindTCP(port: otherPort) }
        }
        if plan.scopesSignals, let abi = sandbox.landlockABI, abi >= Landlock.firstScopeABI {
            forbid("signal 0 to pid 1, outside the sandbox") { kill(1, 0) == 0 ? 0 : errno }
        }
        // Forbidden: system calls, with arguments that would do nothing if they were let through.
        forbid("start a process (clone without CLONE_THREAD)") { -cseccomp_try_fork() }
        forbid("ptrace(PTRACE_ATTACH)") { trySystemCall("ptrace", 16, Int(absentPid)) }
        forbid("mount(2)") { trySystemCall("mount") }
        forbid("umount2(2)") { trySystemCall("umount2") }
        forbid("bpf(2)") { trySystemCall("bpf", -1) }
        forbid("init_module(2)") { trySystemCall("init_module") }
        forbid("finit_module(2)") { trySystemCall("finit_module", -1) }
        forbid("delete_module(2)") { trySystemCall("delete_module") }
        forbid("kexec_load(2)") { trySystemCall("kexec_load", 0, 0, 0, -1) }
        forbid("kexec_file_load(2)") { trySystemCall("kexec_file_load", -1, -1, 0, 0, -1) }
        forbid("execveat(2)") { trySystemCall("execveat", -1) }

        // Allowed: where the daemon writes and reads.
        for rule in plan.paths where rule.access == .write && !SandboxPlan.systemReadPaths.contains(rule.path) {
            allow("create, write and remove a file in \(rule.path)") { createFile(rule.path.appending(marker)) }
        }
        var reads = plan.paths.filter { $0.access == .read && !SandboxPlan.systemReadPaths.contains($0.path) }.map(\.path)
        for path in ["/etc/resolv.conf", "/etc/ssl/certs/ca-certificates.crt"].map({ FilePath($0) })
        where !reads.contains(path) && (try? FileSystem.status(path)) != nil {
            reads.append(path)
        }
        for path in reads { allow("read \(path)") { readPath(path) } }
        allow("connect to 127.0.0.1:\(allowedPort)", past: [ECONNREFUSED]) { connectTCP(port: allowedPort) }
        for port in plan.bindPorts.sorted() where port != 0 {
            allow("bind 127.0.0.1:\(port) (--metrics)", past: [EADDRINUSE]) { bindTCP(port: port) }
        }
        allow("start a thread (curl's resolver)") { startThread() }
        return list
    }

    // MARK: Attempts, each returning 0 or an errno

    static func createFile(_ path: FilePath) -> Int32 {
        let descriptor = path.withCString { open($0, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600) }
        guard descriptor >= 0 else { return errno }
        let byte: [UInt8] = [0x0a]
        let written = write(descriptor, byte, 1)
        let writeErrno = errno
        close(descriptor)
        _ = path.withCString { unlink($0) }
        return written == 1 ? 0 : writeErrno
    }

    static func readFile(_ path: FilePath) -> Int32 {
        let descriptor = path.withCString { open($0, O_RDONLY | O_CLOEXEC) }
        guard descriptor >= 0 else { return errno }
        defer { close(descriptor) }
        var byte: UInt8 = 0
        return read(descriptor, &byte, 1) >= 0 ? 0 : errno
    }

    /// A directory is listed, a file read.
    static func readPath(_ path: FilePath) -> Int32 {
        guard SandboxPlan.liveKind(path) == .directory else { return readFile(path) }
        do {
            _ = try FileSystem.listDirectory(path)
            return 0
        } catch {
            return error.errno ?? EIO
        }
    }

    static func openForWriting(_ path: FilePath) -> Int32 {
        let descriptor = path.withCString { open($0, O_WRONLY | O_APPEND | O_CLOEXEC) }
        guard descriptor >= 0 else { return errno }
        close(descriptor)
        return 0
    }

    static func connectTCP(port: UInt16) -> Int32 {
        withLoopbackSocket(port: port) { socket, address, length in connect(socket, address, length) }
    }

    static func bindTCP(port: UInt16) -> Int32 {
        withLoopbackSocket(port: port) { socket, address, length in bind(socket, address, length) }
    }

    private static func withLoopbackSocket(port: UInt16,
                                           _ body: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return errno }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return result == 0 ? 0 : errno
    }

    static func trySystemCall(_ name: String, _ a0: Int = 0, _ a1: Int = 0, _ a2: Int = 0, _ a3: Int = 0,
                              _ a4: Int = 0) -> Int32 {
        let result = cseccomp_try_syscall(name, a0, a1, a2, a3, a4)
        if result == -Int(EDOM) { return ENOSYS }
        return result < 0 ? Int32(-result) : 0
    }

    static func startThread() -> Int32 {
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { _ in nil }, nil)
        guard result == 0 else { return result }
        return pthread_join(thread, nil)
    }

    /// execv's errno; does not return when it succeeds.
    static func execute(_ arguments: [String]) -> Int32 {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for pointer in argv { free(pointer) } }
        execv(arguments[0], &argv)
        return errno
    }

    static func errnoName(_ value: Int32) -> String {
        let names: [Int32: String] = [
            EACCES: "EACCES", EPERM: "EPERM", ENOENT: "ENOENT", ECONNREFUSED: "ECONNREFUSED",
            EADDRINUSE: "EADDRINUSE", EFAULT: "EFAULT", EBADF: "EBADF", EINVAL: "EINVAL", ESRCH: "ESRCH",
            ENOSYS: "ENOSYS", EEXIST: "EEXIST", EROFS: "EROFS", ENOTDIR: "ENOTDIR", EAGAIN: "EAGAIN",
        ]
        return names[value] ?? "errno \(value)"
    }
}

private extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
