/// Deadlines ordered in a binary min-heap, with cancellation by handle.
///
/// Cancelling only forgets the handler; its heap slot is skipped when it surfaces and the
/// heap is compacted when dead slots outnumber live ones, so cancel and reschedule stay
/// O(log n) with no search.
struct TimerQueue {
    private struct Slot {
        var deadline: UInt64
        var id: UInt64
    }

    private var heap: [Slot] = []
    private var handlers: [UInt64: (deadline: UInt64, run: () -> Void)] = [:]
    private var nextID: UInt64 = 1

    var count: Int { handlers.count }

    mutating func schedule(at deadline: MonotonicInstant, _ run: @escaping () -> Void) -> TimerHandle {
        let id = nextID
        nextID += 1
        handlers[id] = (deadline.nanoseconds, run)
        push(Slot(deadline: deadline.nanoseconds, id: id))
        return TimerHandle(id: id)
    }

    @discardableResult
    mutating func cancel(_ handle: TimerHandle) -> Bool {
        guard handlers.removeValue(forKey: handle.id) != nil else { return false }
        if heap.count > 64 && heap.count > 2 * handlers.count { compact() }
        return true
    }

    /// The earliest live deadline; drops dead slots it finds on top.
    mutating func earliest() -> MonotonicInstant? {
        while let top = heap.first {
            if handlers[top.id] != nil { return MonotonicInstant(nanoseconds: top.deadline) }
            popTop()
        }
        return nil
    }

    /// Removes and returns the handlers due at `now`, earliest first. Timers scheduled by
    /// those handlers wait for the next pass, so a handler that reschedules itself at once
    /// cannot starve the loop.
    mutating func takeDue(now: MonotonicInstant) -> [(TimerHandle, () -> Void)] {
        var due: [(TimerHandle, () -> Void)] = []
        while let top = heap.first, top.deadline <= now.nanoseconds {
            popTop()
            if let entry = handlers.removeValue(forKey: top.id) {
                due.append((TimerHandle(id: top.id), entry.run))
            }
        }
        return due
    }

    private mutating func compact() {
        heap = handlers.map { Slot(deadline: $0.value.deadline, id: $0.key) }
        // Floyd's heap construction: sift down from the last parent.
        var index = heap.count / 2
        while index > 0 {
            index -= 1
            siftDown(from: index)
        }
    }

    private mutating func push(_ slot: Slot) {
        heap.append(slot)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(from: 0)
    }

    private mutating func siftDown(from start: Int) {
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

    /// Ties break by scheduling order so equal deadlines fire first-in, first-out.
    private func less(_ a: Slot, _ b: Slot) -> Bool {
        a.deadline != b.deadline ? a.deadline < b.deadline : a.id < b.id
    }
}

/// Names one scheduled timer so it can be cancelled. Handles are never reused.
public struct TimerHandle: Hashable, Sendable {
    let id: UInt64
}
