import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// Responders that lie, stall, flood or break HTTP, met by the real daemon. For each: nothing
/// is written, the staple already on disk stays byte for byte, one log line names the
/// certificate file, the responder URL and what was wrong, a retry is planned, and the
/// certificates of a healthy responder are stapled meanwhile.
///
/// One daemon meets every case at once: the slowest (a responder that never answers, cut by
/// the daemon's 15 s limit) then sets the pace for all of them.
final class HardeningResponderTests: XCTestCase {
    /// A certificate pointed at one misbehaving route, and what its failure line must say.
    private struct Case {
        let route: String
        let expected: String
        let leaf: TestPKI.Leaf
    }

    func testHostileRespondersChangeNothingOnDiskAndAreRetried() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-hardening-responders")
        let pki = try TestPKI(directory: temp.file("pki"))
        let rogue = try TestPKI(directory: temp.file("rogue"), name: "Rogue CA")
        let hostile = try HostileResponder()
        defer { hostile.stop() }
        let livePort = freeLoopbackPort()
        let live = "http://127.0.0.1:\(livePort)/"

        // Route, what the responder does there, what the failure line must contain.
        let other = try pki.issueLeaf(commonName: "other.test", ocspURLs: [live])
        let noEKU = try pki.issueResponder(name: "Responder without OCSPSigning", withOCSPSigning: false)
        var random = SeededGenerator.announced("hostile responders' random body", fixed: 0x5EED)
        let randomBytes = (0..<2048).map { _ in UInt8.random(in: 0...255, using: &random) }
        let plans: [(route: String, expected: String, behaviour: (TestPKI.Leaf) throws -> HostileResponder.Behaviour)] = [
            ("random", "not a DER OCSP response", { _ in .ocsp(randomBytes) }),
            ("empty", "empty OCSP response", { _ in .ocsp([]) }),
            ("status500", "HTTP status 500", { _ in .status(500) }),
            ("status404", "HTTP status 404", { _ in .status(404) }),
            ("endless", "response body larger than 20480 bytes", { _ in .endless(contentType: "application/ocsp-response") }),
            ("endless-headers", "response headers larger than 16384 bytes", { _ in .endlessHeaders }),
            ("huge-length", "response body larger than 20480 bytes", { _ in
                .raw(Array("HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 10000000000\r\n\r\n0".utf8))
            }),
            ("hang", "timed out after 15 s", { _ in .hang }),
            ("close", "protocol error", { _ in .close }),
            ("redirect", "more than 3 redirects", { _ in .redirect(to: "/redirect/again") }),
            ("content-type", "unexpected Content-Type \"text/html; charset=utf-8\"",
             { .ocsp(try pki.ocspResponse(for: $0), contentType: "text/html; charset=utf-8") }),
            ("rogue-signer", "response signed by a certificate that is neither the issuer nor issued by it",
             { .ocsp(try pki.ocspResponse(for: $0, signer: (rogue.certificate, rogue.key))) }),
            ("no-eku", "response signed by a certificate the issuer did not authorise (no OCSPSigning EKU)",
             { .ocsp(try pki.ocspResponse(for: $0, signer: noEKU)) }),
            ("other-certificate", "response does not cover this certificate", { _ in .ocsp(try pki.ocspResponse(for: other)) }),
            ("expired", "is in the past", { leaf in
                let now = UTCTime.now()
                return .ocsp(try CraftedResponse.sign(certID: try Self.certID(leaf, pki: pki, in: temp),
                                                      thisUpdate: now - 2 * 86400, nextUpdate: now - 86400,
                                                      signerCertificate: pki.certificate, signerKey: pki.key))
            }),
            ("future", "is more than 300 s in the future", { leaf in
                let now = UTCTime.now()
                return .ocsp(try CraftedResponse.sign(certID: try Self.certID(leaf, pki: pki, in: temp),
                                                      thisUpdate: now + 3600, nextUpdate: now + 86400,
                                                      signerCertificate: pki.certificate, signerKey: pki.key))
            }),
            ("no-next-update", "response has no nextUpdate", { .ocsp(try pki.ocspResponseWithoutNextUpdate(for: $0)) }),
            ("try-later", "responder answered tryLater", { _ in .ocsp(Self.unsuccessful(3)) }),
            ("internal-error", "responder answered internalError", { _ in .ocsp(Self.unsuccessful(2)) }),
            ("unauthorized", "responder answered unauthorized", { _ in .ocsp(Self.unsuccessful(6)) }),
            ("malformed-request", "responder answered malformedRequest", { _ in .ocsp(Self.unsuccessful(1)) }),
            ("unknown", "responder does not know this certificate (status unknown)", { leaf in
                try pki.forget(leaf)
                return .ocsp(try pki.ocspResponse(for: leaf))
            }),
        ]

