/// Certificates waiting for a fetch slot, in two first-in first-out lanes. The urgent lane
/// (Must-Staple certificates, staples about to run out, an operator's `touch`) goes first:
/// for them a late staple is an outage rather than a slower handshake.
///
/// Entries are grouped by responder (the group is any key, the daemon uses the URL's
/// origin), and `pop` serves the groups in turn, skipping those the caller says are busy.
/// Without groups, 10,000 certificates of one busy responder at the head of the queue had
/// to be stepped over to reach anyone else, once per finished fetch.
///
/// A certificate waits at most once. Removal is lazy: the lanes may hold stale entries, which
/// are skipped when they surface, so forgetting thousands of certificates stays O(1) each.
struct FetchQueue<Element: AnyObject> {
    /// 8 bytes with its group as a number: with the name (a String) a bucket of `members`
    /// was 32 bytes, 8.4 MB for a start-up queue of 100,000, most of the daemon's peak
    /// above its idle size.
    private struct Membership: Equatable {
        var urgent: Bool
        var group: UInt32
    }

    private struct Group {
        var urgent = Lane<Element>()
        var normal = Lane<Element>()
        var inUrgentRotation = false
        var inNormalRotation = false
    }

    /// Who is waiting, in which lane of which group.
    private var members: [ObjectIdentifier: Membership] = [:]
    private var groups: [String: Group] = [:]
    /// Numbers for the group names memberships refer to, forgotten when nobody waits.
    private var groupNumbers: [String: UInt32] = [:]
    /// Groups that may have entries in that lane, in the order they are served.
    private var urgentRotation = Lane<String>()
    private var normalRotation = Lane<String>()

    var count: Int { members.count }
    var isEmpty: Bool { members.isEmpty }

    func contains(_ element: Element) -> Bool { members[ObjectIdentifier(element)] != nil }

    /// Adds `element` unless it is already waiting; an urgent push of a normal entry moves it
    /// to the urgent lane (and a push naming another group moves it there).
    mutating func push(_ element: Element, group: String = "", urgent isUrgent: Bool) {
        let id = ObjectIdentifier(element)
        let number = groupNumber(group)
        if let waiting = members[id], waiting.group == number, waiting.urgent || !isUrgent { return }
        members[id] = Membership(urgent: isUrgent, group: number)
        // Taken out while it changes: a copy left in the dictionary would make each append
        // copy the lane.
        var entry = groups.removeValue(forKey: group) ?? Group()
        if isUrgent {
            entry.urgent.append(element)
            if !entry.inUrgentRotation { urgentRotation.append(group) }
            entry.inUrgentRotation = true
        } else {
            entry.normal.append(element)
            if !entry.inNormalRotation { normalRotation.append(group) }
            entry.inNormalRotation = true
        }
        groups[group] = entry
    }

    mutating func remove(_ element: Element) {
        members[ObjectIdentifier(element)] = nil
    }

    /// The next waiting element of a group `available` accepts: urgent entries of any such
    /// group first, groups served in turn, first in first out within a group.
    mutating func pop(available: (String) -> Bool = { _ in true }) -> Element? {
        let element = pop(urgent: true, available: available) ?? pop(urgent: false, available: available)
        // A start-up queue of 100,000 grew the table to 131,072 slots (4 MB): give them back
        // once it has drained, not at the next start.
        if members.isEmpty && members.capacity > Self.retainedCapacity { members = [:] }
        if members.isEmpty && groupNumbers.count > Self.retainedCapacity { groupNumbers = [:] }
        return element
    }

    private mutating func groupNumber(_ name: String) -> UInt32 {
        if let known = groupNumbers[name] { return known }
        let number = UInt32(truncatingIfNeeded: groupNumbers.count)
        groupNumbers[name] = number
        return number
    }

    private static var retainedCapacity: Int { 1024 }

    mutating func removeAll() {
        members.removeAll()
        groups.removeAll()
        groupNumbers.removeAll()
        urgentRotation = Lane()
        normalRotation = Lane()
    }

    /// One turn of the rotation at most: each group is looked at once.
    private mutating func pop(urgent: Bool, available: (String) -> Bool) -> Element? {
        for _ in 0..<(urgent ? urgentRotation.count : normalRotation.count) {
            guard let name = urgent ? urgentRotation.popFirst() : normalRotation.popFirst(),
                  var group = groups.removeValue(forKey: name) else { continue }
            let wanted = Membership(urgent: urgent, group: groupNumber(name))
            var found: Element?
            var exhausted = false
            if available(name) {
                while let candidate = urgent ? group.urgent.popFirst() : group.normal.popFirst() {
                    if members[ObjectIdentifier(candidate)] == wanted {
                        members[ObjectIdentifier(candidate)] = nil
                        found = candidate
                        break
                    }
                }
                exhausted = (urgent ? group.urgent.count : group.normal.count) == 0
            }
            if exhausted {
                if urgent { group.inUrgentRotation = false } else { group.inNormalRotation = false }
            } else if urgent {
                urgentRotation.append(name)
            } else {
                normalRotation.append(name)
            }
            if group.inUrgentRotation || group.inNormalRotation { groups[name] = group }
            if let found { return found }
        }
        return nil
    }

    /// An array used as a queue: a moving head instead of removeFirst's O(n) shift, compacted
    /// once the consumed prefix dominates.
    private struct Lane<Item> {
        private var items: [Item] = []
        private var head = 0

        var count: Int { items.count - head }

        mutating func append(_ item: Item) { items.append(item) }

        mutating func popFirst() -> Item? {
            guard head < items.count else { return nil }
            let item = items[head]
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: items.count <= 1024)
                head = 0
            } else if head > 1024 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }
}
