import Glibc

/// systemd's `$JOURNAL_STREAM`: `<device>:<inode>` in decimal, set when a service's standard
/// output or error is connected to the journal. journald reads a leading `<N>` on such a
/// line as its syslog priority (sd-daemon(3)) and stamps the time itself. The variable is
/// inherited by children whose output a shell redirected elsewhere, so only a match with
/// what descriptor 1 really is counts.
struct JournalStream: Equatable {
    let device: UInt64
    let inode: UInt64

    init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    /// Nil unless `value` is two unsigned decimal numbers joined by one colon, each fitting in
    /// 64 bits (what systemd writes with `"%lu:%lu"`); no signs, blanks or empty halves.
    init?(_ value: String) {
        let halves = value.utf8.split(separator: UInt8(ascii: ":"), maxSplits: 1, omittingEmptySubsequences: false)
        guard halves.count == 2, let device = Self.decimal(halves[0]), let inode = Self.decimal(halves[1]) else {
            return nil
        }
        self.init(device: device, inode: inode)
    }

    /// Whether `environment` names the stream descriptor 1 is open on.
    static func isStandardOutput(environment: [String: String]) -> Bool {
        guard let value = environment["JOURNAL_STREAM"], let stream = JournalStream(value) else { return false }
        return stream.isOpen(on: STDOUT_FILENO)
    }

    /// Whether `fd` is this stream: the same device and inode as fstat(2) reports.
    func isOpen(on fd: Int32) -> Bool {
        var status = stat()
        guard fstat(fd, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    private static func decimal(_ digits: Substring.UTF8View) -> UInt64? {
        guard !digits.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            let (shifted, overflowTimes) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowPlus) = shifted.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflowTimes && !overflowPlus else { return nil }
            value = sum
        }
        return value
    }
}
