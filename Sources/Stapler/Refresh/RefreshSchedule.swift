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

    /// Ties break by scheduling order, first in first out.
    private struct Entry: Comparable {
        var deadline: UInt64
        var id: UInt64
        let element: Element

        static func < (a: Entry, b: Entry) -> Bool {
            a.deadline != b.deadline ? a.deadline < b.deadline : a.id < b.id
        }

        static func == (a: Entry, b: Entry) -> Bool { a.id == b.id }
    }

    private let loop: EventLoop
    private let isCurrent: (Element, Ticket) -> Bool
    private let onDue: (Element) -> Void
    private var heap = MinHeap<Entry>()
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
        heap.push(Entry(deadline: deadline, id: id, element: element))
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
        heap.removeAll()
        live = 0
    }

    /// Sets the loop timer to the top entry's deadline. Stale entries on top are dropped only
    /// after a firing: while `schedule` runs, its caller has not stored the new ticket yet.
    private func arm(droppingStale: Bool = false) {
        while droppingStale, let top = heap.first, !isCurrent(top.element, Ticket(id: top.id)) { heap.popFirst() }
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
            heap.popFirst()
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
        heap.retain { $0.id != cancelled.id && isCurrent($0.element, Ticket(id: $0.id)) }
        live = heap.count
    }
}
