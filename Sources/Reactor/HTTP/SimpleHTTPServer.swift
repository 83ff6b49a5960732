import Glibc

/// A deliberately small HTTP/1.x server for an operator's endpoint (metrics, health), on the
/// same `EventLoop` as everything else, never blocking it, over TCP or a Unix socket.
///
/// One request per connection: the request head is read (up to a size cap, within a
/// deadline), the handler answers synchronously, the answer is sent with
/// `Connection: close`, and the connection ends. No request bodies, no keep-alive, no
/// chunking: what a scraper needs and nothing a hostile client could stretch. Every resource
/// is bounded: open connections, head size, time to send the head, time to take the answer
/// (idle and in all), and bytes queued for sending over all connections together.
///
/// A full server never stops accepting: a listener that waits for a free slot is held shut
/// by anyone who keeps `maxConnections` idle connections open, and a scrape queued behind
/// them in the backlog waits for their timeouts. Instead each newcomer takes the slot of the
/// connection that matters least (see `evictOne`), so the descriptors stay bounded at
/// `maxConnections` plus the listener (one more for the moment a newcomer is placed), while
/// a client that sends its request as it connects is answered whatever the others do.
public final class SimpleHTTPServer {
    public struct Configuration: Sendable {
        /// Connections held at once; a newcomer beyond it displaces the connection that
        /// matters least.
        public var maxConnections: Int
        /// A head (request line and fields, so also a 1 MB request line) larger than this gets
        /// 431 as soon as the cap is passed; the rest of it is read and dropped while the
        /// answer lingers, never stored.
        public var maxRequestHeadBytes: Int
        /// The whole head must arrive within this, however slowly it trickles (slowloris).
        public var requestTimeout: Duration
        /// A client that takes none of the answer for this long is dropped.
        public var sendIdleTimeout: Duration
        /// The whole answer must be taken within this, however steadily it trickles out (a
        /// client reading one byte every few seconds).
        public var responseTimeout: Duration
        /// Answer bytes queued over all connections; an answer that would exceed it is
        /// replaced by 503.
        public var maxQueuedBytes: Int
        /// TCP: the kernel holds a new connection until its first bytes arrive (or for
        /// `requestTimeout`), so a scraper's connection is taken with its request already
        /// there and answered at once, never sitting silent where a flood of newcomers could
        /// displace it; and connections that say nothing cost no descriptor for that time.
        public var deferAcceptUntilRequest: Bool
        public var listener: SocketListener.Configuration

        public init(maxConnections: Int = 64, maxRequestHeadBytes: Int = 8 << 10, requestTimeout: Duration = .seconds(5),
                    sendIdleTimeout: Duration = .seconds(5), responseTimeout: Duration = .seconds(30),
                    maxQueuedBytes: Int = 64 << 20, deferAcceptUntilRequest: Bool = true,
                    listener: SocketListener.Configuration = .init()) {
            self.maxConnections = maxConnections
            self.maxRequestHeadBytes = maxRequestHeadBytes
            self.requestTimeout = requestTimeout
            self.sendIdleTimeout = sendIdleTimeout
            self.responseTimeout = responseTimeout
            self.maxQueuedBytes = maxQueuedBytes
            self.deferAcceptUntilRequest = deferAcceptUntilRequest
            self.listener = listener
        }
    }

    public struct Request: Sendable {
        /// As sent, e.g. `GET`.
        public let method: String
        /// The request target as sent, e.g. `/metrics?x=1`.
        public let target: String
        /// `HTTP/1.0` or `HTTP/1.1`.
        public let version: String
        public let headers: [(name: String, value: String)]

        /// The target without its query string.
        public var path: Substring { target.prefix { $0 != "?" } }

        /// The first field with this name (case-insensitive).
        public func header(_ name: String) -> String? {
            let wanted = name.lowercased()
            return headers.first { $0.name.lowercased() == wanted }?.value
        }
    }

    public struct Response: Sendable {
        public var status: Int
        /// Sent as given; Content-Length and Connection are added by the server.
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        public init(status: Int, contentType: String = "text/plain; charset=utf-8", text: String) {
            self.init(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
        }
    }

    /// Answers a request; runs on the loop, so it must be quick. A HEAD request gets the
    /// head of what the handler answers, without the body.
    public typealias Handler = (Request) -> Response

    public let configuration: Configuration
    /// Where it listens; for TCP port 0, with the port the kernel chose.
    public var address: ListenAddress { listener.address }
    /// The bound TCP port; 0 for a Unix socket.
    public var port: UInt16 { listener.port }
    public var addressDescription: String { listener.addressDescription }

