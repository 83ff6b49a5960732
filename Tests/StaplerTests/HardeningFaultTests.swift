import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// Faults from below: a full disk, a kill -9 halfway through a cold start, a responder that
/// stays down. Nothing on disk is ever half written, nothing is lost, memory stays flat.
final class HardeningFaultTests: XCTestCase {
    /// One CA with 2,000 certificates whose OCSP URL is `port`; each test starts (or not) a
    /// responder there.
    private final class Fixture {
        let temp: TemporaryDirectory
        let pki: TestPKI
        let port: UInt16
        let leaves: [TestPKI.Leaf]
        /// Leaf PEM followed by the CA PEM, for each leaf.
        let bundleTexts: [Data]

        init() throws {
            temp = try TemporaryDirectory(prefix: "stapler-hardening-faults")
            pki = try TestPKI(directory: temp.file("pki"))
            port = freeLoopbackPort()
            leaves = try pki.issueLeaves(count: HardeningFaultTests.crowd, commonName: "fault.test",
                                         ocspURLs: ["http://127.0.0.1:\(port)/"])
            let ca = try Data(contentsOf: URL(fileURLWithPath: pki.certificate))
            bundleTexts = try leaves.map { try Data(contentsOf: URL(fileURLWithPath: $0.certificate)) + ca }
        }

        /// Writes every bundle into `directory`; returns their paths.
        func writeBundles(into directory: String, count: Int = HardeningFaultTests.crowd) throws -> [String] {
            try (0..<count).map { index in
                let path = "\(directory)/site-\(index).pem"
                try bundleTexts[index].write(to: URL(fileURLWithPath: path))
                return path
            }
        }
    }

    static let crowd = 2000

    private static let shared = SharedFixture { try Fixture() }

    override class func tearDown() {
        shared.tearDown()
        super.tearDown()
    }

    private var fixture: Fixture!
    private var pki: TestPKI { fixture.pki }
    private var work: TemporaryDirectory!

    override func setUpWithError() throws {
        fixture = try Self.shared.value()
        work = try TemporaryDirectory(prefix: "stapler-hardening-faults-test")
    }

    override func tearDown() {
        work = nil
        fixture = nil
    }

    // MARK: Disk full

