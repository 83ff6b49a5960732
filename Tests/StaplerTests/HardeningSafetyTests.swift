import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The daemon often runs as root next to private keys: a planted symlink must not turn its
/// writes against files elsewhere, and no log line may carry key material.
final class HardeningSafetyTests: XCTestCase {
    private var temp: TemporaryDirectory!
    private var pki: TestPKI!
    private var responder: OCSPResponderProcess!
    private var leaves: [TestPKI.Leaf] = []

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "stapler-hardening-safety")
        pki = try TestPKI(directory: temp.file("pki"))
        let port = freeLoopbackPort()
        leaves = try pki.issueLeaves(count: 4, commonName: "safety.test", ocspURLs: ["http://127.0.0.1:\(port)/"])
        responder = try OCSPResponderProcess(pki: pki, port: port)
    }

    override func tearDown() {
        responder?.stop()
        responder = nil
        temp = nil
    }

    func testStapleSymlinkPointingOutsideTheDirectoryIsRefusedAndItsTargetUntouched() throws {
        let certs = try Hardening.makeDirectory(temp.file("certs"))
        let outside = try Hardening.makeDirectory(temp.file("outside"))
        let victim = "\(outside)/shadow"
        let precious = Data("root:$6$precious:19000:0:99999:7:::\n".utf8)
        try precious.write(to: URL(fileURLWithPath: victim))

        let absolute = "\(certs)/absolute.pem"
        try pki.writeBundle(leaves[0], to: absolute)
        try FileManager.default.createSymbolicLink(atPath: absolute + ".ocsp", withDestinationPath: victim)
        let relative = "\(certs)/relative.pem"
        try pki.writeBundle(leaves[1], to: relative)
        try FileManager.default.createSymbolicLink(atPath: relative + ".ocsp", withDestinationPath: "../outside/shadow")
        let dangling = "\(certs)/dangling.pem"
        try pki.writeBundle(leaves[2], to: dangling)
        try FileManager.default.createSymbolicLink(atPath: dangling + ".ocsp", withDestinationPath: "\(outside)/new-file")
        // A link inside the directory is the operator's business, and followed.
        let inside = "\(certs)/inside.pem"
        try pki.writeBundle(leaves[3], to: inside)
        _ = try Hardening.makeDirectory("\(certs)/staples")
        try FileManager.default.createSymbolicLink(atPath: inside + ".ocsp", withDestinationPath: "staples/inside.der")

        let run = try StaplerProcess.run(["--one-off", certs], in: temp.path, timeout: 30)

        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertEqual(Hardening.contents(victim), precious, "the file outside is untouched")
        XCTAssertFalse(Hardening.exists("\(outside)/new-file"), "nothing created outside")
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: outside)) ?? [], ["shadow"])
        for (bundle, target) in [(absolute, victim), (relative, "../outside/shadow"), (dangling, "\(outside)/new-file")] {
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: bundle + ".ocsp"),
                           target == victim ? victim : target, "the link itself stays")
            let failure = Hardening.lines(run.output, containing: "\(bundle): staple not written")
            XCTAssertEqual(failure.count, 1, run.output)
            XCTAssertTrue(failure.first?.contains("outside the certificate's directory: not replacing it") == true,
                          run.output)
        }
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: "\(certs)/staples/inside.der", for: leaves[3]), "good")
        XCTAssertTrue(Hardening.temporaryFiles(in: certs).isEmpty)
    }

    func testNoKeyMaterialInTheLogAtFullVerbosity() throws {
        let certs = try Hardening.makeDirectory(temp.file("certs"))
        let keyPEM = try String(contentsOfFile: leaves[0].key, encoding: .utf8)
        let certificatePEM = try String(contentsOfFile: leaves[0].certificate, encoding: .utf8)
        let caPEM = try String(contentsOfFile: pki.certificate, encoding: .utf8)
        let keyBody = keyPEM.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()

        // Every shape of file a key can sit in, good and broken.
        try pki.writeBundle(leaves[0], to: "\(certs)/good.pem")
        try pki.writeBundle(leaves[1], to: "\(certs)/no-issuer.pem", includeIssuer: false)
        try keyPEM.write(toFile: "\(certs)/key-only.pem", atomically: true, encoding: .utf8)
        try (certificatePEM + caPEM + keyPEM.replacingOccurrences(of: "-----END", with: "-----FINISH"))
            .write(toFile: "\(certs)/unterminated-key.pem", atomically: true, encoding: .utf8)
        try (keyPEM.replacingOccurrences(of: "PRIVATE KEY", with: "CERTIFICATE") + caPEM)
            .write(toFile: "\(certs)/key-labelled-certificate.pem", atomically: true, encoding: .utf8)
        try (certificatePEM + caPEM + keyPEM.replacingOccurrences(of: "-----END PRIVATE KEY-----", with: "-----END CERTIFICATE-----"))
            .write(toFile: "\(certs)/mismatched-end.pem", atomically: true, encoding: .utf8)
        // Key bytes on BEGIN lines: a mangled file can put anything there.
        try ("-----BEGIN \(keyBody.prefix(60))-----\n" + keyBody + "\n-----END \(keyBody.prefix(60))-----\n" + certificatePEM)
            .write(toFile: "\(certs)/key-as-label.pem", atomically: true, encoding: .utf8)
        try (certificatePEM + "-----BEGIN \(keyBody.dropFirst(8).prefix(60))-----\n" + keyBody + "\n")
            .write(toFile: "\(certs)/key-as-unterminated-label.pem", atomically: true, encoding: .utf8)
        try (keyPEM + "\n" + keyBody + "\n").write(toFile: "\(certs)/stray.pem", atomically: true, encoding: .utf8)

        let daemon = try StaplerProcess(["-vvvv", certs], logPath: temp.file("daemon.log"))
        defer { daemon.signal(SIGKILL) }
        XCTAssertTrue(daemon.waitForLog("\(certs)/good.pem: staple written"), daemon.log)
        XCTAssertTrue(daemon.waitForLog("\(certs)/mismatched-end.pem"), daemon.log)
        XCTAssertTrue(daemon.waitForLog("\(certs)/key-as-label.pem"), daemon.log)
        XCTAssertTrue(daemon.waitForLog("\(certs)/key-as-unterminated-label.pem"), daemon.log)
        daemon.signal(SIGUSR1)
        XCTAssertTrue(daemon.waitForLog(" status: "), daemon.log)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
        let check = try StaplerProcess.run(["check", "\(certs)/good.pem", "\(certs)/key-only.pem"], in: temp.path)

        for (name, log) in [("daemon", daemon.log), ("check", check.output)] {
            XCTAssertFalse(log.isEmpty)
            // Any 16 consecutive characters of the key's base64 would be a leak.
            let body = Array(keyBody)
            for start in stride(from: 0, to: body.count - 16, by: 4) {
                let window = String(body[start..<start + 16])
                XCTAssertFalse(log.contains(window), "\(name) log leaks key bytes \(window): \(log)")
            }
            XCTAssertFalse(log.contains("PRIVATE KEY-----"), name)
        }
    }
}
