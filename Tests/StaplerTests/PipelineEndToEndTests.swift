import Foundation
import TestSupport
import XCTest

/// The stapling pipeline as an operator meets it: the built `stapler` binary run as a process
/// against certificate directories, a real `openssl ocsp` responder and misbehaving HTTP
/// responders, all on 127.0.0.1. Each test looks at what an operator would see: exit codes,
/// staple files (checked with `openssl ocsp -respin`), log lines, requests the responder got.
final class PipelineEndToEndTests: XCTestCase {
    // MARK: Shared fixture

    /// One PKI, one responder and every kind of certificate the tests need, made once for the
    /// class (openssl runs cost most of the time). Tests only read from it; each test gets its
    /// own certificate directory, and counts responder requests as differences.
    private final class Fixture {
        let temp: TemporaryDirectory
        let pki: TestPKI
        let responder: OCSPResponderProcess
        /// Nothing listens there: connections are refused.
        let deadURLs: [String]
        /// Ports of the scripted responders, started by the tests that need them.
        let failingPort: UInt16
        let garbagePort: UInt16

        let good: [TestPKI.Leaf]
        let revoked: TestPKI.Leaf
        let mustStaple: [TestPKI.Leaf]
        let noOCSP: TestPKI.Leaf
        let expired: TestPKI.Leaf
        /// AIA lists a dead responder first, then the live one.
        let fallback: TestPKI.Leaf
        /// AIA lists two dead responders.
        let unreachable: TestPKI.Leaf
        /// Not in the CA's database: the responder answers "unknown".
        let unknown: TestPKI.Leaf
        /// Their responders answer HTTP 500 and garbage.
        let failing: TestPKI.Leaf
        let garbage: TestPKI.Leaf
        /// Its responder embeds no certificate in its answers (Let's Encrypt's shape).
        let bare: TestPKI.Leaf
        let bareResponder: OCSPResponderProcess

        init() throws {
            temp = try TemporaryDirectory(prefix: "stapler-pipeline")
            pki = try TestPKI(directory: temp.file("pki"))
            let responderPort = freeLoopbackPort()
            let live = "http://127.0.0.1:\(responderPort)/"
            let deadPort = freeLoopbackPort()
            deadURLs = ["http://127.0.0.1:\(deadPort)/first", "http://127.0.0.1:\(deadPort)/second"]
            failingPort = freeLoopbackPort()
            garbagePort = freeLoopbackPort()

            good = try pki.issueLeaves(count: 6, commonName: "good.test", ocspURLs: [live])
            revoked = try pki.issueLeaf(commonName: "revoked.test", ocspURLs: [live])
            mustStaple = try pki.issueLeaves(count: 2, commonName: "must.test", ocspURLs: [live], mustStaple: true)
            noOCSP = try pki.issueLeaf(commonName: "no-ocsp.test", ocspURLs: [])
            expired = try pki.issueLeaf(commonName: "expired.test", ocspURLs: [live], expired: true)
            fallback = try pki.issueLeaf(commonName: "fallback.test", ocspURLs: [deadURLs[0], live])
            unreachable = try pki.issueLeaf(commonName: "unreachable.test", ocspURLs: deadURLs)
            failing = try pki.issueLeaf(commonName: "failing.test", ocspURLs: ["http://127.0.0.1:\(failingPort)/"])
            garbage = try pki.issueLeaf(commonName: "garbage.test", ocspURLs: ["http://127.0.0.1:\(garbagePort)/"])
            unknown = try pki.issueLeaf(commonName: "unknown.test", ocspURLs: [live])
            try pki.revoke(revoked)
            try pki.forget(unknown)
            let barePort = freeLoopbackPort()
            bare = try pki.issueLeaf(commonName: "bare.test", ocspURLs: ["http://127.0.0.1:\(barePort)/"])
            responder = try OCSPResponderProcess(pki: pki, port: responderPort)
            bareResponder = try OCSPResponderProcess(pki: pki, port: barePort, embeddingSigner: false)
        }
    }

