import Glibc
import XCTest
@testable import Reactor

final class TimerTests: XCTestCase {
    func testTimersFireInDeadlineOrderAndCancelledOnesNever() throws {
        let loop = try EventLoop()
        var fired: [Int] = []
        let start = MonotonicInstant.now()
        loop.schedule(at: start + .milliseconds(30)) { fired.append(3) }
        loop.schedule(at: start + .milliseconds(10)) { fired.append(1) }
        let cancelled = loop.schedule(at: start + .milliseconds(20)) { fired.append(99) }
        loop.schedule(at: start + .milliseconds(20)) { fired.append(2) }
        loop.schedule(at: start + .milliseconds(40)) { loop.stop() }
        XCTAssertTrue(loop.cancel(cancelled))
        XCTAssertFalse(loop.cancel(cancelled), "a second cancel reports nothing pending")
        try loop.run()
        XCTAssertEqual(fired, [1, 2, 3])
        XCTAssertGreaterThanOrEqual(MonotonicInstant.now().duration(since: start), .milliseconds(40))
    }

    func testEqualDeadlinesFireInSchedulingOrder() throws {
        let loop = try EventLoop()
        var fired: [Int] = []
        let deadline = MonotonicInstant.now() + .milliseconds(5)
        for index in 0..<50 { loop.schedule(at: deadline) { fired.append(index) } }
        loop.schedule(at: deadline + .milliseconds(1)) { loop.stop() }
        try loop.run()
        XCTAssertEqual(fired, Array(0..<50))
    }

    func testPastDeadlineFiresOnNextPassAndSelfReschedulingDoesNotStarve() throws {
        let loop = try EventLoop()
        var count = 0
        var other = false
        func again() {
            count += 1
            if count < 100 { loop.schedule(at: .now()) { again() } }
        }
        loop.schedule(at: MonotonicInstant(nanoseconds: 1)) { again() }
        loop.schedule(after: .milliseconds(1)) { other = true }
        loop.schedule(after: .milliseconds(50)) { loop.stop() }
        try loop.run()
        XCTAssertEqual(count, 100)
        XCTAssertTrue(other)
    }

    func testManyReschedulesKeepOnlyLiveTimers() throws {
        let loop = try EventLoop()
        var handle = loop.schedule(after: .seconds(3600)) {}
        for _ in 0..<10_000 {
            loop.cancel(handle)
            handle = loop.schedule(after: .seconds(3600)) {}
        }
        XCTAssertEqual(loop.pendingTimerCount, 1)
        var fired = false
        loop.schedule(after: .milliseconds(2)) { fired = true; loop.stop() }
        try loop.run()
        XCTAssertTrue(fired)
    }

    func testIdleLoopSleepsUntilTheDeadline() throws {
        let loop = try EventLoop()
        loop.schedule(after: .milliseconds(200)) { loop.stop() }
        try loop.run()
        // One wakeup for the timer itself; a polling loop would show dozens.
        XCTAssertLessThanOrEqual(loop.wakeups, 2)
    }
}
