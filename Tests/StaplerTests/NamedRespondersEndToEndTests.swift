import Foundation
import TestSupport
import XCTest

/// Responder URLs that name hosts, as real certificates have them: the daemon resolves them
/// on its loop (c-ares) against a real DNS server (dnsmasq on 127.0.0.1, named by
/// STAPLER_DNS_SERVERS) and stays one thread while doing it.
final class NamedRespondersEndToEndTests: XCTestCase {
    private var temp: TemporaryDirectory!
    private var pki: TestPKI!

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "stapler-names")
        pki = try TestPKI(directory: temp.file("pki"))
    }

    override func tearDown() {
        pki = nil
        temp = nil
    }

    private func certificates(_ leaves: [TestPKI.Leaf], in name: String) throws -> [String] {
        let directory = temp.file(name)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try leaves.enumerated().map { index, leaf in
            let path = "\(directory)/site\(index).pem"
            try pki.writeBundle(leaf, to: path)
            return path
        }
    }

    private func environment(dns: String) -> [String: String] {
        ProcessInfo.processInfo.environment.merging(["STAPLER_DNS_SERVERS": dns]) { $1 }
    }

    /// The most threads seen in `pid` between now and `done()`, sampling /proc every
    /// millisecond, and how many samples that was.
    private func maxThreads(of pid: Int32, timeout: TimeInterval, until done: () -> Bool) -> (max: Int, samples: Int) {
        var highest = 0
        var samples = 0
        let deadline = Date().addingTimeInterval(timeout)
        var lastCheck = Date.distantPast
        while Date() < deadline {
            if let threads = threadCount(pid) {
                highest = max(highest, threads)
                samples += 1
            }
            if Date().timeIntervalSince(lastCheck) > 0.1 {
                lastCheck = Date()
                if done() { break }
            }
            usleep(1000)
        }
        return (highest, samples)
    }

    private func threadCount(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Threads:") }) else { return nil }
        return Int(line.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces))
    }

    private func stapleCount(_ paths: [String]) -> Int {
        paths.filter { FileManager.default.fileExists(atPath: $0 + ".ocsp") }.count
    }

    // MARK: One thread

    func testFiveHundredCertificatesOnTwoNamedRespondersAreStapledByOneThread() throws {
        let (portA, portB) = (freeLoopbackPort(), freeLoopbackPort())
        let leaves = try pki.issueLeaves(count: 250, commonName: "a.test", ocspURLs: ["http://ocsp-a.test:\(portA)/"])
            + pki.issueLeaves(count: 250, commonName: "b.test", ocspURLs: ["http://ocsp-b.test:\(portB)/"])
        let paths = try certificates(leaves, in: "certs")
        let a = try OCSPResponderProcess(pki: pki, port: portA)
        let b = try OCSPResponderProcess(pki: pki, port: portB)
        // ocsp-b.test has only an AAAA record: its responder is reached on ::1 (openssl ocsp
        // listens on both families). TTL 1 s: the names are looked up again during the run.
        let dns = try DNSServerProcess(records: [("ocsp-a.test", "127.0.0.1"), ("ocsp-b.test", "::1")], timeToLive: 1)

        let started = Date()
        let daemon = try StaplerProcess(["-v", temp.file("certs")], logPath: temp.file("daemon.log"),
                                        environment: environment(dns: dns.serverList))
        let seen = maxThreads(of: daemon.pid, timeout: 120) { stapleCount(paths) == paths.count }
        let elapsed = Date().timeIntervalSince(started)
        print("500 staples from two named responders in \(String(format: "%.1f", elapsed)) s; "
              + "Threads: at most \(seen.max) in \(seen.samples) samples of /proc/\(daemon.pid)/status")

        XCTAssertEqual(stapleCount(paths), 500, daemon.log)
        XCTAssertEqual(seen.max, 1, "no resolver thread, ever")
        XCTAssertGreaterThan(seen.samples, 100)
        XCTAssertGreaterThan(a.requestCount, 0)
        XCTAssertGreaterThan(b.requestCount, 0, "the AAAA-only name reached its responder on ::1")
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: paths[0] + ".ocsp", for: leaves[0]), "good")
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: paths[499] + ".ocsp", for: leaves[499]), "good")

        // The same sampling does see a second thread where there is one (this test process,
        // with one more thread parked on a semaphore).
        let parked = DispatchSemaphore(value: 0)
        let running = DispatchSemaphore(value: 0)
        let thread = Thread { running.signal(); parked.wait() }
        thread.start()
        running.wait()
        let own = maxThreads(of: getpid(), timeout: 0.2) { false }
        parked.signal()
        XCTAssertGreaterThanOrEqual(own.max, 2)
    }

    // MARK: Failures and changes

    func testNXDOMAINIsOneClearLineAndTheNameIsFoundOnceTheZoneHasIt() throws {
        let port = freeLoopbackPort()
        let leaf = try pki.issueLeaf(ocspURLs: ["http://ocsp-new.test:\(port)/"])
        let path = try certificates([leaf], in: "certs")[0]
        let responder = try OCSPResponderProcess(pki: pki, port: port)
        let dns = try DNSServerProcess(records: [("other.test", "127.0.0.1")], timeToLive: 1)

        let daemon = try StaplerProcess(["-v", temp.file("certs")], logPath: temp.file("daemon.log"),
                                        environment: environment(dns: dns.serverList))
        XCTAssertTrue(daemon.waitForLog("ocsp-new.test: name not resolved: NXDOMAIN"), daemon.log)
        let line = daemon.log.split(separator: "\n").first { $0.contains("NXDOMAIN") }.map(String.init) ?? ""
        XCTAssertTrue(line.contains("\(path): OCSP fetch failed: http://ocsp-new.test:\(responder.port)/: "), line)
        XCTAssertTrue(line.contains("retrying in"), line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".ocsp"))

        // The zone gains the name; a retry (forced by touching the file) finds it.
        try dns.restart(records: [("other.test", "127.0.0.1"), ("ocsp-new.test", "127.0.0.1")])
        XCTAssertTrue(waitUntil(timeout: 20, interval: 0.5) {
            try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: path)
            return FileManager.default.fileExists(atPath: path + ".ocsp")
        }, daemon.log)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: path + ".ocsp", for: leaf), "good")
        XCTAssertEqual(daemon.threadCount, 1)
    }

    func testADNSServerThatNeverAnswersIsATimeoutRetriedAndTheNextURLIsTried() throws {
        let port = freeLoopbackPort()
        // The first URL names a host nobody answers for; the second is an IP literal.
        let leaf = try pki.issueLeaf(ocspURLs: ["http://ocsp-silent.test:\(port)/", "http://127.0.0.1:\(port)/"])
        let lonely = try pki.issueLeaf(ocspURLs: ["http://ocsp-silent.test:\(port)/"])
        let paths = try certificates([leaf, lonely], in: "certs")
        let responder = try OCSPResponderProcess(pki: pki, port: port)
        let silent = try SilentDNSServer()

        let started = Date()
        let daemon = try StaplerProcess(["-v", temp.file("certs")], logPath: temp.file("daemon.log"),
                                        environment: environment(dns: silent.serverList))
        XCTAssertTrue(daemon.waitForLog("ocsp-silent.test: name not resolved: DNS timeout", timeout: 30), daemon.log)
        print("the DNS timeout was reported after \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        XCTAssertTrue(waitUntil(timeout: 20) { FileManager.default.fileExists(atPath: paths[0] + ".ocsp") }, daemon.log)
        XCTAssertEqual(responder.requestCount, 1, "only the IP-literal URL reached the responder")
        XCTAssertFalse(FileManager.default.fileExists(atPath: paths[1] + ".ocsp"))
        let queries = silent.drain()
        XCTAssertGreaterThan(queries, 0)

        // A retry asks DNS again (failures are not kept).
        try FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: paths[1])
        XCTAssertTrue(waitUntil(timeout: 20) { silent.drain() > 0 }, daemon.log)
        XCTAssertEqual(daemon.threadCount, 1)
    }

    func testABadServerListIsRefusedAtStartNamingTheVariable() throws {
        let leaf = try pki.issueLeaf(ocspURLs: ["http://ocsp-a.test:1/"])
        _ = try certificates([leaf], in: "certs")
        let daemon = try StaplerProcess(["--one-off", temp.file("certs")], logPath: temp.file("daemon.log"),
                                        environment: environment(dns: "127.0.0.1:99999"))
        XCTAssertEqual(daemon.waitForExit(), 1, daemon.log)
        XCTAssertTrue(daemon.log.contains("STAPLER_DNS_SERVERS: \"127.0.0.1:99999\": the port is not a number from 1 to 65535"),
                      daemon.log)
    }
}
