/// Which HAProxy process answers on a stats socket, from `show info`: its `Pid` and
/// `Start_time_sec`. A restart or a reload (master-worker, or `-sf`) brings another process,
/// which knows only the staples it loaded from `.ocsp` files beside the certificates.
struct HAProxyProcessIdentity: Equatable, Sendable {
    let pid: Int
    /// Unix time the process started; nil from a version that does not say.
    let startTime: Int64?

    /// Nil when the answer names no `Pid`.
    init?(showInfo text: [UInt8]) {
        var pid: Int?
        var startTime: Int64?
        for line in text.split(separator: 0x0A) {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = line[..<colon]
            let value = String(decoding: line[(colon + 1)...].drop { $0 == UInt8(ascii: " ") }, as: UTF8.self)
            if name.elementsEqual("Pid".utf8) {
                pid = Int(value)
            } else if name.elementsEqual("Start_time_sec".utf8) {
                startTime = Int64(value)
            }
        }
        guard let pid else { return nil }
        self.pid = pid
        self.startTime = startTime
    }

    init(pid: Int, startTime: Int64?) {
        self.pid = pid
        self.startTime = startTime
    }
}
