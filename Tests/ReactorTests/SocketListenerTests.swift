import Glibc
import XCTest
@testable import Reactor
import TestSupport

/// `SocketListener` (TCP) and `SimpleHTTPServer` against real clients on 127.0.0.1: curl (through
/// `HTTPClient`) for ordinary traffic, raw sockets for the hostile kinds (slow, oversized,
/// idle, never reading).
final class SocketListenerTests: XCTestCase {
    // MARK: Many clients

    func testServesHundredsOfClientsOneRequestPerConnectionWithinTheConnectionCap() throws {
        let loop = try EventLoop()
        var server: SimpleHTTPServer!
        var peakConnections = 0
        server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0,
                                      configuration: .init(maxConnections: 8)) { request in
            peakConnections = max(peakConnections, server.openConnections)
            return .init(status: 200, text: "you asked for \(request.target)")
        }
        let client = try HTTPClient(loop: loop, configuration: .init(
            maxConcurrentTransfers: 100, maxConnectionsPerHost: 100, maxTotalConnections: 100))
        let count = 300
        var results: [Int: Result<HTTPResponse, HTTPError>] = [:]
        for index in 0..<count {
            client.start(.get("http://127.0.0.1:\(server.port)/item/\(index)")) { result in
                results[index] = result
                if results.count == count { loop.stop() }
            }
        }
        try loop.runForTest()

