import Glibc

/// A point on CLOCK_MONOTONIC, in nanoseconds: the clock timerfd counts on, immune to wall
/// clock jumps.
public struct MonotonicInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func now() -> MonotonicInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return MonotonicInstant(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
    }

    public static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    public static func + (lhs: MonotonicInstant, rhs: Duration) -> MonotonicInstant {
        let delta = rhs.nanosecondsClamped
        if delta >= 0 {
            let (sum, overflow) = lhs.nanoseconds.addingReportingOverflow(UInt64(delta))
            return MonotonicInstant(nanoseconds: overflow ? .max : sum)
        }
        let magnitude = UInt64(-delta)
        return MonotonicInstant(nanoseconds: lhs.nanoseconds > magnitude ? lhs.nanoseconds - magnitude : 0)
    }

    /// Time from `other` to `self`; zero when `other` is later.
    public func duration(since other: MonotonicInstant) -> Duration {
        guard nanoseconds > other.nanoseconds else { return .zero }
        return .nanoseconds(Int64(clamping: nanoseconds - other.nanoseconds))
    }

    public var description: String { "mono+\(nanoseconds / 1_000_000)ms" }
}

extension Duration {
    /// Whole nanoseconds, clamped to Int64 (about 292 years either way).
    public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }

    /// Milliseconds, rounded up so that a wait never ends before its deadline.
    public var millisecondsRoundedUp: Int64 {
        let ns = nanosecondsClamped
        return ns <= 0 ? 0 : (ns / 1_000_000) + (ns % 1_000_000 == 0 ? 0 : 1)
    }
}
