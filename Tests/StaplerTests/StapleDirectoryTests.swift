import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// `--staple-dir`: certificates in read-only directories (a Kubernetes secret volume) are
/// stapled into another directory, HAProxy gets every staple through its socket, and a
/// restarted or reloaded HAProxy, which finds no staple files beside its certificates, is
/// given them all again.
final class StapleDirectoryTests: XCTestCase {
    func testTheMirroredPathKeepsCertificatesOfTheSameNameApart() {
        let location = StapleLocation.under("/var/lib/stapler")
        XCTAssertEqual(location.path(forCertificate: "/etc/haproxy/certs/site.pem"),
                       "/var/lib/stapler/etc/haproxy/certs/site.pem.ocsp")
        XCTAssertNotEqual(location.path(forCertificate: "/a/site.pem"), location.path(forCertificate: "/b/site.pem"))
        XCTAssertEqual(StapleLocation.besideCertificate.path(forCertificate: "/a/site.pem"), "/a/site.pem.ocsp")
        XCTAssertEqual(location.directoriesToCreate(for: "/var/lib/stapler/a/b/site.pem.ocsp"),
                       ["/var/lib/stapler", "/var/lib/stapler/a", "/var/lib/stapler/a/b"])
    }

    func testWritesBelowTheDirectoryCreateItsTreeAndRefuseLinksOut() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-staple-dir-file")
        let root = FilePath(temp.file("staples"))
        try FileSystem.makeDirectory(root)
        let location = StapleLocation.under(root)
        let loop = try EventLoop()
        let writer = BatchedFileWriter(loop: loop)
        var committed: [StapleFileError?] = []
        _ = try StapleFile.write([1, 2, 3], forCertificate: "/certs/a/site.pem", in: location, using: writer) {
            committed.append($0)
        }
        writer.commit()
        XCTAssertEqual(committed.count, 1)
        XCTAssertNil(committed.first ?? nil)
        XCTAssertEqual(try StapleFile.read(forCertificate: "/certs/a/site.pem", in: location), [1, 2, 3])

