/// Answers kept until their TTL runs out (capped), so a burst of transfers to one host asks
/// DNS once. Failures are not kept: the caller's retry asks again.
struct ResolvedNameCache {
    private var entries: [String: (addresses: ResolvedAddresses, expiry: MonotonicInstant)] = [:]
    let capacity: Int
    let maxLifetime: Duration

    init(capacity: Int, maxLifetime: Duration) {
        self.capacity = max(1, capacity)
        self.maxLifetime = maxLifetime
    }

    var count: Int { entries.count }

    func lookup(_ key: String, now: MonotonicInstant) -> ResolvedAddresses? {
        guard let entry = entries[key], now < entry.expiry else { return nil }
        return entry.addresses
    }

    /// Keeps `addresses` for their TTL; a TTL of 0 keeps nothing (and drops an older entry).
    mutating func store(_ addresses: ResolvedAddresses, for key: String, now: MonotonicInstant) {
        let lifetime = min(.seconds(addresses.timeToLive), maxLifetime)
        guard lifetime > .zero else {
            entries.removeValue(forKey: key)
            return
        }
        if entries[key] == nil && entries.count >= capacity {
            entries = entries.filter { now < $0.value.expiry }
            // Still full of live answers: make room for the newest one.
            if entries.count >= capacity, let victim = entries.min(by: { $0.value.expiry < $1.value.expiry })?.key {
                entries.removeValue(forKey: victim)
            }
        }
        entries[key] = (addresses, now + lifetime)
    }
}