    func testFullDiskLeavesTheOldStapleAndTheWriteIsRetried() throws {
        let certs = try Hardening.makeDirectory(work.file("small-disk"))
        let mounted = Hardening.mountTmpfs(at: certs, size: "64k")
        defer { if mounted { Hardening.unmount(certs) } }
        let bundle = try fixture.writeBundles(into: certs, count: 1)[0]
        let old = try pki.ocspResponse(for: fixture.leaves[0], validForMinutes: 30)
        try old.write(to: URL(fileURLWithPath: bundle + ".ocsp"))
        let filler = "\(certs)/filler"
        let daemon: WrappedStaplerProcess
        if mounted {
            fill(filler)
            daemon = try WrappedStaplerProcess(wrapper: ["env"], arguments: ["-v", certs], logPath: work.file("daemon.log"))
        } else {
            // No mount here: a file size limit stands in for the full disk. The daemon must
            // not die of SIGXFSZ, so it runs with the signal ignored, as its start-up does.
            let limit = old.count - 1
            daemon = try WrappedStaplerProcess(
                wrapper: ["bash", "-c", "trap '' XFSZ; exec prlimit --fsize=\(limit) -- \"$@\"", "bash"],
                arguments: ["-v", certs], logPath: work.file("daemon.log"), throughPipe: true)
        }
        defer { daemon.signal(SIGKILL) }
        let responder = try OCSPResponderProcess(pki: pki, port: fixture.port)
        defer { responder.stop() }

        XCTAssertTrue(daemon.waitForLog("\(bundle): staple not written: "), daemon.log)
        let failure = Hardening.lines(daemon.log, containing: "\(bundle): staple not written")
        XCTAssertEqual(failure.count, 1, daemon.log)
        XCTAssertTrue(failure.first?.contains(mounted ? "No space left on device" : "File too large") == true, daemon.log)
        XCTAssertNotNil(failure.first?.range(of: #"serving the staple valid until .*; retrying in \d+ s\)$"#,
                                             options: .regularExpression), daemon.log)
        XCTAssertEqual(Hardening.contents(bundle + ".ocsp"), old, "the old staple, whole")
        XCTAssertTrue(Hardening.temporaryFiles(in: certs).isEmpty, "no partial file left behind")
        XCTAssertTrue(daemon.isRunning)

        // Space again: the retry (brought forward by a touch) fetches and writes.
        guard mounted else { return }
        try FileManager.default.removeItem(atPath: filler)
        try Hardening.touch(bundle)
        XCTAssertTrue(daemon.waitForLog("\(bundle): staple written"), daemon.log)
        XCTAssertTrue(daemon.waitForLog("\(bundle): recovered after 1 failed attempt(s)"), daemon.log)
        XCTAssertNotEqual(Hardening.contents(bundle + ".ocsp"), old)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: bundle + ".ocsp", for: fixture.leaves[0]), "good")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
    }

    /// Fills the file system holding `path` until it refuses another byte.
    private func fill(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x55, count: 1024)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        var byte: UInt8 = 1
        while write(fd, &byte, 1) > 0 {}
    }

    // MARK: kill -9

    func testKillDuringColdStartLeavesOnlyWholeStaplesAndTheRestartRecyclesThem() throws {
        let certs = try Hardening.makeDirectory(work.file("certs"))
        let bundles = try fixture.writeBundles(into: certs)
        let responder = try OCSPResponderProcess(pki: pki, port: fixture.port)
        defer { responder.stop() }

        let daemon = try StaplerProcess(["-t", "8", certs], logPath: work.file("daemon.log"))
        XCTAssertTrue(waitUntil(timeout: 60, interval: 0.01) { self.staples(in: certs).count >= 150 }, daemon.log)
        daemon.signal(SIGKILL)
        XCTAssertNotNil(daemon.waitForExit(timeout: 5))

        let onDisk = staples(in: certs)
        XCTAssertLessThan(onDisk.count, bundles.count, "killed halfway")
        let issuers = IssuerStore()
        for name in onDisk {
            let bundle = FilePath("\(certs)/\(name.dropLast(".ocsp".count))")
            XCTAssertNoThrow(try Hardening.verifiedStaple(bundle: bundle, issuers: issuers), "\(name) is whole and valid")
        }
        // Writes cut short leave hidden temporary files, which HAProxy never loads: at most
        // the batch that was waiting for its commit.
        let leftovers = Hardening.temporaryFiles(in: certs)
        XCTAssertTrue(leftovers.allSatisfy { $0.hasPrefix(".") }, "\(leftovers)")
        XCTAssertLessThanOrEqual(leftovers.count, 128, "at most one uncommitted batch: \(leftovers)")

        // A fresh responder for the restart: connections the dead daemon left in the old
        // one's queue leave `openssl ocsp` waiting for requests that never come.
        responder.stop()
        let second = try OCSPResponderProcess(pki: pki, port: fixture.port)
        defer { second.stop() }

        let restart = try StaplerProcess.run(["--one-off", certs], in: work.path, timeout: 120)

        XCTAssertEqual(restart.status, 0, String(restart.output.suffix(2000)))
        XCTAssertEqual(second.requestCount, bundles.count - onDisk.count,
                       "one request per certificate without a staple, none for the staples already there")
        XCTAssertEqual(staples(in: certs).count, bundles.count)
        XCTAssertEqual(Hardening.temporaryFiles(in: certs), [], "the restart removes what the killed writer left")
        for bundle in bundles {
            XCTAssertNoThrow(try Hardening.verifiedStaple(bundle: FilePath(bundle), issuers: issuers), bundle)
        }
    }

    private func staples(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".ocsp") }
    }

    // MARK: Responder down

    func testMemoryStaysFlatWhileTheResponderIsDown() throws {
        XCTAssertFalse(loopbackPortAccepts(fixture.port), "nothing listens: every fetch is refused")
        let certs = try Hardening.makeDirectory(work.file("certs"))
        let bundles = try fixture.writeBundles(into: certs, count: 1000)
        let daemon = try StaplerProcess(["-t", "8", certs], logPath: work.file("daemon.log"))
        defer { daemon.signal(SIGKILL) }

        XCTAssertTrue(daemon.waitForLog("OCSP fetch failed", count: bundles.count, timeout: 60),
                      String(daemon.log.suffix(2000)))
        var samples: [Int] = []
        // Each round: every file touched (a forced refresh), every fetch refused again.
        for round in 1...4 {
            for bundle in bundles { try Hardening.touch(bundle) }
            XCTAssertTrue(waitForRound(daemon, attempts: round + 1, certificates: bundles.count),
                          "round \(round): \(String(daemon.log.suffix(3000)))")
            samples.append(try XCTUnwrap(daemon.residentKiB))
        }
        XCTAssertTrue(daemon.isRunning)
        // The first rounds may grow the allocator's pools; after that, no steady growth.
        let settled = samples[1]
        let last = samples.last!
        XCTAssertLessThan(last - settled, 512, "VmRSS (KiB) per round: \(samples)")
        XCTAssertEqual(Hardening.lines(daemon.log, containing: "OCSP fetch failed").count, bundles.count,
                       "a failure repeated the same way is logged once")
        print("VmRSS per round (KiB), \(bundles.count) certificates, responder down: \(samples)")
    }

    /// Asks for the status table until it shows every certificate failed `attempts` times
    /// (or more) and nothing queued or running. Reads only what the log gained since the
    /// request: the tables are long.
    private func waitForRound(_ daemon: StaplerProcess, attempts: Int, certificates: Int) -> Bool {
        waitUntil(timeout: 30, interval: 0.2) {
            let offset = Self.size(of: daemon.logPath)
            daemon.signal(SIGUSR1)
            var report: [Substring] = []
            guard waitUntil(timeout: 5, {
                let text = Self.text(of: daemon.logPath, from: offset)
                guard let start = text.range(of: " status: ") else { return false }
                report = text[start.lowerBound...].split(separator: "\n").filter { $0.contains(" status: ") || $0.contains("/site-") }
                return report.count >= certificates + 1
            }) else { return false }
            guard report.first?.contains("0 fetch(es) running, 0 queued") == true else { return false }
            let done = report.dropFirst().filter { line in
                guard let range = line.range(of: #"last error \((\d+) attempt"#, options: .regularExpression) else { return false }
                let digits = line[range].dropFirst("last error (".count).prefix { $0.isNumber }
                return (Int(digits) ?? 0) >= attempts
            }
            return done.count == certificates
        }
    }

    private static func size(of path: String) -> UInt64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.uint64Value ?? 0
    }

    private static func text(of path: String, from offset: UInt64) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        return String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
    }
}