    /// Connections taken so far.
    public private(set) var connectionsAccepted = 0
    /// Answers fully handed to the kernel, errors (400, 431...) included.
    public private(set) var responsesSent = 0
    /// Connections dropped for sending their head too slowly or not reading the answer.
    public private(set) var connectionsTimedOut = 0
    /// Connections closed to make room for a newcomer while every slot was taken.
    public private(set) var connectionsEvicted = 0
    public var openConnections: Int { connections.count }
    public private(set) var queuedBytes = 0
    public var isClosed: Bool { listener.isClosed }

    private let loop: EventLoop
    private let handler: Handler
    private let onAcceptFailure: ((SystemError) -> Void)?
    private var listener: SocketListener!
    private var connections: [Int32: Connection] = [:]
    /// Numbers connections in the order they were taken, to find the oldest.
    private var acceptSequence: UInt64 = 0

    /// Listens on `address` (see `SocketListener` for what binding a Unix socket involves).
    /// `onAcceptFailure` hears of failed accepts (out of descriptors), worth a log line.
    public init(loop: EventLoop, address: ListenAddress, configuration: Configuration = .init(),
                onAcceptFailure: ((SystemError) -> Void)? = nil, handler: @escaping Handler) throws(SystemError) {
        self.loop = loop
        self.configuration = configuration
        self.handler = handler
        self.onAcceptFailure = onAcceptFailure
        var listening = configuration.listener
        // A newcomer may displace the oldest silent connection. Taking at most a quarter of
        // the slots per wakeup gives a connection just taken a few turns of the loop to show
        // its request (whose event may come after the listener's) before newcomers could
        // count it among the idle.
        listening.maxAcceptsPerWakeup = min(listening.maxAcceptsPerWakeup, max(1, configuration.maxConnections / 4))
        if configuration.deferAcceptUntilRequest && listening.deferAcceptUntilData == nil {
            listening.deferAcceptUntilData = configuration.requestTimeout
        }
        listener = try SocketListener(loop: loop, address: address, configuration: listening) { [weak self] event in
            self?.handle(event)
        }
    }

    /// Listens on `host` (an IP literal) and `port` (0: any free one, see `port`).
    public convenience init(loop: EventLoop, host: String, port: UInt16, configuration: Configuration = .init(),
                            onAcceptFailure: ((SystemError) -> Void)? = nil, handler: @escaping Handler) throws(SystemError) {
        try self.init(loop: loop, address: .tcp(host: host, port: port), configuration: configuration,
                      onAcceptFailure: onAcceptFailure, handler: handler)
    }

    deinit { close() }

    /// Stops listening and drops every connection. Safe to call more than once.
    public func close() {
        listener?.close()
        for connection in Array(connections.values) { finish(connection) }
    }

    // MARK: Connections

    private enum Phase { case readingHead, sending, draining }

    private final class Connection {
        let fd: Int32
        let sequence: UInt64
        var registration: IORegistration?
        var phase = Phase.readingHead
        var head: [UInt8] = []
        var output: [UInt8] = []
        var sent = 0
        var timer: TimerHandle?
        /// While sending: when the client last took some bytes.
        var lastProgress = MonotonicInstant(nanoseconds: 0)
        /// While sending: when the whole answer must be out.
        var responseDeadline = MonotonicInstant(nanoseconds: 0)

        init(fd: Int32, sequence: UInt64) {
            self.fd = fd
            self.sequence = sequence
        }
    }

    private func handle(_ event: SocketListener.Event) {
        switch event {
        case .accepted(let fd):
            connectionsAccepted += 1
            // The newcomer is already a descriptor (accept4 cannot be asked to wait for room),
            // so for a moment there is one more than the cap; never after this returns.
            if connections.count >= configuration.maxConnections { evictOne() }
            acceptSequence += 1
            let connection = Connection(fd: fd, sequence: acceptSequence)
            do {
                connection.registration = try loop.register(fd: fd, interest: .readable) { [weak self, weak connection] events in
                    guard let self, let connection else { return }
                    self.ready(connection, events)
                }
            } catch {
                Glibc.close(fd)
                return
            }
            connections[fd] = connection
            let timeout = configuration.requestTimeout
            connection.timer = loop.schedule(after: timeout) { [weak self, weak connection] in
                guard let self, let connection else { return }
                connection.timer = nil
                self.connectionsTimedOut += 1
                self.finish(connection)
            }
            // A request already waiting in the socket is answered now, before later
            // newcomers could count this connection among the idle.
            readHead(connection)
        case .acceptFailed(let error):
            onAcceptFailure?(error)
        }
    }

    private func ready(_ connection: Connection, _ events: IOEvents) {
        switch connection.phase {
        case .readingHead:
            if events.contains(.error) { finish(connection) } else { readHead(connection) }
        case .sending:
            if events.contains(.error) { finish(connection) } else { flush(connection) }
        case .draining:
            drain(connection)
        }
    }

