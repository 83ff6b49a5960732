import Foundation
import TestSupport
import XCTest

/// Responders behind https, as a few CAs publish them: the real daemon against an `openssl
/// ocsp` responder behind HAProxy's TLS on 127.0.0.1, its certificate issued by a private CA
/// the operator names through SSL_CERT_FILE or SSL_CERT_DIR (Debian's libcurl ignores both on
/// its own). A certificate for another name or an expired one is refused with one line that
/// names the URL and says why, and nothing is written.
final class HTTPSResponderTests: XCTestCase {
    private final class Fixture {
        let temp: TemporaryDirectory
        let pki: TestPKI
        /// The CA of the responders' TLS certificates, trusted by nothing on the machine.
        let tlsCA: TestPKI
        let front: TLSFrontProcess
        let responder: OCSPResponderProcess
        let good: TestPKI.Leaf
        let wrongName: TestPKI.Leaf
        let expired: TestPKI.Leaf

        init() throws {
            temp = try TemporaryDirectory(prefix: "stapler-https")
            pki = try TestPKI(directory: temp.file("pki"))
            tlsCA = try TestPKI(directory: temp.file("tls-ca"), name: "Responder TLS CA")
            let loopback = try tlsCA.issueLeaves(commonName: "127.0.0.1", ocspURLs: [], subjectAltName: "IP:127.0.0.1")[0]
            let other = try tlsCA.issueLeaf(commonName: "ocsp.example.org", ocspURLs: [])
            let lapsed = try tlsCA.issueLeaves(commonName: "127.0.0.1", ocspURLs: [], expired: true,
                                               subjectAltName: "IP:127.0.0.1")[0]
            var bundles: [String] = []
            for (name, leaf) in [("good", loopback), ("wrong-name", other), ("expired", lapsed)] {
                let bundle = temp.file("\(name)-tls.pem")
                try tlsCA.writeBundle(leaf, to: bundle, includeIssuer: false)
                bundles.append(bundle)
            }
            let backendPort = freeLoopbackPort()
            front = try TLSFrontProcess(directory: temp.file("front"), bundles: bundles, backendPort: backendPort)
            good = try pki.issueLeaf(commonName: "good.test", ocspURLs: [front.url(0)])
            wrongName = try pki.issueLeaf(commonName: "wrong-name.test", ocspURLs: [front.url(1)])
            expired = try pki.issueLeaf(commonName: "expired.test", ocspURLs: [front.url(2)])
            // After the leaves: the responder reloads index.txt only when its time stamp moves.
            responder = try OCSPResponderProcess(pki: pki, port: backendPort)
        }

        /// A directory holding these leaves' bundles.
        func certificates(_ name: String, _ leaves: [(String, TestPKI.Leaf)]) throws -> String {
            let directory = try Hardening.makeDirectory(temp.file(name))
            for (file, leaf) in leaves { try pki.writeBundle(leaf, to: "\(directory)/\(file).pem") }
            return directory
        }

        /// `stapler --one-off -v directory` with the test runner's environment minus any CA
        /// settings, plus `trust`.
        func oneOff(_ directory: String, trust: [String: String]) throws -> (status: Int32?, log: String) {
            var environment = ProcessInfo.processInfo.environment
            environment["SSL_CERT_FILE"] = nil
            environment["SSL_CERT_DIR"] = nil
            environment.merge(trust) { $1 }
            let daemon = try StaplerProcess(["--one-off", "-v", directory],
                                            logPath: "\(directory).\(UUID().uuidString).log", environment: environment)
            return (daemon.waitForExit(timeout: 60), daemon.log)
        }
    }

    private static let shared = SharedFixture(make: { try Fixture() }, release: {
        $0.responder.stop()
        $0.front.stop()
    })
    private var fixture: Fixture!

    override func setUpWithError() throws { fixture = try Self.shared.value() }

    override func tearDown() { fixture = nil }

