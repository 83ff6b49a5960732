import Foundation

/// An HTTP responder that misbehaves on purpose, one way per route: garbage, error statuses,
/// a body that never ends, a connection that hangs or closes, a redirect loop, a delay.
///
/// A route is the first path segment: a certificate whose OCSP URL is `url(route: "hang")`
/// sends `GET /hang/<request>` and gets what `hang` was given. Each connection is served on
/// a thread of its own with blocking sockets (a hanging one must not hold up the others),
/// and always closed after one answer (`Connection: close`). The daemon under test is
/// another process, so nothing here shares a loop with it.
public final class HostileResponder: @unchecked Sendable {
    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public indirect enum Behaviour: Sendable {
        /// A well-formed answer: the status, these headers, `Content-Length`, the body.
        case answer(status: Int, headers: [Header], body: [UInt8])
        /// Exactly these bytes, then close.
        case raw([UInt8])
        /// `200` with this Content-Type and no length, then body bytes until the client
        /// gives up (or the responder stops).
        case endless(contentType: String)
        /// `200` and then header lines without end.
        case endlessHeaders
        /// Reads the request and never answers; the connection stays open until `stop`.
        case hang
        /// Reads the request and closes without a byte.
        case close
        /// `302 Found` to `location` (a path or a URL).
        case redirect(to: String)
        /// Waits, then behaves as told.
        case delayed(seconds: Double, then: Behaviour)
        /// Behaves as the closure says when the request arrives (an answer signed then, as
        /// a CA's responder signs it).
        case computed(@Sendable () -> Behaviour)

        public static let ocspContentType = "application/ocsp-response"

        /// `200` carrying an OCSP response (or anything else) with the given Content-Type.
        public static func ocsp<Bytes: Sequence>(_ body: Bytes, contentType: String = ocspContentType) -> Behaviour
        where Bytes.Element == UInt8 {
            .answer(status: 200, headers: [Header("Content-Type", contentType)], body: Array(body))
        }

        /// An error status with a short text body.
        public static func status(_ code: Int, body: String = "no\n") -> Behaviour {
            .answer(status: code, headers: [Header("Content-Type", "text/plain")], body: Array(body.utf8))
        }
    }

    public struct BindFailure: Error, CustomStringConvertible {
        public let description: String
    }

    public let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var routes: [String: Behaviour] = [:]
    private var fallback: Behaviour
    private var counts: [String: Int] = [:]
    private var total = 0
    /// Open connections, shut down by `stop` to wake their threads.
    private var open = Set<Int32>()
    private var stopped = false
    private let threads = DispatchGroup()

