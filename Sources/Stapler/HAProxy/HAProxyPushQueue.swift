import Reactor

/// Staples waiting for one HAProxy socket, first in first out, at most one per certificate:
/// a newer staple replaces a queued older one in place, so an HAProxy that is down for days
/// holds at most one staple per certificate, and never more than `limit`.
struct HAProxyPushQueue {
    struct Entry {
        var certificate: FilePath
        var staple: [UInt8]
        var completion: (HAProxyPushResult) -> Void
    }

    enum EnqueueOutcome {
        case added
        /// The entry that was queued for the same certificate, now replaced.
        case replaced(Entry)
        case full
    }

    let limit: Int
    private var order: [FilePath] = []
    private var head = 0
    private var entries: [FilePath: Entry] = [:]

    init(limit: Int) { self.limit = limit }

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    mutating func enqueue(_ entry: Entry) -> EnqueueOutcome {
        if let previous = entries[entry.certificate] {
            entries[entry.certificate] = entry
            return .replaced(previous)
        }
        guard entries.count < limit else { return .full }
        append(entry)
        return .added
    }

    /// Puts back an entry that was taken out and could not be delivered, at the end so that
    /// one failing certificate does not hold up the others. If a newer staple for the same
    /// certificate arrived meanwhile, that one stays and the old entry is returned.
    mutating func requeue(_ entry: Entry) -> Entry? {
        if entries[entry.certificate] != nil { return entry }
        append(entry)
        return nil
    }

    mutating func popFirst() -> Entry? {
        while head < order.count {
            let certificate = order[head]
            head += 1
            if let entry = entries.removeValue(forKey: certificate) {
                compactIfWorthIt()
                return entry
            }
        }
        return nil
    }

    mutating func removeAll() -> [Entry] {
        var all: [Entry] = []
        while let entry = popFirst() { all.append(entry) }
        order = []
        head = 0
        return all
    }

    private mutating func append(_ entry: Entry) {
        entries[entry.certificate] = entry
        order.append(entry.certificate)
    }

    private mutating func compactIfWorthIt() {
        if head == order.count {
            order.removeAll(keepingCapacity: order.count < 1024)
            head = 0
        } else if head > 64 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
