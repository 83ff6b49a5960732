import Glibc

/// A point on CLOCK_BOOTTIME, in nanoseconds: the clock the loop's timerfd counts on. It
/// never goes back and ignores wall clock steps, like CLOCK_MONOTONIC, but unlike it keeps
/// counting while the machine or VM is suspended: a refresh due in 3 days fires 3 days of
/// real time later even if 2 of them passed in suspend, not 5.
public struct MonotonicInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The clock behind every instant and the loop's timerfd.
    public static let clock = CLOCK_BOOTTIME

    public static func now() -> MonotonicInstant {
        var ts = timespec()
        clock_gettime(Self.clock, &ts)
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
