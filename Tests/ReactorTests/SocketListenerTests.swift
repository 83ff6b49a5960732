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

    func testConnectionCapMakesFurtherClientsWaitInTheBacklogUntilASlotFrees() throws {
        let loop = try EventLoop()
        let server = try SimpleHTTPServer(loop: loop, host: "127.0.0.1", port: 0,
                                          configuration: .init(maxConnections: 4, requestTimeout: .seconds(30))) { _ in
            .init(status: 200, text: "served")
        }
        // Four clients that connect and say nothing hold every slot.
        let idle = try (0..<4).map { _ in try RawClient(loop: loop, port: server.port) }
        try loop.runForTest(until: { server.openConnections == 4 })
        XCTAssertFalse(server.isClosed)

        // The kernel completes the fifth handshake (backlog), but the server does not take it.
        let waiting = try RawClient(loop: loop, port: server.port)
        waiting.send("GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        try runLoop(loop, for: .milliseconds(200))
        XCTAssertEqual(server.connectionsAccepted, 4)
        XCTAssertTrue(waiting.received.isEmpty, "no answer while every slot is taken")

        idle[0].close()
        try loop.runForTest(until: { waiting.isClosed })
        XCTAssertTrue(waiting.text.hasPrefix("HTTP/1.1 200 OK\r\n"), waiting.text)
        XCTAssertTrue(waiting.text.hasSuffix("\r\n\r\nserved"), waiting.text)
        XCTAssertEqual(server.connectionsAccepted, 5)
        for client in idle { client.close() }
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
    init(loop: EventLoop, port: UInt16, reads: Bool = true) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        if !reads {
            // A small receive window, so the server's side fills quickly.
            var size: Int32 = 4096
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
