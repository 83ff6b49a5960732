import Foundation

/// One nginx master in the foreground (`daemon off`) on a configuration a test helper wrote:
/// started, found ready once its pid file exists and its port accepts, and stopped.
final class NginxMaster {
    let configPath: String
    let directory: String
    let errorLogPath: String
    let pidPath: String
    let port: UInt16
    private var process: Process?

    init(configPath: String, directory: String, errorLogPath: String, pidPath: String, port: UInt16) {
        self.configPath = configPath
        self.directory = directory
        self.errorLogPath = errorLogPath
        self.pidPath = pidPath
        self.port = port
    }

    deinit { stop() }

    /// The master's pid while it runs.
    var processIdentifier: Int32? { process?.isRunning == true ? process?.processIdentifier : nil }

    /// Throws with the error log's text when nginx exits or does not listen within 15 s.
    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Shell.resolve("nginx"))
        process.arguments = ["-c", configPath, "-p", directory + "/", "-e", errorLogPath]
        let output = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        let ready = waitUntil(timeout: 15) {
            !process.isRunning || (FileManager.default.fileExists(atPath: self.pidPath) && loopbackPortAccepts(self.port))
        }
        guard ready && process.isRunning else {
            stop()
            let log = (try? String(contentsOfFile: errorLogPath, encoding: .utf8)) ?? ""
            throw Shell.Failure(command: ["nginx", "-c", configPath], status: -1, output: log)
        }
    }

    /// SIGQUIT (graceful), then SIGKILL if it does not go; workers follow their master.
    func stop() {
        guard let process else { return }
        self.process = nil
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGQUIT)
        if !waitUntil(timeout: 10, { !process.isRunning }) {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: pidPath)
    }
}
