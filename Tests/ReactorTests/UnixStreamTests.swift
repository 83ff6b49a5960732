import Foundation
import Glibc
import XCTest
@testable import Reactor
import TestSupport

final class UnixStreamTests: XCTestCase {
    // MARK: Talking

    func testSendsARequestAndGetsTheWholeAnswerInChunksBeforeThePeerClose() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        let answer = (0..<60_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var request: [UInt8] = []
        let listener = try TestUnixListener(loop: loop, path: temp.file("s.sock")) { connection in
            connection.onData = { bytes in
                request += bytes
                if request.last == UInt8(ascii: "\n") {
                    XCTAssertTrue(connection.send(answer))
                    connection.close()
                }
            }
        }
        var events: [String] = []
        var received: [UInt8] = []
        var chunks = 0
        let stream = UnixStream(loop: loop, path: FilePath(listener.path),
                                configuration: .init(readChunkBytes: 4096)) { event in
            switch event {
            case .connected: events.append("connected")
            case .received(let chunk):
                chunks += 1
                received += chunk
            case .closed(let error):
                events.append("closed: \(error.reason)")
                loop.stop()
            }
        }
        try stream.write(Array("hello\n".utf8))  // queued until the connection is up
        try stream.connect()
        try loop.runForTest(deadline: .seconds(10))

        XCTAssertEqual(String(decoding: request, as: UTF8.self), "hello\n")
        XCTAssertEqual(received, answer, "every byte arrives before the close is reported")
        XCTAssertGreaterThanOrEqual(chunks, 15, "delivered in read-sized chunks")
        XCTAssertEqual(events, ["connected", "closed: closedByPeer"])
        XCTAssertTrue(stream.isClosed)
        XCTAssertThrowsError(try stream.write([1])) { error in
            XCTAssertEqual((error as? UnixStreamError)?.reason, .notConnected)
        }
    }

    // MARK: Failures with a clear reason

    func testConnectFailuresNameThePathAndWhatIsWrongWithIt() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        let regularFile = temp.file("plain.txt")
        _ = FileManager.default.createFile(atPath: regularFile, contents: Data("x".utf8))
        let stale = temp.file("stale.sock")
        try bindWithoutListening(stale)
        let tooLong = "/tmp/" + String(repeating: "d", count: 120) + "/s.sock"

