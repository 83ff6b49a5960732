import COpenSSL
import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// A delegated responder's certificate embedded in every answer is decoded by OpenSSL only
/// the first time: later answers that embed only checked delegates are parsed without
/// them. These tests pin what is taken apart, and that the verifier accepts and refuses
/// exactly as before.
final class OCSPResponseLayoutTests: XCTestCase {
    private func certificateCount(_ der: [UInt8]) throws -> Int32 {
        let (response, _) = try XCTUnwrap(ASN1.decode(der, { d2i_OCSP_RESPONSE(nil, $0, $1) }))
        defer { OCSP_RESPONSE_free(response) }
        let basic = try XCTUnwrap(OCSP_response_get1_basic(response))
        defer { OCSP_BASICRESP_free(basic) }
        // A response without certs has no stack at all (OpenSSL counts that as -1).
        return max(0, copenssl_sk_X509_num(OCSP_resp_get0_certs(basic)))
    }

    func testEmbeddedDelegateIsFoundAndTheRestKeptByteForByte() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let responder = try fixture.pki.issueResponder(withOCSPSigning: true)
        let der = Array(try fixture.pki.ocspResponse(for: leaf, signer: responder))
        let layout = try XCTUnwrap(OCSPResponseLayout(der: der))
        let responderPEM = Array(try Data(contentsOf: URL(fileURLWithPath: responder.certificate)))
        let delegateDER = try XCTUnwrap(try CertificateBundle.decodeCertificates(responderPEM).first?.der)
        XCTAssertEqual(layout.certificates.map(Array.init), [delegateDER])
        XCTAssertEqual(try certificateCount(der), 1)
        XCTAssertEqual(try certificateCount(layout.withoutCertificates), 0)

        // No certs field, or anything but strict DER: nothing is taken apart.
        let issuerSigned = Array(try fixture.pki.ocspResponse(for: leaf))
        XCTAssertEqual(OCSPResponseLayout(der: issuerSigned)?.certificates.count, 1, "openssl embeds the CA")
        XCTAssertNil(OCSPResponseLayout(der: der + [0]), "trailing byte")
        XCTAssertNil(OCSPResponseLayout(der: Array(der.dropLast())), "truncated")
        XCTAssertEqual(der[1], 0x82)
        var longForm = der
        longForm.replaceSubrange(1..<2, with: [0x83, 0x00]) // the same length, not in its shortest form
        XCTAssertNil(OCSPResponseLayout(der: longForm))
        XCTAssertNil(OCSPResponseLayout(der: []))
    }

    /// The second answer goes through the remembered delegate; one carrying a further,
    /// unknown certificate, or the remembered one past its notAfter, takes the full check,
    /// which accepts the first and refuses the second with its usual reason.
    func testRememberedDelegateAcceptsOnlyWhatTheFullCheckAccepts() throws {
        let fixture = try PKIFixture()
        let store = IssuerStore()
        let leaves = try fixture.pki.issueLeaves(count: 2, ocspURLs: ["http://127.0.0.1:8888/"])
        let records = try leaves.map { try fixture.record(try fixture.bundle($0, name: "l-\($0.serial).pem"), store: store) }
        let responder = try fixture.pki.issueResponder(withOCSPSigning: true)
        let now = UTCTime.now()
        let first = Array(try fixture.pki.ocspResponse(for: leaves[0], signer: responder, validForDays: 40))
        XCTAssertEqual(try OCSPResponseVerifier.verify(first, for: records[0], now: now).status, .good)
        let delegates = records[0].issuer.delegatedSigners
        let layout = try XCTUnwrap(OCSPResponseLayout(der: first))
        XCTAssertEqual(delegates.checkedCertificates(layout.certificates, at: now)?.count, 1, "remembered with its bytes")

        let second = Array(try fixture.pki.ocspResponse(for: leaves[1], signer: responder, validForDays: 40))
        let verified = try OCSPResponseVerifier.verify(second, for: records[1], now: now)
        XCTAssertEqual(verified.status, .good)
        XCTAssertEqual(verified.der, second, "the staple is the answer as it came, certificates included")

        let unknown = try fixture.pki.issueResponder(name: "Another Responder", withOCSPSigning: true)
        let withExtra = Array(try fixture.pki.ocspResponse(for: leaves[1], signer: responder,
                                                           alsoEmbedding: unknown.certificate))
        let extraLayout = try XCTUnwrap(OCSPResponseLayout(der: withExtra))
        XCTAssertEqual(extraLayout.certificates.count, 2)
        XCTAssertNil(delegates.checkedCertificates(extraLayout.certificates, at: now), "not all remembered")
        XCTAssertEqual(try OCSPResponseVerifier.verify(withExtra, for: records[1], now: now).status, .good)

        let later = now + 31 * 86400 // the delegate is valid 30 days
        XCTAssertNil(delegates.checkedCertificates(layout.certificates, at: later))
        XCTAssertThrowsError(try OCSPResponseVerifier.verify(second, for: records[1], now: later)) {
            guard case .signerNotTrusted(let detail)? = ($0 as? OCSPResponseError)?.reason else {
                return XCTFail("\($0)")
            }
            XCTAssertEqual(detail, "certificate has expired")
        }
    }
}
