import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The wall clock against the real binary: a step is noticed while running, and staples
/// written under a clock weeks behind are fetched again once the clock is right.
final class TimeEndToEndTests: XCTestCase {
    /// libfaketime, from Debian's faketime package (contrib/install-prerequisites.sh).
    static let faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

    /// A clock three weeks behind for the process it is given to; the boot clock untouched.
    static func threeWeeksAgo() -> [String: String] {
        ["LD_PRELOAD": faketime, "FAKETIME": "-21d", "DONT_FAKE_MONOTONIC": "1"]
    }

    /// Runs `body` with every child process it starts (openssl) under that clock.
    static func underFakeClock<T>(_ body: () throws -> T) rethrows -> T {
        for (name, value) in threeWeeksAgo() { setenv(name, value, 1) }
        defer { for name in threeWeeksAgo().keys { unsetenv(name) } }
        return try body()
    }

    /// Sets CLOCK_REALTIME `nanoseconds` away from where it is (root only).
    static func stepWallClock(byNanoseconds nanoseconds: Int64) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let total = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec) + nanoseconds
        var target = timespec(tv_sec: Int(total / 1_000_000_000), tv_nsec: Int(total % 1_000_000_000))
        XCTAssertEqual(clock_settime(CLOCK_REALTIME, &target), 0, String(cString: strerror(errno)))
    }

    func testARunningDaemonNoticesAClockStepAndJudgesItsStaplesAgain() throws {
        guard getuid() == 0 else { throw XCTSkip("setting the clock needs root (CI runs as root)") }
        let temp = try TemporaryDirectory(prefix: "stapler-clock-step")
        let pki = try TestPKI(directory: temp.file("pki"))
        let port = freeLoopbackPort()
        let leaves = try pki.issueLeaves(count: 3, ocspURLs: ["http://127.0.0.1:\(port)/"])
        let responder = try OCSPResponderProcess(pki: pki, port: port)
        defer { responder.stop() }
        let certs = try Hardening.makeDirectory(temp.file("certs"))
        for (index, leaf) in leaves.enumerated() { try pki.writeBundle(leaf, to: "\(certs)/site-\(index).pem") }
        let daemon = try StaplerProcess(["--verbosity", "4", certs], logPath: temp.file("daemon.log"))
        defer { daemon.signal(SIGKILL) }
        XCTAssertTrue(daemon.waitForLog("staple written", count: 3, timeout: 20), daemon.log)
        XCTAssertFalse(daemon.log.contains("wall clock stepped"), "no step yet: \(daemon.log)")

        // A millisecond: the kernel reports it, but it changes no judgement of a staple.
        Self.stepWallClock(byNanoseconds: 1_000_000)
        XCTAssertTrue(daemon.waitForLog("too little to judge them again", timeout: 5), daemon.log)
        XCTAssertFalse(daemon.log.contains("wall clock stepped"), daemon.log)

        // Two seconds forward, then back: the kernel reports each step. (Some VMs have their
        // clock set by the host every fraction of a second by half a millisecond: too little
        // to judge staples again; they add up with the large step.)
        Self.stepWallClock(byNanoseconds: 2_000_000_000)
        defer { Self.stepWallClock(byNanoseconds: -2_000_000_000) }
        XCTAssertTrue(daemon.waitForLog("WARNING wall clock stepped by +2 s", timeout: 5), daemon.log)
        let line = Hardening.lines(daemon.log, containing: "wall clock stepped").first ?? ""
        XCTAssertTrue(line.contains("0 staple(s) expired or within --minimum-validity, fetching now; "
                                    + "3 refresh(es) rescheduled"), line)
        XCTAssertEqual(responder.requestCount, 3, "valid staples are not fetched again")
        XCTAssertTrue(daemon.isRunning)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
    }

    /// A host that booted with its clock three weeks behind: the staples written then are
    /// long expired by the real clock. The daemon restarted under the real clock fetches
    /// them again at once.
    func testStaplesWrittenUnderAWrongClockAreFetchedAgainUnderTheRightOne() throws {
        guard FileManager.default.fileExists(atPath: Self.faketime) else {
            throw XCTSkip("libfaketime is not installed (Debian package faketime)")
        }
        let temp = try TemporaryDirectory(prefix: "stapler-wrong-clock")
        let port = freeLoopbackPort()
        let certs = try Hardening.makeDirectory(temp.file("certs"))
        // The whole first life under the wrong clock: the CA and certificates it issues (so
        // they are valid by that clock too), the responder, and one daemon pass.
        let (pki, leaves, bundles) = try Self.underFakeClock { () throws -> (TestPKI, [TestPKI.Leaf], [String]) in
            let pki = try TestPKI(directory: temp.file("pki"))
            let leaves = try pki.issueLeaves(count: 2, ocspURLs: ["http://127.0.0.1:\(port)/"])
            let bundles = try leaves.enumerated().map { index, leaf -> String in
                let path = "\(certs)/site-\(index).pem"
                try pki.writeBundle(leaf, to: path)
                return path
            }
            return (pki, leaves, bundles)
        }
        // The staples that life left on disk, signed and dated by the responder under that
        // clock. (The daemon itself cannot run under libfaketime: preloaded, it hides the
        // command line from Swift's runtime, though a C program still sees it.)
        try Self.underFakeClock {
            for (bundle, leaf) in zip(bundles, leaves) {
                try pki.ocspResponse(for: leaf).write(to: URL(fileURLWithPath: bundle + ".ocsp"))
            }
        }
        let realNow = UTCTime.now()
        for bundle in bundles {
            XCTAssertThrowsError(try Hardening.verifiedStaple(bundle: FilePath(bundle)), "expired by the real clock")
            let record = try CertificateBundle.load(path: FilePath(bundle), now: realNow, issuers: IssuerStore())
            let staple = try OCSPResponseVerifier.verify(try StapleFile.read(forCertificate: FilePath(bundle)) ?? [],
                                                         for: record, now: realNow - 21 * 86400 + 600)
            XCTAssertLessThan(staple.nextUpdate, realNow - 19 * 86400, "dated by the wrong clock")
        }

        let responder = try OCSPResponderProcess(pki: pki, port: port)
        defer { responder.stop() }
        let daemon = try StaplerProcess(["-v", certs], logPath: temp.file("daemon.log"))
        defer { daemon.signal(SIGKILL) }
        for bundle in bundles {
            XCTAssertTrue(daemon.waitForLog("\(bundle): staple written", timeout: 15), daemon.log)
            XCTAssertTrue(daemon.log.contains("\(bundle).ocsp: not reusable"), daemon.log)
            let staple = try Hardening.verifiedStaple(bundle: FilePath(bundle))
            XCTAssertGreaterThan(staple.nextUpdate, UTCTime.now() + 3600)
        }
        XCTAssertEqual(responder.requestCount, 2, "each fetched once, at once")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
    }
}
