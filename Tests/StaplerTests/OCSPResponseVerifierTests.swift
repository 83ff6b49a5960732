import COpenSSL
import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// Every response a responder (or an attacker, or a stale cache) can hand us, checked before
/// anything is stapled. Responses are signed offline by `openssl ocsp`; the few shapes it
/// cannot make (a thisUpdate in the future, nextUpdate before thisUpdate) are signed in
/// process with OpenSSL by `CraftedResponse`.
final class OCSPResponseVerifierTests: XCTestCase {
    private func reason(_ body: () throws -> VerifiedOCSPResponse) -> OCSPResponseError.Reason? {
        do {
            _ = try body()
            XCTFail("the response was accepted")
            return nil
        } catch let error as OCSPResponseError {
            return error.reason
        } catch {
            XCTFail("unexpected \(error)")
            return nil
        }
    }

    private func error(_ body: () throws -> VerifiedOCSPResponse) -> OCSPResponseError? {
        reason(body).map(OCSPResponseError.init)
    }

    /// Every failure is one log line.
    private func assertOneLine(_ reason: OCSPResponseError.Reason?, file: StaticString = #filePath, line: UInt = #line) {
        guard let reason else { return XCTFail("no error", file: file, line: line) }
        let text = OCSPResponseError(reason).description
        XCTAssertFalse(text.isEmpty, file: file, line: line)
        XCTAssertFalse(text.contains("\n") || text.contains("\r"), text, file: file, line: line)
    }

