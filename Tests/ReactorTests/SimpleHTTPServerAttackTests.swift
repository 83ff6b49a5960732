import Foundation
import Glibc
import XCTest
@testable import Reactor
import TestSupport

/// `SimpleHTTPServer` facing hostile clients, as a listener open to the network meets them:
/// the server runs on its own loop thread as in the daemon, the attackers and a good scraper
/// are blocking clients on other threads. Throughout every attack a good scrape is answered
/// within a second, and the server never holds more connections than its cap.
final class SimpleHTTPServerAttackTests: XCTestCase {
    private var temp: TemporaryDirectory!

    override func setUpWithError() throws { temp = try TemporaryDirectory(prefix: "stapler-attack") }
    override func tearDown() { temp = nil }

    func testGoodScrapesAreAnsweredWithinASecondUnderEveryAttackOverTCP() throws {
        let seed = UInt64.random(in: 1...UInt64.max)
        print("garbage seed: \(seed)")
        XCTAssertGreaterThanOrEqual(HostileHTTPClients.raiseDescriptorLimit(to: 12_000), 10_500,
                                    "10,000 attacking connections need the descriptors")
        let served = try ServerThread(address: .tcp(host: "127.0.0.1", port: 0))
        let totals = withstand(HostileHTTPAttack.fullBattery(seed: seed), served, at: .tcp(port: served.port))
        XCTAssertGreaterThan(totals.evicted, 9_000, "the flood displaced its own kind")
        XCTAssertEqual(totals.openConnections, 0, "every attacker's connection is gone once the attackers are")
        XCTAssertEqual(totals.queuedBytes, 0)
    }

    func testGoodScrapesAreAnsweredWithinASecondUnderAttackOverAUnixSocket() throws {
        let path = temp.file("metrics.sock")
        let served = try ServerThread(address: .unix(FilePath(path)))
        let totals = withstand(HostileHTTPAttack.briefBattery, served, at: .unix(path: path))
        XCTAssertGreaterThan(totals.evicted, 0)
    }

    /// Runs each attack in turn against `served`, checks what the scrapes and the attacker
    /// saw, then stops the server and checks it never held more than its cap.
    private func withstand(_ battery: [(kind: HostileHTTPAttack.Kind, seconds: TimeInterval)], _ served: ServerThread,
                           at endpoint: StreamEndpoint, file: StaticString = #filePath, line: UInt = #line) -> ServerThread.Totals {
        for (kind, seconds) in battery {
            let outcome = HostileHTTPAttack.run(kind, against: endpoint, for: seconds)
            print(outcome)
            outcome.assertWithstood(maxConnections: ServerThread.maxConnections, endpoint: endpoint, file: file, line: line)
        }
        let totals = served.stop()
        print("server: \(totals)")
        XCTAssertLessThanOrEqual(totals.peakOpenConnections, ServerThread.maxConnections, file: file, line: line)
        return totals
    }
}

/// A `SimpleHTTPServer` on an `EventLoop` of its own thread, answering 200 to everything;
/// stopped through a pipe. Its counters are read on the loop thread, so they are reported
/// once it has stopped.
private final class ServerThread: @unchecked Sendable {
    static let maxConnections = 64

    struct Totals: CustomStringConvertible {
        var peakOpenConnections = 0
        var accepted = 0
        var evicted = 0
        var timedOut = 0
        var responses = 0
        var openConnections = 0
        var queuedBytes = 0

        var description: String {
            "accepted \(accepted), evicted \(evicted), timed out \(timedOut), responses \(responses), "
                + "peak open \(peakOpenConnections), open at stop \(openConnections), queued bytes \(queuedBytes)"
        }
    }

    private(set) var port: UInt16 = 0
    private var totals = Totals()
    private var failure: Error?
    private let ready = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var stopPipe: [Int32] = [-1, -1]

    init(address: ListenAddress) throws {
        guard pipe(&stopPipe) == 0 else { throw SystemError("pipe") }
        let thread = Thread { [self] in
            run(address)
            finished.signal()
        }
        thread.start()
        ready.wait()
        if let failure { throw failure }
    }

    /// Stops the loop (once the connections still open have had a moment to end) and
    /// reports.
    func stop() -> Totals {
        var byte: UInt8 = 1
        _ = write(stopPipe[1], &byte, 1)
        finished.wait()
        close(stopPipe[0])
        close(stopPipe[1])
        return totals
    }

    private func run(_ address: ListenAddress) {
        do {
            let loop = try EventLoop()
            let server = try SimpleHTTPServer(loop: loop, address: address, configuration: .init(maxConnections: Self.maxConnections)) { _ in
                .init(status: 200, text: "ok\n")
            }
            port = server.port
            // The peak is sampled every millisecond: the cap is checked by the code path,
            // this sees it from outside.
            var sample: (() -> Void)?
            sample = { [unowned loop] in
                self.totals.peakOpenConnections = max(self.totals.peakOpenConnections, server.openConnections)
                loop.schedule(after: .milliseconds(1)) { sample?() }
            }
            sample?()
            let stopPipe = stopPipe
            let stopping = try loop.register(fd: stopPipe[0], interest: .readable) { [unowned loop] _ in
                var byte: UInt8 = 0
                _ = read(stopPipe[0], &byte, 1)
                // The attackers have closed everything: let the server see the last closes.
                let deadline = MonotonicInstant.now() + .seconds(3)
                var settle: (() -> Void)?
                settle = {
                    if server.openConnections == 0 || MonotonicInstant.now() > deadline {
                        loop.stop()
                    } else {
                        loop.schedule(after: .milliseconds(5)) { settle?() }
                    }
                }
                settle?()
            }
            ready.signal()
            try loop.run()
            sample = nil
            stopping.cancel()
            totals.accepted = server.connectionsAccepted
            totals.evicted = server.connectionsEvicted
            totals.timedOut = server.connectionsTimedOut
            totals.responses = server.responsesSent
            totals.openConnections = server.openConnections
            totals.queuedBytes = server.queuedBytes
            server.close()
        } catch {
            failure = error
            ready.signal()
        }
    }
}
