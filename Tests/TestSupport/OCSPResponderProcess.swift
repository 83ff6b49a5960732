import Foundation

/// A real OCSP responder: `openssl ocsp -index ... -port ...` for a `TestPKI`, with its log
/// read back so tests can count the requests it saw for each serial number.
public final class OCSPResponderProcess {
    public let port: UInt16
    public let url: String
    private let process: Process
    private let logPath: String

    /// Starts the responder and waits until it accepts connections. `signer` defaults to the
    /// CA itself; `embeddingSigner: false` leaves its certificate out of the answers. The responder re-reads index.txt when it changes, so revocations take
    /// effect without a restart.
    /// `environment` is added to the test's own (a clock offset through libfaketime, say).
    public init(pki: TestPKI, port: UInt16 = freeLoopbackPort(), signer: (certificate: String, key: String)? = nil,
                validForMinutes: Int? = nil, embeddingSigner: Bool = true, environment: [String: String] = [:]) throws {
        self.port = port
        url = "http://127.0.0.1:\(port)/"
        logPath = "\(pki.directory)/responder-\(port).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: Data())
        process = Process()
        // openssl writes request dumps through stdio, fully buffered into a file; stdbuf makes
        // them visible as they happen so tests can count requests per serial.
        process.executableURL = URL(fileURLWithPath: try Shell.resolve("stdbuf"))
        var arguments = ["-o0", "-e0", try Shell.resolve("openssl"), "ocsp", "-index", pki.index, "-port", String(port),
                         "-rsigner", signer?.certificate ?? pki.certificate, "-rkey", signer?.key ?? pki.key,
                         "-CA", pki.certificate, "-req_text"]
        if let validForMinutes { arguments += ["-nmin", String(validForMinutes)] } else { arguments += ["-ndays", "1"] }
        // Without the signer's certificate, as Let's Encrypt answers.
        if !embeddingSigner { arguments.append("-resp_no_certs") }
        process.arguments = arguments
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        try process.run()
        // A probe connection would upset the responder (it spins on a request that never
        // comes), so wait for its own word that it listens.
        guard waitUntil(timeout: 10, {
            ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("waiting for OCSP client connections")
        }) else {
            process.terminate()
            throw Shell.Failure(command: ["stdbuf"] + arguments, status: -1, output: (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
        }
    }

    /// Everything the responder printed so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Requests received in total.
    public var requestCount: Int { log.components(separatedBy: "Received request").count - 1 }

    /// Requests that asked about `serial` (upper-case hex as TestPKI.Leaf.serial).
    public func requestCount(serial: String) -> Int {
        log.components(separatedBy: "Serial Number: \(serial)\n").count - 1
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}
