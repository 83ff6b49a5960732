import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the clients below connect: a TCP port on 127.0.0.1 or a Unix socket path.
public enum StreamEndpoint: Sendable, CustomStringConvertible {
    case tcp(port: UInt16)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let port): return "127.0.0.1:\(port)"
        case .unix(let path): return path
        }
    }
}

/// Blocking clients for attacking a small HTTP server from test threads: a good scrape that
/// times itself, and the hostile kinds a server facing the network meets (idle floods,
/// slowloris, oversized request lines, binary garbage, half-closed sockets, clients that
/// never read). Every call has a deadline, so an unresponsive server fails a test instead of
/// hanging it.
public enum HostileHTTPClients {
    /// Raises the soft RLIMIT_NOFILE to `wanted` (at most the hard limit); returns the soft
    /// limit now in force.
    @discardableResult
    public static func raiseDescriptorLimit(to wanted: Int) -> Int {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < rlim_t(wanted) {
            limit.rlim_cur = min(rlim_t(wanted), limit.rlim_max)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(limit.rlim_cur)
    }

    /// A connected non-blocking socket, or nil when the connection could not be made within
    /// `timeout` (refused, backlog full for that long, out of descriptors).
    public static func connect(_ endpoint: StreamEndpoint, receiveBuffer: Int32? = nil,
                               timeout: TimeInterval = 3) -> Int32? {
        let family = { if case .unix = endpoint { return AF_UNIX } else { return AF_INET } }()
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        if var size = receiveBuffer {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        let started = Date()
        while true {
            let result = withAddress(endpoint) { Glibc.connect(fd, $0, $1) }
            if result == 0 { return fd }
            switch errno {
            case EINPROGRESS:
                // TCP: the handshake goes on; writable once it is done (or failed).
                guard wait(fd, for: Int16(POLLOUT), until: started + timeout) else { break }
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                if error == 0 { return fd }
            case EAGAIN where Date() < started + timeout:
                // A Unix listener's backlog is full: try again shortly.
                usleep(1_000)
                continue
            default:
                break
            }
            Glibc.close(fd)
            return nil
        }
    }

    /// Sends what fits without waiting; the count sent, or nil once the peer is gone.
    @discardableResult
    public static func sendSome(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Int? {
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent >= 0 { return sent }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : nil
    }

    /// Whether the server closed (or reset) `fd`: end of stream, read without waiting.
    /// Whatever the server sent is discarded.
    public static func isClosedByPeer(_ fd: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if got > 0 { continue }
            if got == 0 { return true }
            return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        }
    }

    /// Reads until the server closes or `deadline`; nil when the deadline came first.
    public static func readToEnd(_ fd: Int32, until deadline: Date) -> [UInt8]? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if got > 0 {
                received.append(contentsOf: buffer[0..<got])
                continue
            }
            if got == 0 { return received }
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                guard wait(fd, for: Int16(POLLIN), until: deadline) else { return nil }
                continue
            }
            return received // reset: what came before it is the answer
        }
    }

    /// One good scrape, timed from connect to the server's close.
    public struct Scrape: Sendable {
        /// The status code, or nil when no HTTP answer came (closed, reset, timed out).
        public var status: Int?
        public var seconds: Double
        public var bytes: Int
    }

    /// `GET path` as a scraper sends it, answered in full or not within `timeout`.
    public static func scrape(_ endpoint: StreamEndpoint, path: String = "/metrics", timeout: TimeInterval = 5) -> Scrape {
        let started = Date()
        func failed() -> Scrape { Scrape(status: nil, seconds: Date().timeIntervalSince(started), bytes: 0) }
        guard let fd = connect(endpoint, timeout: timeout) else { return failed() }
        defer { Glibc.close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nUser-Agent: good-scraper\r\nAccept: */*\r\n\r\n".utf8)
        guard sendSome(fd, request[...]) == request.count else { return failed() }
        guard let answer = readToEnd(fd, until: started + timeout) else { return failed() }
        let seconds = Date().timeIntervalSince(started)
        let firstLine = answer.prefix { $0 != 13 && $0 != 10 }
        let words = String(decoding: firstLine, as: UTF8.self).split(separator: " ")
        guard words.count >= 2, words[0].hasPrefix("HTTP/1."), let status = Int(words[1]) else {
            return Scrape(status: nil, seconds: seconds, bytes: answer.count)
        }
        return Scrape(status: status, seconds: seconds, bytes: answer.count)
    }

    /// Scrapes every `interval` until `done` holds (checked after each scrape) or `limit`
    /// passes, calling `sample` between scrapes (to read descriptor counts, memory).
    public static func scrapeRepeatedly(_ endpoint: StreamEndpoint, every interval: TimeInterval = 0.1, limit: TimeInterval = 60,
                                        sample: () -> Void = {}, until done: () -> Bool) -> [Scrape] {
        var scrapes: [Scrape] = []
        let started = Date()
        repeat {
            let tick = Date()
            scrapes.append(scrape(endpoint))
            sample()
            let left = interval - Date().timeIntervalSince(tick)
            if left > 0 { usleep(useconds_t(left * 1_000_000)) }
        } while !done() && Date().timeIntervalSince(started) < limit
        return scrapes
    }

    /// Silent connections the kernel may keep unaccepted behind a listener that defers
    /// accepting until data arrives (TCP_DEFER_ACCEPT): a SYN queue's worth for a backlog of
    /// 128, with room to spare; none for a Unix socket, which has no such deferral.
    public static func silentConnectionsHeldByTheKernel(_ endpoint: StreamEndpoint) -> Int {
        if case .tcp = endpoint { return 512 }
        return 0
    }

    // MARK: Helpers

    /// Waits for `events` on `fd`; false once `deadline` passes first.
    static func wait(_ fd: Int32, for events: Int16, until deadline: Date) -> Bool {
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return false }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, Int32(min(left * 1000, 1000).rounded(.up)))
            if ready > 0 { return true }
            if ready < 0 && errno != EINTR { return false }
        }
    }

    private static func withAddress<R>(_ endpoint: StreamEndpoint, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch endpoint {
        case .tcp(let port):
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = port.bigEndian
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .unix(let path):
            return UnixSockets.withAddress(path, body)
        }
    }
}
