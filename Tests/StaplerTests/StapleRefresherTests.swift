import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The refresher on a real loop against a real responder: a certificate in, one outcome
/// out, and the staple on disk as the outcome says.
final class StapleRefresherTests: XCTestCase {
    private struct Rig {
        let temp: TemporaryDirectory
        let pki: TestPKI
        let loop: EventLoop
        let logger: Logger
        let refresher: StapleRefresher
        let statistics: Statistics
        var outcomes: () -> [(FilePath, StapleRefresher.Outcome)]

        var log: String { (try? String(contentsOfFile: temp.file(Logger.fileName), encoding: .utf8)) ?? "" }

        /// A leaf and a real responder that knows it (openssl ocsp reads its index at start:
        /// the leaf comes first).
        func leafWithResponder() throws -> (TestPKI.Leaf, OCSPResponderProcess) {
            let port = freeLoopbackPort()
            let leaf = try pki.issueLeaf(ocspURLs: ["http://127.0.0.1:\(port)/"])
            return (leaf, try OCSPResponderProcess(pki: pki, port: port))
        }

        func track(_ leaf: TestPKI.Leaf, name: String) throws -> TrackedCertificate {
            let path = temp.file(name)
            try pki.writeBundle(leaf, to: path)
            let certificate = TrackedCertificate(path: FilePath(path), location: 0, fileStatus: try FileSystem.status(FilePath(path)))
            certificate.record = try CertificateBundle.load(path: certificate.path, now: UTCTime.now(), issuers: IssuerStore())
            return certificate
        }
    }

    private func makeRig(prefix: String, settings: StapleRefresher.Settings = .init()) throws -> Rig {
        let temp = try TemporaryDirectory(prefix: prefix)
        let pki = try TestPKI(directory: temp.file("pki"))
        let loop = try EventLoop()
        let logger = try Logger(verbosity: .debug, toStandardOutput: false, directory: FilePath(temp.path), syslog: false)
        final class Box { var outcomes: [(FilePath, StapleRefresher.Outcome)] = [] }
        let box = Box()
        let statistics = Statistics()
        let refresher = try StapleRefresher(loop: loop, logger: logger, statistics: statistics, settings: settings) {
            box.outcomes.append(($0.path, $1))
        }
        return Rig(temp: temp, pki: pki, loop: loop, logger: logger, refresher: refresher, statistics: statistics,
                   outcomes: { box.outcomes })
    }

    override class func setUp() {
        super.setUp()
        try? HTTPClient.globalInit()
    }

