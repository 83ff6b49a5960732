import Reactor

/// When each certificate's next refresh is due, earliest first, behind one loop timer. A
/// loop timer per certificate cost about 190 bytes each (a closure and its context, a weak
/// reference, a slot and an entry in the loop's tables), 19 MB at 100,000 certificates; an
/// entry here is 24 bytes.
///
/// Cancelling is lazy: the owner keeps the ticket of each element's live entry and says
/// through `isCurrent` whether an entry still is; stale entries are dropped when they reach
/// the top, and the heap is rebuilt when they outnumber the live ones. An entry holds its
/// element until then.
final class RefreshSchedule<Element: AnyObject> {
    struct Ticket: Equatable {
        fileprivate let id: UInt64
    }

    private struct Entry {
        var deadline: UInt64
        var id: UInt64
        let element: Element
    }

    private let loop: EventLoop
    private let isCurrent: (Element, Ticket) -> Bool
    private let onDue: (Element) -> Void
    private var heap: [Entry] = []
    private var live = 0
    private var nextID: UInt64 = 1
    private var timer: TimerHandle?
    private var armedDeadline: UInt64?

    /// `onDue` runs for each element whose live entry comes due.
    init(loop: EventLoop, isCurrent: @escaping (Element, Ticket) -> Bool, onDue: @escaping (Element) -> Void) {
        self.loop = loop
        self.isCurrent = isCurrent
        self.onDue = onDue
    }

    var count: Int { live }

    /// Plans `element` for `delay` from now; the owner keeps the ticket as its live entry.
    func schedule(_ element: Element, after delay: Duration) -> Ticket {
        let id = nextID
        nextID += 1
        let deadline = (MonotonicInstant.now() + delay).nanoseconds
        heap.append(Entry(deadline: deadline, id: id, element: element))
        siftUp(from: heap.count - 1)
        live += 1
        if armedDeadline.map({ deadline < $0 }) ?? true { arm() }
        return Ticket(id: id)
    }

    /// The owner dropped a live ticket.
    func cancel(_ ticket: Ticket) {
        live = max(0, live - 1)
        if heap.count > 64 && heap.count > 2 * live { compact(dropping: ticket) }
    }

    /// Forgets everything (the daemon is stopping).
    func removeAll() {
        if let timer { loop.cancel(timer) }
        timer = nil
        armedDeadline = nil
        heap = []
        live = 0
    }

    /// Sets the loop timer to the top entry's deadline. Stale entries on top are dropped only
    /// after a firing: while `schedule` runs, its caller has not stored the new ticket yet.
    private func arm(droppingStale: Bool = false) {
        while droppingStale, let top = heap.first, !isCurrent(top.element, Ticket(id: top.id)) { popTop() }
        if let timer { loop.cancel(timer) }
        timer = nil
        armedDeadline = heap.first?.deadline
        guard let deadline = armedDeadline else { return }
        timer = loop.schedule(at: MonotonicInstant(nanoseconds: deadline)) { [unowned self] in
            self.timer = nil
            self.armedDeadline = nil
            self.fire()
        }
    }

    /// Takes every due live entry first, then runs them: what they schedule waits for the
    /// next turn.
    private func fire() {
        let now = MonotonicInstant.now().nanoseconds
        var due: [Entry] = []
        while let top = heap.first, top.deadline <= now {
            popTop()
            if isCurrent(top.element, Ticket(id: top.id)) {
                live = max(0, live - 1)
                due.append(top)
            }
        }
        arm(droppingStale: true)
        // An earlier handler may have cancelled or moved a later one.
        for entry in due where isCurrent(entry.element, Ticket(id: entry.id)) { onDue(entry.element) }
    }

    /// Keeps the live entries; `cancelled` may still look live to `isCurrent`, its owner
    /// clearing it only after `cancel` returns.
    private func compact(dropping cancelled: Ticket) {
        heap = heap.filter { $0.id != cancelled.id && isCurrent($0.element, Ticket(id: $0.id)) }
        live = heap.count
        var index = heap.count / 2
        while index > 0 {
            index -= 1
            siftDown(from: index)
        }
    }

    private func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(from: 0)
    }

    private func siftUp(from start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { return }
            let right = left + 1
            var smallest = left
            if right < heap.count && less(heap[right], heap[left]) { smallest = right }
            guard less(heap[smallest], heap[parent]) else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }

    /// Ties break by scheduling order, first in first out.
    private func less(_ a: Entry, _ b: Entry) -> Bool {
        a.deadline != b.deadline ? a.deadline < b.deadline : a.id < b.id
    }
}