    /// Listens on 127.0.0.1:`port`. Unrouted requests get `fallback` (404 by default).
    public init(port: UInt16 = freeLoopbackPort(), fallback: Behaviour = .status(404)) throws {
        self.port = port
        self.fallback = fallback
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listener, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(listener)
            throw BindFailure(description: "cannot listen on 127.0.0.1:\(port): \(reason)")
        }
        threads.enter()
        Thread.detachNewThread { [self] in
            acceptAll()
            threads.leave()
        }
    }

    deinit { stop() }

    /// `http://127.0.0.1:port/route`: an OCSP URL whose requests get `route`'s behaviour.
    public func url(route: String) -> String { "http://127.0.0.1:\(port)/\(route)" }

    /// What requests on `route` get from now on.
    public func set(_ behaviour: Behaviour, for route: String) {
        lock.withLock { routes[route] = behaviour }
    }

    /// What unrouted requests get from now on.
    public func setFallback(_ behaviour: Behaviour) {
        lock.withLock { fallback = behaviour }
    }

    /// Requests received on `route` (counted once the request head is read).
    public func requestCount(route: String) -> Int { lock.withLock { counts[route, default: 0] } }

    /// Requests received in total.
    public var requestCount: Int { lock.withLock { total } }

    /// Stops listening, breaks every open connection and waits for their threads.
    public func stop() {
        let first: Bool = lock.withLock {
            guard !stopped else { return false }
            stopped = true
            // Wakes the blocked accept() and every blocked recv/send.
            shutdown(listener, Int32(SHUT_RDWR))
            for connection in open { shutdown(connection, Int32(SHUT_RDWR)) }
            return true
        }
        guard first else { return }
        threads.wait()
        close(listener)
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    // MARK: Serving

    private func acceptAll() {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            let accepted: Bool = lock.withLock {
                guard !stopped else { return false }
                open.insert(connection)
                return true
            }
            guard accepted else {
                close(connection)
                return
            }
            threads.enter()
            Thread.detachNewThread { [self] in
                serve(connection)
                lock.withLock { _ = open.remove(connection) }
                close(connection)
                threads.leave()
            }
        }
    }

    private func serve(_ connection: Int32) {
        guard let path = readRequest(connection) else { return }
        let route = path.split(separator: "/", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        let behaviour: Behaviour = lock.withLock {
            counts[route, default: 0] += 1
            total += 1
            return routes[route] ?? fallback
        }
        perform(behaviour, on: connection)
    }

    private func perform(_ behaviour: Behaviour, on connection: Int32) {
        switch behaviour {
        case .computed(let make):
            perform(make(), on: connection)
        case .answer(let status, let headers, let body):
            var head = "HTTP/1.1 \(status) \(Self.reasonPhrase(status))\r\n"
            for header in headers { head += "\(header.name): \(header.value)\r\n" }
            head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            _ = sendAll(connection, Array(head.utf8) + body)
            finish(connection)
        case .raw(let bytes):
            _ = sendAll(connection, bytes)
            finish(connection)
        case .endless(let contentType):
            let head = "HTTP/1.1 200 OK\r\nContent-Type: \(contentType)\r\nConnection: close\r\n\r\n"
            guard sendAll(connection, Array(head.utf8)) else { return }
            let chunk = [UInt8](repeating: 0x30, count: 4096)
            while !isStopped, sendAll(connection, chunk) {}
        case .endlessHeaders:
            guard sendAll(connection, Array("HTTP/1.1 200 OK\r\n".utf8)) else { return }
            let line = Array("X-Filler: \(String(repeating: "a", count: 1000))\r\n".utf8)
            while !isStopped, sendAll(connection, line) {}
        case .hang:
            // Until the client gives up (recv sees its close) or `stop` shuts the socket.
            var byte: UInt8 = 0
            while recv(connection, &byte, 1, 0) > 0 {}
        case .close:
            return
        case .redirect(let location):
            let head = "HTTP/1.1 302 Found\r\nLocation: \(location)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            _ = sendAll(connection, Array(head.utf8))
            finish(connection)
        case .delayed(let seconds, let then):
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if isStopped { return }
                Thread.sleep(forTimeInterval: min(0.02, max(0, deadline.timeIntervalSinceNow)))
            }
            perform(then, on: connection)
        }
    }

    /// Half-closes and waits for the client's close, so the client never sees a reset
    /// instead of the answer.
    private func finish(_ connection: Int32) {
        shutdown(connection, Int32(SHUT_WR))
        var buffer = [UInt8](repeating: 0, count: 512)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while buffer.withUnsafeMutableBytes({ recv(connection, $0.baseAddress, $0.count, 0) }) > 0 {}
    }

    private func sendAll(_ connection: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                send(connection, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 && errno == EINTR { continue }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    /// Reads the request head (and a POST body of announced length); returns the path.
    private func readRequest(_ connection: Int32) -> String? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let end: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        while headEnd == nil {
            guard received.count < 65536 else { return nil }
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return nil }
            let searchFrom = max(0, received.count - 3)
            received += buffer[0..<count]
            if received.count >= 4 {
                headEnd = (searchFrom...(received.count - 4)).first { received[$0..<$0 + 4].elementsEqual(end) }
            }
        }
        let head = String(decoding: received[..<headEnd!], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.first?.split(separator: " ") ?? []
        guard requestLine.count >= 2 else { return nil }
        let length = lines.dropFirst().compactMap { line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }.first ?? 0
        var bodyBytes = received.count - (headEnd! + 4)
        while bodyBytes < min(length, 65536) {
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bodyBytes += count
        }
        return String(requestLine[1])
    }

    private static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 302: return "Found"
        case 404: return "Not Found"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}