        let certs = try Hardening.makeDirectory(temp.file("certs"))
        var cases: [Case] = []
        var oldStaples: [String: Data] = [:]
        for plan in plans {
            let leaf = try pki.issueLeaf(commonName: "\(plan.route).test", ocspURLs: [hostile.url(route: plan.route)])
            let bundle = "\(certs)/\(plan.route).pem"
            try pki.writeBundle(leaf, to: bundle)
            // A good staple close to expiry: the daemon must fetch, and must keep serving it.
            let old = try pki.ocspResponse(for: leaf, validForMinutes: 30)
            try old.write(to: URL(fileURLWithPath: bundle + ".ocsp"))
            oldStaples[bundle] = old
            hostile.set(try plan.behaviour(leaf), for: plan.route)
            cases.append(Case(route: plan.route, expected: plan.expected, leaf: leaf))
        }
        // A slow but honest responder is no failure.
        let slow = try pki.issueLeaf(commonName: "slow.test", ocspURLs: [hostile.url(route: "slow")])
        let slowBundle = "\(certs)/slow.pem"
        try pki.writeBundle(slow, to: slowBundle)
        hostile.set(.delayed(seconds: 2, then: .ocsp(try pki.ocspResponse(for: slow))), for: "slow")
        // And a healthy responder for the rest.
        let goods = try pki.issueLeaves(count: 3, commonName: "good.test", ocspURLs: [live])
        let goodBundles = try goods.enumerated().map { index, leaf -> String in
            let path = "\(certs)/good-\(index).pem"
            try pki.writeBundle(leaf, to: path)
            return path
        }
        let responder = try OCSPResponderProcess(pki: pki, port: livePort)
        defer { responder.stop() }

        let started = Date()
        let daemon = try StaplerProcess(["-v", certs], logPath: temp.file("daemon.log"))
        defer { daemon.signal(SIGKILL) }

        for bundle in goodBundles + [slowBundle] {
            XCTAssertTrue(daemon.waitForLog("\(bundle): staple written", timeout: 20), daemon.log)
        }
        for item in cases {
            let bundle = "\(certs)/\(item.route).pem"
            XCTAssertTrue(daemon.waitForLog("\(bundle): OCSP fetch failed", timeout: 30), "\(item.route): \(daemon.log)")
        }
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertLessThan(elapsed, 25, "every case ran alongside the 15 s timeout")
        XCTAssertTrue(daemon.isRunning, daemon.log)

        let log = daemon.log
        for item in cases {
            let bundle = "\(certs)/\(item.route).pem"
            let mentions = Hardening.lines(log, containing: "\(bundle)")
            XCTAssertEqual(mentions.count, 1, "\(item.route): one line, and only one: \(mentions)")
            let line = mentions.first ?? ""
            XCTAssertTrue(line.contains("\(bundle): OCSP fetch failed: \(hostile.url(route: item.route)): "),
                          "\(item.route): names the file and the URL: \(line)")
            XCTAssertTrue(line.contains(item.expected), "\(item.route): says why (\(item.expected)): \(line)")
            XCTAssertTrue(line.contains("serving the staple valid until"), "\(item.route): \(line)")
            XCTAssertNotNil(line.range(of: #"; retrying in \d+ s\)$"#, options: .regularExpression),
                            "\(item.route): a retry is planned: \(line)")
            XCTAssertFalse(line.contains("\\n") || line.contains("/MEIw") || line.contains("%2F"),
                           "\(item.route): no request bytes in the line: \(line)")
            XCTAssertEqual(Hardening.contents(bundle + ".ocsp"), oldStaples[bundle], "\(item.route): old staple intact")
        }
        XCTAssertTrue(Hardening.temporaryFiles(in: certs).isEmpty)
        let pushes = Hardening.lines(log, containing: "pushed") + Hardening.lines(log, containing: "HAProxy /")
        XCTAssertTrue(pushes.isEmpty, "nothing to push, nothing pushed: \(pushes)")
        XCTAssertTrue(Hardening.lines(log, containing: "CRITICAL").isEmpty, log)
        for (leaf, bundle) in zip(goods + [slow], goodBundles + [slowBundle]) {
            XCTAssertEqual(try pki.verifyWithOpenSSL(staple: bundle + ".ocsp", for: leaf), "good")
        }

        // Requests: one per case (curl followed the redirect loop three times before giving
        // up), none while the retry waits.
        XCTAssertEqual(hostile.requestCount(route: "redirect"), 4)
        for item in cases where item.route != "redirect" {
            XCTAssertEqual(hostile.requestCount(route: item.route), 1, item.route)
        }

        // The planned retry asks again and, the responder healed, staples.
        let healed = cases.first { $0.route == "status500" }!
        hostile.set(.ocsp(try pki.ocspResponse(for: healed.leaf)), for: healed.route)
        try Hardening.touch("\(certs)/\(healed.route).pem")
        XCTAssertTrue(daemon.waitForLog("\(certs)/\(healed.route).pem: recovered after 1 failed attempt(s)"), daemon.log)

        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
    }

