import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// Bundles without their issuer: the daemon fetches it from the certificate's CA Issuers URL
/// (served here in DER, PEM and PKCS#7), writes `<file>.issuer`, and staples as usual; a
/// wrong certificate is refused, a hanging URL times out without holding up the others, and
/// a hundred certificates of one issuer cause one download.
final class IssuerFetchEndToEndTests: XCTestCase {
    private struct Rig {
        let temp: TemporaryDirectory
        let pki: TestPKI
        let issuers: HostileResponder
        let ocspPort: UInt16
        let certificates: String
        var ocspURL: String { "http://127.0.0.1:\(ocspPort)/" }

        /// A bundle without its issuer whose CA Issuers URL is `route` of the issuer server.
        func bundle(_ name: String, route: String) throws -> (path: String, leaf: TestPKI.Leaf) {
            let leaf = try pki.issueLeaf(commonName: "\(name).test", ocspURLs: [ocspURL],
                                         caIssuersURL: issuers.url(route: route))
            let path = "\(certificates)/\(name).pem"
            try pki.writeBundle(leaf, to: path, includeIssuer: false)
            return (path, leaf)
        }

        func published(_ format: String, of pki: TestPKI? = nil) throws -> [UInt8] {
            let source = (pki ?? self.pki).certificate
            let output = temp.file("published-\(UUID().uuidString)")
            switch format {
            case "der": try Shell.run(["openssl", "x509", "-in", source, "-outform", "DER", "-out", output])
            case "pem": return Array(try Data(contentsOf: URL(fileURLWithPath: source)))
            default: try Shell.run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", source, "-outform", "DER",
                                    "-out", output])
            }
            return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
        }

        /// The SHA-256 fingerprint of a PEM certificate file, as openssl prints it.
        func fingerprint(_ path: String) throws -> String {
            try Shell.run(["openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"]).output
        }
    }

    /// The OCSP responder is started after the leaves are issued (`leaves`): `openssl ocsp`
    /// reads its index once.
    private func makeRig(_ prefix: String, leaves: (Rig) throws -> Void) throws -> (Rig, OCSPResponderProcess) {
        let temp = try TemporaryDirectory(prefix: prefix)
        let certificates = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true)
        let rig = Rig(temp: temp, pki: try TestPKI(directory: temp.file("pki")), issuers: try HostileResponder(),
                      ocspPort: freeLoopbackPort(), certificates: certificates)
        try leaves(rig)
        return (rig, try OCSPResponderProcess(pki: rig.pki, port: rig.ocspPort))
    }

    /// One bundle without its issuer, whose CA Issuers URL serves the issuer in DER.
    private func makeSingleSite(_ prefix: String) throws
        -> (rig: Rig, responder: OCSPResponderProcess, site: (path: String, leaf: TestPKI.Leaf)) {
        var bundle: (path: String, leaf: TestPKI.Leaf)?
        let (rig, responder) = try makeRig(prefix) { bundle = try $0.bundle("site", route: "der") }
        rig.issuers.set(.ocsp(try rig.published("der"), contentType: "application/pkix-cert"), for: "der")
        return (rig, responder, try XCTUnwrap(bundle))
    }

    private static let contentTypes = ["der": "application/pkix-cert", "pem": "application/x-x509-ca-cert",
                                       "p7c": "application/pkcs7-mime"]

    func testIssuersInEveryFormatAreFetchedOnceAndCertificatesStapled() throws {
        var bundles: [String: (path: String, leaf: TestPKI.Leaf)] = [:]
        var bulk: [String] = []
        var later: TestPKI.Leaf?
        let (rig, responder) = try makeRig("stapler-issuer-fetch") { rig in
            for format in ["der", "pem", "p7c", "wrong", "hang"] {
                bundles[format] = try rig.bundle(format, route: format)
            }
            let leaves = try rig.pki.issueLeaves(count: 101, commonName: "bulk.test", ocspURLs: [rig.ocspURL],
                                                 caIssuersURL: rig.issuers.url(route: "bulk"))
            later = leaves.last
            for (index, leaf) in leaves.dropLast().enumerated() {
                let path = "\(rig.certificates)/bulk-\(index).pem"
                try rig.pki.writeBundle(leaf, to: path, includeIssuer: false)
                bulk.append(path)
            }
        }
        defer { responder.stop(); rig.issuers.stop() }
        for (format, contentType) in Self.contentTypes {
            rig.issuers.set(.ocsp(try rig.published(format), contentType: contentType), for: format)
        }
        rig.issuers.set(.ocsp(try rig.published("der"), contentType: "application/octet-stream"), for: "bulk")
        // Another CA of the same name: only its key tells it apart.
        let impostor = try TestPKI(directory: rig.temp.file("impostor"))
        rig.issuers.set(.ocsp(try rig.published("der", of: impostor), contentType: "application/pkix-cert"), for: "wrong")
        rig.issuers.set(.hang, for: "hang")

        let daemon = try StaplerProcess(["-r", "3600", "--verbosity", "3", rig.certificates],
                                        logPath: rig.temp.file("stapler.log"))
        for format in ["der", "pem", "p7c"] {
            let bundle = try XCTUnwrap(bundles[format])
            XCTAssertTrue(waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: bundle.path + ".ocsp") },
                          "\(format): \(daemon.log)")
            XCTAssertEqual(try rig.fingerprint(bundle.path + ".issuer"), try rig.fingerprint(rig.pki.certificate), format)
            XCTAssertEqual(try rig.pki.verifyWithOpenSSL(staple: bundle.path + ".ocsp", for: bundle.leaf), "good", format)
            XCTAssertEqual(rig.issuers.requestCount(route: format), 1, format)
        }
        XCTAssertFalse(daemon.log.contains("timed out"), "the hanging URL holds up no other certificate")

        XCTAssertTrue(waitUntil(timeout: 60) { bulk.allSatisfy { FileManager.default.fileExists(atPath: $0 + ".ocsp") } },
                      daemon.log)
        XCTAssertEqual(rig.issuers.requestCount(route: "bulk"), 1, "one download for a hundred certificates")
        XCTAssertEqual(daemon.log.components(separatedBy: "from \(rig.issuers.url(route: "bulk")), missing from").count - 1, 1,
                       daemon.log)
        XCTAssertTrue(daemon.log.contains("fetched from \(rig.issuers.url(route: "bulk")) and written for 100 certificate(s)"),
                      daemon.log)
        // A certificate of the same issuer deployed later: its issuer is written without a download.
        let deployed = "\(rig.certificates)/bulk-later.pem"
        try rig.pki.writeBundle(try XCTUnwrap(later), to: deployed, includeIssuer: false)
        XCTAssertTrue(waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: deployed + ".ocsp") }, daemon.log)
        XCTAssertEqual(try rig.fingerprint(deployed + ".issuer"), try rig.fingerprint(rig.pki.certificate))
        XCTAssertEqual(rig.issuers.requestCount(route: "bulk"), 1, "no second download for the same issuer")

        // The impostor: refused with one line, nothing written, a retry planned.
        let wrong = try XCTUnwrap(bundles["wrong"])
        XCTAssertTrue(daemon.waitForLog("from \(rig.issuers.url(route: "wrong")): refused:"), daemon.log)
        XCTAssertTrue(daemon.log.contains("its key does not verify the certificate's signature; retrying in"), daemon.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: wrong.path + ".issuer"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: wrong.path + ".ocsp"))

        // The hanging URL: a timeout line once the request's limit passes.
        XCTAssertTrue(daemon.waitForLog("from \(rig.issuers.url(route: "hang")): timed out after", timeout: 30), daemon.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: try XCTUnwrap(bundles["hang"]).path + ".issuer"))
        XCTAssertTrue(daemon.isRunning)
    }

    func testWithAStapleDirectoryTheIssuerGoesBelowIt() throws {
        let (rig, responder, site) = try makeSingleSite("stapler-issuer-fetch-dir")
        defer { responder.stop(); rig.issuers.stop() }
        let stapleDirectory = rig.temp.file("staples")
        let result = try StaplerProcess.run(["--one-off", "--verbosity", "3", "--staple-dir", stapleDirectory,
                                             rig.certificates], in: rig.temp.path)
        XCTAssertEqual(result.status, 0, result.output)
        let issuer = stapleDirectory + site.path + ".issuer"
        XCTAssertEqual(try rig.fingerprint(issuer), try rig.fingerprint(rig.pki.certificate), result.output)
        XCTAssertEqual(try rig.pki.verifyWithOpenSSL(staple: stapleDirectory + site.path + ".ocsp", for: site.leaf), "good")
        XCTAssertFalse(FileManager.default.fileExists(atPath: site.path + ".issuer"), "nothing written beside the certificate")

        // A second pass finds the issuer there: no download.
        let again = try StaplerProcess.run(["--one-off", "--no-recycle", "--verbosity", "3", "--staple-dir",
                                            stapleDirectory, rig.certificates], in: rig.temp.path)
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertEqual(rig.issuers.requestCount(route: "der"), 1, again.output)
    }

    func testNoFetchIssuersKeepsTheOldRefusal() throws {
        let (rig, responder, site) = try makeSingleSite("stapler-issuer-fetch-off")
        defer { responder.stop(); rig.issuers.stop() }

        let off = try StaplerProcess.run(["--one-off", "--no-fetch-issuers", rig.certificates], in: rig.temp.path)
        XCTAssertEqual(off.status, 1, off.output)
        XCTAssertTrue(off.output.contains("issuer of certificate \"CN=site.test\" found neither in the file nor in "
                                          + "\(site.path).issuer"), off.output)
        XCTAssertEqual(rig.issuers.requestCount(route: "der"), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: site.path + ".issuer"))

        // The same pass without the option downloads it (so the count above could see one).
        let on = try StaplerProcess.run(["--one-off", rig.certificates], in: rig.temp.path)
        XCTAssertEqual(on.status, 0, on.output)
        XCTAssertEqual(rig.issuers.requestCount(route: "der"), 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: site.path + ".issuer"))
    }
}
