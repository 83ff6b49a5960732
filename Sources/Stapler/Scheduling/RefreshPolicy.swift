/// When to ask a responder again: pure arithmetic on Unix times (seconds), so every rule
/// can be tested without a clock or a network.
///
/// The rules, in order:
/// 1. Refresh at the earlier of the validity midpoint and `nextUpdate - minimumValidity`.
/// 2. Not before the responder's Cache-Control max-age runs out (asking sooner returns the
///    same bytes), unless waiting that long would leave less than `minimumValidity`.
/// 3. Spread refreshes with a few percent of jitter, always earlier, never later, so that
///    10,000 certificates issued together do not all ask in the same second.
/// 4. Never in the past, and never after the certificate itself expires.
struct RefreshPolicy: Sendable {
    /// How long before a staple's nextUpdate it must have been replaced.
    var minimumValidity: Int64 = 7200
    /// The share of the wait that jitter may take off (0.05 = up to 5 % earlier).
    var jitterFraction: Double = 0.05
    /// The soonest a refresh can be scheduled from now: keeps a broken responder that serves
    /// nearly expired staples from driving a busy loop.
    var minimumDelay: Int64 = 30

    /// The next refresh for a staple we hold. `random` is a value in 0..<1.
    func nextRefresh(thisUpdate: Int64, nextUpdate: Int64, fetchedAt: Int64, cacheMaxAge: Int64?,
                     certificateNotAfter: Int64, now: Int64, random: Double) -> Int64 {
        // Every input may come from outside (a responder's times and max-age, a config file's
        // seconds): the arithmetic saturates instead of trapping.
        let midpoint = thisUpdate.saturatingAdd(nextUpdate.saturatingSubtract(thisUpdate) / 2)
        let latestSafe = nextUpdate.saturatingSubtract(minimumValidity)
        var due = min(midpoint, latestSafe)
        var earliest = now.saturatingAdd(minimumDelay)
        if let cacheMaxAge, cacheMaxAge > 0 {
            let fresherAvailable = fetchedAt.saturatingAdd(cacheMaxAge)
            if fresherAvailable > due && fresherAvailable <= latestSafe {
                due = fresherAvailable
                earliest = max(earliest, fresherAvailable)
            }
        }
        if due > now {
            let share = Double(due.saturatingSubtract(now)) * jitterFraction * min(max(random, 0), 1)
            due = due.saturatingSubtract(Int64(saturating: share))
        }
        due = max(due, earliest)
        return min(due, certificateNotAfter)
    }

    /// What a wall clock step means for a staple being served: dates compared against the old
    /// clock are compared again. Expired, or within `minimumValidity` of expiring, by the new
    /// clock: fetch now. Otherwise the refresh the policy gives from the staple's own dates.
    enum AfterClockStep: Equatable {
        case fetchNow
        case refreshAt(Int64)
    }

    func afterClockStep(thisUpdate: Int64, nextUpdate: Int64, fetchedAt: Int64?, cacheMaxAge: Int64?,
                        certificateNotAfter: Int64, now: Int64, random: Double) -> AfterClockStep {
        guard isRecyclable(nextUpdate: nextUpdate, now: now) else { return .fetchNow }
        // A fetch time from before the step is on the old clock; max-age counts from now then.
        let fetched = fetchedAt.map { min($0, now) } ?? now
        return .refreshAt(nextRefresh(thisUpdate: thisUpdate, nextUpdate: nextUpdate, fetchedAt: fetched,
                                      cacheMaxAge: cacheMaxAge, certificateNotAfter: certificateNotAfter, now: now,
                                      random: random))
    }

    /// How far ahead a staple's nextUpdate can lie before it hints that our clock is behind:
    /// responders sign for days, CAs for at most a few weeks.
    static let implausibleValidity: Int64 = 366 * 86_400

    /// Whether a staple found on disk at start can be served as it is until its refresh.
    func isRecyclable(nextUpdate: Int64, now: Int64) -> Bool {
        nextUpdate.saturatingSubtract(minimumValidity) > now
    }
}

/// How long to wait after a failed fetch: 30 s doubling up to an hour, with jitter, and
/// much sooner when the staple being served is about to run out.
struct RetryBackoff: Sendable {
    var initial: Int64 = 30
    var maximum: Int64 = 3600
    /// The cap while the current staple is missing or closer to expiry than minimumValidity:
    /// being wrong here means clients see no staple (a hard failure for Must-Staple).
    var urgentMaximum: Int64 = 300
    var jitterFraction: Double = 0.1

    /// The delay before retry number `failures` (1 for the first failure). `random` in 0..<1.
    func delay(failures: Int, urgent: Bool, random: Double) -> Int64 {
        let cap = urgent ? min(urgentMaximum, maximum) : maximum
        let exponent = failures <= 1 ? 0 : min(failures - 1, 30)
        let (scaled, overflow) = initial.multipliedReportingOverflow(by: Int64(1) << exponent)
        let base = overflow ? cap : min(scaled, cap)
        // Jitter both ways around the base, so retries of many certificates spread out.
        let spread = Double(base) * min(max(jitterFraction, 0), 1) * (min(max(random, 0), 1) * 2 - 1)
        return max(1, base.saturatingAdd(Int64(saturating: spread)))
    }
}

extension Int64 {
    /// A Double rounded toward zero and pinned to the type's bounds (NaN is 0): Int64.max
    /// itself is not representable as a Double, and `Int64(Double)` traps past it.
    init(saturating value: Double) {
        // 2^63 is exactly representable; every Double below it converts.
        let limit = Double(sign: .plus, exponent: 63, significand: 1)
        if value.isNaN {
            self = 0
        } else if value >= limit {
            self = .max
        } else if value <= -limit {
            self = .min
        } else {
            self = Int64(value)
        }
    }

    /// `self + other`, pinned to the type's bounds instead of trapping.
    func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }

    /// `self - other`, pinned to the type's bounds instead of trapping.
    func saturatingSubtract(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : difference
    }
}