    func testGoodResponseSignedByTheIssuer() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let now = UTCTime.now()
        let der = Array(try fixture.pki.ocspResponse(for: leaf))
        let verified = try OCSPResponseVerifier.verify(der, for: record, now: now)
        XCTAssertEqual(verified.status, .good)
        XCTAssertEqual(verified.statusDescription, "good")
        XCTAssertEqual(verified.der, der)
        XCTAssertEqual(Double(verified.thisUpdate), Double(now), accuracy: 60)
        XCTAssertEqual(verified.nextUpdate - verified.thisUpdate, 86400)
        XCTAssertEqual(Double(verified.producedAt), Double(now), accuracy: 60)
    }

    func testRevokedResponseCarriesTimeAndReason() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        try fixture.pki.revoke(leaf)
        let now = UTCTime.now()
        let verified = try OCSPResponseVerifier.verify(Array(try fixture.pki.ocspResponse(for: leaf)), for: record, now: now)
        guard case .revoked(let time, let reasonCode) = verified.status else { return XCTFail("\(verified.status)") }
        XCTAssertEqual(Double(time), Double(now), accuracy: 60)
        XCTAssertEqual(reasonCode, 1)
        XCTAssertEqual(verified.statusDescription, "revoked at \(UTCTime.format(time)) (keyCompromise)")
    }

    func testUnknownStatusIsAnError() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        try fixture.pki.forget(leaf)
        let der = Array(try fixture.pki.ocspResponse(for: leaf))
        let failure = error { try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now()) }
        XCTAssertEqual(failure?.reason, .unknownStatus)
        XCTAssertEqual(failure?.isTemporary, false)
        XCTAssertEqual(failure?.description, "responder does not know this certificate (status unknown)")
    }

    func testDelegatedResponderWithOCSPSigningIsAccepted() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let responder = try fixture.pki.issueResponder(withOCSPSigning: true)
        let der = Array(try fixture.pki.ocspResponse(for: leaf, signer: responder))
        XCTAssertEqual(try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now()).status, .good)
    }

    /// A delegate checked in full once is remembered by its exact bytes, for its issuer only,
    /// and only while it is valid: every rule still holds for what is not those bytes.
    func testADelegateCheckedOnceIsRememberedForItsIssuerWhileValid() throws {
        let fixture = try PKIFixture()
        let store = IssuerStore()
        let leaves = try fixture.pki.issueLeaves(count: 2, ocspURLs: ["http://127.0.0.1:8888/"])
        let records = try leaves.map { try fixture.record(try fixture.bundle($0, name: "d-\($0.serial).pem"), store: store) }
        XCTAssertTrue(records[0].issuer === records[1].issuer, "one shared issuer")
        let responder = try fixture.pki.issueResponder(withOCSPSigning: true) // valid 30 days
        let responses = try leaves.map { Array(try fixture.pki.ocspResponse(for: $0, signer: responder, validForDays: 40)) }
        let issuer = records[0].issuer
        XCTAssertEqual(issuer.delegatedSigners.count, 0)
        let now = UTCTime.now()
        XCTAssertEqual(try OCSPResponseVerifier.verify(responses[0], for: records[0], now: now).status, .good)
        XCTAssertEqual(issuer.delegatedSigners.count, 1, "checked in full, remembered")
        XCTAssertEqual(try OCSPResponseVerifier.verify(responses[1], for: records[1], now: now).status, .good)
        XCTAssertEqual(issuer.delegatedSigners.count, 1, "the same delegate, once")

        // The known delegate expires between two responses: refused, with the full reason.
        guard case .signerNotTrusted(let detail)? = reason({
            try OCSPResponseVerifier.verify(responses[1], for: records[1], now: now + 31 * 86400)
        }) else { return XCTFail("an expired delegate stays refused, known or not") }
        XCTAssertEqual(detail, "certificate has expired")

        // The same delegate's response for a certificate of another CA: not this CA's delegate.
        let otherDirectory = try TemporaryDirectory()
        let other = try TestPKI(directory: otherDirectory.path, name: "Other CA")
        let otherLeaf = try other.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let otherPath = otherDirectory.file("other.pem")
        try other.writeBundle(otherLeaf, to: otherPath)
        let otherRecord = try fixture.record(otherPath, store: store)
        let crossed = Array(try other.ocspResponse(for: otherLeaf, signer: responder))
        guard case .signerNotTrusted? = reason({ try OCSPResponseVerifier.verify(crossed, for: otherRecord, now: now) })
        else { return XCTFail("a delegate of one CA signs nothing for another") }

        // A look-alike delegate (same name, another key, issued by another CA) is other bytes.
        let lookAlike = try other.issueResponder(name: "Test OCSP Responder", withOCSPSigning: true)
        let forged = Array(try fixture.pki.ocspResponse(for: leaves[0], signer: lookAlike))
        XCTAssertNotNil(reason { try OCSPResponseVerifier.verify(forged, for: records[0], now: now) })
        XCTAssertEqual(issuer.delegatedSigners.count, 1)
    }

    func testDelegateMemoryIsBoundedAndForgetsTheEarliestToExpire() {
        let memory = DelegatedSigners()
        for index in 0..<(DelegatedSigners.capacity + 4) {
            memory.remember([UInt8(index)], .init(notBefore: 0, notAfter: 1000 + Int64(index)), now: 10)
        }
        XCTAssertEqual(memory.count, DelegatedSigners.capacity)
        XCTAssertFalse(memory.isKnown([0], at: 10), "the earliest to expire went first")
        XCTAssertTrue(memory.isKnown([UInt8(DelegatedSigners.capacity + 3)], at: 10))
        XCTAssertFalse(memory.isKnown([UInt8(DelegatedSigners.capacity + 3)], at: 5000), "not after its notAfter")
    }

    func testDelegatedResponderWithoutOCSPSigningIsRejected() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let responder = try fixture.pki.issueResponder(withOCSPSigning: false)
        let der = Array(try fixture.pki.ocspResponse(for: leaf, signer: responder))
        let failure = error { try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now()) }
        XCTAssertEqual(failure?.reason, .signerNotAuthorised)
        XCTAssertEqual(failure?.isTemporary, false)
        XCTAssertEqual(failure?.description,
                       "response signed by a certificate the issuer did not authorise (no OCSPSigning EKU)")
        // The certificate's own key (a serverAuth certificate of the same CA) is no better.
        let byLeaf = Array(try fixture.pki.ocspResponse(for: leaf, signer: (leaf.certificate, leaf.key)))
        XCTAssertEqual(reason { try OCSPResponseVerifier.verify(byLeaf, for: record, now: UTCTime.now()) },
                       .signerNotAuthorised)
    }

    func testResponseSignedByAnotherCAIsRejected() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let otherDirectory = try TemporaryDirectory()
        let other = try TestPKI(directory: otherDirectory.path, name: "Other CA")
        let otherResponder = try other.issueResponder(withOCSPSigning: true)
        for signer in [(other.certificate, other.key), otherResponder] {
            let der = Array(try fixture.pki.ocspResponse(for: leaf, signer: signer))
            let failure = error { try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now()) }
            guard case .signerNotTrusted(let detail)? = failure?.reason else { return XCTFail("\(String(describing: failure))") }
            XCTAssertTrue(["self-signed certificate", "unable to get local issuer certificate"].contains(detail), detail)
            XCTAssertEqual(failure?.description, "response signed by a certificate that is neither the issuer nor issued by it (\(detail))")
        }
        // Same CA name, different key: the name alone proves nothing.
        let twinDirectory = try TemporaryDirectory()
        let twin = try TestPKI(directory: twinDirectory.path, name: "Stapler Test CA")
        let der = Array(try fixture.pki.ocspResponse(for: leaf, signer: (twin.certificate, twin.key)))
        XCTAssertNotNil(reason { try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now()) })
        // A response that leaves out the signer certificate altogether.
        let bare = try CraftedResponse.sign(certID: record.certID, thisUpdate: UTCTime.now(), nextUpdate: UTCTime.now() + 3600,
                                            signerCertificate: other.certificate, signerKey: other.key,
                                            includeSigner: false)
        XCTAssertEqual(reason { try OCSPResponseVerifier.verify(bare, for: record, now: UTCTime.now()) }, .signerNotFound)
    }

    func testIntermediateIssuerIsTheTrustAnchorAndItsParentMayNotSign() throws {
        let fixture = try PKIFixture()
        let intermediateDirectory = try TemporaryDirectory()
        let intermediate = try TestPKI(directory: intermediateDirectory.path, name: "Intermediate", parent: fixture.pki)
        let leaf = try intermediate.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let path = fixture.temp.file("chain.pem")
        try [leaf.certificate, intermediate.certificate, leaf.key].map { try String(contentsOfFile: $0, encoding: .utf8) }
            .joined().write(toFile: path, atomically: true, encoding: .utf8)
        let record = try fixture.record(path)
        let now = UTCTime.now()

        XCTAssertEqual(try OCSPResponseVerifier.verify(Array(try intermediate.ocspResponse(for: leaf)), for: record, now: now).status,
                       .good)
        let delegated = try intermediate.issueResponder(withOCSPSigning: true)
        XCTAssertEqual(try OCSPResponseVerifier.verify(Array(try intermediate.ocspResponse(for: leaf, signer: delegated)),
                                                       for: record, now: now).status, .good)
        // The root did not issue this certificate: it is not its OCSP authority (RFC 6960 §4.2.2.2).
        let byRoot = try CraftedResponse.sign(certID: record.certID, thisUpdate: now, nextUpdate: now + 3600,
                                              signerCertificate: fixture.pki.certificate, signerKey: fixture.pki.key)
        guard case .signerNotTrusted? = reason({ try OCSPResponseVerifier.verify(byRoot, for: record, now: now) }) else {
            return XCTFail("a response signed by the issuer's parent must be refused")
        }
        // Nor a responder delegated by the root.
        let rootResponder = try fixture.pki.issueResponder(withOCSPSigning: true)
        let byRootResponder = try CraftedResponse.sign(certID: record.certID, thisUpdate: now, nextUpdate: now + 3600,
                                                       signerCertificate: rootResponder.certificate,
                                                       signerKey: rootResponder.key)
        guard case .signerNotTrusted? = reason({ try OCSPResponseVerifier.verify(byRootResponder, for: record, now: now) }) else {
            return XCTFail("a responder delegated by the issuer's parent must be refused")
        }
    }

    func testIssuerSignedResponseCarryingAnotherVariantOfTheIssuerCertificateIsAccepted() throws {
        // A cross-signed CA: same name, same key, another certificate. The response carries
        // that variant; the signature is still the issuer's key.
        let fixture = try PKIFixture()
        let intermediateDirectory = try TemporaryDirectory()
        let intermediate = try TestPKI(directory: intermediateDirectory.path, name: "Intermediate", parent: fixture.pki)
        let leaf = try intermediate.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let path = fixture.temp.file("chain.pem")
        try [leaf.certificate, intermediate.certificate].map { try String(contentsOfFile: $0, encoding: .utf8) }
            .joined().write(toFile: path, atomically: true, encoding: .utf8)
        let record = try fixture.record(path)
        let variant = fixture.temp.file("variant.pem")
        try Shell.run(["openssl", "req", "-x509", "-key", intermediate.key, "-subj", "/CN=Intermediate", "-days", "10",
                       "-out", variant, "-addext", "basicConstraints=critical,CA:TRUE"])
        let now = UTCTime.now()
        let der = try CraftedResponse.sign(certID: record.certID, thisUpdate: now, nextUpdate: now + 3600,
                                           signerCertificate: variant, signerKey: intermediate.key)
        XCTAssertEqual(try OCSPResponseVerifier.verify(der, for: record, now: now).status, .good)
    }

    func testResponseForAnotherCertificateIsRejected() throws {
        let fixture = try PKIFixture()
        let leaves = try fixture.pki.issueLeaves(count: 2, ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaves[0])
        let der = Array(try fixture.pki.ocspResponse(for: leaves[1]))
        let failure = error { try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now()) }
        XCTAssertEqual(failure?.reason, .certificateNotInResponse)
        XCTAssertEqual(failure?.description, "response does not cover this certificate (no SingleResponse with its CertID)")
    }

    func testExpiredResponseIsRejectedOnceNowPassesNextUpdate() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let der = Array(try fixture.pki.ocspResponse(for: leaf, validForMinutes: 60))
        let verified = try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now())
        XCTAssertNoThrow(try OCSPResponseVerifier.verify(der, for: record, now: verified.nextUpdate - 1))
        let failure = error { try OCSPResponseVerifier.verify(der, for: record, now: verified.nextUpdate) }
        XCTAssertEqual(failure?.reason, .nextUpdateInPast(nextUpdate: verified.nextUpdate))
        XCTAssertEqual(failure?.description, "nextUpdate \(UTCTime.format(verified.nextUpdate)) is in the past")
        XCTAssertEqual(failure?.isTemporary, true)
    }

    func testResponseFromTheFutureIsRejectedBeyondTheSkew() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let now = UTCTime.now()
        let early = try CraftedResponse.sign(certID: record.certID, thisUpdate: now + 600, nextUpdate: now + 7200,
                                             signerCertificate: fixture.pki.certificate, signerKey: fixture.pki.key)
        let failure = error { try OCSPResponseVerifier.verify(early, for: record, now: now) }
        XCTAssertEqual(failure?.reason, .thisUpdateInFuture(thisUpdate: now + 600, allowedSkew: 300))
        XCTAssertEqual(failure?.description, "thisUpdate \(UTCTime.format(now + 600)) is more than 300 s in the future "
                       + "(by our clock: is it behind?)")
        XCTAssertEqual(failure?.isTemporary, true)
        // Within the skew, or once our clock catches up, it is fine.
        XCTAssertNoThrow(try OCSPResponseVerifier.verify(early, for: record, now: now + 300))
        XCTAssertNoThrow(try OCSPResponseVerifier.verify(early, for: record, now: now, allowedClockSkew: 600))
        // Seconds ahead of our clock with no skew allowed: refused; allowed once `now` catches up.
        let close = try CraftedResponse.sign(certID: record.certID, thisUpdate: now + 5, nextUpdate: now + 7200,
                                             signerCertificate: fixture.pki.certificate, signerKey: fixture.pki.key)
        XCTAssertEqual(reason { try OCSPResponseVerifier.verify(close, for: record, now: now, allowedClockSkew: 0) },
                       .thisUpdateInFuture(thisUpdate: now + 5, allowedSkew: 0))
        XCTAssertNoThrow(try OCSPResponseVerifier.verify(close, for: record, now: now + 5, allowedClockSkew: 0))
    }

    func testExpiredDelegatedResponderIsRejected() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let responder = try fixture.pki.issueResponder(withOCSPSigning: true) // valid 30 days
        let der = Array(try fixture.pki.ocspResponse(for: leaf, signer: responder, validForDays: 40))
        XCTAssertNoThrow(try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now() + 29 * 86400))
        guard case .signerNotTrusted(let detail)? = reason({
            try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now() + 31 * 86400)
        }) else { return XCTFail("a response signed with an expired responder certificate must be refused") }
        XCTAssertEqual(detail, "certificate has expired")
    }

    func testNextUpdateMustExistAndFollowThisUpdate() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let open = Array(try fixture.pki.ocspResponseWithoutNextUpdate(for: leaf))
        let failure = error { try OCSPResponseVerifier.verify(open, for: record, now: UTCTime.now()) }
        XCTAssertEqual(failure?.reason, .missingNextUpdate)
        XCTAssertEqual(failure?.isTemporary, false)

        let now = UTCTime.now()
        let backwards = try CraftedResponse.sign(certID: record.certID, thisUpdate: now, nextUpdate: now - 60,
                                                 signerCertificate: fixture.pki.certificate, signerKey: fixture.pki.key)
        XCTAssertEqual(reason { try OCSPResponseVerifier.verify(backwards, for: record, now: now) },
                       .nextUpdateNotAfterThisUpdate(thisUpdate: now, nextUpdate: now - 60))
    }

    func testUnsuccessfulResponseStatusesAreTemporaryOrPermanent() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let expectations: [(UInt8, OCSPResponseError.ResponderStatus, Bool)] = [
            (1, .malformedRequest, false), (2, .internalError, true), (3, .tryLater, true),
            (5, .sigRequired, false), (6, .unauthorized, true), (4, .other(4), false),
        ]
        for (code, status, temporary) in expectations {
            let der: [UInt8] = [0x30, 0x03, 0x0a, 0x01, code]
            let failure = error { try OCSPResponseVerifier.verify(der, for: record, now: UTCTime.now()) }
            XCTAssertEqual(failure?.reason, .responderStatus(status), "code \(code)")
            XCTAssertEqual(failure?.isTemporary, temporary, "code \(code)")
        }
        XCTAssertEqual(OCSPResponseError(.responderStatus(.tryLater)).description,
                       "responder answered tryLater: it cannot answer now")
    }

    func testGarbageIsRejectedWithoutACrash() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(for: leaf)
        let good = Array(try fixture.pki.ocspResponse(for: leaf))
        let now = UTCTime.now()

        XCTAssertEqual(reason { try OCSPResponseVerifier.verify([], for: record, now: now) }, .empty)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let random = (0..<Int.random(in: 1...3000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            assertOneLine(reason { try OCSPResponseVerifier.verify(random, for: record, now: now) })
        }
        // Random damage to a real response: a byte changed somewhere. Damage outside the
        // signed data (in the carried certificates, which a CA-signed response does not
        // need) may go unnoticed; anything else must fail cleanly.
        for _ in 0..<200 {
            var damaged = good
            damaged[Int.random(in: 0..<damaged.count, using: &generator)] ^= UInt8.random(in: 1...255, using: &generator)
            do {
                _ = try OCSPResponseVerifier.verify(damaged, for: record, now: now)
            } catch {
                assertOneLine(error.reason)
            }
        }
        for cut in [1, 10, good.count / 2, good.count - 1] {
            guard case .unparsable? = reason({ try OCSPResponseVerifier.verify(Array(good.prefix(cut)), for: record, now: now) }) else {
                return XCTFail("truncated to \(cut) bytes must be unparsable")
            }
        }
        XCTAssertEqual(reason { try OCSPResponseVerifier.verify(good + [0, 0, 0], for: record, now: now) },
                       .trailingData(count: 3))
        let oversize = good + [UInt8](repeating: 0, count: OCSPResponseVerifier.maximumResponseSize + 1 - good.count)
        XCTAssertEqual(reason { try OCSPResponseVerifier.verify(oversize, for: record, now: now) },
                       .tooLarge(size: 20481, limit: 20480))
        // A single flipped bit in the signed part breaks the signature.
        var flipped = good
        let serialBytes = Array(record.certID.der.suffix(2))
        let position = try XCTUnwrap((0..<(flipped.count - 1)).first { flipped[$0] == serialBytes[0] && flipped[$0 + 1] == serialBytes[1] })
        flipped[position + 1] ^= 0x01
        XCTAssertNotNil(reason { try OCSPResponseVerifier.verify(flipped, for: record, now: now) })
        // Nothing is left on OpenSSL's error queue for the next operation.
        XCTAssertEqual(ERR_peek_error(), 0)
    }

    func testStapleFileFoundAtStartupIsVerifiedTheSameWay() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let path = try fixture.bundle(leaf, name: "site.pem")
        let record = try fixture.record(path)
        try fixture.pki.ocspResponse(for: leaf).write(to: URL(fileURLWithPath: path + ".ocsp"))
        let staple = try XCTUnwrap(try StapleFile.read(forCertificate: FilePath(path)))
        XCTAssertEqual(try OCSPResponseVerifier.verify(staple, for: record, now: UTCTime.now()).status, .good)
        // Days later the same file is stale.
        XCTAssertEqual(reason { try OCSPResponseVerifier.verify(staple, for: record, now: UTCTime.now() + 2 * 86400) }.map {
            if case .nextUpdateInPast = $0 { return true } else { return false }
        }, true)
    }
}

