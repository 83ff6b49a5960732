/// Transfers waiting for a slot, first in first out, with removal by id.
///
/// Removal only forgets the member; its slot is skipped when it reaches the front, and the
/// storage is compacted when dead slots dominate, so hundreds of waiting or cancelled
/// transfers cost O(1) each.
struct HTTPTransferQueue {
    private var order: [HTTPTransfer] = []
    private var head = 0
    private var members: [UInt64: HTTPTransfer] = [:]

    var count: Int { members.count }

    mutating func append(_ transfer: HTTPTransfer) {
        order.append(transfer)
        members[transfer.id] = transfer
    }

    mutating func remove(id: UInt64) -> HTTPTransfer? {
        guard let transfer = members.removeValue(forKey: id) else { return nil }
        compactIfSparse()
        return transfer
    }

    mutating func popFirst() -> HTTPTransfer? {
        while head < order.count {
            let transfer = order[head]
            head += 1
            if members.removeValue(forKey: transfer.id) != nil {
                compactIfSparse()
                return transfer
            }
        }
        order.removeAll()
        head = 0
        return nil
    }

    /// Empties the queue, returning the members in order.
    mutating func removeAll() -> [HTTPTransfer] {
        let waiting = order[head...].filter { members[$0.id] === $0 }
        order.removeAll()
        head = 0
        members.removeAll()
        return waiting
    }

    private mutating func compactIfSparse() {
        guard order.count > 64, order.count > 2 * members.count else { return }
        order = order[head...].filter { members[$0.id] === $0 }
        head = 0
    }
}