    /// A responder that hangs for many certificates must not take every fetch slot: with the
    /// default 8 slots, 12 hanging fetches queued first, the healthy responder's certificates
    /// are still stapled at once instead of after the 15 s timeouts.
    func testHangingResponderDoesNotHoldUpOtherResponders() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-hardening-fairness")
        let pki = try TestPKI(directory: temp.file("pki"))
        let hostile = try HostileResponder(fallback: .hang)
        defer { hostile.stop() }
        let livePort = freeLoopbackPort()
        let stuck = try Hardening.makeDirectory(temp.file("stuck"))
        let fine = try Hardening.makeDirectory(temp.file("fine"))
        for (index, leaf) in try pki.issueLeaves(count: 12, commonName: "stuck.test",
                                                 ocspURLs: [hostile.url(route: "hang")]).enumerated() {
            try pki.writeBundle(leaf, to: "\(stuck)/stuck-\(index).pem")
        }
        let goods = try pki.issueLeaves(count: 2, commonName: "fine.test", ocspURLs: ["http://127.0.0.1:\(livePort)/"])
        for (index, leaf) in goods.enumerated() { try pki.writeBundle(leaf, to: "\(fine)/fine-\(index).pem") }
        let responder = try OCSPResponderProcess(pki: pki, port: livePort)
        defer { responder.stop() }

        // The stuck directory comes first: its certificates are queued first.
        let daemon = try StaplerProcess(["-v", stuck, fine], logPath: temp.file("daemon.log"))
        defer { daemon.signal(SIGKILL) }

        XCTAssertTrue(daemon.waitForLog("staple written", count: 2, timeout: 8), daemon.log)
        XCTAssertTrue(Hardening.lines(daemon.log, containing: "OCSP fetch failed").isEmpty, "no timeout yet: \(daemon.log)")
        XCTAssertLessThanOrEqual(hostile.requestCount(route: "hang"), 4, "at most 4 at once for one responder")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
    }

    /// What the fetch slots are shared by: curl's per-host connection limit counts by scheme,
    /// host and port.
    func testResponderOriginIsSchemeHostAndPort() {
        XCTAssertEqual(HTTPClient.origin(of: "http://127.0.0.1:8080/a/b?c#d"), "http://127.0.0.1:8080")
        XCTAssertEqual(HTTPClient.origin(of: "HTTP://OCSP.Example.COM"), "http://ocsp.example.com")
        XCTAssertEqual(HTTPClient.origin(of: "http://user:pw@ocsp.example.com/x"), "http://ocsp.example.com")
        XCTAssertEqual(HTTPClient.origin(of: "https://[::1]:8443/"), "https://[::1]:8443")
        XCTAssertEqual(HTTPClient.origin(of: "http://a.test?x=/y"), "http://a.test")
        XCTAssertEqual(HTTPClient.origin(of: "not a url"), "not a url")
        XCTAssertEqual(HTTPClient.origin(of: ""), "")
    }

    /// Responders label answers loosely; only the media type counts, in any case.
    func testOCSPContentTypeIgnoresCaseParametersAndSpaces() {
        for accepted in ["application/ocsp-response", "Application/OCSP-Response", " application/ocsp-response ;charset=x",
                         "application/ocsp-response\t; a=b"] {
            XCTAssertTrue(OCSPExchange.isOCSPContentType(accepted), accepted)
        }
        for refused in ["text/html", "application/ocsp-request", "application/ocsp-responses", "", ";",
                        "application\u{0F}ocsp-response", "application/ocsp\u{0D}response"] {
            XCTAssertFalse(OCSPExchange.isOCSPContentType(refused), refused)
        }
    }

    /// An OCSPResponse with only a responseStatus (RFC 6960 §4.2.1): `30 03 0a 01 0N`.
    private static func unsuccessful(_ status: UInt8) -> [UInt8] { [0x30, 0x03, 0x0a, 0x01, status] }

    private static func certID(_ leaf: TestPKI.Leaf, pki: TestPKI, in temp: TemporaryDirectory) throws -> CertID {
        let path = temp.file("record-\(leaf.serial).pem")
        try pki.writeBundle(leaf, to: path, includeKey: false)
        return try CertificateBundle.load(path: FilePath(path), now: UTCTime.now(), issuers: IssuerStore()).certID
    }
}
