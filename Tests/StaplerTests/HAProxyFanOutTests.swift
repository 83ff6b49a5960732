import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The fan-out on a real loop with two real HAProxy instances: one staple reaches every
/// socket it is sent to, results are counted by outcome and logged, and the count of
/// pending pushes tells when all have ended.
final class HAProxyFanOutTests: XCTestCase {
    func testOneStapleReachesEveryHAProxyThatServesIt() throws {
        guard (try? Shell.resolve("haproxy")) != nil else { throw XCTSkip("haproxy is not installed") }
        let temp = try TemporaryDirectory(prefix: "stapler-fanout")
        let pki = try TestPKI(directory: temp.file("pki"))
        let certs = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let site = try pki.haproxySite("fan", in: certs, ocspURL: "http://127.0.0.1:1/", stapleAtStart: true)
        let other = try pki.haproxySite("other", in: temp.path, ocspURL: "http://127.0.0.1:1/", stapleAtStart: true)
        let first = try HAProxyProcess(directory: temp.file("haproxy-1"), certificates: [certs + "/"])
        let second = try HAProxyProcess(directory: temp.file("haproxy-2"), certificates: [certs + "/"])
        defer { first.stop(); second.stop() }
        XCTAssertEqual(try first.stapleSeen(serverName: site.serverName), .good())

        let loop = try EventLoop()
        let logger = try Logger(verbosity: .info, toStandardOutput: false, directory: FilePath(temp.path), syslog: false)
        let statistics = Statistics()
        let fanOut = HAProxyFanOut(loop: loop, logger: logger, statistics: statistics)
        var ended = 0
        fanOut.onPushEnded = { ended += 1 }
        let sockets = [FilePath(first.adminSocket), FilePath(second.adminSocket)]
        fanOut.configure(sockets: sockets, keepalive: .seconds(1))
        defer { fanOut.shutDown() }

        try pki.revoke(site.leaf)
        let revoked = Array(try pki.ocspResponse(for: site.leaf))
        fanOut.push(revoked, for: FilePath(site.bundle), to: sockets + [FilePath(temp.file("not-configured.sock"))])
        XCTAssertEqual(fanOut.pendingPushes, 2, "a socket the fan-out was not given is no destination")
        try loop.runForTest { fanOut.pendingPushes == 0 }
        XCTAssertEqual(ended, 2)
        XCTAssertEqual(try first.stapleSeen(serverName: site.serverName), .revoked())
        XCTAssertEqual(try second.stapleSeen(serverName: site.serverName), .revoked())
        XCTAssertEqual(statistics.pushes[.updated], 2)

        // A certificate neither HAProxy serves: counted, logged once per socket, no failure.
        fanOut.push(Array(try pki.ocspResponse(for: other.leaf)), for: FilePath(other.bundle), to: [sockets[0]])
        try loop.runForTest { fanOut.pendingPushes == 0 }
        XCTAssertEqual(statistics.pushes[.notServed], 1)
        XCTAssertEqual(statistics.undeliveredPushes, 0)
        let log = (try? String(contentsOfFile: temp.file(Logger.fileName), encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("\(site.bundle): staple pushed to HAProxy \(first.adminSocket)"), log)
        XCTAssertTrue(log.contains("\(site.bundle): staple pushed to HAProxy \(second.adminSocket)"), log)
        XCTAssertTrue(log.contains("\(other.bundle): HAProxy \(first.adminSocket) does not serve this certificate"), log)

        // Reconfigured without the second socket: pushes go to the first only.
        fanOut.configure(sockets: [sockets[0]], keepalive: .seconds(1))
        fanOut.push(revoked, for: FilePath(site.bundle), to: sockets)
        XCTAssertEqual(fanOut.pendingPushes, 1)
        try loop.runForTest { fanOut.pendingPushes == 0 }
        XCTAssertEqual(statistics.pushes[.updated], 3)
    }
}