    override class func tearDown() {
        shared.tearDown()
        super.tearDown()
    }

    func testResponderTrustedThroughSSLCertFileIsUsedAndBadCertificatesAreRefused() throws {
        let f = fixture!
        let certs = try f.certificates("certs", [("good", f.good), ("wrong-name", f.wrongName), ("expired", f.expired)])
        let (status, log) = try f.oneOff(certs, trust: ["SSL_CERT_FILE": f.tlsCA.certificate])
        XCTAssertEqual(status, 1, "two certificates were not stapled: \(log)")

        XCTAssertTrue(log.contains("\(certs)/good.pem: staple written"), log)
        XCTAssertEqual(try f.pki.verifyWithOpenSSL(staple: "\(certs)/good.pem.ocsp", for: f.good), "good")

        let refusals = [
            ("wrong-name", f.front.url(1), "TLS failed: server certificate refused: "
                + "no alternative certificate subject name matches target host name '127.0.0.1'"),
            ("expired", f.front.url(2), "TLS failed: server certificate refused: certificate has expired"),
        ]
        for (name, url, reason) in refusals {
            let bundle = "\(certs)/\(name).pem"
            let lines = Hardening.lines(log, containing: "\(bundle): OCSP fetch failed")
            XCTAssertEqual(lines.count, 1, "\(name): one line: \(log)")
            XCTAssertTrue(lines.first?.contains("\(bundle): OCSP fetch failed: \(url): \(reason)") ?? false,
                          "\(name): names the URL and says why: \(lines)")
            XCTAssertFalse(Hardening.exists(bundle + ".ocsp"), "\(name): nothing written")
        }
    }

    func testResponderTrustedThroughSSLCertDirIsUsed() throws {
        let f = fixture!
        let trusted = try Hardening.makeDirectory(f.temp.file("trusted-dir"))
        try FileManager.default.copyItem(atPath: f.tlsCA.certificate, toPath: "\(trusted)/responder-ca.pem")
        try Shell.run(["openssl", "rehash", trusted])
        let certs = try f.certificates("certs-dir", [("good", f.good)])
        let (status, log) = try f.oneOff(certs, trust: ["SSL_CERT_DIR": trusted])
        XCTAssertEqual(status, 0, log)
        XCTAssertEqual(try f.pki.verifyWithOpenSSL(staple: "\(certs)/good.pem.ocsp", for: f.good), "good")
    }

    /// Without the operator's word the same responder is not trusted: the variables above are
    /// what made it work.
    func testResponderOfAnUnknownCAIsRefused() throws {
        let f = fixture!
        let certs = try f.certificates("certs-untrusted", [("good", f.good)])
        let (status, log) = try f.oneOff(certs, trust: [:])
        XCTAssertEqual(status, 1, log)
        let lines = Hardening.lines(log, containing: "\(certs)/good.pem: OCSP fetch failed")
        XCTAssertEqual(lines.count, 1, log)
        XCTAssertTrue(lines.first?.contains("\(f.front.url(0)): TLS failed: server certificate refused: "
                                            + "unable to get local issuer certificate") ?? false, "\(lines)")
        XCTAssertFalse(Hardening.exists("\(certs)/good.pem.ocsp"))
    }

    /// A variable naming a file that is not there is the operator's mistake: the line says
    /// which file.
    func testMissingSSLCertFileIsNamed() throws {
        let f = fixture!
        let certs = try f.certificates("certs-missing", [("good", f.good)])
        let (status, log) = try f.oneOff(certs, trust: ["SSL_CERT_FILE": f.temp.file("no-such-ca.pem")])
        XCTAssertEqual(status, 1, log)
        let lines = Hardening.lines(log, containing: "\(certs)/good.pem: OCSP fetch failed")
        XCTAssertTrue(lines.first?.contains("TLS failed: error setting certificate file: \(f.temp.file("no-such-ca.pem"))") ?? false,
                      "\(lines)")
    }
}
