/// Deadlines ordered in a binary min-heap, with cancellation by handle.
///
/// Cancelling only forgets the handler; its heap slot is skipped when it surfaces and the
/// heap is compacted when dead slots outnumber live ones, so cancel and reschedule stay
/// O(log n) with no search.
struct TimerQueue {
    /// Ties break by scheduling order so equal deadlines fire first-in, first-out.
    private struct Slot: Comparable {
        var deadline: UInt64
        var id: UInt64

        static func < (a: Slot, b: Slot) -> Bool {
            a.deadline != b.deadline ? a.deadline < b.deadline : a.id < b.id
        }
    }

    private var heap = MinHeap<Slot>()
    private var handlers: [UInt64: (deadline: UInt64, run: () -> Void)] = [:]
    private var nextID: UInt64 = 1

    var count: Int { handlers.count }

    mutating func schedule(at deadline: MonotonicInstant, _ run: @escaping () -> Void) -> TimerHandle {
        let id = nextID
        nextID += 1
        handlers[id] = (deadline.nanoseconds, run)
        heap.push(Slot(deadline: deadline.nanoseconds, id: id))
        return TimerHandle(id: id)
    }

    @discardableResult
    mutating func cancel(_ handle: TimerHandle) -> Bool {
        guard handlers.removeValue(forKey: handle.id) != nil else { return false }
        if heap.count > 64 && heap.count > 2 * handlers.count {
            heap.replace(with: handlers.map { Slot(deadline: $0.value.deadline, id: $0.key) })
        }
        return true
    }

    /// The earliest live deadline; drops dead slots it finds on top.
    mutating func earliest() -> MonotonicInstant? {
        while let top = heap.first {
            if handlers[top.id] != nil { return MonotonicInstant(nanoseconds: top.deadline) }
            heap.popFirst()
        }
        return nil
    }

    /// Removes and returns the handlers due at `now`, earliest first. Timers scheduled by
    /// those handlers wait for the next pass, so a handler that reschedules itself at once
    /// cannot starve the loop.
    mutating func takeDue(now: MonotonicInstant) -> [(TimerHandle, () -> Void)] {
        var due: [(TimerHandle, () -> Void)] = []
        while let top = heap.first, top.deadline <= now.nanoseconds {
            heap.popFirst()
            if let entry = handlers.removeValue(forKey: top.id) {
                due.append((TimerHandle(id: top.id), entry.run))
            }
        }
        return due
    }
}

/// Names one scheduled timer so it can be cancelled. Handles are never reused.
public struct TimerHandle: Hashable, Sendable {
    let id: UInt64
}
