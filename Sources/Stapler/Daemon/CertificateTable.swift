import Reactor

/// The daemon's certificates by path: an open-addressing table of references, each found
/// by its own `path`. A `[FilePath: TrackedCertificate]` kept the key beside the value, 16
/// bytes a bucket at a load of at most 3/4: 262,144 buckets (4 MB, 42 bytes a certificate)
/// at 100,000. Here a slot is a reference and a byte of its hash, 9 bytes, up to 7/8 full
/// (1.2 MB at 100,000); the byte spares most probes a look at a path.
///
/// Linear probing, deletion by shifting back the entries after the hole (no tombstones).
struct CertificateTable {
    private var slots: [TrackedCertificate?] = []
    /// The top 7 bits of each occupied slot's hash, with the high bit set; 0 when empty.
    private var tags: [UInt8] = []
    private(set) var count = 0

    init() {}

    var isEmpty: Bool { count == 0 }

    subscript(path: FilePath) -> TrackedCertificate? {
        get { find(path).map { slots[$0] } ?? nil }
        set {
            if let newValue {
                precondition(newValue.path == path, "a certificate is filed under its own path")
                if let index = find(path) {
                    slots[index] = newValue
                } else {
                    insertNew(newValue, hash: Self.hash(path))
                }
            } else if let index = find(path) {
                remove(at: index)
            }
        }
    }

    /// Every certificate, in no particular order. A snapshot: the table may change while
    /// it is walked (the walk then goes on over a copy of the slots).
    var values: Values { Values(slots: slots) }

    struct Values: Sequence {
        fileprivate let slots: [TrackedCertificate?]

        func makeIterator() -> Iterator { Iterator(slots: slots) }

        struct Iterator: IteratorProtocol {
            fileprivate let slots: [TrackedCertificate?]
            fileprivate var index = 0

            mutating func next() -> TrackedCertificate? {
                while index < slots.count {
                    defer { index += 1 }
                    if let certificate = slots[index] { return certificate }
                }
                return nil
            }
        }
    }

    private var mask: Int { slots.count - 1 }

    private static func hash(_ path: FilePath) -> Int {
        var hasher = Hasher()
        path.bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        return hasher.finalize()
    }

    private static func tag(_ hash: Int) -> UInt8 { UInt8(truncatingIfNeeded: UInt(bitPattern: hash) >> 57) | 0x80 }

    private func find(_ path: FilePath) -> Int? {
        guard count > 0 else { return nil }
        let hash = Self.hash(path)
        let tag = Self.tag(hash)
        var index = hash & mask
        while tags[index] != 0 {
            if tags[index] == tag, slots[index]!.path == path { return index }
            index = (index + 1) & mask
        }
        return nil
    }

    private mutating func insertNew(_ certificate: TrackedCertificate, hash: Int) {
        if (count + 1) * 8 > slots.count * 7 { resize(to: max(16, slots.count * 2)) }
        var index = hash & mask
        while tags[index] != 0 { index = (index + 1) & mask }
        slots[index] = certificate
        tags[index] = Self.tag(hash)
        count += 1
    }

    private mutating func remove(at hole: Int) {
        var hole = hole
        slots[hole] = nil
        tags[hole] = 0
        count -= 1
        // Entries after the hole that probed past it move back into it.
        var index = (hole + 1) & mask
        while tags[index] != 0 {
            let home = Self.hash(slots[index]!.path) & mask
            // Moves when its home is not cyclically within (hole, index].
            let distanceFromHome = (index - home) & mask
            let distanceFromHole = (index - hole) & mask
            if distanceFromHome >= distanceFromHole {
                slots[hole] = slots[index]
                tags[hole] = tags[index]
                slots[index] = nil
                tags[index] = 0
                hole = index
            }
            index = (index + 1) & mask
        }
        // Shrinks with the table once it is an eighth full, as after a mass removal.
        if slots.count > 16, count * 8 < slots.count { resize(to: slots.count / 2) }
    }

    private mutating func resize(to capacity: Int) {
        let old = slots
        slots = Array(repeating: nil, count: capacity)
        tags = Array(repeating: 0, count: capacity)
        count = 0
        for case let certificate? in old { insertNew(certificate, hash: Self.hash(certificate.path)) }
    }
}
