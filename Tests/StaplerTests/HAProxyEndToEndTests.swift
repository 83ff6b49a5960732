import Foundation
import TestSupport
import XCTest

/// The `stapler` binary against real HAProxy 2.6 processes and a real `openssl ocsp`
/// responder: what an operator sees is what a TLS client (`openssl s_client -status`) is
/// stapled, without HAProxy ever being reloaded, and what the daemon's log says.
final class HAProxyEndToEndTests: XCTestCase {
    private var temp: TemporaryDirectory!
    private var pki: TestPKI!
    /// Started by `startResponderOnce()` once the leaves exist: `openssl ocsp` looks for changes
    /// to its index before it waits for a request, so it answers the first request after a
    /// change from the old index.
    private var responder: OCSPResponderProcess?
    private var responderPort: UInt16 = 0
    private var responderURL: String { "http://127.0.0.1:\(responderPort)/" }

    override func setUpWithError() throws {
        guard (try? Shell.resolve("haproxy")) != nil else { throw XCTSkip("haproxy is not installed") }
        temp = try TemporaryDirectory(prefix: "stapler-hapd")
        pki = try TestPKI(directory: temp.file("pki"))
        responderPort = freeLoopbackPort()
    }

    override func tearDown() {
        responder = nil
        pki = nil
        temp = nil
    }

    // MARK: Refreshing what HAProxy already staples

