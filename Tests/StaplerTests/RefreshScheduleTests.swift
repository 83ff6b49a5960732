import XCTest
import Reactor
@testable import Stapler

final class RefreshScheduleTests: XCTestCase {
    final class Item {
        let name: String
        var ticket: RefreshSchedule<Item>.Ticket?
        init(_ name: String) { self.name = name }
    }

    private func makeSchedule(_ loop: EventLoop, fired: @escaping (Item) -> Void) -> RefreshSchedule<Item> {
        RefreshSchedule(loop: loop, isCurrent: { $0.ticket == $1 }) { item in
            item.ticket = nil
            fired(item)
        }
    }

    func testDueItemsFireInDeadlineOrderAndCancelledOrMovedOnesOnlyWhenLive() throws {
        let loop = try EventLoop()
        var fired: [String] = []
        let schedule = makeSchedule(loop) { fired.append($0.name) }
        let a = Item("a"), b = Item("b"), c = Item("c"), cancelled = Item("cancelled"), moved = Item("moved")
        c.ticket = schedule.schedule(c, after: .milliseconds(30))
        a.ticket = schedule.schedule(a, after: .milliseconds(10))
        b.ticket = schedule.schedule(b, after: .milliseconds(20))
        cancelled.ticket = schedule.schedule(cancelled, after: .milliseconds(15))
        moved.ticket = schedule.schedule(moved, after: .milliseconds(5))
        schedule.cancel(cancelled.ticket!)
        cancelled.ticket = nil
        // Moved later: its old entry, due first, must not fire; the new one does.
        schedule.cancel(moved.ticket!)
        moved.ticket = schedule.schedule(moved, after: .milliseconds(25))
        XCTAssertEqual(schedule.count, 4)
        loop.schedule(after: .milliseconds(60)) { loop.stop() }
        try loop.run()
        XCTAssertEqual(fired, ["a", "b", "moved", "c"])
        XCTAssertEqual(schedule.count, 0)
    }

    func testAnEarlierDeadlineScheduledLaterStillFiresFirst() throws {
        let loop = try EventLoop()
        var fired: [String] = []
        let schedule = makeSchedule(loop) { fired.append($0.name) }
        let late = Item("late"), early = Item("early")
        late.ticket = schedule.schedule(late, after: .milliseconds(40))
        early.ticket = schedule.schedule(early, after: .milliseconds(5))
        var firedBy20ms: [String] = []
        loop.schedule(after: .milliseconds(20)) { firedBy20ms = fired }
        loop.schedule(after: .milliseconds(60)) { loop.stop() }
        try loop.run()
        XCTAssertEqual(firedBy20ms, ["early"], "the one loop timer was re-armed for the earlier deadline")
        XCTAssertEqual(fired, ["early", "late"])
    }

    func testManyReschedulesKeepTheHeapSmall() throws {
        let loop = try EventLoop()
        var fired: [String] = []
        let schedule = makeSchedule(loop) { fired.append($0.name) }
        let items = (0..<100).map { Item("\($0)") }
        for _ in 0..<100 {
            for item in items {
                if let ticket = item.ticket { schedule.cancel(ticket) }
                item.ticket = schedule.schedule(item, after: .seconds(3600))
            }
        }
        XCTAssertEqual(schedule.count, 100)
        let soon = Item("soon")
        soon.ticket = schedule.schedule(soon, after: .milliseconds(2))
        loop.schedule(after: .milliseconds(30)) { loop.stop() }
        try loop.run()
        XCTAssertEqual(fired, ["soon"], "only the due one fires; the hour-long ones wait")
    }
}