    func testAFetchedStapleIsWrittenScheduledAndHandedOn() throws {
        let rig = try makeRig(prefix: "stapler-refresher")
        let (leaf, responder) = try rig.leafWithResponder()
        defer { responder.stop() }
        let certificate = try rig.track(leaf, name: "site.pem")

        rig.refresher.adopt(certificate)
        try rig.loop.runForTest { !rig.outcomes().isEmpty }
        guard case .stapled(let der, written: true) = rig.outcomes()[0].1 else { return XCTFail(rig.log) }
        XCTAssertEqual(try rig.pki.verifyWithOpenSSL(staple: certificate.path.description + ".ocsp", for: leaf), "good")
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: certificate.path.description + ".ocsp"))), der)
        XCTAssertEqual(certificate.refresh.staple?.isRevoked, false)
        XCTAssertNotNil(certificate.refresh.nextRefresh)
        XCTAssertGreaterThan(certificate.refresh.nextRefresh ?? 0, UTCTime.now() + 3600, "a day-long staple lasts hours")
        XCTAssertTrue(rig.refresher.isIdle)
        XCTAssertTrue(rig.log.contains("\(certificate.path): staple written: good"), rig.log)
    }

    /// A good staple on disk is served as it is: no request. A touch (refreshNow) asks at once.
    func testAGoodStapleOnDiskIsRecycledUntilAskedToRefresh() throws {
        let rig = try makeRig(prefix: "stapler-refresher-recycle")
        let (leaf, responder) = try rig.leafWithResponder()
        defer { responder.stop() }
        let certificate = try rig.track(leaf, name: "site.pem")
        try rig.pki.ocspResponse(for: leaf).write(to: URL(fileURLWithPath: certificate.path.description + ".ocsp"))

        rig.refresher.adopt(certificate)
        XCTAssertNotNil(certificate.refresh.staple, "the staple on disk is what is served")
        XCTAssertNotNil(certificate.refresh.nextRefresh, "and its refresh is planned")
        XCTAssertTrue(rig.refresher.isIdle, "nothing queued")

        rig.refresher.refreshNow(certificate)
        XCTAssertFalse(rig.refresher.isIdle)
        try rig.loop.runForTest { !rig.outcomes().isEmpty }
        guard case .stapled = rig.outcomes()[0].1 else { return XCTFail("\(rig.outcomes())") }
        XCTAssertEqual(responder.requestCount, 1)
    }

    /// Status 203 with a valid body is no answer: nothing written, the reason logged with
    /// the status, a retry planned; the healthy certificate beside it is stapled.
    func testANon200AnswerIsAFailureWithItsStatus() throws {
        let rig = try makeRig(prefix: "stapler-refresher-203")
        let hostile = try HostileResponder()
        defer { hostile.stop() }
        let leaf = try rig.pki.issueLeaf(ocspURLs: [hostile.url(route: "203")])
        hostile.set(.answer(status: 203, headers: [.init("Content-Type", HostileResponder.Behaviour.ocspContentType)],
                            body: Array(try rig.pki.ocspResponse(for: leaf))), for: "203")
        let certificate = try rig.track(leaf, name: "site.pem")

        rig.refresher.adopt(certificate)
        try rig.loop.runForTest { !rig.outcomes().isEmpty }
        guard case .failed = rig.outcomes()[0].1 else { return XCTFail("\(rig.outcomes())") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: certificate.path.description + ".ocsp"))
        XCTAssertEqual(certificate.refresh.failures, 1)
        XCTAssertEqual(certificate.refresh.lastError,
                       "\(hostile.url(route: "203")): HTTP status 203 (only 200 carries an OCSP answer)")
        XCTAssertNotNil(certificate.refresh.nextRefresh, "a retry is planned")
        XCTAssertTrue(rig.log.contains("\(certificate.path): OCSP fetch failed: \(hostile.url(route: "203")): HTTP status 203"),
                      rig.log)

        // The same responder healed: the retry (forced here) staples and says it recovered.
        hostile.set(.ocsp(try rig.pki.ocspResponse(for: leaf)), for: "203")
        rig.refresher.refreshNow(certificate)
        try rig.loop.runForTest { rig.outcomes().count == 2 }
        guard case .stapled = rig.outcomes()[1].1 else { return XCTFail("\(rig.outcomes())") }
        XCTAssertTrue(rig.log.contains("\(certificate.path): recovered after 1 failed attempt(s)"), rig.log)
    }

    /// Cancelling a refresh in flight: no outcome ever comes for it, and a new request for
    /// the same certificate does come.
    func testACancelledFetchEndsWithoutAnOutcome() throws {
        let rig = try makeRig(prefix: "stapler-refresher-cancel")
        let hostile = try HostileResponder()
        defer { hostile.stop() }
        let leaf = try rig.pki.issueLeaf(ocspURLs: [hostile.url(route: "slow")])
        hostile.set(.delayed(seconds: 0.5, then: .ocsp(try rig.pki.ocspResponse(for: leaf))), for: "slow")
        let certificate = try rig.track(leaf, name: "site.pem")

        rig.refresher.adopt(certificate)
        try rig.loop.runForTest { hostile.requestCount(route: "slow") == 1 }
        rig.refresher.cancel(certificate)
        var waited = false
        rig.loop.schedule(after: .seconds(1)) { waited = true }
        try rig.loop.runForTest { waited }
        XCTAssertTrue(rig.outcomes().isEmpty, "\(rig.outcomes())")
        XCTAssertTrue(rig.refresher.isIdle)

        rig.refresher.refreshNow(certificate)
        try rig.loop.runForTest(deadline: .seconds(5)) { !rig.outcomes().isEmpty }
        guard case .stapled = rig.outcomes()[0].1 else { return XCTFail("\(rig.outcomes())") }
    }

    /// A clock step, injected: a step backward reschedules, a step forward into the minimum
    /// validity fetches at once.
    func testAClockStepReschedulesOrFetchesByTheNewClock() throws {
        let rig = try makeRig(prefix: "stapler-refresher-step")
        let (leaf, responder) = try rig.leafWithResponder()
        defer { responder.stop() }
        let certificate = try rig.track(leaf, name: "site.pem")
        try rig.pki.ocspResponse(for: leaf).write(to: URL(fileURLWithPath: certificate.path.description + ".ocsp"))
        rig.refresher.adopt(certificate)
        guard let staple = certificate.refresh.staple, let planned = certificate.refresh.nextRefresh else {
            return XCTFail(rig.log)
        }

        // Backward by 30 days: still valid, a refresh planned from the staple's own dates.
        let backward = rig.refresher.clockStepped([certificate], now: UTCTime.now() - 30 * 86400)
        XCTAssertEqual(backward.fetched, 0)
        XCTAssertEqual(backward.rescheduled, 1)
        XCTAssertLessThanOrEqual(certificate.refresh.nextRefresh ?? 0, planned)
        XCTAssertTrue(rig.refresher.isIdle, "nothing fetched")

        // Forward to an hour before nextUpdate (inside the 2 h minimum validity): fetch now.
        let forward = rig.refresher.clockStepped([certificate], now: staple.nextUpdate - 3600)
        XCTAssertEqual(forward.fetched, 1)
        try rig.loop.runForTest { !rig.outcomes().isEmpty }
        guard case .stapled = rig.outcomes()[0].1 else { return XCTFail(rig.log) }
        XCTAssertEqual(responder.requestCount, 1)
    }

    /// A responder an hour ahead of our clock: refused, with a hint that our clock may be the
    /// one that is wrong, and the lead kept for the metrics.
    func testAResponderAheadOfOurClockHintsAndIsMeasured() throws {
        let rig = try makeRig(prefix: "stapler-refresher-ahead")
        let hostile = try HostileResponder()
        defer { hostile.stop() }
        let leaf = try rig.pki.issueLeaf(ocspURLs: [hostile.url(route: "ahead")])
        let certificate = try rig.track(leaf, name: "site.pem")
        let now = UTCTime.now()
        hostile.set(.ocsp(try CraftedResponse.sign(certID: certificate.record!.certID, thisUpdate: now + 3600,
                                                   nextUpdate: now + 86400, signerCertificate: rig.pki.certificate,
                                                   signerKey: rig.pki.key)), for: "ahead")
        XCTAssertEqual(rig.statistics.largestResponderClockLead, 0)
        rig.refresher.adopt(certificate)
        try rig.loop.runForTest { !rig.outcomes().isEmpty }
        guard case .failed = rig.outcomes()[0].1 else { return XCTFail(rig.log) }
        XCTAssertTrue(certificate.refresh.lastError?.hasSuffix("in the future (by our clock: is it behind?)") == true,
                      certificate.refresh.lastError ?? "")
        XCTAssertGreaterThanOrEqual(rig.statistics.largestResponderClockLead, 3590)
        XCTAssertLessThanOrEqual(rig.statistics.largestResponderClockLead, 3600)
    }
}
