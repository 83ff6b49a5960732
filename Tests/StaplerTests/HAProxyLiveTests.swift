import Foundation
import Reactor
@testable import Stapler
import TestSupport
import XCTest

/// The socket client against real HAProxy 2.6 processes, judged by what a TLS client
/// (`openssl s_client -status`) is stapled.
final class HAProxyLiveTests: XCTestCase {
    private var temp: TemporaryDirectory!
    private var pki: TestPKI!
    private var loop: EventLoop!
    private var events: [HAProxyClientEvent] = []

    override func setUpWithError() throws {
        guard (try? Shell.resolve("haproxy")) != nil else { throw XCTSkip("haproxy is not installed") }
        temp = try TemporaryDirectory(prefix: "stapler-haproxy")
        pki = try TestPKI(directory: temp.file("pki"))
        loop = try EventLoop()
        events = []
    }

    override func tearDown() {
        loop = nil
        pki = nil
        temp = nil
    }

    // MARK: Pushing

    func testNewStapleReplacesTheOneHAProxyLoadedAtStartWithoutAReload() throws {
        let certs = try directory("certs")
        let site = try makeSite("one", in: certs, stapleAtStart: true)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])
        XCTAssertEqual(try haproxy.stapleSeen(serverName: site.serverName), .good())
        let pid = haproxy.processIdentifier

        try pki.revoke(site.leaf)
        let client = makeClient(socket: haproxy.adminSocket)
        XCTAssertEqual(try push(try staple(for: site), for: site.bundle, to: client), .updated)

        XCTAssertEqual(try haproxy.stapleSeen(serverName: site.serverName), .revoked())
        XCTAssertEqual(haproxy.processIdentifier, pid, "no restart")

        // Bytes HAProxy cannot use end the push at once, and the staple it serves stays.
        XCTAssertEqual(try push([0x01, 0x02, 0x03], for: site.bundle, to: client),
                       .rejected(answer: "Unable to parse OCSP response."))
        XCTAssertEqual(try haproxy.stapleSeen(serverName: site.serverName), .revoked())
        XCTAssertEqual(events, [.connected(socket: FilePath(haproxy.adminSocket))])
    }

    func testCertificateWithoutStapleAtStartGetsOneThroughATransaction() throws {
        let certs = try directory("certs")
        let site = try makeSite("two", in: certs, stapleAtStart: false)
        _ = try makeSite("other", in: certs, stapleAtStart: true)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])
        XCTAssertEqual(try haproxy.stapleSeen(serverName: site.serverName), .none)

        // The daemon may know the certificate by another path than HAProxy: here a symlink.
        let links = try directory("links")
        try FileManager.default.createSymbolicLink(atPath: "\(links)/two.pem", withDestinationPath: site.bundle)
        let client = makeClient(socket: haproxy.adminSocket)
        XCTAssertEqual(try push(try staple(for: site), for: "\(links)/two.pem", to: client), .installed)
        XCTAssertEqual(try haproxy.stapleSeen(serverName: site.serverName), .good())

        // From now on the certificate has a staple slot: the plain command does.
        try pki.revoke(site.leaf)
        XCTAssertEqual(try push(try staple(for: site), for: site.bundle, to: client), .updated)
        XCTAssertEqual(try haproxy.stapleSeen(serverName: site.serverName), .revoked())
        XCTAssertEqual(client.connectionAttempts, 1, "one connection for both pushes")
    }

    func testStapleForACertificateHAProxyDoesNotServeEndsAsNotServed() throws {
        let certs = try directory("certs")
        _ = try makeSite("served", in: certs, stapleAtStart: false)
        let elsewhere = try makeSite("unserved", in: try directory("elsewhere"), stapleAtStart: false)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])
        let client = makeClient(socket: haproxy.adminSocket)
        XCTAssertEqual(try push(try staple(for: elsewhere), for: elsewhere.bundle, to: client), .certificateNotServed)
        XCTAssertEqual(events, [.connected(socket: FilePath(haproxy.adminSocket))], "not a socket failure")
    }

    // MARK: Several instances

    func testEachInstanceGetsOnlyItsOwnPushesAndOneFailingDoesNotHoldUpTheOther() throws {
        let certs = try directory("certs")
        let site = try makeSite("shared", in: certs, stapleAtStart: true)
        let first = try HAProxyProcess(directory: temp.file("first"), certificates: [certs + "/"])
        let second = try HAProxyProcess(directory: temp.file("second"), certificates: [certs + "/"])
        let firstClient = makeClient(socket: first.adminSocket)
        let secondClient = makeClient(socket: second.adminSocket)

        let good = try staple(for: site)
        try pki.revoke(site.leaf)
        let revoked = try staple(for: site)
        XCTAssertEqual(try push(revoked, for: site.bundle, to: firstClient), .updated)
        XCTAssertEqual(try push(good, for: site.bundle, to: secondClient), .updated)
        XCTAssertEqual(try first.stapleSeen(serverName: site.serverName), .revoked())
        XCTAssertEqual(try second.stapleSeen(serverName: site.serverName), .good())

        second.stop()
        var secondResult: HAProxyPushResult?
        secondClient.push(staple: revoked, certificate: FilePath(site.bundle)) { secondResult = $0 }
        XCTAssertEqual(try push(good, for: site.bundle, to: firstClient), .updated)
        try loop.runForTest(deadline: .seconds(15), until: { secondClient.isBackingOff })
        XCTAssertNil(secondResult, "waits for its HAProxy to come back")
        XCTAssertEqual(secondClient.pendingPushCount, 1)
        XCTAssertEqual(try first.stapleSeen(serverName: site.serverName), .good())
    }

    // MARK: Restarts and timeouts

    func testPendingPushLandsWhenHAProxyComesBack() throws {
        let certs = try directory("certs")
        let site = try makeSite("back", in: certs, stapleAtStart: true)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])
        let client = makeClient(socket: haproxy.adminSocket, backoff: (.milliseconds(50), .milliseconds(400)))
        XCTAssertEqual(try push(try staple(for: site), for: site.bundle, to: client), .updated)

        haproxy.stop()
        try pki.revoke(site.leaf)
        var result: HAProxyPushResult?
        client.push(staple: try staple(for: site), certificate: FilePath(site.bundle)) { result = $0 }
        // The idle connection died with HAProxy (the push may find it so: "closed by peer"),
        // then the socket file stays behind with nothing listening.
        let refused = HAProxyClientError(socket: FilePath(haproxy.adminSocket), reason: .connection(.refused))
        func sawRefused() -> Bool { events.contains { if case .failed(refused, _) = $0 { return true } else { return false } } }
        try loop.runForTest(deadline: .seconds(15), until: { sawRefused() && client.connectionAttempts >= 4 })
        XCTAssertNil(result)
        XCTAssertEqual(client.pendingPushCount, 1)
        XCTAssertLessThanOrEqual(events.count, 3, "one line per change, not per attempt: \(events)")

        try haproxy.start()
        try loop.runForTest(deadline: .seconds(15), until: { result != nil })
        XCTAssertEqual(result, .updated)
        // The restarted HAProxy read the old good staple from disk; the pending push replaced it.
        XCTAssertEqual(try haproxy.stapleSeen(serverName: site.serverName), .revoked())
        XCTAssertEqual(events.first, .connected(socket: FilePath(haproxy.adminSocket)))
        XCTAssertEqual(events.last, .connected(socket: FilePath(haproxy.adminSocket)))
    }

    func testConnectionOutlivesTheStatsTimeoutUntilTheKeepaliveCloses() throws {
        let certs = try directory("certs")
        let site = try makeSite("idle", in: certs, stapleAtStart: true)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"], statsTimeout: "1s")
        var configuration = HAProxySocketClient.Configuration()
        configuration.keepalive = .seconds(3)
        let client = makeClient(socket: haproxy.adminSocket, configuration: configuration)
        let staple = try staple(for: site)
        XCTAssertEqual(try push(staple, for: site.bundle, to: client), .updated)

        // Longer than HAProxy's own 1 s idle limit: `set timeout cli` kept the connection.
        let later = MonotonicInstant.now() + .milliseconds(1_600)
        try loop.runForTest(deadline: .seconds(15), until: { MonotonicInstant.now() >= later })
        XCTAssertTrue(client.isConnected)
        XCTAssertEqual(try push(staple, for: site.bundle, to: client), .updated)
        XCTAssertEqual(client.connectionAttempts, 1)

        // Idle for the keepalive: the client hangs up, and the next push dials again.
        try loop.runForTest(deadline: .seconds(6), until: { !client.isConnected })
        XCTAssertEqual(try push(staple, for: site.bundle, to: client), .updated)
        XCTAssertEqual(client.connectionAttempts, 2)
        XCTAssertEqual(events, [.connected(socket: FilePath(haproxy.adminSocket))], "idle closes are not failures")
    }

    // MARK: Misconfigured sockets

    func testMissingSocketBacksOffReportsOnceAndKeepsTheQueueBounded() throws {
        let socket = temp.file("nothing-here.sock")
        var configuration = HAProxySocketClient.Configuration()
        configuration.initialBackoff = .milliseconds(50)
        configuration.maximumBackoff = .milliseconds(400)
        configuration.maxQueuedPushes = 3
        let client = makeClient(socket: socket, configuration: configuration)
        var results: [String: [HAProxyPushResult]] = [:]
        func push(_ certificate: String, _ byte: UInt8) {
            client.push(staple: [byte], certificate: FilePath(certificate)) { results[certificate, default: []].append($0) }
        }
        let started = MonotonicInstant.now()
        for byte in UInt8(0)..<50 { push("/c/a.pem", byte) }
        push("/c/b.pem", 0)
        push("/c/c.pem", 0)
        push("/c/d.pem", 0)
        XCTAssertEqual(client.pendingPushCount, 3)
        XCTAssertEqual(results["/c/a.pem"], Array(repeating: .superseded, count: 49))
        XCTAssertEqual(results["/c/d.pem"], [.queueFull(limit: 3)])

        try loop.runForTest(deadline: .seconds(15), until: { client.connectionAttempts >= 5 })
        // 50 + 100 + 200 + 400 ms between the five attempts, not a busy loop.
        XCTAssertGreaterThanOrEqual(MonotonicInstant.now().duration(since: started), .milliseconds(750))
        let expected = HAProxyClientError(socket: FilePath(socket), reason: .connection(.missing))
        XCTAssertEqual(events, [.failed(expected, retryIn: .milliseconds(50))], "reported once, not per attempt")
        XCTAssertTrue(expected.description.contains(socket))
        XCTAssertEqual(client.pendingPushCount, 3)

        client.shutDown()
        XCTAssertEqual(results["/c/a.pem"]?.last, .cancelled)
        XCTAssertEqual(results["/c/b.pem"], [.cancelled])
        XCTAssertEqual(results["/c/c.pem"], [.cancelled])
    }

    func testSocketPathThatIsARegularFileIsNamedAsSuch() throws {
        let path = temp.file("admin.sock")
        try "not a socket".write(toFile: path, atomically: true, encoding: .utf8)
        let client = makeClient(socket: path)
        client.push(staple: [1], certificate: "/c/a.pem") { _ in }
        try loop.runForTest(deadline: .seconds(15), until: { !self.events.isEmpty })
        guard case .failed(let error, _)? = events.first else { return XCTFail("\(events)") }
        XCTAssertEqual(error.reason, .connection(.notASocket))
        XCTAssertEqual(error.description, "HAProxy socket \(path): not a socket")
        client.shutDown()
    }

    func testSocketWithoutAdminLevelIsReportedAndDoesNotHoldUpStaplesItCanTake() throws {
        let certs = try directory("certs")
        let needsTransaction = try makeSite("new", in: certs, stapleAtStart: false)
        let hasSlot = try makeSite("old", in: certs, stapleAtStart: true)
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])
        let client = makeClient(socket: haproxy.operatorSocket, backoff: (.milliseconds(50), .milliseconds(200)))

        var refused: HAProxyPushResult?
        client.push(staple: try staple(for: needsTransaction), certificate: FilePath(needsTransaction.bundle)) { refused = $0 }
        try pki.revoke(hasSlot.leaf)
        XCTAssertEqual(try push(try staple(for: hasSlot), for: hasSlot.bundle, to: client), .updated)
        XCTAssertEqual(try haproxy.stapleSeen(serverName: hasSlot.serverName), .revoked())

        // Only a restart cures the socket's level, and a restarted HAProxy reads the staple
        // file: the push ends instead of holding up the staples behind it.
        try loop.runForTest(deadline: .seconds(15), until: { refused != nil })
        guard case .rejected(let answer)? = refused else { return XCTFail("\(String(describing: refused))") }
        XCTAssertTrue(answer.hasPrefix("Permission denied for 'set ssl cert'"), answer)
        XCTAssertEqual(client.pendingPushCount, 0)
        XCTAssertEqual(client.connectionAttempts, 1, "the refusal does not cost the connection")
        XCTAssertEqual(events, [.connected(socket: FilePath(haproxy.operatorSocket))])
        XCTAssertEqual(try haproxy.stapleSeen(serverName: needsTransaction.serverName), .none)

        // A `level user` socket cannot even list certificates; 2.6.12 says so oddly.
        let userClient = makeClient(socket: haproxy.userSocket)
        userClient.push(staple: try staple(for: needsTransaction), certificate: FilePath(needsTransaction.bundle)) { _ in }
        try loop.runForTest(deadline: .seconds(15), until: { userClient.isBackingOff })
        XCTAssertEqual(events.last, .failed(
            HAProxyClientError(socket: FilePath(haproxy.userSocket),
                               reason: .unexpectedAnswer(command: "show ssl cert", answer: "Can't allocate memory!")),
            retryIn: .seconds(1)))
        client.shutDown()
        userClient.shutDown()
    }

    // MARK: Helpers

    private func directory(_ name: String) throws -> String {
        let path = temp.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func makeSite(_ name: String, in directory: String, stapleAtStart: Bool) throws -> HAProxySite {
        try pki.haproxySite(name, in: directory, ocspURL: "http://127.0.0.1:9/", stapleAtStart: stapleAtStart)
    }

    private func staple(for site: HAProxySite) throws -> [UInt8] {
        [UInt8](try pki.ocspResponse(for: site.leaf))
    }

    private func makeClient(socket: String, backoff: (Duration, Duration)? = nil,
                            configuration: HAProxySocketClient.Configuration = .init()) -> HAProxySocketClient {
        var configuration = configuration
        if let backoff {
            configuration.initialBackoff = backoff.0
            configuration.maximumBackoff = backoff.1
        }
        return HAProxySocketClient(loop: loop, socket: FilePath(socket), configuration: configuration) { [weak self] in
            self?.events.append($0)
        }
    }

    private func push(_ staple: [UInt8], for certificate: String, to client: HAProxySocketClient,
                      file: StaticString = #filePath, line: UInt = #line) throws -> HAProxyPushResult? {
        var result: HAProxyPushResult?
        client.push(staple: staple, certificate: FilePath(certificate)) { result = $0 }
        try loop.runForTest(deadline: .seconds(15), until: { result != nil }, file: file, line: line)
        return result
    }
}