        let cases: [(String, UnixStreamError.Reason, String)] = [
            (temp.file("missing.sock"), .missing, "no such file"),
            (regularFile, .notASocket, "not a socket"),
            (stale, .refused, "connection refused"),
            (tooLong, .pathTooLong(limit: 107), "longer than the 107-byte limit"),
        ]
        for (path, reason, text) in cases {
            let stream = UnixStream(loop: loop, path: FilePath(path)) { _ in XCTFail("no event for \(path)") }
            XCTAssertThrowsError(try stream.connect()) { error in
                let failure = error as? UnixStreamError
                XCTAssertEqual(failure?.reason, reason, path)
                XCTAssertEqual(failure?.path, FilePath(path))
                XCTAssertTrue(failure?.description.contains(path) ?? false, "\(String(describing: failure))")
                XCTAssertTrue(failure?.description.contains(text) ?? false, "\(String(describing: failure))")
            }
            XCTAssertTrue(stream.isClosed)
        }
    }

    func testPermissionDeniedIsNamed() throws {
        XCTAssertEqual(UnixStreamError.Reason.connectFailure(errno: EACCES, path: "/x"), .permissionDenied)
        XCTAssertEqual(UnixStreamError(path: "/run/x.sock", reason: .permissionDenied).description,
                       "unix socket /run/x.sock: permission denied")
        // Root passes every permission check, so only an ordinary user can see the real thing.
        guard geteuid() != 0 else { return }
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        let listener = try TestUnixListener(loop: loop, path: temp.file("s.sock")) { _ in }
        chmod(listener.path, 0)
        let stream = UnixStream(loop: loop, path: FilePath(listener.path)) { _ in }
        XCTAssertThrowsError(try stream.connect()) { error in
            XCTAssertEqual((error as? UnixStreamError)?.reason, .permissionDenied)
        }
    }

    // MARK: Limits and timeouts

    func testWriteQueueRefusesBytesBeyondItsLimitAndStaysBounded() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        // The peer accepts but never reads: the kernel buffer fills, then the queue.
        let listener = try TestUnixListener(loop: loop, path: temp.file("s.sock"), readsFromClients: false)
        let limit = 256 << 10
        var connected = false
        let stream = UnixStream(loop: loop, path: FilePath(listener.path),
                                configuration: .init(maxQueuedBytes: limit)) { event in
            if case .connected = event { connected = true }
            if case .closed(let error) = event { XCTFail("closed: \(error)") }
        }
        let block = [UInt8](repeating: 0x41, count: 64 << 10)
        for _ in 0..<4 { try stream.write(block) }
        XCTAssertThrowsError(try stream.write([1])) { error in
            XCTAssertEqual((error as? UnixStreamError)?.reason, .writeQueueFull(limit: limit))
        }
        XCTAssertEqual(stream.queuedBytes, limit, "a refused write queues nothing")
        try stream.connect()

        // Keep writing whenever there is room, until the kernel buffer is full and the queue
        // stops draining.
        var refusals = 0
        try loop.runForTest(deadline: .seconds(10), until: {
            guard connected else { return false }
            do { try stream.write(block) } catch { refusals += 1 }
            return refusals >= 20
        })
        XCTAssertLessThanOrEqual(stream.queuedBytes, limit)
        XCTAssertGreaterThan(stream.queuedBytes, limit - block.count)
        stream.close()
    }

    func testReadTimeoutClosesAStreamThatGetsNoAnswer() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        let listener = try TestUnixListener(loop: loop, path: temp.file("s.sock")) { _ in }
        var reason: UnixStreamError.Reason?
        var sentAt = MonotonicInstant.now()
        var stream: UnixStream?
        stream = UnixStream(loop: loop, path: FilePath(listener.path)) { event in
            switch event {
            case .connected:
                try? stream?.write(Array("question\n".utf8))
                sentAt = .now()
                stream?.setReadTimeout(.milliseconds(150))
            case .received: XCTFail("the peer says nothing")
            case .closed(let error):
                reason = error.reason
                loop.stop()
            }
        }
        try stream?.connect()
        try loop.runForTest(deadline: .seconds(10))
        XCTAssertEqual(reason, .timedOut(.read, after: .milliseconds(150)))
        XCTAssertGreaterThanOrEqual(MonotonicInstant.now().duration(since: sentAt), .milliseconds(150))
    }

    func testReadTimeoutIsRestartedByIncomingData() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        // The peer answers in pieces 60 ms apart: slower in total than the 150 ms timeout,
        // but never silent for that long.
        let listener = try TestUnixListener(loop: loop, path: temp.file("s.sock")) { connection in
            for index in 0..<5 {
                loop.schedule(after: .milliseconds(60 * (index + 1))) {
                    connection.send([UInt8(ascii: "a") + UInt8(index)])
                    if index == 4 { connection.close() }
                }
            }
        }
        var received: [UInt8] = []
        var reason: UnixStreamError.Reason?
        var stream: UnixStream?
        stream = UnixStream(loop: loop, path: FilePath(listener.path)) { event in
            switch event {
            case .connected: stream?.setReadTimeout(.milliseconds(150))
            case .received(let chunk): received += chunk
            case .closed(let error):
                reason = error.reason
                loop.stop()
            }
        }
        try stream?.connect()
        try loop.runForTest(deadline: .seconds(10))
        XCTAssertEqual(String(decoding: received, as: UTF8.self), "abcde")
        XCTAssertEqual(reason, .closedByPeer)
    }

    // MARK: Full backlog

    func testConnectRetriesWhileTheBacklogIsFullAndSucceedsOnceThereIsRoom() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        let listener = try TestUnixListener(loop: loop, path: temp.file("s.sock"), backlog: 0, accepting: false)
        let queued = try listener.fillBacklog()
        defer { queued.forEach { Glibc.close($0) } }

        var events: [String] = []
        let stream = UnixStream(loop: loop, path: FilePath(listener.path)) { event in
            if case .connected = event { events.append("connected") }
            if case .closed(let error) = event { events.append("closed: \(error.reason)") }
            loop.stop()
        }
        try stream.connect()
        XCTAssertFalse(stream.isClosed, "EAGAIN is not a failure")
        loop.schedule(after: .milliseconds(100)) { listener.acceptOne() }
        try loop.runForTest(deadline: .seconds(10))
        XCTAssertEqual(events, ["connected"])
        stream.close()
    }

    func testConnectTimesOutWhenTheBacklogStaysFull() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        let listener = try TestUnixListener(loop: loop, path: temp.file("s.sock"), backlog: 0, accepting: false)
        let queued = try listener.fillBacklog()
        defer { queued.forEach { Glibc.close($0) } }

        var reason: UnixStreamError.Reason?
        let stream = UnixStream(loop: loop, path: FilePath(listener.path),
                                configuration: .init(connectTimeout: .milliseconds(200))) { event in
            if case .closed(let error) = event { reason = error.reason }
            loop.stop()
        }
        try stream.connect()
        try loop.runForTest(deadline: .seconds(10))
        XCTAssertEqual(reason, .timedOut(.connect, after: .milliseconds(200)))
        XCTAssertTrue(stream.isClosed)
    }

    // MARK: Closing from callbacks

    func testHandlerMayCloseTheStreamFromInsideEachEvent() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        let listener = try TestUnixListener(loop: loop, path: temp.file("s.sock")) { connection in
            connection.send(Array("one".utf8))
            loop.schedule(after: .milliseconds(20)) { connection.send(Array("two".utf8)); connection.close() }
        }
        for closeOn in ["connected", "received"] {
            var seen: [String] = []
            var stream: UnixStream?
            stream = UnixStream(loop: loop, path: FilePath(listener.path)) { event in
                switch event {
                case .connected: seen.append("connected")
                case .received: seen.append("received")
                case .closed: seen.append("closed")
                }
                if seen.last == closeOn { stream?.close() }
            }
            try stream?.connect()
            // Long enough for the peer's second piece and its close to arrive, were anyone listening.
            loop.schedule(after: .milliseconds(150)) { loop.stop() }
            try loop.runForTest(deadline: .seconds(10))
            XCTAssertEqual(seen, closeOn == "connected" ? ["connected"] : ["connected", "received"], closeOn)
            XCTAssertTrue(stream?.isClosed ?? false)
            stream = nil
        }
    }

    func testDroppingAnOpenStreamClosesItsSocket() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        var peerClosed = false
        let listener = try TestUnixListener(loop: loop, path: temp.file("s.sock")) { connection in
            connection.onClose = { peerClosed = true }
        }
        var stream: UnixStream? = UnixStream(loop: loop, path: FilePath(listener.path)) { _ in }
        try stream?.connect()
        try loop.runForTest(deadline: .seconds(10), until: { listener.acceptedCount == 1 })
        stream = nil
        try loop.runForTest(deadline: .seconds(10), until: { peerClosed })
    }

    // MARK: Helpers

    /// Leaves a socket file that nobody listens on, as a crashed server does.
    private func bindWithoutListening(_ path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var address = unixAddress(path)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(result, 0)
    }
}