    /// Reads what the socket holds of the head (a few reads at most: it stops one byte past
    /// the cap) and answers once the head is complete or too large.
    private func readHead(_ connection: Connection) {
        let cap = configuration.maxRequestHeadBytes
        while connection.phase == .readingHead {
            // One byte over the cap is enough to know the head is too large.
            let room = cap + 1 - connection.head.count
            var buffer = [UInt8](repeating: 0, count: min(room, Self.readChunkBytes))
            let got = buffer.withUnsafeMutableBytes { read(connection.fd, $0.baseAddress, $0.count) }
            if got < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return }
                finish(connection)
                return
            }
            if got == 0 {
                finish(connection) // the client left (or half-closed) before finishing its request
                return
            }
            // The end of the head may straddle two reads: look from a little before the new bytes.
            let searchFrom = max(0, connection.head.count - 3)
            connection.head.append(contentsOf: buffer[0..<got])
            if let end = Self.headEnd(in: connection.head, from: searchFrom) {
                respond(to: connection, with: answer(Array(connection.head[0..<end])))
            } else if connection.head.count > cap {
                respond(to: connection, with: (Response(status: 431, text: "request head too large\n"), includeBody: true))
            }
        }
    }

    private static let readChunkBytes = 4096

    /// Where the blank line ending the head starts (CRLF CRLF, or a bare LF LF from a
    /// hand-typed request).
    static func headEnd(in bytes: [UInt8], from start: Int) -> Int? {
        var index = start
        while index < bytes.count {
            if bytes[index] == 10 {
                if index + 1 < bytes.count && bytes[index + 1] == 10 { return index }
                if index + 2 < bytes.count && bytes[index + 1] == 13 && bytes[index + 2] == 10 { return index }
            }
            index += 1
        }
        return nil
    }

    private func answer(_ head: [UInt8]) -> (Response, includeBody: Bool) {
        guard let request = Self.parse(head) else {
            return (Response(status: 400, text: "bad request\n"), true)
        }
        guard request.version == "HTTP/1.1" || request.version == "HTTP/1.0" else {
            return (Response(status: 505, text: "HTTP/1.0 or HTTP/1.1 only\n"), true)
        }
        return (handler(request), request.method != "HEAD")
    }

    /// The request line and fields; nil when they are not HTTP. Field names and values
    /// are kept as sent (invalid UTF-8 repaired), leaving judgement to the handler.
    static func parse(_ head: [UInt8]) -> Request? {
        let lines = head.split(separator: 10, omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self)
        }
        guard let requestLine = lines.first else { return nil }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, parts[2].hasPrefix("HTTP/"),
              parts[0].allSatisfy({ $0.isASCII && $0.isLetter }) else { return nil }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else { return nil }
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            headers.append((String(line[..<colon]), String(value.reversed().drop { $0 == " " || $0 == "\t" }.reversed())))
        }
        return Request(method: String(parts[0]), target: String(parts[1]), version: String(parts[2]), headers: headers)
    }

    // MARK: Answering

    private func respond(to connection: Connection, with answer: (response: Response, includeBody: Bool)) {
        var response = answer.response
        var bytes = Self.serializeHead(response, contentLength: response.body.count)
        if queuedBytes + bytes.count + (answer.includeBody ? response.body.count : 0) > configuration.maxQueuedBytes {
            response = Response(status: 503, text: "busy, try again\n")
            bytes = Self.serializeHead(response, contentLength: response.body.count)
        }
        if answer.includeBody { bytes += response.body }
        connection.head = []
        connection.output = bytes
        connection.sent = 0
        queuedBytes += bytes.count
        connection.phase = .sending
        connection.lastProgress = .now()
        connection.responseDeadline = connection.lastProgress + configuration.responseTimeout
        if let timer = connection.timer { loop.cancel(timer) }
        armSendTimer(connection, at: min(connection.lastProgress + configuration.sendIdleTimeout, connection.responseDeadline))
        flush(connection)
    }

    private func flush(_ connection: Connection) {
        while connection.sent < connection.output.count {
            let count = connection.output.withUnsafeBytes { raw in
                send(connection.fd, raw.baseAddress! + connection.sent, raw.count - connection.sent, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    try? connection.registration?.setInterest(.writable)
                    return
                }
                finish(connection) // the client went away
                return
            }
            connection.sent += count
            queuedBytes -= count
            connection.lastProgress = .now()
        }
        responsesSent += 1
        startDraining(connection)
    }

    /// The answer is out. Closing now while request bytes we never read are still in the
    /// socket would make the kernel send a reset, which can destroy the answer before the
    /// client reads it; so say we are done writing, and wait (briefly) for the client to
    /// close its side, discarding whatever it still sends.
    private func startDraining(_ connection: Connection) {
        releaseOutput(connection)
        connection.phase = .draining
        shutdown(connection.fd, Int32(SHUT_WR))
        do {
            try connection.registration?.setInterest(.readable)
        } catch {
            finish(connection)
            return
        }
        if let timer = connection.timer { loop.cancel(timer) }
        connection.timer = loop.schedule(after: Self.lingerTimeout) { [weak self, weak connection] in
            guard let self, let connection else { return }
            connection.timer = nil
            self.finish(connection)
        }
        drain(connection)
    }

    private static let lingerTimeout: Duration = .seconds(2)

    private func drain(_ connection: Connection) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        // Bounded: a client streaming garbage at us is cut off by the linger timer, and each
        // event reads only so much.
        for _ in 0..<16 {
            let got = buffer.withUnsafeMutableBytes { read(connection.fd, $0.baseAddress, $0.count) }
            if got > 0 { continue }
            if got < 0 && errno == EINTR { continue }
            if got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            finish(connection) // end of stream or an error: the client is done
            return
        }
    }

    private func armSendTimer(_ connection: Connection, at deadline: MonotonicInstant) {
        connection.timer = loop.schedule(at: deadline) { [weak self, weak connection] in
            guard let self, let connection else { return }
            connection.timer = nil
            // Progress only records when it happened; the timer catches up here instead of
            // being moved on every send.
            let due = min(connection.lastProgress + self.configuration.sendIdleTimeout, connection.responseDeadline)
            if due > .now() {
                self.armSendTimer(connection, at: due)
            } else {
                self.connectionsTimedOut += 1
                self.finish(connection)
            }
        }
    }

    private func releaseOutput(_ connection: Connection) {
        queuedBytes -= connection.output.count - connection.sent
        connection.output = []
        connection.sent = 0
    }

    private func finish(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.fd) != nil else { return }
        if let timer = connection.timer { loop.cancel(timer) }
        connection.timer = nil
        releaseOutput(connection)
        connection.registration?.cancel()
        connection.registration = nil
        Glibc.close(connection.fd)
    }

    // MARK: Making room

    /// Closes one connection so a newcomer can have its slot, choosing the one whose loss
    /// costs least:
    /// 1. one whose answer is already out and that only lingers for the client to close;
    /// 2. the oldest one that has not sent a whole request (idle, trickling, half-sent). Its
    ///    socket is read one last time first: a request that arrived but whose event is not
    ///    handled yet is answered instead, and the next oldest goes;
    /// 3. when every slot is busy writing an answer, the writer whose client has gone longest
    ///    without taking any of it: a scraper reading its answer keeps making progress and
    ///    goes last, a client that stopped reading goes first.
    /// So a flood of idle or slow connections displaces its own kind. A client is at risk only
    /// in the moment between being taken and its request arriving, if `maxConnections`
    /// newcomers come in that moment; over TCP the deferred accept closes even that gap (its
    /// request comes with it). Over a Unix socket, only local clients allowed by the file's
    /// mode can connect at all.
    private func evictOne() {
        if let lingering = oldest(in: .draining) {
            drain(lingering) // unread bytes at close would make the kernel reset the answer away
            evict(lingering)
            return
        }
        while let candidate = oldest(in: .readingHead) {
            readHead(candidate)
            if connections.count < configuration.maxConnections { return } // it left while read
            if candidate.phase == .readingHead {
                evict(candidate)
                return
            }
            if candidate.phase == .draining {
                evict(candidate) // answered on the spot: it can go now, as in case 1
                return
            }
        }
        if let stalled = connections.values.filter({ $0.phase == .sending }).min(by: { $0.lastProgress < $1.lastProgress }) {
            evict(stalled)
        }
    }

    private func oldest(in phase: Phase) -> Connection? {
        var found: Connection?
        for connection in connections.values where connection.phase == phase {
            if found.map({ connection.sequence < $0.sequence }) ?? true { found = connection }
        }
        return found
    }

    private func evict(_ connection: Connection) {
        guard connections[connection.fd] === connection else { return }
        connectionsEvicted += 1
        finish(connection)
    }

    // MARK: Serializing

    static func serializeHead(_ response: Response, contentLength: Int) -> [UInt8] {
        var text = "HTTP/1.1 \(response.status) \(reasonPhrase(response.status))\r\n"
        for (name, value) in response.headers {
            // A field cannot be allowed to end the head early or add fields of its own.
            guard !name.utf8.contains(where: { $0 == 13 || $0 == 10 }),
                  !value.utf8.contains(where: { $0 == 13 || $0 == 10 }) else { continue }
            text += "\(name): \(value)\r\n"
        }
        text += "Content-Length: \(contentLength)\r\nConnection: close\r\n\r\n"
        return Array(text.utf8)
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }
}
