import Foundation

/// HAProxy terminating TLS on 127.0.0.1 in front of a plain HTTP server (an `openssl ocsp`
/// responder): an https responder as some CAs publish them. Each certificate bundle
/// (certificate, then key) gets a listening port of its own, so one process serves a good
/// certificate, one for another name and an expired one side by side.
public final class TLSFrontProcess {
    /// One port per bundle, in the order given.
    public let ports: [UInt16]
    private let process: Process
    private let logPath: String

    /// Starts HAProxy and waits until every port accepts connections. HTTP mode: HAProxy
    /// connects to the server behind only with a whole request in hand, so neither its
    /// readiness probes nor a client that refuses the certificate hold a connection open on
    /// the `openssl ocsp` responder, which serves one connection at a time.
    public init(directory: String, bundles: [String], backendPort: UInt16) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        ports = bundles.map { _ in freeLoopbackPort() }
        let configPath = "\(directory)/tls-front.cfg"
        logPath = "\(directory)/tls-front.log"
        var config = """
        defaults
            mode http
            option http-server-close
            timeout connect 2s
            timeout client 5s
            timeout server 5s

        backend plain
            server plain 127.0.0.1:\(backendPort)

        """
        for (index, (bundle, port)) in zip(bundles, ports).enumerated() {
            config += """
            frontend tls\(index)
                bind 127.0.0.1:\(port) ssl crt "\(bundle)"
                default_backend plain

            """
        }
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: logPath, contents: Data())
        process = Process()
        process.executableURL = URL(fileURLWithPath: try Shell.resolve("haproxy"))
        process.arguments = ["-db", "-f", configPath]
        let logHandle = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = logHandle
        process.standardError = logHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let ports = ports
        guard waitUntil(timeout: 15, { [process] in
            !process.isRunning || ports.allSatisfy(loopbackPortAccepts)
        }), process.isRunning else {
            stop()
            throw Shell.Failure(command: ["haproxy", "-db", "-f", configPath], status: -1, output: self.log)
        }
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// `https://127.0.0.1:<port>/` for the n-th bundle.
    public func url(_ index: Int) -> String { "https://127.0.0.1:\(ports[index])/" }

    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        if !waitUntil(timeout: 10, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}
