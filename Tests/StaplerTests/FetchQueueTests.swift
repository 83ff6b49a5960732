import XCTest
@testable import Stapler

final class FetchQueueTests: XCTestCase {
    final class Item: CustomStringConvertible {
        let name: String
        init(_ name: String) { self.name = name }
        var description: String { name }
    }

    func testUrgentFirstThenFirstInFirstOutAndNoDuplicates() {
        var queue = FetchQueue<Item>()
        let a = Item("a"), b = Item("b"), c = Item("c"), d = Item("d")
        queue.push(a, urgent: false)
        queue.push(b, urgent: false)
        queue.push(c, urgent: true)
        queue.push(a, urgent: false)
        queue.push(b, urgent: true) // moves up
        queue.push(d, urgent: false)
        XCTAssertEqual(queue.count, 4)
        var order: [String] = []
        while let item = queue.pop() { order.append(item.name) }
        XCTAssertEqual(order, ["c", "b", "a", "d"])
        XCTAssertTrue(queue.isEmpty)
    }

    func testRemovedEntriesNeverSurfaceAndMayReturn() {
        var queue = FetchQueue<Item>()
        let items = (0..<5000).map { Item("\($0)") }
        for item in items { queue.push(item, urgent: false) }
        for item in items where Int(item.name)! % 2 == 0 { queue.remove(item) }
        queue.push(items[0], urgent: false)
        var popped: [String] = []
        while let item = queue.pop() { popped.append(item.name) }
        XCTAssertEqual(popped.count, 2501)
        XCTAssertEqual(popped.first, "0", "re-added entries keep no duplicate")
        XCTAssertEqual(Set(popped).count, popped.count)
    }

    /// A busy responder's certificates are passed over without being stepped through: the
    /// others are served at once, and the busy one's resume in order when it frees up.
    func testBusyGroupsAreSkippedAndGroupsAreServedInTurn() {
        var queue = FetchQueue<Item>()
        let busy = (0..<10_000).map { Item("busy\($0)") }
        for item in busy { queue.push(item, group: "http://busy", urgent: false) }
        let others = (0..<3).map { Item("other\($0)") }
        for item in others { queue.push(item, group: "http://other", urgent: false) }
        let third = Item("third")
        queue.push(third, group: "http://third", urgent: false)

        var asked = 0
        let notBusy: (String) -> Bool = { asked += 1; return $0 != "http://busy" }
        XCTAssertEqual(queue.pop(available: notBusy)?.name, "other0")
        XCTAssertEqual(queue.pop(available: notBusy)?.name, "third")
        XCTAssertEqual(queue.pop(available: notBusy)?.name, "other1")
        XCTAssertEqual(queue.pop(available: notBusy)?.name, "other2")
        XCTAssertNil(queue.pop(available: notBusy), "only the busy group is left")
        XCTAssertLessThan(asked, 20, "groups are asked, not their 10,000 entries")
        XCTAssertEqual(queue.count, 10_000)

        var order: [String] = []
        while let item = queue.pop() { order.append(item.name) }
        XCTAssertEqual(order, busy.map(\.name))
    }

    /// Urgent entries of any available group go before every normal entry.
    func testUrgentEntriesOfAnyGroupGoFirstAndAGroupChangeMovesAnEntry() {
        var queue = FetchQueue<Item>()
        let a = Item("a"), b = Item("b"), c = Item("c"), d = Item("d")
        queue.push(a, group: "x", urgent: false)
        queue.push(b, group: "y", urgent: false)
        queue.push(c, group: "y", urgent: true)
        queue.push(d, group: "z", urgent: true)
        queue.push(a, group: "z", urgent: false)  // its responder changed
        XCTAssertEqual(queue.count, 4)
        XCTAssertEqual(queue.pop(available: { $0 != "z" })?.name, "c")
        XCTAssertEqual(queue.pop()?.name, "d")
        var rest: [String] = []
        while let item = queue.pop() { rest.append(item.name) }
        XCTAssertEqual(Set(rest), ["a", "b"])
        XCTAssertEqual(rest.count, 2, "the entry left behind in group x is stale and skipped")
        XCTAssertTrue(queue.isEmpty)
    }
}
