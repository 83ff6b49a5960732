import Glibc
import Reactor

/// A small HTTP/1.1 server for tests, on the same `EventLoop` as the code under test.
///
/// It listens on 127.0.0.1 on an ephemeral port and asks `handler` what to do with each
/// request: answer, wait first, stream a body that never ends, hang, hang up, redirect, or
/// send raw bytes (for hostile-peer tests). Connections are kept alive between requests
/// unless the client or the response says otherwise, so tests can see connection reuse in
/// `connectionsAccepted` and concurrency in `maxSimultaneousConnections`.
///
/// Everything runs on the loop's thread: tests call `loop.run()` and stop it from
/// completions or timers.
public final class TestHTTPServer {
    public struct Request {
        public let method: String
        /// The request target as sent, e.g. `/ocsp/abc?x=1`.
        public let path: String
        public let version: String
        public let headers: [(name: String, value: String)]
        public let body: [UInt8]
        /// 1 for the first connection accepted, 2 for the next, ...
        public let connectionNumber: Int

        /// The first field with this name (case-insensitive).
        public func header(_ name: String) -> String? {
            let wanted = name.lowercased()
            return headers.first { $0.name.lowercased() == wanted }?.value
        }
    }

    public struct Response {
        public var status: Int
        /// Sent as given. A Content-Length here replaces the computed one (so a test can lie
        /// about the length); `Connection: close` ends the connection after the response.
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        public init(status: Int = 200, headers: [(name: String, value: String)] = [], text: String) {
            self.init(status: status, headers: headers, body: Array(text.utf8))
        }
    }

    public indirect enum Behaviour {
        /// A complete response.
        case respond(Response)
        /// Waits, then behaves as given (nothing happens if the client left meanwhile).
        case delay(Duration, then: Behaviour)
        /// Status line and headers, then body bytes without end until the client hangs up.
        /// Without `chunked` the length is unannounced (read until close); with it, chunks.
        case endlessBody(status: Int, headers: [(name: String, value: String)], chunked: Bool)
        /// Never answers; the connection stays open until the client closes it.
        case hang
        /// Closes the connection without a byte.
        case close
        /// A redirect with a Location field.
        case redirect(to: String, status: Int)
        /// These bytes as they are, instead of a well-formed response.
        case raw([UInt8], thenClose: Bool)
        /// The response in pieces of `bytes`, one piece every `every`.
        case trickle(Response, bytes: Int, every: Duration)

        public static func text(_ text: String, status: Int = 200, contentType: String = "text/plain") -> Behaviour {
            .respond(Response(status: status, headers: [("Content-Type", contentType)], text: text))
        }
    }

    public typealias Handler = (Request) -> Behaviour

    /// Decides what each request gets; may be replaced between requests.
    public var handler: Handler
    public let port: UInt16
    /// `127.0.0.1`, or `[::1]` for a server on the IPv6 loopback.
    public let host: String
    public var baseURL: String { "http://\(host):\(port)" }
    public func url(_ path: String) -> String { baseURL + path }

    public private(set) var connectionsAccepted = 0
    /// Requests read completely and given to the handler.
    public private(set) var requestsServed = 0
    public var openConnections: Int { connections.count }
    public private(set) var maxSimultaneousConnections = 0
    /// Requests whose head or body exceeds this get 413 and a closed connection.
    public var maxRequestBytes = 1 << 20

    private let loop: EventLoop
    private var listenFD: Int32
    private var listener: IORegistration?
    private var connections: [Int32: Connection] = [:]

