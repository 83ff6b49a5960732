import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// What a CA Issuers URL answers (DER, PEM, PKCS#7 in DER or PEM, or garbage) and whether a
/// downloaded certificate is accepted as a leaf's issuer.
final class IssuerDocumentTests: XCTestCase {
    private struct Fixture {
        let temp: TemporaryDirectory
        let pki: TestPKI
        let other: TestPKI
        let leaf: X509Certificate

        func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

        /// The CA certificate as `openssl` would publish it.
        func published(_ pki: TestPKI, _ format: String) throws -> [UInt8] {
            let output = temp.file("ca-\(UUID().uuidString)")
            switch format {
            case "der": try Shell.run(["openssl", "x509", "-in", pki.certificate, "-outform", "DER", "-out", output])
            case "pem": return try bytes(pki.certificate)
            case "p7c": try Shell.run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", pki.certificate, "-outform", "DER",
                                       "-out", output])
            case "p7pem": try Shell.run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", pki.certificate, "-out", output])
            default: XCTFail("unknown format \(format)")
            }
            return try bytes(output)
        }
    }

    private static let caIssuersURL = "http://127.0.0.1:9/ca.der"

    private func makeFixture() throws -> Fixture {
        let temp = try TemporaryDirectory(prefix: "stapler-issuer-document")
        let pki = try TestPKI(directory: temp.file("pki"))
        let other = try TestPKI(directory: temp.file("other"), name: "Stapler Test CA")
        let leaf = try pki.issueLeaf(ocspURLs: ["http://127.0.0.1:9/"], caIssuersURL: Self.caIssuersURL)
        let pem = Array(try Data(contentsOf: URL(fileURLWithPath: leaf.certificate)))
        let certificate = try XCTUnwrap(CertificateBundle.decodeCertificates(pem).first)
        let full = try XCTUnwrap(X509Certificate(der: try XCTUnwrap(certificate.der)))
        return Fixture(temp: temp, pki: pki, other: other, leaf: full)
    }

    func testTheLeafNamesItsCAIssuersURL() throws {
        let fixture = try makeFixture()
        XCTAssertEqual(fixture.leaf.caIssuersURLs, [Self.caIssuersURL])
        XCTAssertEqual(fixture.leaf.ocspURLs, ["http://127.0.0.1:9/"], "OCSP URLs stay apart from CA Issuers URLs")
        XCTAssertEqual(fixture.leaf.issuerName, "CN=Stapler Test CA")
    }

    func testEveryPublishedFormatYieldsTheIssuer() throws {
        let fixture = try makeFixture()
        let expected = try fixture.published(fixture.pki, "der")
        for format in ["der", "pem", "p7c", "p7pem"] {
            let certificates = try IssuerDocument.certificates(in: try fixture.published(fixture.pki, format))
            XCTAssertEqual(certificates.count, 1, format)
            let issuer = try IssuerAcceptance.issuer(of: fixture.leaf, among: certificates).get()
            XCTAssertEqual(issuer.der, expected, format)
        }
    }

    func testABagPicksTheCertificateThatSignedTheLeaf() throws {
        let fixture = try makeFixture()
        let bag = fixture.temp.file("bag.p7c")
        try Shell.run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", fixture.other.certificate,
                       "-certfile", fixture.pki.certificate, "-outform", "DER", "-out", bag])
        let certificates = try IssuerDocument.certificates(in: try fixture.bytes(bag))
        XCTAssertEqual(certificates.count, 2)
        let issuer = try IssuerAcceptance.issuer(of: fixture.leaf, among: certificates).get()
        XCTAssertEqual(issuer.der, certificates[1].der, "the second certificate is the issuer; the first only has its name")
    }

    func testACertificateWithTheRightNameButAnotherKeyIsRefused() throws {
        let fixture = try makeFixture()
        let impostor = try IssuerDocument.certificates(in: try fixture.published(fixture.other, "der"))
        XCTAssertEqual(impostor.first?.subject, "CN=Stapler Test CA", "same name as the real issuer")
        guard case .failure(let error) = IssuerAcceptance.issuer(of: fixture.leaf, among: impostor) else {
            return XCTFail("another CA's certificate accepted")
        }
        XCTAssertTrue(error.reason.contains("its key does not verify the certificate's signature"), error.reason)
    }

    func testANonCACertificateOrAnotherNameIsRefused() throws {
        let fixture = try makeFixture()
        // The leaf itself: not a CA.
        let leafPEM = Array(fixture.leaf.der.map { IssuerFetcher.pem($0) } ?? [])
        let leafOnly = try IssuerDocument.certificates(in: leafPEM)
        guard case .failure(let notCA) = IssuerAcceptance.issuer(of: fixture.leaf, among: leafOnly) else {
            return XCTFail("a leaf accepted as issuer")
        }
        XCTAssertTrue(notCA.reason.contains("is not a CA certificate"), notCA.reason)
        // A CA of another name.
        let elsewhere = try TestPKI(directory: fixture.temp.file("elsewhere"), name: "Elsewhere CA")
        let named = try IssuerDocument.certificates(in: try fixture.published(elsewhere, "der"))
        guard case .failure(let otherName) = IssuerAcceptance.issuer(of: fixture.leaf, among: named) else {
            return XCTFail("a CA of another name accepted")
        }
        XCTAssertTrue(otherName.reason.contains("its subject differs from the certificate's issuer name"), otherName.reason)
    }

    func testGarbageIsRefusedWithAReason() throws {
        let fixture = try makeFixture()
        let der = try fixture.published(fixture.pki, "der")
        let cases: [(String, [UInt8], String)] = [
            ("empty", [], "empty answer"),
            ("html", Array("<html>not found</html>".utf8), "no certificate in the answer"),
            ("truncated DER", Array(der.dropLast(10)), "neither a DER nor a PEM certificate"),
            ("trailing bytes", der + [0], "neither a DER nor a PEM certificate"),
            ("bad base64", Array("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".utf8), "invalid base64"),
            ("too large", [UInt8](repeating: 0x30, count: IssuerDocument.maximumSize + 1), "larger than"),
        ]
        for (name, bytes, expected) in cases {
            XCTAssertThrowsError(try IssuerDocument.certificates(in: bytes), name) {
                XCTAssertTrue("\($0)".contains(expected), "\(name): \($0)")
            }
        }
    }

    func testRandomBytesNeverCrash() {
        var generator = SeededGenerator.announced("IssuerDocumentTests.testRandomBytesNeverCrash")
        for _ in 0..<2000 {
            let count = Int.random(in: 0..<512, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if Bool.random(using: &generator), !bytes.isEmpty { bytes[0] = 0x30 }
            _ = try? IssuerDocument.certificates(in: bytes)
        }
    }
}