    private static let shared = SharedFixture(make: { try Fixture() }, release: {
        $0.responder.stop()
        $0.bareResponder.stop()
    })

    override class func tearDown() {
        shared.tearDown()
        super.tearDown()
    }

    private var fixture: Fixture!
    private var pki: TestPKI { fixture.pki }
    private var responder: OCSPResponderProcess { fixture.responder }
    /// This test's own directory: certificate directories, config files, logs.
    private var work: TemporaryDirectory!

    override func setUpWithError() throws {
        fixture = try Self.shared.value()
        work = try TemporaryDirectory(prefix: "stapler-pipeline-test")
    }

    override func tearDown() {
        work = nil
        fixture = nil
    }

    // MARK: 1. A full pass

    func testOneOffStaplesEveryCertificateAndShoutsAboutTheRevokedOne() throws {
        let certs = try directory("certs")
        let goods = try (0..<3).map { try place(fixture.good[$0], as: "site\($0).pem", in: certs) }
        let revoked = try place(fixture.revoked, as: "revoked.pem", in: certs)

        let run = try stapler(["--one-off", certs])

        XCTAssertEqual(run.status, 0, run.output)
        for (index, bundle) in goods.enumerated() {
            XCTAssertEqual(try pki.verifyWithOpenSSL(staple: bundle + ".ocsp", for: fixture.good[index]), "good")
        }
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: revoked + ".ocsp", for: fixture.revoked), "revoked")
        let critical = lines(run.output, containing: "CRITICAL")
        XCTAssertEqual(critical.count, 1, run.output)
        XCTAssertTrue(critical.first?.contains(revoked) == true && critical.first?.contains("REVOKED") == true,
                      run.output)
    }

    /// Answers that embed no certificate take the verifier's fast path: stapled, checked by
    /// openssl, and recycled by the next run without asking again.
    func testAnswersWithoutEmbeddedCertificatesAreStapledAndRecycled() throws {
        let certs = try directory("certs")
        let bundle = try place(fixture.bare, as: "bare.pem", in: certs)

        let run = try stapler(["--one-off", certs])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: bundle + ".ocsp", for: fixture.bare), "good")
        let requests = fixture.bareResponder.requestCount(serial: fixture.bare.serial)
        XCTAssertGreaterThan(requests, 0)

        let recycled = try stapler(["--one-off", certs])
        XCTAssertEqual(recycled.status, 0, recycled.output)
        XCTAssertEqual(fixture.bareResponder.requestCount(serial: fixture.bare.serial), requests, "recycled, not asked again")
    }

    // MARK: 2. Recycling

    func testSecondRunRecyclesStaplesAndNoRecycleAsksAgain() throws {
        let certs = try directory("certs")
        let leaves = Array(fixture.good[0..<2])
        let bundles = try leaves.enumerated().map { try place($1, as: "site\($0).pem", in: certs) }

        XCTAssertEqual(try stapler(["--one-off", certs]).status, 0)
        let staples = try bundles.map { try Data(contentsOf: URL(fileURLWithPath: $0 + ".ocsp")) }
        let counts = leaves.map { responder.requestCount(serial: $0.serial) }

        let recycled = try stapler(["--one-off", certs])
        XCTAssertEqual(recycled.status, 0, recycled.output)
        XCTAssertEqual(leaves.map { responder.requestCount(serial: $0.serial) }, counts, "no request for good staples")
        XCTAssertEqual(try bundles.map { try Data(contentsOf: URL(fileURLWithPath: $0 + ".ocsp")) }, staples)

        let refetched = try stapler(["--one-off", "--no-recycle", certs])
        XCTAssertEqual(refetched.status, 0, refetched.output)
        XCTAssertEqual(leaves.map { responder.requestCount(serial: $0.serial) }, counts.map { $0 + 1 })
        for (leaf, bundle) in zip(leaves, bundles) {
            XCTAssertEqual(try pki.verifyWithOpenSSL(staple: bundle + ".ocsp", for: leaf), "good")
        }
    }

    func testStapleCloseToExpiryIsFetchedAgain() throws {
        let certs = try directory("certs")
        let leaf = fixture.good[2]
        let bundle = try place(leaf, as: "site.pem", in: certs)
        // 30 minutes left, less than the 2 hours --minimum-validity asks for.
        let old = try pki.ocspResponse(for: leaf, validForMinutes: 30)
        try old.write(to: URL(fileURLWithPath: bundle + ".ocsp"))
        let before = responder.requestCount(serial: leaf.serial)

        let run = try stapler(["--one-off", "--minimum-validity", "7200", certs])

        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(responder.requestCount(serial: leaf.serial), before + 1)
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: bundle + ".ocsp")), old)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: bundle + ".ocsp", for: leaf), "good")
        // The fresh staple is good for a day: `check` no longer warns.
        XCTAssertEqual(try stapler(["check", bundle]).status, 0)
    }

    // MARK: 3. Exit codes

    func testOneOffExitsOneAndNamesTheCertificateWhoseRespondersAreDown() throws {
        let certs = try directory("certs")
        let down = try place(fixture.unreachable, as: "down.pem", in: certs)
        let fine = try place(fixture.good[0], as: "fine.pem", in: certs)

        let run = try stapler(["--one-off", certs])

        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: down + ".ocsp"))
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: fine + ".ocsp", for: fixture.good[0]), "good")
        // One line names the certificate, every responder tried and why each failed.
        let failure = lines(run.output, containing: down)
        XCTAssertEqual(failure.count, 1, run.output)
        for url in fixture.deadURLs {
            XCTAssertTrue(failure.first?.contains("\(url): connect failed") == true, run.output)
        }
        XCTAssertTrue(lines(run.output, containing: fine).isEmpty, run.output)
        XCTAssertTrue(run.output.contains("1 stapled, 1 failed"), run.output)
    }

    func testUsageAndConfigurationErrorsExitTwoWithOneLine() throws {
        let certs = try directory("certs")
        let unknown = try stapler(["--one-off", "--no-such-option", certs])
        XCTAssertEqual(unknown.status, 2, unknown.output)
        XCTAssertEqual(nonEmptyLines(unknown.output).count, 1, unknown.output)
        XCTAssertTrue(unknown.output.contains("--no-such-option"), unknown.output)

        let config = work.file("stapler.conf")
        try """
        [stapled]
        cert-paths = [\(certs)]
        minimum-validity = soon
        one-off
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bad = try stapler(["-c", config])
        XCTAssertEqual(bad.status, 2, bad.output)
        XCTAssertEqual(nonEmptyLines(bad.output).count, 1, bad.output)
        XCTAssertTrue(bad.output.contains("\(config):3"), bad.output)
        XCTAssertTrue(bad.output.contains("minimum-validity"), bad.output)
    }

    // MARK: 4. The predecessor's config file

    func testStapledConfigFileWorksLikeTheFlags() throws {
        let certs = try directory("certs")
        let nested = try directory("certs/customers/a")
        let top = try place(fixture.good[3], as: "top.pem", in: certs)
        let deep = try place(fixture.good[4], as: "deep.crt", in: nested)
        let config = work.file("stapled.conf")
        try """
        # Stapled configuration, as the Python daemon read it.
        [stapled]
        ; where the certificates live
        cert-paths = [\(certs)]
        recursive = true
        verbosity = 3
        minimum-validity: 3600
        renewal-threads 2
        refresh-interval = 60   ; seconds
        one-off
        """.write(toFile: config, atomically: true, encoding: .utf8)

        let run = try stapler(["-c", config])

        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: top + ".ocsp", for: fixture.good[3]), "good")
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: deep + ".ocsp", for: fixture.good[4]), "good")
        // verbosity = 3 is info: the staples written are reported.
        XCTAssertFalse(lines(run.output, containing: "INFO").isEmpty, run.output)
        XCTAssertTrue(run.output.contains(deep), run.output)
    }

    // MARK: 5. Several responder URLs

    func testSecondResponderURLServesWhenTheFirstIsDown() throws {
        let certs = try directory("certs")
        let bundle = try place(fixture.fallback, as: "fallback.pem", in: certs)

        let run = try stapler(["--one-off", "-v", certs])

        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: bundle + ".ocsp", for: fixture.fallback), "good")
        XCTAssertFalse(run.output.contains(fixture.deadURLs[0]), "a failure followed by a success is no news")
        XCTAssertTrue(lines(run.output, containing: "WARNING").isEmpty && lines(run.output, containing: "ERROR").isEmpty,
                      run.output)
    }

    // MARK: 6. Files with nothing to staple

    func testFilesWithNothingToStapleAreNeverQueried() throws {
        let certs = try directory("certs")
        let noOCSP = try place(fixture.noOCSP, as: "no-ocsp.pem", in: certs)
        let expired = try place(fixture.expired, as: "expired.pem", in: certs)
        let keyOnly = certs + "/key.pem"
        try FileManager.default.copyItem(atPath: fixture.good[0].key, toPath: keyOnly)
        let caOnly = certs + "/ca.pem"
        try FileManager.default.copyItem(atPath: pki.certificate, toPath: caOnly)
        let fine = try place(fixture.good[0], as: "fine.pem", in: certs)
        let before = responder.requestCount(serial: fixture.expired.serial)

        let run = try stapler(["--one-off", "-v", certs])

        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: fine + ".ocsp", for: fixture.good[0]), "good")
        let noOCSPLines = lines(run.output, containing: noOCSP)
        XCTAssertEqual(noOCSPLines.count, 1, run.output)
        XCTAssertTrue(noOCSPLines.first?.contains(" INFO ") == true, run.output)
        XCTAssertTrue(noOCSPLines.first?.contains("no OCSP responder URL") == true, run.output)
        XCTAssertTrue(run.output.contains(expired) && run.output.contains("expired"), run.output)
        XCTAssertEqual(responder.requestCount(serial: fixture.expired.serial), before, "no query for an expired certificate")
        XCTAssertTrue(lines(run.output, containing: keyOnly).isEmpty, run.output)
        XCTAssertTrue(lines(run.output, containing: caOnly).isEmpty, run.output)
        for path in [noOCSP, expired, keyOnly, caOnly] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".ocsp"), path)
        }
    }

    func testOneOffFailsForACertificateFileItCannotUse() throws {
        let certs = try directory("certs")
        let fine = try place(fixture.good[0], as: "fine.pem", in: certs)
        let broken = certs + "/broken.pem"
        let text = try String(contentsOfFile: fine, encoding: .utf8)
        try String(text.prefix(text.count / 3)).write(toFile: broken, atomically: true, encoding: .utf8)

        let run = try stapler(["--one-off", certs])

        XCTAssertEqual(run.status, 1, "a truncated bundle is a failure of the pass:\n\(run.output)")
        XCTAssertEqual(lines(run.output, containing: broken).count, 1, run.output)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: fine + ".ocsp", for: fixture.good[0]), "good")
    }

    func testNoRecycleStillKnowsTheStapleOnDiskWhenTheFetchFails() throws {
        let certs = try directory("certs")
        let site = try place(fixture.good[0], as: "site.pem", in: certs)
        XCTAssertEqual(try stapler(["--one-off", certs]).status, 0)
        // A certificate whose responder is down (a closed port), with a good staple on disk.
        let closed = "http://127.0.0.1:\(freeLoopbackPort())/"
        let leaf = try pki.issueLeaf(ocspURLs: [closed])
        try pki.writeBundle(leaf, to: site)
        try pki.ocspResponse(for: leaf).write(to: URL(fileURLWithPath: site + ".ocsp"))

        let run = try stapler(["--one-off", "--no-recycle", certs])

        XCTAssertEqual(run.status, 1, run.output)
        let failure = lines(run.output, containing: "OCSP fetch failed")
        XCTAssertEqual(failure.count, 1, run.output)
        XCTAssertTrue(failure.first?.contains("serving the staple valid until") == true, run.output)
    }

    // MARK: 7. Daemon mode

    func testDaemonStaplesStaysSingleThreadedReportsStatusAndStopsOnSIGTERM() throws {
        let certs = try directory("certs")
        let leaves = Array(fixture.good[0..<3])
        let bundles = try leaves.enumerated().map { try place($1, as: "site\($0).pem", in: certs) }
        let noOCSP = try place(fixture.noOCSP, as: "no-ocsp.pem", in: certs)

        let daemon = try StaplerProcess(["-v", certs], logPath: work.file("daemon.log"))
        XCTAssertTrue(waitUntil(timeout: 10) { bundles.allSatisfy { FileManager.default.fileExists(atPath: $0 + ".ocsp") } },
                      daemon.log)
        XCTAssertTrue(daemon.waitForLog("staple written", count: 3), daemon.log)
        for (leaf, bundle) in zip(leaves, bundles) {
            XCTAssertEqual(try pki.verifyWithOpenSSL(staple: bundle + ".ocsp", for: leaf), "good")
        }
        XCTAssertTrue(daemon.isRunning)
        XCTAssertEqual(daemon.threadCount, 1, "one thread: IP-literal responders need no resolver thread")

        // A touched file is read again; the one without OCSP URL is still reported only once.
        try touch(noOCSP)
        try touch(bundles[0])
        XCTAssertTrue(daemon.waitForLog("\(bundles[0]): changed on disk"), daemon.log)
        XCTAssertTrue(daemon.waitForLog("staple written", count: 4), daemon.log)
        XCTAssertEqual(lines(daemon.log, containing: "no OCSP responder URL").count, 1, daemon.log)

        daemon.signal(SIGUSR1)
        XCTAssertTrue(daemon.waitForLog("status:"), daemon.log)
        let report = daemon.log.components(separatedBy: "status:").last ?? ""
        XCTAssertTrue(waitUntil(timeout: 5) {
            let report = daemon.log.components(separatedBy: "status:").last ?? ""
            return (bundles + [noOCSP]).allSatisfy { report.contains($0) }
        }, report)
        let table = daemon.log.components(separatedBy: "status:").last ?? ""
        XCTAssertEqual(lines(table, containing: "staple good, valid until").count, 3, daemon.log)
        let inactive = lines(table, containing: noOCSP)
        XCTAssertEqual(inactive.count, 1, daemon.log)
        XCTAssertTrue(inactive.first?.contains("\(noOCSP): inactive (certificate \"CN=no-ocsp.test\" has no OCSP") == true,
                      daemon.log)

        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 2), 0, daemon.log)
    }

    func testSIGTERMDuringAFetchStopsAtOnceWithoutAFailureLine() throws {
        let hanging = try HostileResponder(port: fixture.failingPort, fallback: .hang)
        defer { hanging.stop() }
        let certs = try directory("certs")
        let bundle = try place(fixture.failing, as: "slow.pem", in: certs)

        let daemon = try StaplerProcess(["-v", certs], logPath: work.file("daemon.log"))
        XCTAssertTrue(waitUntil(timeout: 10) { hanging.requestCount == 1 }, daemon.log)
        daemon.signal(SIGTERM)

        XCTAssertEqual(daemon.waitForExit(timeout: 2), 0, daemon.log)
        XCTAssertTrue(lines(daemon.log, containing: bundle).isEmpty, "shutting down is no fetch failure: \(daemon.log)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: bundle + ".ocsp"))
    }

    // MARK: 8. Misbehaving responders

    func testDaemonLogsAFailureOnceAndSaysWhenItRecovers() throws {
        let server = try HostileResponder(port: fixture.failingPort, fallback: .raw(Self.http500))
        defer { server.stop() }
        let certs = try directory("certs")
        let bundle = try place(fixture.failing, as: "flaky.pem", in: certs)
        let daemon = try StaplerProcess(["-v", certs], logPath: work.file("daemon.log"))
        defer { daemon.signal(SIGTERM) }
        XCTAssertTrue(daemon.waitForLog("\(bundle): OCSP fetch failed"), daemon.log)

        // Touching the file asks for a fetch now; failing the same way again is no news.
        try touch(bundle)
        XCTAssertTrue(waitUntil(timeout: 10) { server.requestCount == 2 }, daemon.log)
        XCTAssertTrue(waitUntil(timeout: 10) {
            daemon.signal(SIGUSR1)
            return daemon.waitForLog("last error (2 attempt(s))", timeout: 0.5)
        }, daemon.log)
        XCTAssertEqual(lines(daemon.log, containing: "OCSP fetch failed").count, 1, daemon.log)

        var good = Array("HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nConnection: close\r\n".utf8)
        let staple = try pki.ocspResponse(for: fixture.failing)
        good += Array("Content-Length: \(staple.count)\r\n\r\n".utf8) + Array(staple)
        server.setFallback(.raw(good))
        try touch(bundle)
        XCTAssertTrue(daemon.waitForLog("\(bundle): staple written"), daemon.log)
        XCTAssertTrue(daemon.waitForLog("\(bundle): recovered after 2 failed attempt(s)"), daemon.log)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: bundle + ".ocsp", for: fixture.failing), "good")
    }

    func testResponderErrorsLeaveTheStapleOnDiskUntouched() throws {
        let failingServer = try HostileResponder(port: fixture.failingPort, fallback: .raw(Self.http500))
        defer { failingServer.stop() }
        var garbage = Array("""
            HTTP/1.1 200 OK\r
            Content-Type: application/ocsp-response\r
            Content-Length: 24\r
            Connection: close\r
            \r

            """.utf8)
        garbage += [0x30, 0x82, 0xff, 0xff] + Array(repeating: 0xa5, count: 20)
        let garbageServer = try HostileResponder(port: fixture.garbagePort, fallback: .raw(garbage))
        defer { garbageServer.stop() }

        let certs = try directory("certs")
        var staples: [String: Data] = [:]
        for (leaf, name) in [(fixture.failing, "failing.pem"), (fixture.garbage, "garbage.pem")] {
            let bundle = try place(leaf, as: name, in: certs)
            // Close to expiry, so a fetch is due.
            staples[bundle] = try pki.ocspResponse(for: leaf, validForMinutes: 30)
            try staples[bundle]!.write(to: URL(fileURLWithPath: bundle + ".ocsp"))
        }

        let run = try stapler(["--one-off", certs])

        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertEqual(failingServer.requestCount, 1)
        XCTAssertEqual(garbageServer.requestCount, 1)
        for (bundle, bytes) in staples {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: bundle + ".ocsp")), bytes, "\(bundle) untouched")
        }
        // One line each: the path, the responder URL and what was wrong with its answer.
        let failing = lines(run.output, containing: certs + "/failing.pem")
        XCTAssertEqual(failing.count, 1, run.output)
        XCTAssertTrue(failing.first?.contains("http://127.0.0.1:\(fixture.failingPort)/: HTTP status 500") == true,
                      run.output)
        XCTAssertTrue(failing.first?.contains("serving the staple valid until") == true, run.output)
        let garbled = lines(run.output, containing: certs + "/garbage.pem")
        XCTAssertEqual(garbled.count, 1, run.output)
        XCTAssertTrue(garbled.first?.contains("http://127.0.0.1:\(fixture.garbagePort)/: not a DER OCSP response") == true,
                      run.output)
    }

    func testResponderThatDoesNotKnowTheCertificateIsAFailureNotAStaple() throws {
        let certs = try directory("certs")
        let bundle = try place(fixture.unknown, as: "new.pem", in: certs)

        let run = try stapler(["--one-off", certs])

        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: bundle + ".ocsp"))
        let failure = lines(run.output, containing: bundle)
        XCTAssertEqual(failure.count, 1, run.output)
        XCTAssertTrue(failure.first?.contains("\(responder.url): responder does not know this certificate") == true,
                      run.output)
    }

    // MARK: 9. stapler check

    func testCheckExitCodesFollowTheStapleOnDisk() throws {
        let certs = try directory("certs")
        let fresh = try place(fixture.good[0], as: "fresh.pem", in: certs)
        try pki.ocspResponse(for: fixture.good[0]).write(to: URL(fileURLWithPath: fresh + ".ocsp"))
        let missing = try place(fixture.good[1], as: "missing.pem", in: certs)
        let revoked = try place(fixture.revoked, as: "revoked.pem", in: certs)
        try pki.ocspResponse(for: fixture.revoked).write(to: URL(fileURLWithPath: revoked + ".ocsp"))
        let expiring = try place(fixture.good[2], as: "expiring.pem", in: certs)
        try pki.ocspResponse(for: fixture.good[2], validForMinutes: 30).write(to: URL(fileURLWithPath: expiring + ".ocsp"))

        let ok = try stapler(["check", fresh])
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertTrue(ok.output.hasPrefix("STAPLER OK - "), ok.output)
        XCTAssertEqual(try stapler(["check", missing]).status, 2)
        let revokedCheck = try stapler(["check", revoked])
        XCTAssertEqual(revokedCheck.status, 2, revokedCheck.output)
        XCTAssertTrue(revokedCheck.output.hasPrefix("STAPLER CRITICAL - "), revokedCheck.output)
        XCTAssertEqual(try stapler(["check", expiring]).status, 1)
        XCTAssertEqual(try stapler(["check", "--minimum-validity", "600", expiring]).status, 0)
        XCTAssertEqual(try stapler(["check", fresh, expiring]).status, 1, "the worst verdict wins")

        let before = responder.requestCount(serial: fixture.good[1].serial)
        let fetched = try stapler(["check", "--fetch", missing])
        XCTAssertEqual(fetched.status, 2, "still no staple file: --fetch writes nothing")
        XCTAssertEqual(responder.requestCount(serial: fixture.good[1].serial), before + 1, fetched.output)
        XCTAssertTrue(fetched.output.contains("good"), fetched.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: missing + ".ocsp"))
    }

    // MARK: 10. Must-Staple first

    func testMustStapleCertificatesAreFetchedFirst() throws {
        let certs = try directory("certs")
        // File names put the Must-Staple ones anywhere but first in a scan.
        for (index, leaf) in fixture.good.enumerated() { _ = try place(leaf, as: "plain-\(index).pem", in: certs) }
        for (index, leaf) in fixture.mustStaple.enumerated() { _ = try place(leaf, as: "zz-must-\(index).pem", in: certs) }
        let logStart = responder.log.utf8.count

        let run = try stapler(["--one-off", "-t", "1", certs])

        XCTAssertEqual(run.status, 0, run.output)
        let served = String(decoding: Array(responder.log.utf8).dropFirst(logStart), as: UTF8.self)
        let order = served.components(separatedBy: "Serial Number: ").dropFirst()
            .compactMap { $0.split(separator: "\n").first.map(String.init) }
        XCTAssertEqual(order.count, fixture.good.count + fixture.mustStaple.count, served)
        XCTAssertEqual(Set(order.prefix(fixture.mustStaple.count)), Set(fixture.mustStaple.map(\.serial)),
                       "requests in order: \(order)")
    }

    // MARK: Helpers

    private static let http500 = Array(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\noops!\n"
            .utf8)

    /// What an operator does to ask for a fresh staple now.
    private func touch(_ path: String) throws {
        try FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: path)
    }

    private func directory(_ name: String) throws -> String {
        let path = work.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// An HAProxy-style bundle (leaf, issuer, key) named `name` in `directory`.
    private func place(_ leaf: TestPKI.Leaf, as name: String, in directory: String) throws -> String {
        let path = "\(directory)/\(name)"
        try pki.writeBundle(leaf, to: path)
        return path
    }

    private func stapler(_ arguments: [String]) throws -> (status: Int32?, output: String) {
        try StaplerProcess.run(arguments, in: work.path, timeout: 30)
    }

    private func lines(_ text: String, containing needle: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.contains(needle) }
    }

    private func nonEmptyLines(_ text: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    }
}

