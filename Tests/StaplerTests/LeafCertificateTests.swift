import COpenSSL
import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The leaf decoder of our own (`LeafCertificate`, `BundleFastPath`) against OpenSSL's path
/// on real openssl-made certificates: wherever it accepts a certificate, every fact a record
/// holds is what OpenSSL gives; what it does not fully understand it refuses, and the bundle
/// still loads (through OpenSSL) as before.
final class LeafCertificateTests: XCTestCase {
    /// A CA and leaves made with the openssl CLI directly, for shapes `TestPKI` does not make.
    private final class CLIAuthority {
        let temp: TemporaryDirectory
        let certificate: String
        let key: String
        private var count = 0

        init(temp: TemporaryDirectory, name: String, rsa: Bool) throws {
            self.temp = temp
            certificate = temp.file("\(name).pem")
            key = temp.file("\(name).key")
            let algorithm = rsa ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
            try Shell.run(["openssl", "req", "-x509", "-nodes"] + algorithm + ["-keyout", key, "-out", certificate,
                           "-subj", "/CN=\(name)", "-days", "30",
                           "-addext", "basicConstraints=critical,CA:TRUE",
                           "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                           "-addext", "subjectKeyIdentifier=hash"])
        }

        /// A leaf signed by this CA (with SHA-256); its PEM path.
        func issue(subject: String = "/CN=leaf.test", serial: String = "0x1234", days: Int = 30,
                   extensions: [String]) throws -> String {
            count += 1
            let base = temp.file("leaf-\(count)")
            try Shell.run(["openssl", "req", "-new", "-utf8", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                           "-nodes", "-keyout", "\(base).key", "-out", "\(base).csr", "-subj", subject])
            try (extensions.joined(separator: "\n") + "\n").write(toFile: "\(base).ext", atomically: true, encoding: .utf8)
            try Shell.run(["openssl", "x509", "-req", "-in", "\(base).csr", "-CA", certificate, "-CAkey", key,
                           "-set_serial", serial, "-days", String(days), "-sha256", "-extfile", "\(base).ext",
                           "-out", "\(base).pem"])
            return "\(base).pem"
        }
    }

    private static let leafExtensions = [
        "basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth,clientAuth", "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid",
        "subjectAltName=DNS:leaf.test,DNS:www.leaf.test,IP:127.0.0.1",
        "crlDistributionPoints=URI:http://crl.example.test/ca.crl",
        "certificatePolicies=2.23.140.1.2.1",
        "authorityInfoAccess=OCSP;URI:http://ocsp.example.test/,caIssuers;URI:http://ca.example.test/ca.der",
    ]

    private func der(_ pemPath: String) throws -> [UInt8] {
        let text = Array(try Data(contentsOf: URL(fileURLWithPath: pemPath)))
        return try XCTUnwrap(CertificateBundle.decodeCertificates(text).first?.der)
    }

    /// Compares the fast reading of `leaf` with OpenSSL's; returns the fast one (nil if refused).
    @discardableResult
    private func compare(_ leaf: String, issuer: String, file: StaticString = #filePath, line: UInt = #line) throws
        -> LeafCertificate? {
        let leafDER = try der(leaf)
        let slow = try XCTUnwrap(X509Certificate(der: leafDER, withPublicKey: false), file: file, line: line)
        let issuerCertificate = try XCTUnwrap(X509Certificate(der: try der(issuer)), file: file, line: line)
        guard let fast = LeafCertificate(der: leafDER) else { return nil }
        XCTAssertFalse(slow.isCA, file: file, line: line)
        XCTAssertEqual(fast.subject, slow.subject, file: file, line: line)
        XCTAssertEqual(fast.serialHex, slow.serialHex, file: file, line: line)
        XCTAssertEqual(fast.notBefore, slow.notBefore, file: file, line: line)
        XCTAssertEqual(fast.notAfter, slow.notAfter, file: file, line: line)
        XCTAssertEqual(fast.ocspURLs, slow.ocspURLs, file: file, line: line)
        XCTAssertEqual(fast.mustStaple, slow.mustStaple, file: file, line: line)
        XCTAssertEqual(Array(fast.authorityKeyID), ASN1.bytes(X509_get0_authority_key_id(slow.pointer)), file: file, line: line)
        let check = try XCTUnwrap(IssuerLeafCheck(issuerCertificate), file: file, line: line)
        XCTAssertEqual(check.issued(fast), issuerCertificate.issued(slow), file: file, line: line)
        if check.issued(fast) {
            XCTAssertEqual(check.certID(of: fast), CertID(certificate: slow, issuer: issuerCertificate), file: file, line: line)
        }
        return fast
    }

    func testLeavesOfAnECAndAnRSAIssuerReadAsOpenSSLReadsThem() throws {
        let temp = try TemporaryDirectory()
        for rsa in [false, true] {
            let ca = try CLIAuthority(temp: temp, name: rsa ? "RSA CA" : "EC CA", rsa: rsa)
            let leaf = try ca.issue(subject: "/C=FR/O=Example Org/OU=Web/CN=www.example.test", extensions: Self.leafExtensions)
            let fast = try XCTUnwrap(try compare(leaf, issuer: ca.certificate))
            XCTAssertEqual(fast.subject, "C=FR, O=Example Org, OU=Web, CN=www.example.test")
            XCTAssertEqual(fast.signatureKeyType, rsa ? .rsa : .ec)
            XCTAssertTrue(try XCTUnwrap(IssuerLeafCheck(X509Certificate(der: try der(ca.certificate))!)).issued(fast))
        }
    }

    func testMustStapleAndSeveralOCSPURLsInOpenSSLsOrder() throws {
        let temp = try TemporaryDirectory()
        let ca = try CLIAuthority(temp: temp, name: "EC CA", rsa: false)
        let urls = ["http://c.test/", "http://b.test/", "ldap://x.test/", "http://a.test/", "http://b.test/",
                    "https://0.test/", "http://bad url/"] + (1...8).map { "http://more\($0).test/" }
        let aia = "authorityInfoAccess=" + urls.map { "OCSP;URI:\($0)" }.joined(separator: ",")
        let leaf = try ca.issue(extensions: Array(Self.leafExtensions.dropLast()) + [aia, "tlsfeature=status_request"])
        let fast = try XCTUnwrap(try compare(leaf, issuer: ca.certificate))
        XCTAssertTrue(fast.mustStaple)
        XCTAssertEqual(fast.ocspURLs.count, X509Certificate.maximumOCSPURLs)
        XCTAssertEqual(fast.ocspURLs.first, "http://a.test/")

        let otherFeature = try ca.issue(extensions: Self.leafExtensions + ["tlsfeature=status_request_v2"])
        XCTAssertEqual(try compare(otherFeature, issuer: ca.certificate)?.mustStaple, false)
    }

    func testNonASCIISubjectAndGeneralizedTimeAfter2050() throws {
        let temp = try TemporaryDirectory()
        let ca = try CLIAuthority(temp: temp, name: "EC CA", rsa: false)
        let leaf = try ca.issue(subject: "/O=Café, \"Ünïcode\" + Co/CN=  spaced.test ", days: 15000, extensions: Self.leafExtensions)
        let fast = try XCTUnwrap(try compare(leaf, issuer: ca.certificate))
        XCTAssertTrue(fast.subject.contains("\\"), fast.subject)
        XCTAssertGreaterThan(fast.notAfter, 2_524_608_000) // 2050-01-01
    }

    func testSerialsPositiveWithALeadingZeroAreReadNegativeOnesAreRefused() throws {
        let temp = try TemporaryDirectory()
        let ca = try CLIAuthority(temp: temp, name: "EC CA", rsa: false)
        let zeroLed = try ca.issue(serial: "0x80112233445566778899", extensions: Self.leafExtensions)
        XCTAssertEqual(try compare(zeroLed, issuer: ca.certificate)?.serialHex, "80112233445566778899")
        let negative = try ca.issue(serial: "-5", extensions: Self.leafExtensions)
        XCTAssertNil(try compare(negative, issuer: ca.certificate))
    }

    func testWhatItDoesNotFullyUnderstandIsRefused() throws {
        let temp = try TemporaryDirectory()
        let ca = try CLIAuthority(temp: temp, name: "EC CA", rsa: false)
        let withoutAKI = try ca.issue(extensions: Self.leafExtensions.map {
            $0.hasPrefix("authorityKeyIdentifier") ? "authorityKeyIdentifier=none" : $0 })
        XCTAssertNil(try compare(withoutAKI, issuer: ca.certificate))
        let caLooking = try ca.issue(extensions: ["keyUsage=keyCertSign", "authorityKeyIdentifier=keyid"])
        XCTAssertNil(try compare(caLooking, issuer: ca.certificate))
        let nameConstraints = try ca.issue(extensions: Self.leafExtensions + ["nameConstraints=permitted;DNS:.test"])
        XCTAssertNil(try compare(nameConstraints, issuer: ca.certificate))
        XCTAssertNil(LeafCertificate(der: try der(ca.certificate)))
    }

    func testAnIssuerThatDidNotIssueTheLeafIsNotTakenForItsIssuer() throws {
        let temp = try TemporaryDirectory()
        let ca = try CLIAuthority(temp: temp, name: "EC CA", rsa: false)
        let other = try CLIAuthority(temp: temp, name: "Other CA", rsa: true)
        let leaf = try ca.issue(extensions: Self.leafExtensions)
        let fast = try XCTUnwrap(try compare(leaf, issuer: other.certificate))
        XCTAssertFalse(try XCTUnwrap(IssuerLeafCheck(X509Certificate(der: try der(other.certificate))!)).issued(fast))
    }

    func testPlainSubjectsAreWrittenHereAsOpenSSLPrintsThemOthersByOpenSSL() throws {
        let temp = try TemporaryDirectory()
        let ca = try CLIAuthority(temp: temp, name: "EC CA", rsa: false)
        let subjects: [(String, plain: Bool)] = [
            ("/CN=leaf.test", true), ("/C=FR/ST=Ile/L=Paris/O=Example (Org)/OU=Web:1/CN=www.example.test", true),
            ("/emailAddress=a@b.test/DC=test/serialNumber=42/postalCode=75001/street=1 Rue", true),
            ("/CN=a, b", false), ("/CN=a\\+b", false), ("/CN= lead", false), ("/O=x/CN=a=b", false),
            ("/CN=a/CN=b+O=c", false), ("/title=Boss/CN=x", false), ("/CN=Zoë", false),
        ]
        for (subject, plain) in subjects {
            let der = try der(try ca.issue(subject: subject, extensions: Self.leafExtensions))
            let slow = try XCTUnwrap(X509Certificate(der: der, withPublicKey: false))
            let fast = try XCTUnwrap(LeafCertificate(der: der), subject)
            XCTAssertEqual(fast.subject, slow.subject, subject)
            var tbs = DERCursor(der, 0..<der.count)
            var fields = DERCursor(der, inside: try XCTUnwrap(tbs.next(0x30)))
            var inner = DERCursor(der, inside: try XCTUnwrap(fields.next(0x30)))
            for _ in 0..<5 { _ = inner.next() }
            let name = try XCTUnwrap(inner.next(0x30))
            XCTAssertEqual(CertificateName.plainOneLine(der: der, name: name.whole) != nil, plain, subject)
        }
    }

    /// A fuzz finding: a certificate whose issuer Name OpenSSL refuses (a bad OID) reads here,
    /// since the issuer Name only counts when equal to a known issuer's subject; as a bundle it
    /// fails as it always did.
    func testAnIssuerNameOpenSSLRefusesNeverReachesARecord() throws {
        let der = Array(try XCTUnwrap(Data(base64Encoded: "\(Self.badIssuerNameLeaf)")))
        XCTAssertNil(X509Certificate(der: der, withPublicKey: false))
        let fixture = try PKIFixture()
        let store = IssuerStore()
        let seed = try fixture.record(try fixture.bundle(try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:1/"]),
                                                         name: "seed.pem"), store: store)
        defer { withExtendedLifetime(seed) {} }
        let path = fixture.temp.file("bad.pem")
        try ("-----BEGIN CERTIFICATE-----\n\(Self.badIssuerNameLeaf)\n-----END CERTIFICATE-----\n"
             + String(contentsOfFile: fixture.pki.certificate, encoding: .utf8)).write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertNil(BundleFastPath(text: try text(path), issuers: store))
        XCTAssertEqual(fixture.error(path)?.description.contains("is not an X.509 certificate"), true)
        XCTAssertThrowsError(try fixture.record(path, store: store))
    }

    private static let badIssuerNameLeaf = "MIIB0TCCAXegAwIBAgIUUfPsPh3YSZIeCj55KkOcXahCuKwwCgYIKoZIzj0EAwIwETEPMA0GA7H7/PMGRnV6ekNBMB4XDTI2MTIwNzA5MjczMFoXDTM2MTIwNDA5MjczMFowFDESMBAGA1UEAwwJZnV6ei50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEN3cqCUEd2XVyjyu63UIWkERvSgTwAtTjZ5KlAZYhdvi0wmqJzKAr4RADPbxyslMosoM62nyoQNX5uaI8Gg4ZPKOBqTCBpjAMBgNVHRMBAf8EAjAAMFYGCCsGAQUFBwEBBEowSDAfBggrBgEFBQcwAYYTaHR0cDovLzEyNy4wLjAuMToxLzAlBggrBgEFBQcwAoYZaHR0cDovLzEyNy4wLjAuMToxL2NhLmRlcjAdBgNVHQ4EFgQUYN/a4wPjrVyThscTflWEb5s2uf8wHwYDVR0jBBgwFoAUXfPqjhy7C3fLLrcY+QkFE0dx10cwCgYIKoZIzj0EAwIDSAAwRQIhALS2imHgoWu+9igcAqsiqSRdQdMF7ShZbSOMuvWSjPf8AiB//9mCekaT6/64Xxp+M0KQs+cAPF2zQ04EKVyhP1yt7Q=="

    // MARK: bundles

    private func fields(_ record: CertificateRecord) -> [String] {
        [record.subject, record.serialHex, "\(record.notBefore)", "\(record.notAfter)", "\(record.ocspURLs)",
         "\(record.mustStaple)", record.certID.hex, record.issuer.subject]
    }

    private func text(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    func testBundlesOfAKnownChainGiveTheRecordOpenSSLsPathGives() throws {
        let fixture = try PKIFixture()
        let leaves = try fixture.pki.issueLeaves(count: 3, ocspURLs: ["http://127.0.0.1:8888/ocsp"])
        let mustStaple = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/a", "http://127.0.0.1:8888/b"],
                                                   mustStaple: true)
        let store = IssuerStore()
        let first = try fixture.bundle(leaves[0], name: "first.pem")
        XCTAssertNil(BundleFastPath(text: try text(first), issuers: store), "no issuer is known yet")
        // Issuers are known while a record holds them.
        let seed = try fixture.record(first, store: store)
        defer { withExtendedLifetime(seed) {} }

        for leaf in leaves.dropFirst() + [mustStaple] {
            let path = try fixture.bundle(leaf, name: "site-\(leaf.serial).pem")
            XCTAssertNotNil(BundleFastPath(text: try text(path), issuers: store))
            let fast = try fixture.record(path, store: store)
            let slow = try fixture.record(path)
            XCTAssertEqual(fields(fast), fields(slow))
            XCTAssertEqual(fast.certID, try fixture.opensslCertID(leaf: leaf))
            XCTAssertTrue(fast.issuer === store.knownIssuer(der: try der(fixture.pki.certificate)))
        }
        XCTAssertTrue(try fixture.record(try fixture.bundle(mustStaple, name: "ms.pem"), store: store).mustStaple)

        // The CA first, the key between: still the same leaf and issuer.
        let reordered = fixture.temp.file("reordered.pem")
        try (String(contentsOfFile: fixture.pki.certificate, encoding: .utf8)
             + String(contentsOfFile: leaves[1].key, encoding: .utf8)
             + String(contentsOfFile: leaves[1].certificate, encoding: .utf8)).write(toFile: reordered, atomically: true, encoding: .utf8)
        XCTAssertNotNil(BundleFastPath(text: try text(reordered), issuers: store))
        XCTAssertEqual(fields(try fixture.record(reordered, store: store)), fields(try fixture.record(reordered)))

        // The PEM text, private key included, is still wiped.
        var pem = try text(first)
        _ = try CertificateBundle.parse(pem: &pem, path: FilePath(first), now: UTCTime.now(), issuers: store)
        XCTAssertTrue(pem.allSatisfy { $0 == 0 })
    }

    func testBundlesTheFastPathRefusesLoadAsBeforeWithTheSameErrors() throws {
        let fixture = try PKIFixture()
        let store = IssuerStore()
        let seed = try fixture.record(try fixture.bundle(try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:1/"]),
                                                         name: "seed.pem"), store: store)
        defer { withExtendedLifetime(seed) {} }
        let noAKI = try fixture.pki.issueLeaves(ocspURLs: ["http://127.0.0.1:1/"], authorityKeyIdentifier: false)[0]
        let noAKIPath = try fixture.bundle(noAKI, name: "no-aki.pem")
        XCTAssertNil(BundleFastPath(text: try text(noAKIPath), issuers: store))
        XCTAssertEqual(fields(try fixture.record(noAKIPath, store: store)), fields(try fixture.record(noAKIPath)))

        // Errors come out the same, fast path or not.
        let expired = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:1/"], expired: true)
        let noURL = try fixture.pki.issueLeaf(ocspURLs: [])
        for leaf in [expired, noURL] {
            let path = try fixture.bundle(leaf, name: "bad-\(leaf.serial).pem")
            XCTAssertNotNil(BundleFastPath(text: try text(path), issuers: store))
            func failure(_ store: IssuerStore) -> String {
                do {
                    _ = try fixture.record(path, store: store)
                    return "loaded"
                } catch {
                    return "\(error)"
                }
            }
            XCTAssertEqual(failure(store), failure(IssuerStore()))
            XCTAssertNotEqual(failure(store), "loaded")
        }

        // Two leaves, or a leaf with a CA of another chain: OpenSSL's path decides, as before.
        let twoLeaves = fixture.temp.file("two.pem")
        let leaves = try fixture.pki.issueLeaves(count: 2, ocspURLs: ["http://127.0.0.1:1/"])
        try (String(contentsOfFile: leaves[0].certificate, encoding: .utf8)
             + String(contentsOfFile: leaves[1].certificate, encoding: .utf8)
             + String(contentsOfFile: fixture.pki.certificate, encoding: .utf8)).write(toFile: twoLeaves, atomically: true, encoding: .utf8)
        XCTAssertNil(BundleFastPath(text: try text(twoLeaves), issuers: store))
        XCTAssertEqual(fields(try fixture.record(twoLeaves, store: store)), fields(try fixture.record(twoLeaves)))
    }
}
