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

    /// Setting the wall clock is an event with the size of the step, and the source is armed
    /// again for the next one: a second forward, then back, each seen with its size. Some
    /// VMs have their clock set by the host every fraction of a second, by half a
    /// millisecond: those steps are events too, each with its own small size.
    func testSettingTheWallClockIsAnEvent() throws {
        guard getuid() == 0 else { throw XCTSkip("setting the clock needs root (CI runs as root)") }
        let loop = try EventLoop()
        var steps: [Int64] = []
        var awaited: Int64?
        let source = try WallClockSteps(loop: loop) { step in
            steps.append(step)
            if let awaited, (step - awaited).magnitude < 50_000_000 { loop.stop() }
        }
        defer { source.close() }
        // Nobody else setting the clock: nothing; a host that does: only its small steps.
        loop.schedule(after: .milliseconds(200)) { loop.stop() }
        try loop.run()
        XCTAssertTrue(steps.allSatisfy { $0.magnitude < 50_000_000 }, "\(steps)")
        for step: Int64 in [1_000_000_000, -1_000_000_000] {
            steps.removeAll()
            awaited = step
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let target = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec) + step
            var set = timespec(tv_sec: Int(target / 1_000_000_000), tv_nsec: Int(target % 1_000_000_000))
            XCTAssertEqual(clock_settime(CLOCK_REALTIME, &set), 0, String(cString: strerror(errno)))
            let timeout = loop.schedule(after: .seconds(2)) { loop.stop() }
            try loop.run()
            loop.cancel(timeout)
            XCTAssertTrue(steps.contains { ($0 - step).magnitude < 50_000_000 }, "a step of \(step) ns seen: \(steps)")
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