    func testRefreshedStapleReachesTLSClientsWithoutAReload() throws {
        let certs = try directory("certs")
        let site = try makeSite("refresh", in: certs, stapleAtStart: true)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])
        XCTAssertEqual(try haproxy.stapleSeen(serverName: site.serverName), .good())
        let pid = haproxy.processIdentifier

        // Revoked before the start: a staple HAProxy shows as revoked can only come from the daemon.
        try pki.revoke(site.leaf)
        let stapler = try startStapler(["-p", certs, "-s", haproxy.adminSocket, "--no-recycle",
                                        "--haproxy-socket-keepalive", "60"])
        expectLog(stapler, "\(site.bundle): staple pushed to HAProxy \(haproxy.adminSocket)")
        expectStaple(.revoked(), for: site, from: haproxy)

        // `touch` is the operator's way to force a refresh; the new staple replaces the old.
        let firstStaple = try Data(contentsOf: URL(fileURLWithPath: site.bundle + ".ocsp"))
        try Shell.run(["touch", site.bundle])
        expectLog(stapler, "\(site.bundle): changed on disk, fetching a fresh staple")
        expectLog(stapler, "\(site.bundle): staple pushed to HAProxy \(haproxy.adminSocket)", count: 2)
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: site.bundle + ".ocsp")), firstStaple)
        expectStaple(.revoked(), for: site, from: haproxy)

        XCTAssertEqual(haproxy.processIdentifier, pid, "HAProxy was not restarted")
        XCTAssertEqual(stapler.log.components(separatedBy: "HAProxy \(haproxy.adminSocket): connected").count - 1, 1,
                       "one connection for both pushes (keepalive):\n\(stapler.log)")
        try stop(stapler)
    }

    func testCertificateWithoutStapleAtStartIsStapledThroughATransaction() throws {
        let certs = try directory("certs")
        let fresh = try makeSite("fresh", in: certs, stapleAtStart: false)
        let old = try makeSite("old", in: certs, stapleAtStart: true)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])
        XCTAssertEqual(try haproxy.stapleSeen(serverName: fresh.serverName), .none)
        let pid = haproxy.processIdentifier

        let stapler = try startStapler(["-p", certs, "-s", haproxy.adminSocket])
        expectLog(stapler, "\(fresh.bundle): staple pushed to HAProxy \(haproxy.adminSocket) (new staple slot)")
        expectStaple(.good(), for: fresh, from: haproxy)
        // The good staple on disk was recycled: nothing to push for it.
        XCTAssertFalse(stapler.log.contains("\(old.bundle): staple pushed"), stapler.log)
        XCTAssertEqual(haproxy.processIdentifier, pid, "HAProxy was not restarted")
        try stop(stapler)
    }

    // MARK: Several instances

    func testEachHAProxyGetsOnlyTheStaplesOfItsOwnCertificates() throws {
        let dirA = try directory("a"), dirB = try directory("b")
        let siteA = try makeSite("alpha", in: dirA, stapleAtStart: false)
        let siteB = try makeSite("beta", in: dirB, stapleAtStart: true)
        let haproxyA = try HAProxyProcess(directory: temp.file("haproxy-a"), certificates: [dirA + "/"])
        let haproxyB = try HAProxyProcess(directory: temp.file("haproxy-b"), certificates: [dirB + "/"])
        try pki.revoke(siteB.leaf)

        let stapler = try startStapler(["-p", dirA, dirB, "-s", haproxyA.adminSocket, haproxyB.adminSocket,
                                        "--no-recycle"])
        expectLog(stapler, "\(siteA.bundle): staple pushed to HAProxy \(haproxyA.adminSocket) (new staple slot)")
        expectLog(stapler, "\(siteB.bundle): staple pushed to HAProxy \(haproxyB.adminSocket)")
        expectStaple(.good(), for: siteA, from: haproxyA)
        expectStaple(.revoked(), for: siteB, from: haproxyB)

        let log = stapler.log
        XCTAssertTrue(log.contains("2 certificate path(s), 2 HAProxy socket(s)"), log)
        XCTAssertFalse(log.contains("\(siteA.bundle): staple pushed to HAProxy \(haproxyB.adminSocket)"), log)
        XCTAssertFalse(log.contains("\(siteB.bundle): staple pushed to HAProxy \(haproxyA.adminSocket)"), log)
        XCTAssertFalse(log.contains("does not serve"), "no staple went to the wrong HAProxy:\n\(log)")
        try stop(stapler)
    }

    func testSIGHUPMovesPushesToTheSocketsTheConfigFileNowNames() throws {
        let certs = try directory("certs")
        let site = try makeSite("moved", in: certs, stapleAtStart: true)
        let haproxyA = try HAProxyProcess(directory: temp.file("haproxy-a"), certificates: [certs + "/"])
        let haproxyB = try HAProxyProcess(directory: temp.file("haproxy-b"), certificates: [certs + "/"])
        let config = temp.file("stapler.conf")
        func configure(socket: String) throws {
            try "cert-paths = [\(certs)]\nhaproxy-sockets = [\(socket)]\nno-recycle\n"
                .write(toFile: config, atomically: true, encoding: .utf8)
        }
        try configure(socket: haproxyA.adminSocket)
        try pki.revoke(site.leaf)
        let stapler = try startStapler(["-c", config])
        expectLog(stapler, "\(site.bundle): staple pushed to HAProxy \(haproxyA.adminSocket)")
        expectStaple(.revoked(), for: site, from: haproxyA)
        XCTAssertEqual(try haproxyB.stapleSeen(serverName: site.serverName), .good())

        try configure(socket: haproxyB.adminSocket)
        stapler.signal(SIGHUP)
        expectLog(stapler, "configuration reloaded")
        try Shell.run(["touch", site.bundle])
        expectLog(stapler, "\(site.bundle): staple pushed to HAProxy \(haproxyB.adminSocket)")
        expectStaple(.revoked(), for: site, from: haproxyB)
        XCTAssertEqual(stapler.log.components(separatedBy: "staple pushed to HAProxy \(haproxyA.adminSocket)").count - 1,
                       1, "the socket no longer named gets nothing:\n\(stapler.log)")
        try stop(stapler)
    }

    // MARK: haproxy.cfg

    func testHAProxyConfigAloneNamesCertificatesAndSocket() throws {
        let certs = try directory("certs")
        let direct = try makeSite("direct", in: certs, stapleAtStart: true)
        let listed = try makeSite("listed", in: certs, stapleAtStart: false)
        try pki.revoke(direct.leaf)
        // Relative names: `crt` and the crt-list's lines take crt-base, the crt-list itself does not.
        let list = temp.file("sites.list")
        try "# sites\nlisted.pem [alpn http/1.1] listed.test\n".write(toFile: list, atomically: true, encoding: .utf8)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [], start: false)
        try """
        global
            stats socket \(haproxy.adminSocket) level admin
            stats timeout 10s
            crt-base \(certs)

        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s

        frontend tls
            bind 127.0.0.1:\(haproxy.port) ssl crt direct.pem crt-list \(list)
            http-request return status 200 content-type text/plain string ok

        """.write(toFile: haproxy.configPath, atomically: true, encoding: .utf8)
        try haproxy.start()
        XCTAssertEqual(try haproxy.stapleSeen(serverName: direct.serverName), .good())
        XCTAssertEqual(try haproxy.stapleSeen(serverName: listed.serverName), .none)

        let stapler = try startStapler(["--haproxy-config", haproxy.configPath, "--no-recycle"])
        expectLog(stapler, "\(direct.bundle): staple pushed to HAProxy \(haproxy.adminSocket)")
        expectLog(stapler, "\(listed.bundle): staple pushed to HAProxy \(haproxy.adminSocket) (new staple slot)")
        expectStaple(.revoked(), for: direct, from: haproxy)
        expectStaple(.good(), for: listed, from: haproxy)
        XCTAssertTrue(stapler.log.contains("starting: 2 certificate path(s), 1 HAProxy socket(s)"), stapler.log)
        try stop(stapler)
    }

    // MARK: HAProxy going away

    func testStaplerCatchesUpWhenHAProxyComesBack() throws {
        let certs = try directory("certs")
        let site = try makeSite("comeback", in: certs, stapleAtStart: true)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])
        let connected = "HAProxy \(haproxy.adminSocket): connected"
        let pushed = "\(site.bundle): staple pushed to HAProxy \(haproxy.adminSocket)"

        let stapler = try startStapler(["-p", certs, "-s", haproxy.adminSocket, "--no-recycle"])
        expectLog(stapler, pushed)
        XCTAssertEqual(stapler.log.components(separatedBy: connected).count - 1, 1, stapler.log)

        haproxy.stop()
        try revokeWhileResponderRuns(site.leaf)
        try Shell.run(["touch", site.bundle])
        expectLog(stapler, "\(site.bundle): staple written: revoked")
        expectLog(stapler, "HAProxy socket \(haproxy.adminSocket): ")
        XCTAssertEqual(stapler.log.components(separatedBy: pushed).count - 1, 1, "not pushed while down")

        try haproxy.start()
        expectLog(stapler, connected, count: 2, timeout: 20)
        expectLog(stapler, pushed, count: 2)
        expectStaple(.revoked(), for: site, from: haproxy)
        XCTAssertTrue(stapler.isRunning)
        try stop(stapler)
    }

    // MARK: --one-off

    func testOneOffExitsOnceHAProxyHasTheStaples() throws {
        let certs = try directory("certs")
        let fresh = try makeSite("fresh", in: certs, stapleAtStart: false)
        let old = try makeSite("old", in: certs, stapleAtStart: true)
        try pki.revoke(old.leaf)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])

        try startResponderOnce()
        let started = Date()
        let run = try StaplerProcess.run(["--one-off", "-v", "-v", "-v", "--no-recycle", "-p", certs,
                                          "-s", haproxy.adminSocket], in: temp.path, timeout: 30)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "no wait for a timeout:\n\(run.output)")
        XCTAssertTrue(run.output.contains("\(fresh.bundle): staple pushed to HAProxy \(haproxy.adminSocket) (new staple slot)"), run.output)
        XCTAssertTrue(run.output.contains("\(old.bundle): staple pushed to HAProxy \(haproxy.adminSocket)"), run.output)
        XCTAssertEqual(try haproxy.stapleSeen(serverName: fresh.serverName), .good())
        XCTAssertEqual(try haproxy.stapleSeen(serverName: old.serverName), .revoked())
    }

    func testOneOffWithAMissingSocketWritesStaplesNamesTheSocketAndEnds() throws {
        let certs = try directory("certs")
        let site = try makeSite("lonely", in: certs, stapleAtStart: false)
        let socket = temp.file("nowhere/admin.sock")

        try startResponderOnce()
        let started = Date()
        let run = try StaplerProcess.run(["--one-off", "-v", "-v", "-v", "-p", certs, "-s", socket],
                                         in: temp.path, timeout: 40)
        let elapsed = Date().timeIntervalSince(started)
        // The exit status is 0 today although HAProxy got nothing (see the report on
        // Daemon.finishOneOffIfDone); only that it ends is asserted.
        XCTAssertNotNil(run.status, "still running after 40 s:\n\(run.output)")
        XCTAssertLessThan(elapsed, 25, "the one-off push timeout is 15 s:\n\(run.output)")
        XCTAssertEqual(run.status, 1, "a staple HAProxy never took is a failure of the pass:\n\(run.output)")
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: site.bundle + ".ocsp", for: site.leaf), "good",
                       "the staple file is written even though HAProxy cannot take it")
        XCTAssertTrue(run.output.contains("HAProxy socket \(socket): no such file"), run.output)
        XCTAssertTrue(run.output.contains("HAProxy did not take every staple"), run.output)
        XCTAssertFalse(run.output.contains("staple pushed"), run.output)
    }

    // MARK: Socket levels

    func testOperatorSocketUpdatesExistingStaplesAndNamesTheRefusedTransaction() throws {
        let certs = try directory("certs")
        let fresh = try (1...2).map { try makeSite("fresh\($0)", in: certs, stapleAtStart: false) }
        let old = try makeSite("old", in: certs, stapleAtStart: true)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])
        let pushed = "\(old.bundle): staple pushed to HAProxy \(haproxy.operatorSocket)"

        let stapler = try startStapler(["-p", certs, "-s", haproxy.operatorSocket, "--no-recycle"])
        expectLog(stapler, pushed)
        for site in fresh {
            expectLog(stapler, "\(site.bundle): HAProxy \(haproxy.operatorSocket) refused the staple: "
                      + "Permission denied for 'set ssl cert' (it needs a stats socket with 'level admin')")
            XCTAssertEqual(try haproxy.stapleSeen(serverName: site.serverName), .none)
            // The staple file is there for HAProxy's next start.
            XCTAssertEqual(try pki.verifyWithOpenSSL(staple: site.bundle + ".ocsp", for: site.leaf), "good")
        }

        // Staples HAProxy refuses to install do not hold up those it takes.
        try revokeWhileResponderRuns(old.leaf)
        let touched = Date()
        try Shell.run(["touch", old.bundle])
        expectLog(stapler, pushed, count: 2)
        XCTAssertLessThan(Date().timeIntervalSince(touched), 5, stapler.log)
        expectStaple(.revoked(), for: old, from: haproxy)
        try stop(stapler)
    }

    // MARK: Helpers

    private func directory(_ name: String) throws -> String {
        let path = temp.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func makeSite(_ name: String, in directory: String, stapleAtStart: Bool) throws -> HAProxySite {
        try pki.haproxySite(name, in: directory, ocspURL: responderURL, stapleAtStart: stapleAtStart)
    }

    private func startResponderOnce() throws {
        if responder == nil { responder = try OCSPResponderProcess(pki: pki, port: responderPort) }
    }

    /// Revokes `leaf` and waits until the running responder says so (see `responder`).
    private func revokeWhileResponderRuns(_ leaf: TestPKI.Leaf, file: StaticString = #filePath, line: UInt = #line) throws {
        try startResponderOnce()
        try responder!.revoke(leaf, in: pki, file: file, line: line)
    }

    private var staplerCount = 0

    /// The daemon in the foreground, as verbose as it gets.
    private func startStapler(_ arguments: [String]) throws -> StaplerProcess {
        try startResponderOnce()
        staplerCount += 1
        return try StaplerProcess(["-v", "-v", "-v"] + arguments, logPath: temp.file("stapler-\(staplerCount).log"))
    }

    /// SIGTERM ends the daemon cleanly.
    private func stop(_ stapler: StaplerProcess, file: StaticString = #filePath, line: UInt = #line) throws {
        stapler.stopCleanly(file: file, line: line)
    }

    private func expectLog(_ stapler: StaplerProcess, _ text: String, count: Int = 1, timeout: TimeInterval = 15,
                           file: StaticString = #filePath, line: UInt = #line) {
        stapler.expectLog(text, count: count, timeout: timeout, file: file, line: line)
    }

    /// What a TLS client is stapled, given a moment: the log line comes just before.
    private func expectStaple(_ expected: StapleSeenByClient, for site: HAProxySite, from haproxy: HAProxyProcess,
                              file: StaticString = #filePath, line: UInt = #line) {
        haproxy.expectStaple(expected, for: site, timeout: 5, file: file, line: line)
    }
}
