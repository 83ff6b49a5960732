import Reactor

/// What goes over the socketpair between the daemon and the `--on-update` launcher, one
/// message per frame (`FrameDecoder`): a type byte, fixed big-endian fields, then one
/// variable part. Each side decodes the other's bytes as hostile. The launcher, above all,
/// must stay the launcher of one command whatever a compromised daemon sends: a request names
/// no program, no argument and no environment, only staple paths (absolute, normalised,
/// ending in `.ocsp`) and two durations within fixed bounds.

/// Daemon to launcher: run the command once.
struct LauncherRequest: Equatable {
    /// The changed staples, each followed by a line feed: the command's standard input, and
    /// the source of `STAPLER_UPDATED_STAPLES` and `STAPLER_UPDATED_COUNT`.
    var staples: [UInt8]
    var timeout: Duration
    var killGrace: Duration

    static let runType: UInt8 = 0x01
    /// `--on-update-timeout` allows 1 s to a day; tests use less.
    static let timeoutRange: ClosedRange<Duration> = .milliseconds(1) ... .seconds(86_400)
    static let killGraceRange: ClosedRange<Duration> = .milliseconds(1) ... .seconds(60)
    /// A staple path is a file path: PATH_MAX with its NUL.
    static let maximumPathLength = 4095
    /// The largest frame the launcher reads: a run of `UpdateHook.inputLimit` bytes of paths.
    static let maximumFrame = 1 + 8 + 8 + UpdateHook.inputLimit

    func encoded() -> [UInt8] {
        var bytes = [Self.runType]
        LauncherWire.append(LauncherWire.nanoseconds(timeout), to: &bytes)
        LauncherWire.append(LauncherWire.nanoseconds(killGrace), to: &bytes)
        return bytes + staples
    }

    /// One frame's payload from the daemon, checked in full: a request that decodes is one
    /// the launcher may carry out as it stands.
    static func decode(_ payload: [UInt8]) throws(LauncherProtocolError) -> LauncherRequest {
        var reader = LauncherWire.Reader(payload, message: "run request")
        let type = try reader.byte()
        guard type == runType else { throw .unknownType(type) }
        let timeout = try reader.duration("timeout", within: timeoutRange)
        let killGrace = try reader.duration("kill grace", within: killGraceRange)
        let staples = reader.rest()
        _ = try stapleCount(staples)
        return LauncherRequest(staples: staples, timeout: timeout, killGrace: killGrace)
    }

    /// How many paths a staple list names, once each line is seen to be a staple path as the
    /// daemon makes them: absolute, no empty, `.` or `..` component, ending in `.ocsp`, no
    /// NUL. So the command (`rsync --files-from=-`, say) is never handed another file.
    static func stapleCount(_ staples: [UInt8]) throws(LauncherProtocolError) -> Int {
        guard !staples.isEmpty else { throw .badStaples(line: 1, reason: "no staple listed") }
        guard staples.last == UInt8(ascii: "\n") else {
            throw .badStaples(line: staples.count(where: { $0 == UInt8(ascii: "\n") }) + 1, reason: "no line feed at the end")
        }
        var count = 0
        for line in staples.dropLast().split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            count += 1
            if let reason = problem(with: line) { throw .badStaples(line: count, reason: reason) }
        }
        return count
    }

    private static func problem(with path: ArraySlice<UInt8>) -> String? {
        guard path.first == UInt8(ascii: "/") else { return "not an absolute path" }
        guard path.count <= maximumPathLength else { return "longer than \(maximumPathLength) bytes" }
        guard !path.contains(0) else { return "contains a NUL byte" }
        // A name before the suffix: a certificate file has one.
        guard path.count > 6, path.suffix(5).elementsEqual(".ocsp".utf8), path[path.endIndex - 6] != UInt8(ascii: "/") else {
            return "does not end in .ocsp"
        }
        for component in path.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if component.isEmpty || component.elementsEqual(".".utf8) || component.elementsEqual("..".utf8) {
                return "not a normalised path (an empty, . or .. component)"
            }
        }
        return nil
    }
}

/// Launcher to daemon: how the run the daemon asked for goes.
enum LauncherReport {
    /// The command runs, as this process.
    case started(pid: Int32)
    /// It could not be started: the failed call and its errno (`ChildProcess.SpawnError`).
    case spawnFailed(call: String, errno: Int32)
    /// It ended (and was reaped by the launcher).
    case finished(ChildProcess.Completion)
    /// The launcher refused what the daemon sent and ends: why.
    case refused(reason: String)

