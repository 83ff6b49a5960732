import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The fast path checks the common answer (one good status, no extensions, signed by the
/// issuer or a remembered delegate) without OpenSSL's OCSP decoder. What it accepts must be
/// exactly what the full check accepts, with the same times; whatever it does not accept
/// must reach the full check, so every refusal keeps its reason.
final class OCSPResponseFastPathTests: XCTestCase {
    private func fast(_ der: [UInt8], _ record: CertificateRecord, now: Int64) -> VerifiedOCSPResponse? {
        OCSPResponseFastPath.accept(der, certID: record.certID, issuer: record.issuer, now: now,
                                    allowedClockSkew: OCSPResponseVerifier.defaultClockSkew)
    }

    private func full(_ der: [UInt8], _ record: CertificateRecord, now: Int64) -> Result<VerifiedOCSPResponse, OCSPResponseError> {
        Result { () throws(OCSPResponseError) in
            try OCSPResponseVerifier.verifyWithOpenSSL(der, certID: record.certID, issuer: record.issuer, now: now)
        }
    }

    private func verdict(_ der: [UInt8], _ record: CertificateRecord, now: Int64) -> Result<VerifiedOCSPResponse, OCSPResponseError> {
        Result { () throws(OCSPResponseError) in try OCSPResponseVerifier.verify(der, for: record, now: now) }
    }

    /// Let's Encrypt's shape and its variants: no certificate embedded, the responder named
    /// by name or by key hash, SHA-256/384/512 with EC and RSA keys.
    func testIssuerSignedAnswersWithoutCertificatesAreAcceptedWithTheFullCheckTimes() throws {
        for rsa in [false, true] {
            let temp = try TemporaryDirectory()
            let pki = try TestPKI(directory: temp.file("ca"), name: rsa ? "RSA CA" : "EC CA", rsaKey: rsa)
            let leaf = try pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
            let path = temp.file("site.pem")
            try pki.writeBundle(leaf, to: path)
            let record = try CertificateBundle.load(path: FilePath(path), now: UTCTime.now(), issuers: IssuerStore())
            let now = UTCTime.now()
            for (byKey, digest) in [(false, "sha256"), (true, "sha256"), (false, "sha384"), (true, "sha512")] {
                let der = Array(try pki.ocspResponse(for: leaf, embeddingSigner: false, responderIDByKey: byKey, digest: digest))
                let label = "\(rsa ? "RSA" : "EC") \(digest) by \(byKey ? "key" : "name")"
                XCTAssertNotNil(OCSPResponseFastPath.layout(of: der), label)
                guard let accepted = fast(der, record, now: now) else { XCTFail("fast path refused: \(label)"); continue }
                XCTAssertEqual(accepted, try full(der, record, now: now).get(), label)
                XCTAssertEqual(accepted.der, der)
                XCTAssertEqual(accepted.status, .good)
                XCTAssertEqual(accepted.nextUpdate - accepted.thisUpdate, 86400)
            }
        }
    }

    /// Shapes it leaves to OpenSSL: the signer's certificate embedded (not a remembered
    /// delegate), a revoked or unknown status. The verdicts are the full check's.
    func testOtherShapesGoToTheFullCheck() throws {
        let fixture = try PKIFixture()
        let leaves = try fixture.pki.issueLeaves(count: 2, ocspURLs: ["http://127.0.0.1:8888/"])
        let records = try leaves.map { try fixture.record(for: $0) }
        let now = UTCTime.now()

        let embedded = Array(try fixture.pki.ocspResponse(for: leaves[0]))
        XCTAssertNil(fast(embedded, records[0], now: now), "an embedded certificate that is no remembered delegate")
        XCTAssertEqual(try OCSPResponseVerifier.verify(embedded, for: records[0], now: now).status, .good)

        try fixture.pki.revoke(leaves[0])
        let revoked = Array(try fixture.pki.ocspResponse(for: leaves[0], embeddingSigner: false))
        XCTAssertNil(OCSPResponseFastPath.layout(of: revoked), "revoked is not the fast shape")
        XCTAssertNil(fast(revoked, records[0], now: now), "only good answers are accepted here")
        guard case .revoked? = try? OCSPResponseVerifier.verify(revoked, for: records[0], now: now).status else {
            return XCTFail("the full check reports the revocation")
        }

        try fixture.pki.forget(leaves[1])
        let unknown = Array(try fixture.pki.ocspResponse(for: leaves[1], embeddingSigner: false))
        XCTAssertNil(fast(unknown, records[1], now: now))
        XCTAssertEqual(verdict(unknown, records[1], now: now).failure?.reason, .unknownStatus)
    }

    /// Answers of the fast path's shape that must be refused: each refusal is the full
    /// check's, reason for reason.
    func testRefusalsOfFastShapedAnswersKeepTheFullCheckReasons() throws {
        let fixture = try PKIFixture()
        let leaves = try fixture.pki.issueLeaves(count: 2, ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaves[0])
        let now = UTCTime.now()
        let good = Array(try fixture.pki.ocspResponse(for: leaves[0], embeddingSigner: false))
        guard let layout = OCSPResponseFastPath.layout(of: good) else { return XCTFail("not the fast shape") }

        var tampered = good
        tampered[layout.signature.upperBound - 3] ^= 0x01
        var forgedData = good
        forgedData[layout.signed.upperBound - 2] ^= 0x01 // the last digit of nextUpdate's seconds

        let otherTemp = try TemporaryDirectory()
        let twin = try TestPKI(directory: otherTemp.file("twin"), name: "Stapler Test CA") // same name, other key
        let cases: [(String, [UInt8], Int64)] = [
            ("a signature that does not verify", tampered, now),
            ("signed data changed after signing", forgedData, now),
            ("the answer about another certificate", Array(try fixture.pki.ocspResponse(for: leaves[1], embeddingSigner: false)), now),
            ("an expired answer", Array(try fixture.pki.ocspResponse(for: leaves[0], validForMinutes: 60, embeddingSigner: false)),
             now + 2 * 3600),
            ("an answer from the future", good, now - 3600),
            ("signed by another CA of the same name", Array(try twin.ocspResponse(for: leaves[0], embeddingSigner: false)), now),
            ("by key hash of another CA", Array(try twin.ocspResponse(for: leaves[0], embeddingSigner: false, responderIDByKey: true)), now),
        ]
        for (label, der, at) in cases {
            XCTAssertNil(fast(der, record, now: at), label)
            let expected = full(der, record, now: at)
            XCTAssertNotNil(expected.failure, "the full check refuses \(label)")
            XCTAssertEqual(verdict(der, record, now: at).failure, expected.failure, label)
        }
    }

    /// A delegated responder's certificate embedded in every answer: once the full check
    /// passed it, its later answers take the fast path, until it expires; another
    /// certificate with the same name never does.
    func testARememberedDelegateIsCheckedOnTheFastPathWhileValid() throws {
        let fixture = try PKIFixture()
        let store = IssuerStore()
        let leaves = try fixture.pki.issueLeaves(count: 2, ocspURLs: ["http://127.0.0.1:8888/"])
        let records = try leaves.map { try fixture.record(try fixture.bundle($0, name: "d-\($0.serial).pem"), store: store) }
        let responder = try fixture.pki.issueResponder(withOCSPSigning: true) // valid 30 days
        let responses = try leaves.map { Array(try fixture.pki.ocspResponse(for: $0, signer: responder, validForDays: 40)) }
        let now = UTCTime.now()

        XCTAssertNil(fast(responses[0], records[0], now: now), "not yet checked in full")
        XCTAssertEqual(try OCSPResponseVerifier.verify(responses[0], for: records[0], now: now).status, .good)
        let accepted = fast(responses[1], records[1], now: now)
        XCTAssertNotNil(accepted, "the remembered delegate's next answer")
        XCTAssertEqual(accepted, try full(responses[1], records[1], now: now).get())

        XCTAssertNil(fast(responses[1], records[1], now: now + 31 * 86400), "the delegate has expired")
        guard case .signerNotTrusted? = verdict(responses[1], records[1], now: now + 31 * 86400).failure?.reason else {
            return XCTFail("an expired delegate is refused by the full check")
        }

        let otherTemp = try TemporaryDirectory()
        let other = try TestPKI(directory: otherTemp.file("other"), name: "Other CA")
        let lookAlike = try other.issueResponder(name: "Test OCSP Responder", withOCSPSigning: true)
        let forged = Array(try fixture.pki.ocspResponse(for: leaves[0], signer: lookAlike))
        XCTAssertNil(fast(forged, records[0], now: now))
        XCTAssertNotNil(verdict(forged, records[0], now: now).failure)
    }

    /// Only strict DER of the one shape: any other encoding is left to OpenSSL.
    func testLayoutRefusesAnythingButTheOneStrictShape() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let good = Array(try fixture.pki.ocspResponse(for: leaf, embeddingSigner: false))
        XCTAssertNotNil(OCSPResponseFastPath.layout(of: good))
        XCTAssertNil(OCSPResponseFastPath.layout(of: good + [0]), "trailing byte")
        XCTAssertNil(OCSPResponseFastPath.layout(of: Array(good.dropLast())), "truncated")
        XCTAssertEqual(Array(good[1...6]), [0x82, good[2], good[3], 0x0A, 0x01, 0x00], "a two-byte length, successful")
        var status = good
        status[6] = 1 // responseStatus malformedRequest, with the same length
        XCTAssertNil(OCSPResponseFastPath.layout(of: status))
        // One more length byte than needed (a leading zero) is BER, not DER.
        let longer = [good[0], 0x83, 0] + good[2...]
        XCTAssertNil(OCSPResponseFastPath.layout(of: longer), "a length with a leading zero byte")
    }
}

private extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
