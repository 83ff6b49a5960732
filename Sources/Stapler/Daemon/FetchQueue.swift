/// Certificates waiting for a fetch slot, in two first-in first-out lanes. The urgent lane
/// (Must-Staple certificates, staples about to run out, an operator's `touch`) goes first:
/// for them a late staple is an outage rather than a slower handshake.
///
/// A certificate waits at most once. Removal is lazy: the lanes may hold stale entries, which
/// are skipped when they surface, so forgetting thousands of certificates stays O(1) each.
struct FetchQueue<Element: AnyObject> {
    private var urgent = Lane()
    private var normal = Lane()
    /// Who is waiting, and in which lane.
    private var members: [ObjectIdentifier: Bool] = [:]

    var count: Int { members.count }
    var isEmpty: Bool { members.isEmpty }

    func contains(_ element: Element) -> Bool { members[ObjectIdentifier(element)] != nil }

    /// Adds `element` unless it is already waiting; an urgent push of a normal entry moves it
    /// to the urgent lane.
    mutating func push(_ element: Element, urgent isUrgent: Bool) {
        let id = ObjectIdentifier(element)
        if let waitingUrgently = members[id], waitingUrgently || !isUrgent { return }
        members[id] = isUrgent
        if isUrgent { urgent.append(element) } else { normal.append(element) }
    }

    mutating func remove(_ element: Element) {
        members[ObjectIdentifier(element)] = nil
    }

    mutating func pop() -> Element? {
        while let element = urgent.popFirst() {
            if members[ObjectIdentifier(element)] == true {
                members[ObjectIdentifier(element)] = nil
                return element
            }
        }
        while let element = normal.popFirst() {
            if members[ObjectIdentifier(element)] == false {
                members[ObjectIdentifier(element)] = nil
                return element
            }
        }
        return nil
    }

    mutating func removeAll() {
        urgent = Lane()
        normal = Lane()
        members.removeAll()
    }

    /// An array used as a queue: a moving head instead of removeFirst's O(n) shift, compacted
    /// once the consumed prefix dominates.
    private struct Lane {
        private var items: [Element] = []
        private var head = 0

        mutating func append(_ element: Element) { items.append(element) }

        mutating func popFirst() -> Element? {
            guard head < items.count else { return nil }
            let element = items[head]
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: items.count <= 1024)
                head = 0
            } else if head > 1024 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            return element
        }
    }
}