    static let startedType: UInt8 = 0x81
    static let spawnFailedType: UInt8 = 0x82
    static let finishedType: UInt8 = 0x83
    static let refusedType: UInt8 = 0x84
    /// Call names are C function names (`posix_spawn`, `fcntl(F_DUPFD_CLOEXEC)`).
    static let maximumCallLength = 64
    static let maximumReasonLength = 512
    /// Output beyond this is counted, not sent: a log line shows 512 bytes of it anyway.
    static let maximumOutput = ChildProcess.defaultOutputLimit
    /// A run lasts at most the longest timeout and kill grace; a year is far beyond.
    static let maximumDuration: Duration = .seconds(366 * 86_400)
    static let maximumFrame = 1 + 1 + 4 + 1 + 8 + 8 + 8 + maximumOutput

    func encoded() -> [UInt8] {
        switch self {
        case .started(let pid):
            var bytes = [Self.startedType]
            LauncherWire.append(UInt32(truncatingIfNeeded: pid), to: &bytes)
            return bytes
        case .spawnFailed(let call, let errno):
            var bytes = [Self.spawnFailedType]
            LauncherWire.append(UInt32(truncatingIfNeeded: errno), to: &bytes)
            return bytes + Array(call.utf8.prefix(Self.maximumCallLength))
        case .finished(let completion):
            var bytes = [Self.finishedType]
            let (kind, code): (UInt8, Int32) = switch completion.termination {
            case .exited(let status): (0, status)
            case .signalled(let signal): (1, signal)
            case .unknown: (2, 0)
            }
            bytes.append(kind)
            LauncherWire.append(UInt32(truncatingIfNeeded: code), to: &bytes)
            bytes.append(completion.timedOut ? 1 : 0)
            LauncherWire.append(UInt64(completion.outputDropped + max(0, completion.output.count - Self.maximumOutput)),
                                to: &bytes)
            LauncherWire.append(UInt64(completion.inputUnread), to: &bytes)
            LauncherWire.append(LauncherWire.nanoseconds(min(completion.duration, Self.maximumDuration)), to: &bytes)
            return bytes + completion.output.prefix(Self.maximumOutput)
        case .refused(let reason):
            return [Self.refusedType] + Array(reason.utf8.prefix(Self.maximumReasonLength))
        }
    }

    /// One frame's payload from the launcher.
    static func decode(_ payload: [UInt8]) throws(LauncherProtocolError) -> LauncherReport {
        var reader = LauncherWire.Reader(payload, message: "launcher report")
        let type = try reader.byte()
        switch type {
        case startedType:
            let pid = try reader.uint32()
            guard pid > 0 && pid <= UInt32(Int32.max) else { throw .outOfRange(field: "pid", value: "\(pid)") }
            try reader.expectEnd()
            return .started(pid: Int32(pid))
        case spawnFailedType:
            let errno = try reader.uint32()
            // Linux errnos are below 4096 (the kernel's MAX_ERRNO).
            guard errno > 0 && errno < 4096 else { throw .outOfRange(field: "errno", value: "\(errno)") }
            let call = reader.rest()
            guard !call.isEmpty, call.count <= maximumCallLength,
                  call.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw .outOfRange(field: "call", value: "\(call.count) bytes, printable ASCII expected")
            }
            return .spawnFailed(call: String(decoding: call, as: UTF8.self), errno: Int32(errno))
        case finishedType:
            return .finished(try finished(&reader))
        case refusedType:
            let reason = reader.rest()
            guard reason.count <= maximumReasonLength else {
                throw .outOfRange(field: "reason", value: "\(reason.count) bytes")
            }
            return .refused(reason: LogText.singleLine(String(decoding: reason, as: UTF8.self)))
        default:
            throw .unknownType(type)
        }
    }

    private static func finished(_ reader: inout LauncherWire.Reader) throws(LauncherProtocolError) -> ChildProcess.Completion {
        let kind = try reader.byte()
        let code = try reader.uint32()
        let termination: ChildProcess.Termination
        switch kind {
        case 0 where code <= 255: termination = .exited(Int32(code))
        // Linux signals run from 1 to 64 (SIGRTMAX).
        case 1 where code >= 1 && code <= 64: termination = .signalled(Int32(code))
        case 2 where code == 0: termination = .unknown
        default: throw .outOfRange(field: "termination", value: "kind \(kind), code \(code)")
        }
        let timedOutByte = try reader.byte()
        guard timedOutByte <= 1 else { throw .outOfRange(field: "timed out", value: "\(timedOutByte)") }
        let outputDropped = try reader.count("output dropped")
        let inputUnread = try reader.count("input unread")
        let duration = try reader.duration("duration", within: .zero ... maximumDuration)
        let output = reader.rest()
        guard output.count <= maximumOutput else { throw .outOfRange(field: "output", value: "\(output.count) bytes") }
        return ChildProcess.Completion(termination: termination, timedOut: timedOutByte == 1, output: output,
                                       outputDropped: outputDropped, inputUnread: inputUnread, duration: duration)
    }
}