        // A symlink where the tree needs a directory: not followed.
        try FileManager.default.createSymbolicLink(atPath: root.appending("certs/b").description, withDestinationPath: "/tmp")
        XCTAssertThrowsError(try StapleFile.write([4], forCertificate: "/certs/b/site.pem", in: location, using: writer) { _ in }) {
            XCTAssertTrue("\($0)".contains("is not a directory (a symlink or a file): not writing below it"), "\($0)")
        }
        // A staple that links out of its directory: refused, with the directory named right.
        try FileManager.default.createSymbolicLink(atPath: root.appending("certs/a/other.pem.ocsp").description,
                                                   withDestinationPath: temp.file("outside"))
        XCTAssertThrowsError(try StapleFile.write([5], forCertificate: "/certs/a/other.pem", in: location, using: writer) { _ in }) {
            XCTAssertTrue("\($0)".contains("outside its directory below --staple-dir"), "\($0)")
        }
    }

    func testReadOnlyCertificatesAreStapledIntoTheDirectoryAndEveryNewHAProxyGetsThemAll() throws {
        guard (try? Shell.resolve("haproxy")) != nil else { throw XCTSkip("haproxy is not installed") }
        let temp = try TemporaryDirectory(prefix: "stapler-staple-dir")
        let pki = try TestPKI(directory: temp.file("pki"))
        let port = freeLoopbackPort()
        let url = "http://127.0.0.1:\(port)/"
        // Two certificates with the same file name in two directories.
        let source = temp.file("source")
        let sites = try ["a", "b"].map { name -> (name: String, leaf: TestPKI.Leaf, serverName: String) in
            let directory = "\(source)/\(name)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let leaf = try pki.issueLeaf(commonName: "\(name).test", ocspURLs: [url])
            try pki.writeBundle(leaf, to: "\(directory)/site.pem")
            return (name, leaf, "\(name).test")
        }
        // The certificates as a secret volume shows them: a read-only mount.
        let volume = temp.file("volume")
        try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
        guard (try? Shell.run(["mount", "--bind", source, volume], allowFailure: true).status) == 0 else {
            throw XCTSkip("this process may not mount (root in a container may not)")
        }
        defer { Hardening.unmount(volume) }
        _ = try Shell.run(["mount", "-o", "remount,bind,ro", volume])
        XCTAssertNotEqual(access("\(volume)/a", W_OK), 0, "the certificate directories are read-only")
        let bundles = ["\(volume)/a/site.pem", "\(volume)/b/site.pem"]

        let responder = try OCSPResponderProcess(pki: pki, port: port)
        defer { responder.stop() }
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: bundles)
        defer { haproxy.stop() }
        XCTAssertEqual(try haproxy.stapleSeen(serverName: "a.test"), .none, "no staple file, no staple at start")

        let staples = temp.file("staples")
        let arguments = ["-v", "--staple-dir", staples, "-s", haproxy.adminSocket, "--haproxy-socket-keepalive", "2",
                         "\(volume)/a", "\(volume)/b"]
        var daemon = try StaplerProcess(arguments, logPath: temp.file("daemon-1.log"))
        defer { daemon.signal(SIGKILL) }
        for bundle in bundles {
            XCTAssertTrue(daemon.waitForLog("\(bundle): staple written", timeout: 20), daemon.log)
            XCTAssertTrue(daemon.waitForLog("\(bundle): staple pushed to HAProxy", timeout: 10), daemon.log)
        }
        for (site, bundle) in zip(sites, bundles) {
            let staple = "\(staples)\(bundle).ocsp"
            XCTAssertEqual(try pki.verifyWithOpenSSL(staple: staple, for: site.leaf), "good", staple)
            XCTAssertTrue(waitUntil(timeout: 5) { (try? haproxy.stapleSeen(serverName: site.serverName)) == .good() })
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(source)/a/site.pem.ocsp"), "nothing beside the certificates")
        let check = try StaplerProcess.run(["check", "--staple-dir", staples] + bundles, in: temp.path)
        XCTAssertEqual(check.status, 0, "check finds the staples where the daemon wrote them: \(check.output)")
        XCTAssertTrue(Hardening.lines(daemon.log, containing: "staple not written").isEmpty, daemon.log)

        // HAProxy killed and started again: it comes back without staples, and gets them.
        haproxy.stop()
        try haproxy.start()
        XCTAssertTrue(daemon.waitForLog("giving it every current staple", count: 2, timeout: 15), daemon.log)
        for site in sites {
            XCTAssertTrue(waitUntil(timeout: 10) { (try? haproxy.stapleSeen(serverName: site.serverName)) == .good() },
                          "\(site.name) stapled again after the restart: \(daemon.log)")
        }

        // A reload (-sf): a new process takes over the socket, found at the next reconnection.
        try haproxy.reload()
        XCTAssertTrue(daemon.waitForLog("giving it every current staple", count: 3, timeout: 15), daemon.log)
        for site in sites {
            XCTAssertTrue(waitUntil(timeout: 10) { (try? haproxy.stapleSeen(serverName: site.serverName)) == .good() },
                          "\(site.name) stapled again after the reload: \(daemon.log)")
        }
        let requests = responder.requestCount
        XCTAssertEqual(requests, 2, "HAProxy's restarts cost no OCSP request")

        // Stapler restarted: the staples in the directory are recycled, not fetched again.
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
        daemon = try StaplerProcess(arguments + ["-v"], logPath: temp.file("daemon-2.log"))
        XCTAssertTrue(daemon.waitForLog("giving it every current staple", timeout: 15), daemon.log)
        for bundle in bundles {
            XCTAssertTrue(daemon.waitForLog("\(bundle): staple on disk is good", timeout: 10), daemon.log)
        }
        XCTAssertEqual(responder.requestCount, requests)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
    }
}
