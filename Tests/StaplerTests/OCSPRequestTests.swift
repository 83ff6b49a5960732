import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// Requests as responders see them: byte-identical to openssl's, accepted by an `openssl
/// ocsp` responder, sent by GET or POST as RFC 5019 §5 says.
final class OCSPRequestTests: XCTestCase {
    func testRequestIsByteForByteWhatOpenSSLSends() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let request = try OCSPRequest(certID: record.certID)
        XCTAssertNil(request.nonce)
        XCTAssertEqual(request.der, try fixture.opensslRequest(leaf: leaf))
    }

    func testOpenSSLResponderAnswersOurRequestAndTheAnswerVerifies() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let requestFile = fixture.temp.file("ours.der")
        try Data(try OCSPRequest(certID: record.certID).der).write(to: URL(fileURLWithPath: requestFile))

        let text = try Shell.run(["openssl", "ocsp", "-reqin", requestFile, "-req_text"]).output
        XCTAssertTrue(text.contains("Serial Number: \(leaf.serial)"), text)
        XCTAssertTrue(text.contains("Hash Algorithm: sha1"), text)
        XCTAssertFalse(text.contains("Request Extensions"), text)

        let answer = Array(try fixture.pki.answer(requestFile: requestFile))
        let verified = try OCSPResponseVerifier.verify(answer, for: record, now: UTCTime.now())
        XCTAssertEqual(verified.status, .good)
    }

    func testNonceIsSentEchoedAndChecked() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let request = try OCSPRequest(certID: record.certID, includeNonce: true)
        let nonce = try XCTUnwrap(request.nonce)
        // extnValue: OCTET STRING (16 random bytes), as OpenSSL encodes it.
        XCTAssertEqual(nonce.count, 18)
        XCTAssertEqual(Array(nonce.prefix(2)), [0x04, 0x10])
        XCTAssertNotEqual(try OCSPRequest(certID: record.certID, includeNonce: true).nonce, nonce)

        let requestFile = fixture.temp.file("nonce.der")
        try Data(request.der).write(to: URL(fileURLWithPath: requestFile))
        XCTAssertTrue(try Shell.run(["openssl", "ocsp", "-reqin", requestFile, "-req_text"]).output.contains("OCSP Nonce"))
        let answer = Array(try fixture.pki.answer(requestFile: requestFile))
        XCTAssertEqual(try OCSPResponseVerifier.verify(answer, for: record, now: UTCTime.now(), expectedNonce: nonce).status,
                       .good)

        let other = try XCTUnwrap(try OCSPRequest(certID: record.certID, includeNonce: true).nonce)
        XCTAssertThrowsError(try OCSPResponseVerifier.verify(answer, for: record, now: UTCTime.now(), expectedNonce: other)) {
            XCTAssertEqual(($0 as? OCSPResponseError)?.reason, .nonceMismatch)
        }
        // A pre-signed answer without a nonce does not pass when we sent one.
        let presigned = Array(try fixture.pki.ocspResponse(for: leaf))
        XCTAssertThrowsError(try OCSPResponseVerifier.verify(presigned, for: record, now: UTCTime.now(), expectedNonce: nonce)) {
            XCTAssertEqual(($0 as? OCSPResponseError)?.description, "response carries no nonce although the request had one")
        }
    }

    func testGETURLEncodesBase64AndHandlesTrailingSlash() {
        // 0xfb 0xff base64-encode to "+/8=": every character that needs escaping in a path.
        XCTAssertEqual(OCSPRequest.getURL(base: "http://ocsp.test", der: [0xfb, 0xff]), "http://ocsp.test/%2B%2F8%3D")
        XCTAssertEqual(OCSPRequest.getURL(base: "http://ocsp.test/", der: [0xfb, 0xff]), "http://ocsp.test/%2B%2F8%3D")
        XCTAssertEqual(OCSPRequest.getURL(base: "http://ocsp.test/a/b", der: [0x00]), "http://ocsp.test/a/b/AA%3D%3D")
    }

    func testGETUpTo255BytesThenPOST() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let request = try OCSPRequest(certID: try fixture.record(for: leaf).certID)
        let encodedLength = OCSPRequest.getURL(base: "", der: request.der).utf8.count // "/" + encoded
        let prefix = "http://ocsp.test/"
        func base(totalLength: Int) -> String {
            prefix + String(repeating: "p", count: totalLength - prefix.utf8.count - encodedLength)
        }

        let fits = request.httpRequest(responderURL: base(totalLength: 255))
        XCTAssertEqual(fits.method, .get)
        XCTAssertEqual(fits.url.utf8.count, 255)
        XCTAssertEqual(fits.body, [])
        XCTAssertTrue(fits.headers.isEmpty)
        // The path decodes back to the DER request.
        let encoded = String(fits.url.split(separator: "/").last!)
            .replacingOccurrences(of: "%2B", with: "+").replacingOccurrences(of: "%2F", with: "/")
            .replacingOccurrences(of: "%3D", with: "=")
        XCTAssertEqual(Base64.decode(Array(encoded.utf8)), request.der)

        let tooLong = base(totalLength: 256)
        let post = request.httpRequest(responderURL: tooLong)
        XCTAssertEqual(post.method, .post)
        XCTAssertEqual(post.url, tooLong)
        XCTAssertEqual(post.body, request.der)
        XCTAssertEqual(post.headers.map(\.name), ["Content-Type"])
        XCTAssertEqual(post.headers.first?.value, "application/ocsp-request")
        XCTAssertEqual(post.maxBodyBytes, OCSPResponseVerifier.maximumResponseSize)
        XCTAssertEqual(fits.maxBodyBytes, OCSPResponseVerifier.maximumResponseSize)
    }

    func testCorruptCertIDIsRefused() {
        XCTAssertThrowsError(try OCSPRequest(certID: CertID(der: [0x30, 0x03, 0x02, 0x01]))) {
            XCTAssertEqual($0 as? OCSPRequestError, .invalidCertID)
        }
        XCTAssertThrowsError(try OCSPRequest(certID: CertID(der: [])))
    }
}