extension FrameDecoder {
    /// The next whole message, decoded by `decode`; nil until one is complete.
    mutating func nextMessage<Message>(_ decode: ([UInt8]) throws(LauncherProtocolError) -> Message)
        throws(LauncherProtocolError) -> Message? {
        let payload: [UInt8]?
        do {
            payload = try next()
        } catch {
            throw .frame(error)
        }
        guard let payload else { return nil }
        return try decode(payload)
    }
}

/// Why bytes from the other side of the launcher's socketpair were refused.
enum LauncherProtocolError: Error, Equatable, CustomStringConvertible {
    case frame(FrameDecoder.Failure)
    /// The stream ended inside a frame.
    case cutShort(pendingBytes: Int)
    case unknownType(UInt8)
    case truncated(message: String)
    case trailingBytes(message: String, count: Int)
    case outOfRange(field: String, value: String)
    case badStaples(line: Int, reason: String)

    var description: String {
        switch self {
        case .frame(let failure): "\(failure)"
        case .cutShort(let pending): "the stream ended inside a frame (\(pending) bytes of it)"
        case .unknownType(let type): "unknown message type \(type)"
        case .truncated(let message): "\(message) cut short"
        case .trailingBytes(let message, let count): "\(count) bytes after the \(message)"
        case .outOfRange(let field, let value): "\(field) out of range: \(value)"
        case .badStaples(let line, let reason): "staple list line \(line): \(reason)"
        }
    }
}

/// Byte order and bounded reads shared by both messages.
enum LauncherWire {
    static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// Non-negative durations as nanoseconds (negative ones as 0).
    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? UInt64.max : whole &+ UInt64(attoseconds / 1_000_000_000)
    }

    struct Reader {
        private let bytes: [UInt8]
        private var offset = 0
        private let message: String

        init(_ bytes: [UInt8], message: String) {
            self.bytes = bytes
            self.message = message
        }

        mutating func byte() throws(LauncherProtocolError) -> UInt8 {
            guard offset < bytes.count else { throw .truncated(message: message) }
            offset += 1
            return bytes[offset - 1]
        }

        mutating func uint32() throws(LauncherProtocolError) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 { value = value << 8 | UInt32(try byte()) }
            return value
        }

        mutating func uint64() throws(LauncherProtocolError) -> UInt64 {
            var value: UInt64 = 0
            for _ in 0..<8 { value = value << 8 | UInt64(try byte()) }
            return value
        }

        /// A byte count: at most Int.max.
        mutating func count(_ field: String) throws(LauncherProtocolError) -> Int {
            let value = try uint64()
            guard let count = Int(exactly: value) else { throw .outOfRange(field: field, value: "\(value)") }
            return count
        }

        mutating func duration(_ field: String, within range: ClosedRange<Duration>) throws(LauncherProtocolError) -> Duration {
            let value = try uint64()
            guard value <= UInt64(Int64.max), range.contains(.nanoseconds(Int64(value))) else {
                throw .outOfRange(field: field, value: "\(value) ns")
            }
            return .nanoseconds(Int64(value))
        }

        mutating func rest() -> [UInt8] {
            defer { offset = bytes.count }
            return Array(bytes[offset...])
        }

        func expectEnd() throws(LauncherProtocolError) {
            guard offset == bytes.count else { throw .trailingBytes(message: message, count: bytes.count - offset) }
        }
    }
}