        for index in 0..<count {
            let response = try XCTUnwrap(results[index]).get()
            XCTAssertEqual(response.statusCode, 200)
            XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "you asked for /item/\(index)")
        }
        XCTAssertEqual(server.connectionsAccepted, count, "Connection: close: one connection per request")
        XCTAssertEqual(server.responsesSent, count)
        XCTAssertLessThanOrEqual(peakConnections, 8, "never more connections than the cap")
        try loop.runForTest(until: { server.openConnections == 0 })
        XCTAssertEqual(server.queuedBytes, 0)
        XCTAssertEqual(server.connectionsTimedOut, 0)
    }

    func testAFullServerGivesANewcomerTheSlotOfTheOldestIdleConnection() throws {
        let loop = try EventLoop()
        let server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0,
                                          configuration: .init(maxConnections: 4, requestTimeout: .seconds(30),
                                                               deferAcceptUntilRequest: false)) { request in
            .init(status: 200, text: "served \(request.target)")
        }
        // Four clients that connect and say nothing hold every slot.
        var idle: [RawClient] = []
        for _ in 0..<4 {
            idle.append(try RawClient(loop: loop, port: server.port))
            try loop.runForTest(until: { server.openConnections == idle.count })
        }

        // The oldest one asks at last, at the same moment a newcomer arrives: whichever event
        // the loop sees first, the request already in the socket is answered, not evicted.
        idle[0].send("GET /first HTTP/1.1\r\n\r\n")
        let newcomer = try RawClient(loop: loop, port: server.port)
        newcomer.send("GET /new HTTP/1.1\r\n\r\n")
        try loop.runForTest(until: { newcomer.isClosed && idle[0].isClosed })
        XCTAssertTrue(newcomer.text.hasSuffix("\r\n\r\nserved /new"), newcomer.text)
        XCTAssertTrue(idle[0].text.hasSuffix("\r\n\r\nserved /first"), idle[0].text)
        XCTAssertTrue(idle[1...].allSatisfy { !$0.isClosed }, "an answered connection made the room")
        try loop.runForTest(until: { server.openConnections == 3 })

        // Full again with a silent newcomer; the next one takes the slot of the oldest silent
        // connection at once, instead of waiting in the backlog for a timeout.
        let evictedBefore = server.connectionsEvicted
        let silent = try RawClient(loop: loop, port: server.port)
        try loop.runForTest(until: { server.openConnections == 4 })
        let asking = try RawClient(loop: loop, port: server.port)
        asking.send("GET /asking HTTP/1.1\r\n\r\n")
        try loop.runForTest(until: { asking.isClosed && idle[1].isClosed })
        XCTAssertTrue(asking.text.hasSuffix("\r\n\r\nserved /asking"), asking.text)
        XCTAssertTrue(idle[1].received.isEmpty, "the oldest silent connection is closed without an answer")
        XCTAssertFalse(idle[2].isClosed)
        XCTAssertFalse(idle[3].isClosed)
        XCTAssertFalse(silent.isClosed)
        XCTAssertEqual(server.connectionsEvicted, evictedBefore + 1)
        XCTAssertLessThanOrEqual(server.openConnections, 4)
        XCTAssertEqual(server.connectionsTimedOut, 0, "nobody waited for a timeout")
        for client in idle + [silent] { client.close() }
    }

    func testOverTCPASilentConnectionIsNotTakenUntilItSpeaks() throws {
        let loop = try EventLoop()
        let server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0) { request in
            .init(status: 200, text: "served \(request.target)")
        }
        let silent = try (0..<3).map { _ in try RawClient(loop: loop, port: server.port) }
        let speaking = try RawClient(loop: loop, port: server.port)
        speaking.send("GET /spoke HTTP/1.1\r\n\r\n")
        // The same wait sees the speaking client taken and answered, the silent ones not.
        try runLoop(loop, for: .milliseconds(300))
        XCTAssertTrue(speaking.text.hasSuffix("\r\n\r\nserved /spoke"), speaking.text)
        XCTAssertEqual(server.connectionsAccepted, 1, "the kernel holds the silent ones")

        silent[0].send("GET /late HTTP/1.1\r\n\r\n")
        try loop.runForTest(until: { silent[0].isClosed })
        XCTAssertTrue(silent[0].text.hasSuffix("\r\n\r\nserved /late"), silent[0].text)
        XCTAssertEqual(server.connectionsAccepted, 2)
        for client in silent { client.close() }
    }

    func testWhenEverySlotIsWritingTheClientThatStoppedReadingLongestMakesRoom() throws {
        let loop = try EventLoop()
        let big = [UInt8](repeating: UInt8(ascii: "w"), count: 8 << 20)
        let server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0,
                                          configuration: .init(maxConnections: 2, sendIdleTimeout: .seconds(30))) { request in
            request.target == "/small" ? .init(status: 200, text: "small") : .init(status: 200, body: big)
        }
        // Two clients ask for the big answer and stop reading: both slots are writing.
        let first = try RawClient(loop: loop, port: server.port, reads: false)
        first.send("GET /big HTTP/1.1\r\n\r\n")
        try loop.runForTest(until: { server.queuedBytes > 0 })
        let second = try RawClient(loop: loop, port: server.port, reads: false)
        second.send("GET /big HTTP/1.1\r\n\r\n")
        try loop.runForTest(until: { server.queuedBytes > big.count })

        let newcomer = try RawClient(loop: loop, port: server.port)
        newcomer.send("GET /small HTTP/1.1\r\n\r\n")
        try loop.runForTest(until: { newcomer.isClosed })
        XCTAssertTrue(newcomer.text.hasSuffix("\r\n\r\nsmall"), newcomer.text)
        XCTAssertEqual(server.connectionsEvicted, 1)
        try loop.runForTest(until: { server.openConnections == 1 })
        XCTAssertGreaterThan(server.queuedBytes, 0, "one writer still holds its answer")
        XCTAssertLessThanOrEqual(server.queuedBytes, big.count)
        // The first writer stalled first: it is the one closed (after the bytes already in
        // the kernel's buffers, its stream ends).
        try loop.runForTest(until: { first.isClosedByServer() })
        first.close()
        second.close()
    }

    // MARK: Hostile clients

    func testOversizedHeadGets431AndTheConnectionEnds() throws {
        let loop = try EventLoop()
        var handled = 0
        let server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0) { _ in
            handled += 1
            return .init(status: 200, text: "ok")
        }
        // Just under the 8 KiB cap: fine.
        let fits = try RawClient(loop: loop, port: server.port)
        fits.send("GET / HTTP/1.1\r\nX-Filler: \(String(repeating: "a", count: 8_000))\r\n\r\n")
        // Endless header bytes without the blank line.
        let endless = try RawClient(loop: loop, port: server.port)
        endless.send("GET / HTTP/1.1\r\nX-Filler: " + String(repeating: "b", count: 20_000))
        try loop.runForTest(until: { fits.isClosed && endless.isClosed })

        XCTAssertTrue(fits.text.hasPrefix("HTTP/1.1 200 OK\r\n"), fits.text)
        XCTAssertTrue(endless.text.hasPrefix("HTTP/1.1 431 "), endless.text)
        XCTAssertEqual(handled, 1, "the oversized request never reaches the handler")
        try loop.runForTest(until: { server.openConnections == 0 })
    }

    func testSlowlorisIsCutOffAtTheDeadlineWhileOthersAreServed() throws {
        let loop = try EventLoop()
        let server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0,
                                          configuration: .init(requestTimeout: .milliseconds(400))) { _ in
            .init(status: 200, text: "ok")
        }
        let slow = try RawClient(loop: loop, port: server.port)
        let started = MonotonicInstant.now()
        // One header byte every 20 ms: each arrival would reset an idle timer, never a deadline.
        var drip: (() -> Void)?
        drip = {
            guard !slow.isClosed else { return }
            slow.send("x")
            loop.schedule(after: .milliseconds(20)) { drip?() }
        }
        slow.send("GET / HTTP/1.1\r\nX-Slow: ")
        drip?()
        // An ordinary client meanwhile is answered at once.
        let quick = try RawClient(loop: loop, port: server.port)
        quick.send("GET / HTTP/1.0\r\n\r\n")
        try loop.runForTest(until: { quick.isClosed })
        XCTAssertTrue(quick.text.hasPrefix("HTTP/1.1 200 OK"), quick.text)
        XCTAssertFalse(slow.isClosed)

        try loop.runForTest(until: { slow.isClosed })
        drip = nil
        let lasted = MonotonicInstant.now().duration(since: started)
        XCTAssertGreaterThanOrEqual(lasted, .milliseconds(390))
        XCTAssertLessThan(lasted, .seconds(3))
        XCTAssertTrue(slow.received.isEmpty, "dropped without an answer")
        XCTAssertEqual(server.connectionsTimedOut, 1)
        XCTAssertEqual(server.openConnections, 0)
    }

    func testClientThatNeverReadsTheAnswerIsDroppedAndItsBytesReleased() throws {
        let loop = try EventLoop()
        let big = [UInt8](repeating: UInt8(ascii: "m"), count: 16 << 20)
        let server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0,
                                          configuration: .init(sendIdleTimeout: .milliseconds(300))) { _ in
            .init(status: 200, headers: [("Content-Type", "text/plain")], body: big)
        }
        let stuck = try RawClient(loop: loop, port: server.port, reads: false)
        stuck.send("GET / HTTP/1.1\r\n\r\n")
        try loop.runForTest(until: { server.queuedBytes > 0 })
        try loop.runForTest(until: { server.connectionsTimedOut == 1 })
        XCTAssertEqual(server.queuedBytes, 0)
        XCTAssertEqual(server.openConnections, 0)
        XCTAssertEqual(server.responsesSent, 0)
        stuck.close()
    }

    func testClientReadingTheAnswerByDropsIsCutOffAtTheResponseDeadline() throws {
        let loop = try EventLoop()
        let big = [UInt8](repeating: UInt8(ascii: "d"), count: 96 << 20)
        let server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0,
                                          configuration: .init(sendIdleTimeout: .milliseconds(600),
                                                               responseTimeout: .milliseconds(1500),
                                                               maxQueuedBytes: 256 << 20)) { _ in
            .init(status: 200, body: big)
        }
        let trickle = try RawClient(loop: loop, port: server.port, reads: false, receiveBuffer: nil)
        trickle.send("GET / HTTP/1.1\r\n\r\n")
        let started = MonotonicInstant.now()
        // 512 KiB every 20 ms (25 MB/s): never idle for the 600 ms the idle timeout allows
        // (the server's send buffer frees often enough), yet 96 MB would take about 4 s.
        var taken = 0
        var sip: (() -> Void)?
        sip = {
            taken += trickle.readSome(512 << 10)
            loop.schedule(after: .milliseconds(20)) { sip?() }
        }
        sip?()
        try loop.runForTest(until: { server.connectionsTimedOut == 1 })
        sip = nil
        let lasted = MonotonicInstant.now().duration(since: started)
        XCTAssertGreaterThanOrEqual(lasted, .milliseconds(1450), "idle never: only the whole-answer deadline ends it")
        XCTAssertLessThan(lasted, .seconds(4))
        XCTAssertGreaterThan(taken, 8 << 20, "the client did take bytes all along")
        XCTAssertLessThan(taken, big.count)
        XCTAssertEqual(server.queuedBytes, 0)
        XCTAssertEqual(server.openConnections, 0)
        trickle.close()
    }

    func testAnswersBeyondTheQueuedBytesLimitBecome503() throws {
        let loop = try EventLoop()
        let server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0,
                                          configuration: .init(maxQueuedBytes: 1 << 20)) { _ in
            .init(status: 200, body: [UInt8](repeating: 1, count: 2 << 20))
        }
        let client = try RawClient(loop: loop, port: server.port)
        client.send("GET / HTTP/1.1\r\n\r\n")
        try loop.runForTest(until: { client.isClosed })
        XCTAssertTrue(client.text.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), client.text)
        XCTAssertEqual(server.queuedBytes, 0)
    }

    // MARK: HTTP

    func testMalformedRequestsGetTheirStatusAndHeadGetsNoBody() throws {
        let loop = try EventLoop()
        var seen: [SimpleHTTPServer.Request] = []
        let server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0) { request in
            seen.append(request)
            return .init(status: 200, headers: [("X-Evil", "a\r\nSet-Cookie: x"), ("X-Fine", "yes")], body: Array("body!".utf8))
        }
        let requests = [
            "garbage": "NOT HTTP AT ALL\r\n\r\n",
            "version": "GET / HTTP/2.0\r\n\r\n",
            "head": "HEAD /metrics?x=1 HTTP/1.1\r\nHost:  example \r\n\r\n",
            "bare": "GET /lf HTTP/1.0\n\n",
        ]
        var clients: [String: RawClient] = [:]
        for (name, text) in requests {
            let client = try RawClient(loop: loop, port: server.port)
            client.send(text)
            clients[name] = client
        }
        try loop.runForTest(until: { clients.values.allSatisfy(\.isClosed) })

        XCTAssertTrue(clients["garbage"]!.text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), clients["garbage"]!.text)
        XCTAssertTrue(clients["version"]!.text.hasPrefix("HTTP/1.1 505 "), clients["version"]!.text)
        let head = clients["head"]!.text
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 200 OK\r\n"), head)
        XCTAssertTrue(head.contains("\r\nContent-Length: 5\r\n"), head)
        XCTAssertTrue(head.contains("\r\nConnection: close\r\n"), head)
        XCTAssertTrue(head.hasSuffix("\r\n\r\n"), "HEAD: no body: \(head)")
        XCTAssertTrue(head.contains("X-Fine: yes"), head)
        XCTAssertFalse(head.contains("Set-Cookie"), "a field with a line break is not sent")
        XCTAssertTrue(clients["bare"]!.text.hasSuffix("\r\n\r\nbody!"), clients["bare"]!.text)

        let headRequest = try XCTUnwrap(seen.first { $0.method == "HEAD" })
        XCTAssertEqual(headRequest.path, "/metrics")
        XCTAssertEqual(headRequest.target, "/metrics?x=1")
        XCTAssertEqual(headRequest.header("HOST"), "example")
        XCTAssertEqual(seen.count, 2, "only well-formed requests reach the handler")
    }

    // MARK: Listening

    func testListensOnIPv6LoopbackAndReportsBindFailuresWithTheAddress() throws {
        let loop = try EventLoop()
        let v4 = try SocketListener(loop: loop, host: "127.0.0.1", port: 0) { _ in }
        XCTAssertNotEqual(v4.port, 0)
        XCTAssertEqual(v4.addressDescription, "127.0.0.1:\(v4.port)")

        XCTAssertThrowsError(try SocketListener(loop: loop, host: "127.0.0.1", port: v4.port) { _ in }) { error in
            let failure = error as? SystemError
            XCTAssertEqual(failure?.call, "bind")
            XCTAssertEqual(failure?.errno, EADDRINUSE)
            XCTAssertEqual(failure?.subject, "127.0.0.1:\(v4.port)")
        }
        XCTAssertThrowsError(try SocketListener(loop: loop, host: "localhost", port: 9) { _ in }) { error in
            XCTAssertEqual((error as? SystemError)?.call, "inet_pton")
        }
        // 192.0.2.1 (TEST-NET-1) is on no interface of this host.
        XCTAssertThrowsError(try SocketListener(loop: loop, host: "192.0.2.1", port: 0) { _ in }) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EADDRNOTAVAIL)
        }

        let v6: SimpleHTTPServer
        switch Result(catching: { () throws(SystemError) -> SimpleHTTPServer in
            try SimpleHTTPServer(loop: loop, host: "::1", port: 0) { _ in .init(status: 200, text: "over v6") }
        }) {
        case .success(let server):
            v6 = server
        case .failure(let error):
            if error.errno == EADDRNOTAVAIL || error.errno == EAFNOSUPPORT { throw XCTSkip("no IPv6 loopback here: \(error)") }
            throw error
        }
        XCTAssertEqual(v6.addressDescription, "[::1]:\(v6.port)")
        let client = try HTTPClient(loop: loop)
        var result: Result<HTTPResponse, HTTPError>?
        client.start(.get("http://[::1]:\(v6.port)/")) { result = $0; loop.stop() }
        try loop.runForTest()
        XCTAssertEqual(String(decoding: try XCTUnwrap(result).get().body, as: UTF8.self), "over v6")

        v4.close()
        v4.close()
        XCTAssertTrue(v4.isClosed)
        XCTAssertFalse(loopbackPortAccepts(v4.port), "closed: nothing listens any more")
    }

    func testPausedListenerTakesNothingUntilResumed() throws {
        let loop = try EventLoop()
        var accepted: [Int32] = []
        let listener = try SocketListener(loop: loop, host: "127.0.0.1", port: 0) { event in
            if case .accepted(let fd) = event { accepted.append(fd) }
        }
        listener.pauseAccepting()
        XCTAssertFalse(listener.isAccepting)
        let clients = try (0..<3).map { _ in try RawClient(loop: loop, port: listener.port) }
        try runLoop(loop, for: .milliseconds(100))
        XCTAssertTrue(accepted.isEmpty)
        listener.resumeAccepting()
        try loop.runForTest(until: { accepted.count == 3 })
        for fd in accepted {
            XCTAssertNotEqual(fcntl(fd, F_GETFL) & O_NONBLOCK, 0, "accepted sockets are non-blocking")
            XCTAssertNotEqual(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0, "and close-on-exec")
            close(fd)
        }
        for client in clients { client.close() }
    }

    // MARK: Helpers

    /// Runs the loop for a while, to show that something does not happen.
    private func runLoop(_ loop: EventLoop, for duration: Duration) throws {
        loop.schedule(after: duration) { loop.stop() }
        try loop.run()
    }
}

