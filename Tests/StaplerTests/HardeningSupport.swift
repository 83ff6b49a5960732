import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

// Helpers shared by the Hardening*Tests classes (no tests in this file).

/// The `stapler` binary run through a wrapper command (`setpriv`, `prlimit`, `bash -c`),
/// which `StaplerProcess` cannot do: output to a log file, signals, exit status, /proc.
final class WrappedStaplerProcess {
    let logPath: String
    private let process = Process()

    /// Runs `wrapper + [stapler binary] + arguments`. With `throughPipe`, output reaches the
    /// log file through a pipe: a daemon under a file size limit can still be heard.
    init(wrapper: [String], arguments: [String], logPath: String, throughPipe: Bool = false) throws {
        self.logPath = logPath
        _ = FileManager.default.createFile(atPath: logPath, contents: Data())
        process.executableURL = URL(fileURLWithPath: try Shell.resolve(wrapper[0]))
        process.arguments = Array(wrapper.dropFirst()) + [StaplerProcess.binary] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = "/nonexistent"
        for name in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
            environment[name] = nil
        }
        process.environment = environment
        let log = FileHandle(forWritingAtPath: logPath)
        if throughPipe, let log {
            let pipe = Pipe()
            pipe.fileHandleForReading.readabilityHandler = { handle in
                let data = handle.availableData
                if data.isEmpty { handle.readabilityHandler = nil } else { log.write(data) }
            }
            process.standardOutput = pipe
            process.standardError = pipe
        } else {
            process.standardOutput = log
            process.standardError = log
        }
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }

    @discardableResult
    func waitForLog(_ text: String, count: Int = 1, timeout: TimeInterval = 10) -> Bool {
        waitUntil(timeout: timeout) { self.log.components(separatedBy: text).count - 1 >= count }
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    func waitForExit(timeout: TimeInterval = 20) -> Int32? {
        guard waitUntil(timeout: timeout, { !self.process.isRunning }) else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Runs to completion (`--one-off`).
    static func run(wrapper: [String], arguments: [String], in directory: String,
                    timeout: TimeInterval = 60) throws -> (status: Int32?, output: String) {
        let run = try WrappedStaplerProcess(wrapper: wrapper, arguments: arguments,
                                            logPath: "\(directory)/stapler-\(UUID().uuidString).log")
        let status = run.waitForExit(timeout: timeout)
        return (status, run.log)
    }
}

enum Hardening {
    static func lines(_ text: String, containing needle: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.contains(needle) }
    }

    static func makeDirectory(_ path: String) throws -> String {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// What an operator does to ask for a fresh staple now.
    static func touch(_ path: String) throws {
        try FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: path)
    }

    /// Names in `directory` that are our temporary files (a write cut short leaves them).
    static func temporaryFiles(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(FileSystem.temporarySuffix) }
    }

    /// Checks a staple file in process, the way the daemon checks one found at start:
    /// complete DER, signed by the issuer, about this certificate, fresh.
    static func verifiedStaple(bundle: FilePath, issuers: IssuerStore = IssuerStore()) throws -> VerifiedOCSPResponse {
        let record = try CertificateBundle.load(path: bundle, now: UTCTime.now(), issuers: issuers)
        guard let der = try StapleFile.read(forCertificate: bundle) else { throw CocoaError(.fileNoSuchFile) }
        return try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now())
    }

    /// Whether this process may mount file systems (root in a container may not).
    static func mountTmpfs(at path: String, size: String) -> Bool {
        (try? Shell.run(["mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path], allowFailure: true).status) == 0
    }

    static func unmount(_ path: String) {
        _ = try? Shell.run(["umount", "-l", path], allowFailure: true)
    }
}