    /// `onIPv6Loopback` listens on ::1 instead of 127.0.0.1 (for names with only an AAAA
    /// record); `baseURL` then still says `[::1]`.
    public init(loop: EventLoop, onIPv6Loopback: Bool = false, handler: @escaping Handler) throws(SystemError) {
        self.loop = loop
        self.handler = handler
        let family = onIPv6Loopback ? AF_INET6 : AF_INET
        let host = onIPv6Loopback ? "[::1]" : "127.0.0.1"
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in6()
        if onIPv6Loopback {
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_addr = in6addr_loopback
        } else {
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    $0.pointee.sin_family = sa_family_t(AF_INET)
                    $0.pointee.sin_addr.s_addr = inet_addr("127.0.0.1")
                }
            }
        }
        var length = socklen_t(onIPv6Loopback ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 1024) == 0 else {
            let error = SystemError(bound == 0 ? "listen" : "bind", subject: "\(host):0")
            close(fd)
            throw error
        }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            let error = SystemError("getsockname")
            close(fd)
            throw error
        }
        // sin_port and sin6_port sit at the same offset.
        port = UInt16(bigEndian: address.sin6_port)
        self.host = host
        listenFD = fd
        do {
            listener = try loop.register(fd: fd, interest: .readable) { [weak self] _ in self?.acceptAll() }
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { stop() }

    /// Stops listening and closes every connection. Safe to call more than once.
    public func stop() {
        for connection in Array(connections.values) { closeConnection(connection) }
        listener?.cancel()
        listener = nil
        if listenFD >= 0 { close(listenFD) }
        listenFD = -1
    }

    // MARK: Accepting

    private func acceptAll() {
        while listenFD >= 0 {
            // Glibc does not export accept4; the flags are set right after.
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // EAGAIN: all taken; anything else: try again on the next event
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            connectionsAccepted += 1
            let connection = Connection(fd: fd, number: connectionsAccepted)
            do {
                connection.registration = try loop.register(fd: fd, interest: .readable) { [weak self, weak connection] events in
                    guard let self, let connection else { return }
                    self.connectionReady(connection, events)
                }
            } catch {
                close(fd)
                continue
            }
            connections[fd] = connection
            maxSimultaneousConnections = max(maxSimultaneousConnections, connections.count)
        }
    }

    // MARK: Connections

    private final class Connection {
        let fd: Int32
        let number: Int
        var registration: IORegistration?
        var input: [UInt8] = []
        var output: [UInt8] = []
        var outputOffset = 0
        /// A request is being answered: later input waits until the answer is out.
        var busy = false
        var sentContinue = false
        var closeWhenSent = false
        /// The whole answer is in `output`: once it drains the request is done.
        var answerQueued = false
        /// Refills the output whenever it drains (endless bodies).
        var refill: (() -> [UInt8])?
        var timers: [TimerHandle] = []
        var isOpen = true

        init(fd: Int32, number: Int) {
            self.fd = fd
            self.number = number
        }
    }

    private func connectionReady(_ connection: Connection, _ events: IOEvents) {
        if events.contains(.writable) { pump(connection) }
        guard connection.isOpen else { return }
        if events.contains(.readable) || events.contains(.hangup) || events.contains(.error) {
            readAvailable(connection)
        }
    }

    private func readAvailable(_ connection: Connection) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while connection.isOpen {
            let count = buffer.withUnsafeMutableBytes { read(connection.fd, $0.baseAddress, $0.count) }
            if count > 0 {
                connection.input.append(contentsOf: buffer[0..<count])
                continue
            }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            // End of stream or a reset: the client is gone.
            closeConnection(connection)
            return
        }
        processInput(connection)
    }

    private func closeConnection(_ connection: Connection) {
        guard connection.isOpen else { return }
        connection.isOpen = false
        for timer in connection.timers { loop.cancel(timer) }
        connection.timers.removeAll()
        connection.refill = nil
        connection.registration?.cancel()
        connection.registration = nil
        connections.removeValue(forKey: connection.fd)
        close(connection.fd)
    }

    // MARK: Requests

    private enum Parse {
        case incomplete
        case request(Request, consumed: Int, keepAlive: Bool)
        case invalid(status: Int)
    }

    private func processInput(_ connection: Connection) {
        guard connection.isOpen, !connection.busy else { return }
        switch parse(connection) {
        case .incomplete:
            return
        case .invalid(let status):
            connection.busy = true
            connection.input.removeAll()
            send(.respond(Response(status: status, headers: [("Connection", "close")])), on: connection, keepAlive: false)
        case .request(let request, let consumed, let keepAlive):
            connection.input.removeFirst(consumed)
            connection.busy = true
            connection.sentContinue = false
            requestsServed += 1
            send(handler(request), on: connection, keepAlive: keepAlive)
        }
    }

    private func parse(_ connection: Connection) -> Parse {
        let input = connection.input
        guard let headEnd = Self.find([13, 10, 13, 10], in: input) else {
            return input.count > maxRequestBytes ? .invalid(status: 431) : .incomplete
        }
        let head = String(decoding: input[0..<headEnd], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let requestLine = lines.removeFirst().split(separator: " ").map(String.init)
        guard requestLine.count == 3 else { return .invalid(status: 400) }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { return .invalid(status: 400) }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingSpaces
            headers.append((name, value))
        }
        func field(_ name: String) -> String? { headers.first { $0.name.lowercased() == name }?.value }
        if field("transfer-encoding") != nil { return .invalid(status: 501) }
        let bodyLength = field("content-length").flatMap { Int($0) } ?? 0
        guard bodyLength >= 0, bodyLength <= maxRequestBytes else { return .invalid(status: 413) }
        let bodyStart = headEnd + 4
        guard input.count - bodyStart >= bodyLength else {
            if field("expect")?.lowercased() == "100-continue" && !connection.sentContinue {
                connection.sentContinue = true
                connection.output += Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
                _ = writeOut(connection)
            }
            return .incomplete
        }
        let version = requestLine[2]
        let connectionField = field("connection")?.lowercased()
        let keepAlive = version == "HTTP/1.1" ? connectionField != "close" : connectionField == "keep-alive"
        let request = Request(method: requestLine[0], path: requestLine[1], version: version, headers: headers,
                              body: Array(input[bodyStart..<(bodyStart + bodyLength)]),
                              connectionNumber: connection.number)
        return .request(request, consumed: bodyStart + bodyLength, keepAlive: keepAlive)
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count)
        where haystack[start] == needle[0] && haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }

    // MARK: Answers

    private func send(_ behaviour: Behaviour, on connection: Connection, keepAlive: Bool) {
        guard connection.isOpen else { return }
        switch behaviour {
        case .respond(let response):
            let closes = !keepAlive || response.headers.contains {
                $0.name.lowercased() == "connection" && $0.value.lowercased() == "close"
            }
            finishAnswer(Self.serialize(response, closing: closes), closing: closes, on: connection)
        case .delay(let delay, let next):
            let timer = loop.schedule(after: delay) { [weak self, weak connection] in
                guard let self, let connection else { return }
                self.send(next, on: connection, keepAlive: keepAlive)
            }
            connection.timers.append(timer)
        case .endlessBody(let status, let headers, let chunked):
            var head = Response(status: status, headers: headers)
            head.headers.append(chunked ? ("Transfer-Encoding", "chunked") : ("Connection", "close"))
            connection.output += Self.serializeHead(head, contentLength: nil)
            let piece = [UInt8](repeating: UInt8(ascii: "x"), count: 16 * 1024)
            let chunk = chunked ? Array("4000\r\n".utf8) + piece + Array("\r\n".utf8) : piece
            connection.refill = { chunk }
            pump(connection)
        case .hang:
            break
        case .close:
            closeConnection(connection)
        case .redirect(let location, let status):
            send(.respond(Response(status: status, headers: [("Location", location)])), on: connection, keepAlive: keepAlive)
        case .raw(let bytes, let thenClose):
            finishAnswer(bytes, closing: thenClose, on: connection)
        case .trickle(let response, let step, let interval):
            let closes = !keepAlive
            trickle(Self.serialize(response, closing: closes)[...], step: max(1, step), every: interval,
                    closing: closes, on: connection)
        }
    }

    /// Queues the last bytes of an answer; the connection moves on once they are out.
    private func finishAnswer(_ bytes: [UInt8], closing: Bool, on connection: Connection) {
        connection.output += bytes
        connection.closeWhenSent = closing
        connection.answerQueued = true
        pump(connection)
    }

    private func trickle(_ remaining: ArraySlice<UInt8>, step: Int, every interval: Duration, closing: Bool,
                         on connection: Connection) {
        guard connection.isOpen else { return }
        let piece = Array(remaining.prefix(step))
        let rest = remaining.dropFirst(piece.count)
        guard !rest.isEmpty else {
            finishAnswer(piece, closing: closing, on: connection)
            return
        }
        connection.output += piece
        pump(connection)
        let timer = loop.schedule(after: interval) { [weak self, weak connection] in
            guard let self, let connection else { return }
            self.trickle(rest, step: step, every: interval, closing: closing, on: connection)
        }
        connection.timers.append(timer)
    }

    private static func serialize(_ response: Response, closing: Bool) -> [UInt8] {
        var head = response
        if closing && !head.headers.contains(where: { $0.name.lowercased() == "connection" }) {
            head.headers.append(("Connection", "close"))
        }
        let declared = head.headers.contains { $0.name.lowercased() == "content-length" }
        return serializeHead(head, contentLength: declared ? nil : response.body.count) + response.body
    }

    private static func serializeHead(_ response: Response, contentLength: Int?) -> [UInt8] {
        var text = "HTTP/1.1 \(response.status) \(reasonPhrase(response.status))\r\n"
        for (name, value) in response.headers { text += "\(name): \(value)\r\n" }
        if let contentLength { text += "Content-Length: \(contentLength)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    private static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 413: return "Content Too Large"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }

    // MARK: Writing

    /// Writes what it can; when a complete answer is out, closes or reads the next request.
    private func pump(_ connection: Connection) {
        guard writeOut(connection), connection.busy, connection.answerQueued else { return }
        connection.answerQueued = false
        if connection.closeWhenSent {
            closeConnection(connection)
            return
        }
        connection.busy = false
        processInput(connection)
    }

    /// Returns true when the output is empty and nothing refills it.
    private func writeOut(_ connection: Connection) -> Bool {
        while connection.isOpen {
            while connection.outputOffset < connection.output.count {
                let offset = connection.outputOffset
                let written = connection.output.withUnsafeBytes { bytes in
                    Glibc.send(connection.fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                }
                if written > 0 {
                    connection.outputOffset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    try? connection.registration?.setInterest([.readable, .writable])
                    return false
                } else {
                    // The client hung up (EPIPE, ECONNRESET): an endless body ends here.
                    closeConnection(connection)
                    return false
                }
            }
            connection.output.removeAll(keepingCapacity: true)
            connection.outputOffset = 0
            guard let refill = connection.refill else { break }
            connection.output = refill()
        }
        guard connection.isOpen else { return false }
        try? connection.registration?.setInterest(.readable)
        return true
    }
}

private extension Substring {
    var trimmingSpaces: String {
        var slice = self
        while slice.first == " " || slice.first == "\t" { slice.removeFirst() }
        while slice.last == " " || slice.last == "\t" { slice.removeLast() }
        return String(slice)
    }
}
