import CEpoll
import Glibc

/// A non-blocking client connection to a unix stream socket, driven by an `EventLoop`.
///
/// Bytes to send go into a bounded queue and leave when the socket is writable; bytes
/// received go to the handler as they arrive, in chunks cut anywhere. The stream ends once:
/// either the owner calls `close()` (no event follows) or it fails and the handler gets
/// `.closed` with the reason. The handler may call `close()` or `write` from any event.
public final class UnixStream {
    public enum Event {
        case connected
        case received([UInt8])
        case closed(UnixStreamError)
    }

    public struct Configuration: Sendable {
        public var connectTimeout: Duration
        /// Bytes `write` may queue before it throws `.writeQueueFull`.
        public var maxQueuedBytes: Int
        /// The most one read takes; also the largest chunk the handler sees.
        public var readChunkBytes: Int

        public init(connectTimeout: Duration = .seconds(5), maxQueuedBytes: Int = 1 << 20,
                    readChunkBytes: Int = 16 << 10) {
            self.connectTimeout = connectTimeout
            self.maxQueuedBytes = maxQueuedBytes
            self.readChunkBytes = readChunkBytes
        }
    }


    public let path: FilePath
    public let configuration: Configuration

    private enum State { case initial, connecting, connected, closed }

    private let loop: EventLoop
    private let handler: (Event) -> Void
    private var state = State.initial
    private var fd: Int32 = -1
    private var registration: IORegistration?
    private var outgoing: [UInt8] = []
    private var outgoingSent = 0
    private var connectTimer: TimerHandle?
    private var connectRetryTimer: TimerHandle?
    private var connectRetryDelay = Duration.milliseconds(5)
    private var readTimeout: Duration?
    private var readTimer: TimerHandle?
    private var lastRead = MonotonicInstant(nanoseconds: 0)

    public init(loop: EventLoop, path: FilePath, configuration: Configuration = .init(),
                handler: @escaping (Event) -> Void) {
        self.loop = loop
        self.path = path
        self.configuration = configuration
        self.handler = handler
    }

    /// Adopts one end of a pair already connected (socketpair): no connect and no
    /// `.connected` event; `name` stands in for the path in its errors. The descriptor is the
    /// stream's from now on (made non-blocking, closed with it, also when this throws).
    public init(loop: EventLoop, connected fd: Int32, name: FilePath, configuration: Configuration = .init(),
                handler: @escaping (Event) -> Void) throws(UnixStreamError) {
        self.loop = loop
        self.path = name
        self.configuration = configuration
        self.handler = handler
        self.fd = fd
        guard fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 else {
            let code = errno
            tearDown()
            throw UnixStreamError(path: name, reason: .system(call: "fcntl(O_NONBLOCK)", errno: code))
        }
        do {
            registration = try loop.register(fd: fd, interest: .readable) { [weak self] events in self?.handle(events) }
        } catch {
            tearDown()
            throw UnixStreamError(path: name, reason: .system(call: error.call, errno: error.errno))
        }
        state = .connected
    }

    deinit {
        if state != .closed && state != .initial { tearDown() }
    }

    public var isConnected: Bool { state == .connected }
    public var isClosed: Bool { state == .closed }
    public var queuedBytes: Int { outgoing.count - outgoingSent }

    // MARK: Connecting

    /// Starts connecting; `.connected` follows from the loop. Failures known at once (no such
    /// socket, refused, not a socket, path too long) are thrown and leave the stream closed;
    /// later ones arrive as `.closed`. Call once.
    public func connect() throws(UnixStreamError) {
        precondition(state == .initial, "UnixStream.connect() called twice")
        guard path.bytes.count <= UnixSocketAddress.maxPathLength, !path.isEmpty else {
            state = .closed
            throw error(path.isEmpty ? .missing : .pathTooLong(limit: UnixSocketAddress.maxPathLength))
        }
        fd = socket(AF_UNIX, CEPOLL_SOCK_STREAM_NONBLOCK_CLOEXEC, 0)
        guard fd >= 0 else {
            state = .closed
            throw error(.system(call: "socket", errno: errno))
        }
        state = .connecting
        let timeout = configuration.connectTimeout
        connectTimer = loop.schedule(after: timeout) { [weak self] in
            self?.fail(.timedOut(.connect, after: timeout))
        }
        if let failure = attemptConnect() {
            tearDown()
            throw error(failure)
        }
    }

    /// One connect(2). A unix socket whose listen backlog is full answers EAGAIN and, unlike
    /// TCP, leaves nothing in progress: poll reports such a socket writable at once, so
    /// waiting for writability would spin. The attempt is repeated on a short timer instead,
    /// until it succeeds or the connect timeout fires.
    private func attemptConnect() -> UnixStreamError.Reason? {
        guard let address = UnixSocketAddress(path: path) else { return .pathTooLong(limit: UnixSocketAddress.maxPathLength) }
        let result = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        let code = result == 0 ? 0 : errno
        switch code {
        case 0, EINPROGRESS, EINTR:
            // Completion (even an immediate one) is reported by writability, in one place.
            do {
                registration = try loop.register(fd: fd, interest: .writable) { [weak self] events in
                    self?.handle(events)
                }
            } catch {
                return .system(call: error.call, errno: error.errno)
            }
            return nil
        case EAGAIN:
            connectRetryTimer = loop.schedule(after: connectRetryDelay) { [weak self] in
                guard let self, self.state == .connecting else { return }
                self.connectRetryTimer = nil
                if let failure = self.attemptConnect() { self.fail(failure) }
            }
            connectRetryDelay = min(connectRetryDelay * 2, .milliseconds(200))
            return nil
        default:
            return .connectFailure(errno: code, path: path)
        }
    }

