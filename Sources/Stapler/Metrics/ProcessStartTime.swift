import Glibc
import Reactor

/// When this process started, as Unix time, read from /proc like Prometheus' own clients do:
/// right even when the endpoint is opened later by a SIGHUP.
enum ProcessStartTime {
    static let seconds: Int64 = read() ?? UTCTime.now()

    private static func read() -> Int64? {
        guard let selfStat = try? FileSystem.readFile("/proc/self/stat", limit: 64 << 10),
              let systemStat = try? FileSystem.readFile("/proc/stat", limit: 1 << 20) else { return nil }
        return parse(selfStat: selfStat, systemStat: systemStat, ticksPerSecond: Int64(sysconf(Int32(_SC_CLK_TCK))))
    }

    /// The start time from the texts of /proc/self/stat and /proc/stat; nil when either
    /// lacks its field or the sum does not fit.
    static func parse(selfStat stat: [UInt8], systemStat procStat: [UInt8], ticksPerSecond: Int64) -> Int64? {
        // Field 22 of /proc/self/stat is the start in clock ticks after boot; fields are
        // counted after the command name, which may itself hold spaces and parentheses.
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 19, let ticks = Int64(String(decoding: fields[19], as: UTF8.self)) else { return nil }
        var bootTime: Int64?
        for line in procStat.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("btime ".utf8)) {
            bootTime = Int64(String(decoding: line.dropFirst(6), as: UTF8.self))
        }
        guard let bootTime, ticksPerSecond > 0 else { return nil }
        let (sum, overflow) = bootTime.addingReportingOverflow(ticks / ticksPerSecond)
        return overflow ? nil : sum
    }
}
