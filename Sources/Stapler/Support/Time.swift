import Glibc

/// Unix times (seconds since the epoch, UTC) as log lines show them. Written with gmtime_r
/// and strftime because the daemon does without Foundation.
enum UTCTime {
    /// `2026-11-25 10:00:00 UTC`. Times gmtime cannot represent come out as the raw number.
    static func format(_ seconds: Int64) -> String {
        var time = time_t(truncatingIfNeeded: seconds)
        var parts = tm()
        guard Int64(time) == seconds, gmtime_r(&time, &parts) != nil else { return "@\(seconds)" }
        var buffer = [CChar](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
        guard length > 0 else { return "@\(seconds)" }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The current wall-clock time. OCSP freshness is about wall-clock dates, so this is
    /// `CLOCK_REALTIME`, not the monotonic clock the loop schedules with.
    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }
}
