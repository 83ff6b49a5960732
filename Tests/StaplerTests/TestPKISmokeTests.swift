import Foundation
import TestSupport
import XCTest

/// The test PKI and responder are themselves checked once, so a failure elsewhere points at
/// Stapler rather than at the fixtures.
final class TestPKISmokeTests: XCTestCase {
    func testResponderAnswersAndStaplesVerify() throws {
        let temp = try TemporaryDirectory()
        let pki = try TestPKI(directory: temp.path)
        let port = freeLoopbackPort()
        let leaves = try pki.issueLeaves(count: 2, ocspURLs: ["http://127.0.0.1:\(port)/"])
        try pki.revoke(leaves[1])
        let responder = try OCSPResponderProcess(pki: pki, port: port)
        let good = try pki.ocspResponse(for: leaves[0])
        try good.write(to: URL(fileURLWithPath: temp.file("good.der")))
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: temp.file("good.der"), for: leaves[0]), "good")
        let revoked = try pki.ocspResponse(for: leaves[1])
        try revoked.write(to: URL(fileURLWithPath: temp.file("revoked.der")))
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: temp.file("revoked.der"), for: leaves[1]), "revoked")
        try Shell.run(["openssl", "ocsp", "-issuer", pki.certificate, "-cert", leaves[0].certificate,
                       "-url", responder.url, "-CAfile", pki.certificate])
        XCTAssertTrue(waitUntil { responder.requestCount(serial: leaves[0].serial) == 1 })
    }
}