    // MARK: Writing and reading

    /// Queues `bytes`; they leave when the socket is writable. Bytes written before the
    /// connection is up wait for it. Throws `.writeQueueFull` (queueing nothing) when the
    /// queue would exceed its limit, `.notConnected` once the stream is closed.
    public func write(_ bytes: [UInt8]) throws(UnixStreamError) {
        guard state != .closed else { throw error(.notConnected) }
        guard queuedBytes + bytes.count <= configuration.maxQueuedBytes else {
            throw error(.writeQueueFull(limit: configuration.maxQueuedBytes))
        }
        outgoing.append(contentsOf: bytes)
        if state == .connected { updateInterest() }
    }

    /// Fails the stream with `.timedOut(.read)` once no data has arrived for `timeout`,
    /// counted from now and restarted by every chunk received; nil turns it off. For "the
    /// answer must come within": set it when a request is sent, clear it when the answer is in.
    public func setReadTimeout(_ timeout: Duration?) {
        if let readTimer { loop.cancel(readTimer) }
        readTimer = nil
        readTimeout = timeout
        guard let timeout, state != .closed else { return }
        lastRead = .now()
        armReadTimer(at: lastRead + timeout)
    }

    /// Closes the connection at once, dropping unsent bytes; no event follows.
    public func close() {
        guard state != .closed else { return }
        tearDown()
    }

    // MARK: Events

    private func handle(_ events: IOEvents) {
        switch state {
        case .connecting:
            let code = pendingSocketError()
            if code != 0 {
                fail(.connectFailure(errno: code, path: path))
            } else {
                becomeConnected()
            }
        case .connected:
            if events.contains(.error) {
                let code = pendingSocketError()
                fail(code == 0 ? .closedByPeer : .transferFailure(errno: code, call: "SO_ERROR"))
                return
            }
            if events.contains(.readable) || events.contains(.hangup) { readOnce() }
            if state == .connected && events.contains(.writable) { flush() }
        case .initial, .closed:
            return
        }
    }

    private func becomeConnected() {
        if let connectTimer { loop.cancel(connectTimer) }
        connectTimer = nil
        state = .connected
        updateInterest()
        guard state == .connected else { return }
        handler(.connected)
    }

    private func readOnce() {
        let capacity = configuration.readChunkBytes
        var code: Int32 = 0
        let chunk = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            var got: Int
            repeat {
                got = read(fd, buffer.baseAddress!, capacity)
            } while got < 0 && errno == EINTR
            code = got < 0 ? errno : 0
            count = max(got, 0)
        }
        if code == EAGAIN || code == EWOULDBLOCK { return }
        if code != 0 {
            fail(.transferFailure(errno: code, call: "read"))
            return
        }
        if chunk.isEmpty {
            fail(.closedByPeer)
            return
        }
        lastRead = .now()
        handler(.received(chunk))
    }

    private func flush() {
        while queuedBytes > 0 {
            let sent = outgoing.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + outgoingSent, raw.count - outgoingSent, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { return }
                fail(.transferFailure(errno: code, call: "send"))
                return
            }
            outgoingSent += sent
        }
        outgoing = []
        outgoingSent = 0
        updateInterest()
    }

    private func updateInterest() {
        guard let registration else { return }
        do {
            try registration.setInterest(queuedBytes > 0 ? [.readable, .writable] : .readable)
        } catch {
            // Deferred: this may run inside `write`, where the owner does not expect a callback.
            loop.executeSoon { [weak self] in self?.fail(.system(call: error.call, errno: error.errno)) }
        }
    }

    private func armReadTimer(at deadline: MonotonicInstant) {
        readTimer = loop.schedule(at: deadline) { [weak self] in
            guard let self, let timeout = self.readTimeout else { return }
            self.readTimer = nil
            // Chunks only record when they came; the timer catches up here, so a busy stream
            // does not reschedule a timer per read.
            let due = self.lastRead + timeout
            if due > .now() {
                self.armReadTimer(at: due)
            } else {
                self.fail(.timedOut(.read, after: timeout))
            }
        }
    }

    private func pendingSocketError() -> Int32 {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) != 0 { return errno }
        return code
    }

    // MARK: Ending

    private func fail(_ reason: UnixStreamError.Reason) {
        guard state != .closed else { return }
        tearDown()
        handler(.closed(error(reason)))
    }

    private func tearDown() {
        state = .closed
        for timer in [connectTimer, connectRetryTimer, readTimer] {
            if let timer { loop.cancel(timer) }
        }
        connectTimer = nil
        connectRetryTimer = nil
        readTimer = nil
        registration?.cancel()
        registration = nil
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        outgoing = []
        outgoingSent = 0
    }

    private func error(_ reason: UnixStreamError.Reason) -> UnixStreamError {
        UnixStreamError(path: path, reason: reason)
    }
}
