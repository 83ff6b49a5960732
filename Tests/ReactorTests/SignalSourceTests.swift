import Glibc
import XCTest
@testable import Reactor

final class SignalSourceTests: XCTestCase {
    /// Sent to this thread with pthread_kill: the test process has other threads (Foundation,
    /// XCTest) that do not block these signals, and a process-directed kill() could land on
    /// one of them and end the run. The daemon tests send real kill()s to a stapler process.
    func testSignalsArriveAsLoopEventsInOrder() throws {
        let loop = try EventLoop()
        var received: [Int32] = []
        let source = try SignalSource(loop: loop, signals: [SIGUSR1, SIGUSR2, SIGHUP]) { signal in
            received.append(signal)
            if received.count == 3 { loop.stop() }
        }
        defer { source.close() }
        // Sent from inside the loop, one per pass, so each is read before the next is sent
        // (standard signals of one kind do not queue).
        let me = pthread_self()
        loop.schedule(after: .milliseconds(1)) { pthread_kill(me, SIGUSR1) }
        loop.schedule(after: .milliseconds(20)) { pthread_kill(me, SIGUSR2) }
        loop.schedule(after: .milliseconds(40)) { pthread_kill(me, SIGHUP) }
        loop.schedule(after: .seconds(5)) { XCTFail("signals did not arrive"); loop.stop() }
        try loop.run()
        XCTAssertEqual(received, [SIGUSR1, SIGUSR2, SIGHUP])
    }

    func testIgnoredSigpipeTurnsIntoEPIPE() throws {
        SignalSource.ignore([SIGPIPE])
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        close(fds[1])
        let byte: [UInt8] = [1]
        XCTAssertEqual(write(fds[0], byte, 1), -1)
        XCTAssertEqual(errno, EPIPE)
        close(fds[0])
    }
}
