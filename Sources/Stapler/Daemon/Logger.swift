import Glibc
import Reactor

/// The daemon's one place that writes log lines: standard output (unless quiet), an
/// optional `stapler.log` in the log directory, and optionally the local syslog.
///
/// A line reads `2026-11-25 17:00:00 UTC WARNING /etc/haproxy/certs/a.pem: what happened: why`.
/// When standard output is the journal, journald stamps the time and would store every line
/// at priority info: there a line reads `<4>WARNING /etc/...`, the syslog priority first, so
/// `journalctl -p warning` finds it.
/// Lower layers never log; they return values and typed errors that become lines here.
final class Logger {
    var verbosity: Verbosity
    private let toStandardOutput: Bool
    private let standardOutputIsJournal: Bool
    private let logFile: FilePath?
    private var logFD: Int32 = -1
    private let useSyslog: Bool

    static let fileName = "stapler.log"

    init(verbosity: Verbosity, toStandardOutput: Bool, standardOutputIsJournal: Bool = false, directory: FilePath?,
         syslog: Bool) throws(FileError) {
        self.verbosity = verbosity
        self.toStandardOutput = toStandardOutput
        self.standardOutputIsJournal = standardOutputIsJournal
        self.logFile = directory?.appending(Self.fileName)
        self.useSyslog = syslog
        if syslog { openlog("stapler", LOG_PID | LOG_NDELAY, LOG_DAEMON) }
        try reopen()
    }

    deinit {
        if logFD >= 0 { close(logFD) }
        if useSyslog { closelog() }
    }

    /// Opens the log file again under its name: after logrotate moved it away (SIGHUP).
    func reopen() throws(FileError) {
        guard let logFile else { return }
        let fd = logFile.withCString { open($0, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o640) }
        guard fd >= 0 else { throw FileError(path: logFile, operation: "open log file", reason: .system(errno: errno)) }
        if logFD >= 0 { close(logFD) }
        logFD = fd
    }

    func isEnabled(_ level: Verbosity) -> Bool { level <= verbosity }

    func critical(_ message: @autoclosure () -> String) { log(.critical, message()) }
    func error(_ message: @autoclosure () -> String) { log(.error, message()) }
    func warning(_ message: @autoclosure () -> String) { log(.warning, message()) }
    func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }

    /// Lines asked for explicitly (the SIGUSR1 status table): written whatever the verbosity.
    func report(_ lines: [String]) {
        for line in lines { write(.info, LogText.singleLine(line)) }
    }

    func log(_ level: Verbosity, _ message: @autoclosure () -> String) {
        guard isEnabled(level) else { return }
        write(level, LogText.singleLine(message()))
    }

    private func write(_ level: Verbosity, _ text: String) {
        lazy var stamped = Array("\(UTCTime.format(UTCTime.now())) \(Self.label(level)) \(text)\n".utf8)
        if toStandardOutput {
            Self.writeAll(1, standardOutputIsJournal
                ? Array("<\(Self.syslogPriority(level))>\(Self.label(level)) \(text)\n".utf8) : stamped)
        }
        if logFD >= 0 { Self.writeAll(logFD, stamped) }
        if useSyslog {
            text.withCString { cText in
                withVaList([cText]) { vsyslog(Self.syslogPriority(level), "%s", $0) }
            }
        }
    }

    static func label(_ level: Verbosity) -> String {
        switch level {
        case .critical: return "CRITICAL"
        case .error: return "ERROR"
        case .warning: return "WARNING"
        case .info: return "INFO"
        case .debug: return "DEBUG"
        }
    }

    private static func syslogPriority(_ level: Verbosity) -> Int32 {
        switch level {
        case .critical: return LOG_CRIT
        case .error: return LOG_ERR
        case .warning: return LOG_WARNING
        case .info: return LOG_INFO
        case .debug: return LOG_DEBUG
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return } // a full disk or closed stdout must not stop the daemon
            offset += written
        }
    }
}
