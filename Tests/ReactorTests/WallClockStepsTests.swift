import Foundation
import Glibc
import XCTest
@testable import Reactor

/// Timers that count suspended time, and wall clock steps as loop events.
final class WallClockStepsTests: XCTestCase {
    /// The clock ids of the timerfds this process holds, from /proc/self/fdinfo.
    private func timerfdClocks() -> [Int32: Int32] {
        var clocks: [Int32: Int32] = [:]
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fdinfo")) ?? []
        for name in fds {
            guard let fd = Int32(name),
                  let info = try? String(contentsOfFile: "/proc/self/fdinfo/\(name)", encoding: .utf8) else { continue }
            for line in info.split(separator: "\n") where line.hasPrefix("clockid:") {
                clocks[fd] = Int32(line.dropFirst("clockid:".count).trimmingCharacters(in: .whitespaces))
            }
        }
        return clocks
    }

    /// CLOCK_MONOTONIC stops while the machine is suspended; CLOCK_BOOTTIME does not.
    func testTheLoopsTimerCountsOnTheBootClock() throws {
        let before = timerfdClocks()
        let loop = try EventLoop()
        let new = timerfdClocks().filter { before[$0.key] == nil }
        XCTAssertEqual(Array(new.values), [CLOCK_BOOTTIME], "the loop's one timerfd: \(new)")
        XCTAssertEqual(MonotonicInstant.clock, CLOCK_BOOTTIME)
        var fired = false
        loop.schedule(after: .milliseconds(5)) { fired = true; loop.stop() }
        try loop.runForTestWithoutSupport()
        XCTAssertTrue(fired)
    }

    /// Setting the wall clock (here forward by one millisecond, which changes nothing else)
    /// is an event with the size of the step; the source is armed again for the next one.
    func testSettingTheWallClockIsAnEvent() throws {
        guard getuid() == 0 else { throw XCTSkip("setting the clock needs root (CI runs as root)") }
        let loop = try EventLoop()
        var steps: [Int64] = []
        let source = try WallClockSteps(loop: loop) {
            steps.append($0)
            loop.stop()
        }
        defer { source.close() }
        // Nothing happens while nobody sets the clock...
        loop.schedule(after: .milliseconds(200)) { loop.stop() }
        try loop.run()
        XCTAssertEqual(steps, [])
        // ...and the same wait sees each step when the clock is set.
        for round in 1...2 {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            now.tv_nsec += 1_000_000
            if now.tv_nsec >= 1_000_000_000 { now.tv_sec += 1; now.tv_nsec -= 1_000_000_000 }
            XCTAssertEqual(clock_settime(CLOCK_REALTIME, &now), 0, String(cString: strerror(errno)))
            let timeout = loop.schedule(after: .seconds(2)) { loop.stop() }
            try loop.run()
            loop.cancel(timeout)
            XCTAssertEqual(steps.count, round, "step \(round) seen")
        }
        for step in steps {
            XCTAssertGreaterThan(step, 0)
            XCTAssertLessThan(step, 100_000_000, "about one millisecond forward: \(step) ns")
        }
    }
}

private extension EventLoop {
    func runForTestWithoutSupport() throws {
        let timeout = schedule(after: .seconds(5)) { [unowned self] in self.stop() }
        try run()
        cancel(timeout)
    }
}