/// Signs an OCSP response in process, with any thisUpdate and nextUpdate: `openssl ocsp`
/// always uses the current time for thisUpdate.
enum CraftedResponse {
    struct Failure: Error {}

    static func sign(certID: CertID, thisUpdate: Int64, nextUpdate: Int64?, signerCertificate: String, signerKey: String,
                     includeSigner: Bool = true) throws -> [UInt8] {
        guard let certBIO = BIO_new_file(signerCertificate, "r") else { throw Failure() }
        defer { BIO_free(certBIO) }
        guard let signer = PEM_read_bio_X509(certBIO, nil, nil, nil) else { throw Failure() }
        defer { X509_free(signer) }
        guard let keyBIO = BIO_new_file(signerKey, "r") else { throw Failure() }
        defer { BIO_free(keyBIO) }
        guard let key = PEM_read_bio_PrivateKey(keyBIO, nil, nil, nil) else { throw Failure() }
        defer { EVP_PKEY_free(key) }

        guard let basic = OCSP_BASICRESP_new() else { throw Failure() }
        defer { OCSP_BASICRESP_free(basic) }
        guard let id = certID.makeOpenSSLObject() else { throw Failure() }
        defer { OCSP_CERTID_free(id) }
        let thisTime = ASN1_GENERALIZEDTIME_set(nil, time_t(thisUpdate))
        defer { ASN1_GENERALIZEDTIME_free(thisTime) }
        let nextTime = nextUpdate.map { ASN1_GENERALIZEDTIME_set(nil, time_t($0)) } ?? nil
        defer { if let nextTime { ASN1_GENERALIZEDTIME_free(nextTime) } }
        guard OCSP_basic_add1_status(basic, id, V_OCSP_CERTSTATUS_GOOD, 0, nil, thisTime, nextTime) != nil,
              OCSP_basic_sign(basic, signer, key, EVP_sha256(), nil, includeSigner ? 0 : UInt(OCSP_NOCERTS)) == 1,
              let response = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic) else { throw Failure() }
        defer { OCSP_RESPONSE_free(response) }
        let length = i2d_OCSP_RESPONSE(response, nil)
        var der = [UInt8](repeating: 0, count: Int(length))
        _ = der.withUnsafeMutableBufferPointer { buffer in
            var cursor = buffer.baseAddress
            return i2d_OCSP_RESPONSE(response, &cursor)
        }
        return der
    }
}