/// A plain TCP client on the loop: connects (blocking: on loopback the handshake completes
/// at once, backlog permitting), sends what it is told, collects what comes back until the
/// server closes.
private final class RawClient {
    private var fd: Int32
    private var registration: IORegistration?
    private(set) var received: [UInt8] = []
    private(set) var isClosed = false
    var text: String { String(decoding: received, as: UTF8.self) }

    /// `reads: false` leaves the answer in the socket, like a client that stopped reading.
    /// `receiveBuffer` (for those): a small window, so the server's side fills quickly.
    init(loop: EventLoop, port: UInt16, reads: Bool = true, receiveBuffer: Int32? = 4096) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        if !reads, var size = receiveBuffer {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let error = SystemError("connect")
            Glibc.close(fd)
            throw error
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        guard reads else { return }
        registration = try loop.register(fd: fd, interest: .readable) { [weak self] _ in self?.readAvailable() }
    }

    deinit { close() }

    /// Small writes only: they fit in the socket buffer at once.
    func send(_ text: String) {
        guard !isClosed else { return }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// For a client made with `reads: false`: takes up to `count` bytes without waiting.
    func readSome(_ count: Int) -> Int {
        guard fd >= 0 else { return 0 }
        var buffer = [UInt8](repeating: 0, count: count)
        return max(0, buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) })
    }

    /// For a client made with `reads: false`: whether the server has closed (or reset) the
    /// connection. Reads and drops what is in the socket.
    func isClosedByServer() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while fd >= 0 {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got > 0 { continue }
            return got == 0 || !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        }
        return true
    }

    func close() {
        guard fd >= 0 else { return }
        registration?.cancel()
        registration = nil
        Glibc.close(fd)
        fd = -1
        isClosed = true
    }

    private func readAvailable() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fd >= 0 {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got > 0 {
                received.append(contentsOf: buffer[0..<got])
                continue
            }
            if got < 0 && errno == EINTR { continue }
            if got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            close()
            return
        }
    }
}
