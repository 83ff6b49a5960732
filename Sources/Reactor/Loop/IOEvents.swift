import CEpoll

/// What a file descriptor is ready for, or what a handler wants to hear about.
public struct IOEvents: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let readable = IOEvents(rawValue: 1 << 0)
    public static let writable = IOEvents(rawValue: 1 << 1)
    /// The peer hung up (EPOLLHUP or EPOLLRDHUP). Always reported, never requested.
    public static let hangup = IOEvents(rawValue: 1 << 2)
    /// An error is pending on the descriptor (EPOLLERR). Always reported, never requested.
    public static let error = IOEvents(rawValue: 1 << 3)

    var epollMask: UInt32 {
        // Peer half-close is only news to a reader; asking for it without EPOLLIN would make a
        // writer waiting on a half-closed socket wake up forever (level-triggered).
        var mask: UInt32 = 0
        if contains(.readable) { mask |= CEPOLL_IN | CEPOLL_RDHUP }
        if contains(.writable) { mask |= CEPOLL_OUT }
        return mask
    }

    init(epollMask mask: UInt32) {
        var events: IOEvents = []
        if mask & CEPOLL_IN != 0 { events.insert(.readable) }
        if mask & CEPOLL_OUT != 0 { events.insert(.writable) }
        if mask & (CEPOLL_HUP | CEPOLL_RDHUP) != 0 { events.insert(.hangup) }
        if mask & CEPOLL_ERR != 0 { events.insert(.error) }
        self = events
    }

    public var description: String {
        var parts: [String] = []
        if contains(.readable) { parts.append("readable") }
        if contains(.writable) { parts.append("writable") }
        if contains(.hangup) { parts.append("hangup") }
        if contains(.error) { parts.append("error") }
        return "[" + parts.joined(separator: ",") + "]"
    }
}