private func unixAddress(_ path: String) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    return address
}

/// A listening unix socket on the test's loop. Each accepted connection is handed to
/// `onAccept`, which says what the server does with it.
private final class TestUnixListener {
    final class Connection {
        let fd: Int32
        var registration: IORegistration?
        var onData: ([UInt8]) -> Void = { _ in }
        var onClose: () -> Void = {}

        init(fd: Int32) { self.fd = fd }

        /// Small answers only: the socket buffer takes them whole. False if the client is gone.
        @discardableResult
        func send(_ bytes: [UInt8]) -> Bool {
            guard registration != nil else { return false }
            return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
        }

        func close() {
            guard registration != nil else { return }
            registration?.cancel()
            registration = nil
            Glibc.close(fd)
        }
    }

    let path: String
    private let fd: Int32
    private let loop: EventLoop
    private var registration: IORegistration?
    private var connections: [Connection] = []
    private let onAccept: (Connection) -> Void
    private(set) var acceptedCount = 0

    private let readsFromClients: Bool

    init(loop: EventLoop, path: String, backlog: Int32 = 16, accepting: Bool = true, readsFromClients: Bool = true,
         onAccept: @escaping (Connection) -> Void = { _ in }) throws {
        self.loop = loop
        self.path = path
        self.onAccept = onAccept
        self.readsFromClients = readsFromClients
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = unixAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, backlog) == 0 else { throw SystemError("bind/listen", subject: path) }
        if accepting {
            registration = try loop.register(fd: fd, interest: .readable) { [weak self] _ in self?.acceptOne() }
        }
    }

    deinit {
        for connection in connections { connection.close() }
        registration?.cancel()
        Glibc.close(fd)
    }

    func acceptOne() {
        let client = accept(fd, nil, nil)
        guard client >= 0 else { return }
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        acceptedCount += 1
        let connection = Connection(fd: client)
        connections.append(connection)
        connection.registration = try? loop.register(fd: client, interest: readsFromClients ? .readable : []) { [weak connection] _ in
            guard let connection else { return }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let got = read(connection.fd, &buffer, buffer.count)
            if got > 0 {
                connection.onData(Array(buffer[..<got]))
            } else if got == 0 || (errno != EAGAIN && errno != EINTR) {
                connection.close()
                connection.onClose()
            }
        }
        onAccept(connection)
    }

    /// Connects plain sockets until the kernel refuses one with EAGAIN (the backlog is full);
    /// returns the ones that got in. The caller closes them.
    func fillBacklog() throws -> [Int32] {
        var queued: [Int32] = []
        while queued.count < 64 {
            let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var address = unixAddress(path)
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(client, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            let code = errno
            if result == 0 {
                queued.append(client)
                continue
            }
            Glibc.close(client)
            if code == EAGAIN { return queued }
            throw SystemError("connect", subject: path, errno: code)
        }
        throw SystemError("connect", subject: "backlog never filled", errno: 0)
    }
}
