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
}
