import Foundation

/// The `stapler` binary under test, run as its own process (as an operator would run it):
/// output captured to a log file, signals sent with kill(), exit status awaited.
public final class StaplerProcess {
    /// The debug binary SwiftPM built next to the test bundle.
    public static var binary: String {
        // /proc/self/exe is .../debug/StaplerPackageTests.xctest; stapler sits beside it.
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("stapler").path
    }

    public let logPath: String
    private let process = Process()

    /// Starts `stapler arguments...`. The log file holds stdout and stderr together.
    /// `standardOutputIsJournal` names the log file in `$JOURNAL_STREAM` (its device and
    /// inode), as systemd does for a service whose output goes to the journal.
    /// `proxyEnvironment` (http_proxy, no_proxy, ...) is set after the machine's proxy
    /// variables are removed: only a test that asks for a proxy gets one.
    public init(_ arguments: [String], logPath: String, environment: [String: String]? = nil,
                proxyEnvironment: [String: String] = [:], standardOutputIsJournal: Bool = false) throws {
        self.logPath = logPath
        _ = FileManager.default.createFile(atPath: logPath, contents: Data())
        let log = FileHandle(forWritingAtPath: logPath)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        var env = environment ?? ProcessInfo.processInfo.environment
        // No config file from the machine running the tests, and no proxy between us and
        // the loopback responders.
        env["HOME"] = env["HOME"].map { _ in "/nonexistent" }
        for name in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
            env[name] = nil
        }
        env.merge(proxyEnvironment) { $1 }
        if standardOutputIsJournal, let log {
            var status = stat()
            guard fstat(log.fileDescriptor, &status) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
            env["JOURNAL_STREAM"] = "\(status.st_dev):\(status.st_ino)"
        }
        process.environment = env
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the log contains `text` (or `count` occurrences of it).
    @discardableResult
    public func waitForLog(_ text: String, count: Int = 1, timeout: TimeInterval = 10) -> Bool {
        waitUntil(timeout: timeout) { self.log.components(separatedBy: text).count - 1 >= count }
    }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// The exit status, or nil if it is still running after `timeout`.
    public func waitForExit(timeout: TimeInterval = 20) -> Int32? {
        guard waitUntil(timeout: timeout, { !self.process.isRunning }) else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Runs stapler to completion (`--one-off`, `check`, usage errors).
    public static func run(_ arguments: [String], in directory: String,
                           timeout: TimeInterval = 60) throws -> (status: Int32?, output: String) {
        let stapler = try StaplerProcess(arguments, logPath: "\(directory)/stapler-\(UUID().uuidString).log")
        let status = stapler.waitForExit(timeout: timeout)
        return (status, stapler.log)
    }

    /// Threads of the running process, from /proc (the daemon should show 1).
    public var threadCount: Int? { Self.statusField("Threads", pid: pid) }
    /// Resident memory in KiB.
    public var residentKiB: Int? { Self.statusField("VmRSS", pid: pid) }

    static func statusField(_ name: String, pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            return Int(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ")[0])
        }
        return nil
    }
}
