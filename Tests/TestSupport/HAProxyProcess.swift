import Foundation

/// A real HAProxy in the foreground (`haproxy -db`), serving TLS on 127.0.0.1 with the given
/// certificates and offering its runtime API on three stats sockets, one per access level.
public final class HAProxyProcess {
    public let directory: String
    public let port: UInt16
    public let configPath: String
    /// `level admin`: everything, including `set ssl cert` transactions.
    public let adminSocket: String
    /// `level operator`: `set ssl ocsp-response` works (2.6.12), `set ssl cert` answers
    /// `Permission denied`.
    public let operatorSocket: String
    /// `level user`: `show ssl cert` answers `Can't allocate memory!` (2.6.12).
    public let userSocket: String
    private let logPath: String
    private var process: Process?

    /// Writes the configuration and starts HAProxy. `certificates` are `crt` arguments:
    /// files or directories. `statsTimeout` is how long HAProxy keeps an idle CLI connection.
    public init(directory: String, certificates: [String], port: UInt16 = freeLoopbackPort(),
                statsTimeout: String = "10s", start: Bool = true) throws {
        self.directory = directory
        self.port = port
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        configPath = "\(directory)/haproxy.cfg"
        adminSocket = "\(directory)/admin.sock"
        operatorSocket = "\(directory)/operator.sock"
        userSocket = "\(directory)/user.sock"
        logPath = "\(directory)/haproxy.log"
        let crts = certificates.map { "crt \"\($0)\"" }.joined(separator: " ")
        try """
        global
            stats socket \(adminSocket) level admin
            stats socket \(operatorSocket) level operator
            stats socket \(userSocket) level user
            stats timeout \(statsTimeout)

        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s

        frontend tls
            bind 127.0.0.1:\(port) ssl \(crts)
            http-request return status 200 content-type text/plain string ok

        """.write(toFile: configPath, atomically: true, encoding: .utf8)
        if start { try self.start() }
    }

    deinit { stop() }

    public var isRunning: Bool { process?.isRunning ?? false }

    /// The running HAProxy's pid: unchanged means no restart happened.
    public var processIdentifier: Int32? { isRunning ? process?.processIdentifier : nil }

    /// What HAProxy printed (warnings, alerts) since the first start.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Starts HAProxy and waits until the admin socket and the TLS port accept connections.
    public func start() throws {
        guard !isRunning else { return }
        try launch(extraArguments: [])
    }

    /// A reload as `haproxy -sf` does it: a new process takes over the listeners and the stats
    /// socket and tells the old one to finish; returns once the new one answers.
    public func reload() throws {
        guard let old = process, old.isRunning else { return try start() }
        try launch(extraArguments: ["-sf", String(old.processIdentifier)])
        if !waitUntil(timeout: 10, { !old.isRunning }) { kill(old.processIdentifier, SIGKILL) }
        old.waitUntilExit()
    }

    private func launch(extraArguments: [String]) throws {
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: Data())
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Shell.resolve("haproxy"))
        process.arguments = ["-db", "-f", configPath] + extraArguments
        let log = FileHandle(forWritingAtPath: logPath)
        log?.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        let ready = waitUntil(timeout: 15) {
            !process.isRunning || (unixSocketAccepts(adminSocket) && loopbackPortAccepts(port)
                                   && (extraArguments.isEmpty
                                       || Self.answersFromPid(process.processIdentifier, socket: self.adminSocket)))
        }
        guard ready && process.isRunning else {
            stop()
            throw Shell.Failure(command: ["haproxy", "-db", "-f", configPath], status: -1, output: self.log)
        }
    }

    /// SIGTERM, then wait for the exit (SIGKILL if it does not come).
    public func stop() {
        guard let process else { return }
        self.process = nil
        guard process.isRunning else { return }
        process.terminate()
        if !waitUntil(timeout: 10, { !process.isRunning }) {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    /// Whether `show info` on `socket` names `pid`: the reloaded process has taken over.
    static func answersFromPid(_ pid: Int32, socket: String) -> Bool {
        guard let answer = UnixSockets.exchange(socket, "show info\n") else { return false }
        return answer.contains("\nPid: \(pid)\n")
    }

    public func restart() throws {
        stop()
        try start()
    }

    /// What a TLS client asking for `serverName` with `status_request` hears about the staple.
    public func stapleSeen(serverName: String) throws -> StapleSeenByClient {
        try StapleSeenByClient.ask(port: port, serverName: serverName)
    }
}

/// The OCSP part of `openssl s_client -status` output: what a TLS client sees of a staple.
public struct StapleSeenByClient: Equatable, Sendable, CustomStringConvertible {
    /// False when the server sent no staple ("OCSP response: no response sent").
    public var stapled: Bool
    /// "successful", as in "OCSP Response Status: successful (0x0)".
    public var responseStatus: String?
    /// "good", "revoked" or "unknown", as in "Cert Status: good".
    public var certStatus: String?

    public init(stapled: Bool, responseStatus: String? = nil, certStatus: String? = nil) {
        self.stapled = stapled
        self.responseStatus = responseStatus
        self.certStatus = certStatus
    }

    public static let none = StapleSeenByClient(stapled: false)

    public static func good() -> Self { .init(stapled: true, responseStatus: "successful", certStatus: "good") }
    public static func revoked() -> Self { .init(stapled: true, responseStatus: "successful", certStatus: "revoked") }

    public var description: String {
        stapled ? "staple(\(responseStatus ?? "?"), \(certStatus ?? "?"))" : "no staple"
    }

    /// Runs `openssl s_client -connect 127.0.0.1:port -servername name -status` (stdin from
    /// /dev/null, so it ends after the handshake) and reads its OCSP lines.
    public static func ask(port: UInt16, serverName: String) throws -> Self {
        let result = try Shell.run(["openssl", "s_client", "-connect", "127.0.0.1:\(port)",
                                    "-servername", serverName, "-status"], allowFailure: true)
        return try parse(result.output)
    }

    public static func parse(_ output: String) throws -> Self {
        func value(after label: String) -> String? {
            guard let range = output.range(of: label) else { return nil }
            let rest = output[range.upperBound...]
            let line = rest.prefix { $0 != "\n" }.trimmingCharacters(in: .whitespaces)
            return line.split(separator: " ").first.map(String.init)
        }
        if output.contains("OCSP response: no response sent") { return .none }
        guard output.contains("OCSP Response Data:") else {
            throw Shell.Failure(command: ["openssl", "s_client"], status: -1, output: output)
        }
        return .init(stapled: true, responseStatus: value(after: "OCSP Response Status:"),
                     certStatus: value(after: "Cert Status:"))
    }
}

/// Whether something accepts connections on the unix socket at `path`.
public func unixSocketAccepts(_ path: String) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
        }
    }
}
