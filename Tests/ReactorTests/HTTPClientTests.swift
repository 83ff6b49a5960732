import Glibc
import XCTest
@testable import Reactor
import TestSupport

final class HTTPClientTests: XCTestCase {
    // MARK: Many transfers

    func testHundredsOfConcurrentGetsAndPostsAllCompleteWithTheirOwnBodies() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { request in
            if request.method == "POST" {
                return .respond(.init(headers: [("Content-Type", "application/octet-stream")], body: request.body))
            }
            return .text("item \(request.path.dropFirst("/item/".count))")
        }
        let client = try HTTPClient(loop: loop, configuration: .init(
            maxConcurrentTransfers: 64, maxConnectionsPerHost: 8, maxTotalConnections: 16))

        let getCount = 200
        let postBodies: [[UInt8]] = (0..<20).map { index in
            (0..<(index * 3_001)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
        }
        var getResults: [Int: Result<HTTPResponse, HTTPError>] = [:]
        var postResults: [Int: Result<HTTPResponse, HTTPError>] = [:]
        func checkDone() {
            if getResults.count == getCount && postResults.count == postBodies.count { loop.stop() }
        }
        for index in 0..<getCount {
            client.start(.get(server.url("/item/\(index)"))) { getResults[index] = $0; checkDone() }
        }
        for (index, body) in postBodies.enumerated() {
            client.start(.post(server.url("/echo"), body: body, contentType: "application/octet-stream")) {
                postResults[index] = $0
                checkDone()
            }
        }
        XCTAssertEqual(client.activeTransferCount, 64)
        XCTAssertEqual(client.queuedTransferCount, getCount + postBodies.count - 64)

        try loop.runForTest(deadline: .seconds(20))

        for index in 0..<getCount {
            let response = try XCTUnwrap(getResults[index]).get()
            XCTAssertEqual(response.statusCode, 200)
            XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "item \(index)")
        }
        for (index, body) in postBodies.enumerated() {
            XCTAssertEqual(try XCTUnwrap(postResults[index]).get().body, body, "POST \(index) echoed")
        }
        XCTAssertEqual(client.activeTransferCount, 0)
        XCTAssertEqual(client.queuedTransferCount, 0)
        XCTAssertLessThanOrEqual(server.maxSimultaneousConnections, 8)
        XCTAssertLessThan(server.connectionsAccepted, 40, "keep-alive connections are reused")
    }

    // MARK: Limits

    func testBodyCapCutsEndlessAndOversizedBodiesWithTooLarge() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { request in
            switch request.path {
            case "/endless": return .endlessBody(status: 200, headers: [], chunked: false)
            case "/endless-chunked": return .endlessBody(status: 200, headers: [], chunked: true)
            default: return .respond(.init(body: [UInt8](repeating: 7, count: 200_000)))
            }
        }
        let client = try HTTPClient(loop: loop)
        var errors: [String: HTTPError] = [:]
        for path in ["/endless", "/endless-chunked", "/announced"] {
            var request = HTTPRequest.get(server.url(path))
            request.maxBodyBytes = 100_000
            client.start(request) { result in
                if case .failure(let error) = result { errors[path] = error } else { XCTFail("\(path) succeeded") }
                if errors.count == 3 { loop.stop() }
            }
        }
        try loop.runForTest(deadline: .seconds(20))

        for path in ["/endless", "/endless-chunked", "/announced"] {
            let error = try XCTUnwrap(errors[path])
            XCTAssertEqual(error.reason, .tooLarge(limit: 100_000), path)
            XCTAssertEqual(error.description, "\(server.url(path)): response body larger than 100000 bytes")
        }
        // The client hung up, so the endless senders stop too.
        try loop.runForTest(deadline: .seconds(20), until: { server.openConnections == 0 })
    }

    func testOversizedHeadersFailWithHeadersTooLarge() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { _ in
            .respond(.init(headers: (0..<100).map { ("X-Filler-\($0)", String(repeating: "y", count: 200)) }))
        }
        let client = try HTTPClient(loop: loop)
        var outcome: Result<HTTPResponse, HTTPError>?
        var request = HTTPRequest.get(server.url("/"))
        request.maxHeaderBytes = 8 * 1024
        client.start(request) { outcome = $0; loop.stop() }
        try loop.runForTest(deadline: .seconds(20))
        XCTAssertEqual(outcome?.failure?.reason, .headersTooLarge(limit: 8 * 1024))
    }

    // MARK: Timeouts and connection failures

    func testTotalTimeoutEndsATransferToAHangingServer() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { _ in .hang }
        let client = try HTTPClient(loop: loop)
        var request = HTTPRequest.get(server.url("/slow"))
        request.totalTimeout = .milliseconds(300)
        var outcome: Result<HTTPResponse, HTTPError>?
        let start = MonotonicInstant.now()
        var elapsed = Duration.zero
        client.start(request) { result in
            elapsed = MonotonicInstant.now().duration(since: start)
            outcome = result
            loop.stop()
        }
        try loop.runForTest(deadline: .seconds(20))

        let error = try XCTUnwrap(outcome?.failure)
        XCTAssertEqual(error.reason, .timedOut(after: .milliseconds(300)))
        XCTAssertEqual(error.description, "\(server.url("/slow")): timed out after 300 ms")
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(300))
        XCTAssertLessThan(elapsed, .seconds(3))
        XCTAssertEqual(server.requestsServed, 1)
    }

    func testTrickledResponseIsCutByTheTotalTimeout() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { _ in
            .trickle(.init(body: [UInt8](repeating: 1, count: 1000)), bytes: 10, every: .milliseconds(50))
        }
        let client = try HTTPClient(loop: loop)
        var request = HTTPRequest.get(server.url("/trickle"))
        request.totalTimeout = .milliseconds(400)
        var outcome: Result<HTTPResponse, HTTPError>?
        client.start(request) { outcome = $0; loop.stop() }
        try loop.runForTest(deadline: .seconds(20))
        XCTAssertEqual(outcome?.failure?.reason, .timedOut(after: .milliseconds(400)))
    }

    func testConnectionRefusedGivesAClearConnectError() throws {
        let loop = try EventLoop()
        let closed = try TestHTTPServer(loop: loop) { _ in .hang }
        let port = closed.port
        closed.stop()
        let client = try HTTPClient(loop: loop)
        let url = "http://127.0.0.1:\(port)/x"
        var outcome: Result<HTTPResponse, HTTPError>?
        client.start(.get(url)) { outcome = $0; loop.stop() }
        try loop.runForTest(deadline: .seconds(20))

        let error = try XCTUnwrap(outcome?.failure)
        guard case .connectFailed(let message) = error.reason else {
            return XCTFail("expected connectFailed, got \(error)")
        }
        XCTAssertTrue(message.contains("\(port)"), message)
        XCTAssertTrue(error.description.hasPrefix("\(url): connect failed: "), error.description)
    }

    func testConnectTimeoutWhenTheServerNeverAcceptsTheConnection() throws {
        // A listener with a full backlog drops further SYNs, so connect() never completes.
        let listener = try FullBacklogListener()
        let loop = try EventLoop()
        let client = try HTTPClient(loop: loop)
        var request = HTTPRequest.get("http://127.0.0.1:\(listener.port)/")
        request.connectTimeout = .milliseconds(200)
        request.totalTimeout = .seconds(5)
        var outcome: Result<HTTPResponse, HTTPError>?
        client.start(request) { outcome = $0; loop.stop() }
        try loop.runForTest(deadline: .seconds(20))
        XCTAssertEqual(outcome?.failure?.reason, .connectTimedOut(after: .milliseconds(200)))
    }

    // MARK: Connections

    func testPerHostConnectionLimitIsKeptAndConnectionsAreReused() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { request in
            .delay(.milliseconds(5), then: .text("answer \(request.path)"))
        }
        let client = try HTTPClient(loop: loop, configuration: .init(
            maxConcurrentTransfers: 50, maxConnectionsPerHost: 2, maxTotalConnections: 10))
        let total = 60
        var bodies: [Int: String] = [:]
        for index in 0..<total {
            client.start(.get(server.url("/\(index)"))) { result in
                bodies[index] = (try? result.get()).map { String(decoding: $0.body, as: UTF8.self) } ?? "\(result)"
                if bodies.count == total { loop.stop() }
            }
        }
        try loop.runForTest(deadline: .seconds(20))

        for index in 0..<total { XCTAssertEqual(bodies[index], "answer /\(index)") }
        XCTAssertEqual(server.requestsServed, total)
        XCTAssertLessThanOrEqual(server.maxSimultaneousConnections, 2)
        XCTAssertLessThanOrEqual(server.connectionsAccepted, 2, "two connections carry all \(total) requests")
    }

    func testCompletionHandlerCanStartTheNextTransferOnTheSameConnection() throws {
        let loop = try EventLoop()
        var connectionsSeen: Set<Int> = []
        let server = try TestHTTPServer(loop: loop) { request in
            connectionsSeen.insert(request.connectionNumber)
            return .text("step \(request.path)")
        }
        let client = try HTTPClient(loop: loop)
        var answers: [String] = []
        func step(_ index: Int) {
            client.start(.get(server.url("/\(index)"))) { result in
                answers.append((try? result.get()).map { String(decoding: $0.body, as: UTF8.self) } ?? "\(result)")
                if index < 19 { step(index + 1) } else { loop.stop() }
            }
        }
        step(0)
        try loop.runForTest(deadline: .seconds(20))

        XCTAssertEqual(answers, (0..<20).map { "step /\($0)" })
        XCTAssertEqual(server.connectionsAccepted, 1)
        XCTAssertEqual(connectionsSeen, [1])
    }

    // MARK: Responses and requests

    func testContentTypeAndCacheControlOfTheFinalResponseAreReported() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { request in
            switch request.path {
            case "/old": return .redirect(to: "/new", status: 302)
            default:
                return .respond(.init(headers: [("Content-Type", "application/ocsp-response"),
                                                ("cache-control", "max-age=600"),
                                                ("Cache-Control", " public, no-transform ")],
                                      body: [0x30, 0x03, 0x0A, 0x01, 0x00]))
            }
        }
        let client = try HTTPClient(loop: loop)
        var outcome: Result<HTTPResponse, HTTPError>?
        client.start(.get(server.url("/old"))) { outcome = $0; loop.stop() }
        try loop.runForTest(deadline: .seconds(20))

        let response = try XCTUnwrap(outcome).get()
        XCTAssertEqual(response.statusCode, 200)
        XCTAssertEqual(response.contentType, "application/ocsp-response")
        XCTAssertEqual(response.cacheControl, "max-age=600, public, no-transform")
        XCTAssertEqual(response.body, [0x30, 0x03, 0x0A, 0x01, 0x00])
        XCTAssertEqual(response.url, server.url("/old"))
        XCTAssertEqual(response.finalURL, server.url("/new"))
    }

    func testRedirectsAreLimitedToThreeAndToHTTP() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { request in
            switch request.path {
            case "/ftp": return .redirect(to: "ftp://127.0.0.1/file", status: 302)
            case "/3": return .text("arrived")
            default: return .redirect(to: "/\(Int(request.path.dropFirst())! + 1)", status: 301)
            }
        }
        let client = try HTTPClient(loop: loop)
        var outcomes: [String: Result<HTTPResponse, HTTPError>] = [:]
        let urls = ["/0", "/-1", "/ftp"].map { server.url($0) } + ["ftp://127.0.0.1/file"]
        for url in urls {
            client.start(.get(url)) { result in
                outcomes[url] = result
                if outcomes.count == urls.count { loop.stop() }
            }
        }
        try loop.runForTest(deadline: .seconds(20))

        XCTAssertEqual(try outcomes[server.url("/0")]?.get().body, Array("arrived".utf8), "three redirects are followed")
        XCTAssertEqual(outcomes[server.url("/-1")]?.failure?.reason, .tooManyRedirects(limit: 3))
        XCTAssertEqual(outcomes[server.url("/-1")]?.failure?.description, "\(server.url("/-1")): more than 3 redirects")
        guard case .protocolError = outcomes[server.url("/ftp")]?.failure?.reason else {
            return XCTFail("a redirect to ftp must be refused, got \(String(describing: outcomes[server.url("/ftp")]))")
        }
        guard case .invalidRequest = outcomes["ftp://127.0.0.1/file"]?.failure?.reason else {
            return XCTFail("an ftp URL must be refused, got \(String(describing: outcomes["ftp://127.0.0.1/file"]))")
        }
        XCTAssertEqual(server.requestsServed, 4 + 4 + 1, "/0 to /3; /-1 to /2, whose redirect is the fourth; /ftp")
    }

    func testRedirectedPostIsRepeatedOn307AndBecomesGetOn303() throws {
        let loop = try EventLoop()
        var seen: [(method: String, path: String, body: [UInt8])] = []
        let server = try TestHTTPServer(loop: loop) { request in
            seen.append((request.method, request.path, request.body))
            switch request.path {
            case "/307": return .redirect(to: "/again", status: 307)
            case "/303": return .redirect(to: "/see", status: 303)
            default: return .text("done")
            }
        }
        let client = try HTTPClient(loop: loop)
        var outcomes: [String: Result<HTTPResponse, HTTPError>] = [:]
        for path in ["/307", "/303"] {
            client.start(.post(server.url(path), body: [1, 2, 3], contentType: "application/ocsp-request")) {
                outcomes[path] = $0
            }
        }
        try loop.runForTest(deadline: .seconds(20)) { outcomes.count == 2 }

        XCTAssertEqual(try outcomes["/307"]?.get().finalURL, server.url("/again"))
        XCTAssertEqual(try outcomes["/303"]?.get().finalURL, server.url("/see"))
        let again = try XCTUnwrap(seen.first { $0.path == "/again" })
        XCTAssertEqual(again.method, "POST")
        XCTAssertEqual(again.body, [1, 2, 3])
        let see = try XCTUnwrap(seen.first { $0.path == "/see" })
        XCTAssertEqual(see.method, "GET")
        XCTAssertEqual(see.body, [])
    }

    func testPostBodyHeadersAndUserAgentArriveIntact() throws {
        let loop = try EventLoop()
        var received: TestHTTPServer.Request?
        let server = try TestHTTPServer(loop: loop) { request in
            received = request
            return .respond(.init(status: 200))
        }
        let client = try HTTPClient(loop: loop, configuration: .init(userAgent: "stapler-test/1.0"))
        let body = (0..<4096).map { UInt8(truncatingIfNeeded: $0) }  // every byte value, NULs included
        var request = HTTPRequest.post(server.url("/ocsp"), body: body, contentType: "application/ocsp-request")
        request.headers.append(("X-Trace", "abc"))
        var outcome: Result<HTTPResponse, HTTPError>?
        client.start(request) { outcome = $0; loop.stop() }
        try loop.runForTest(deadline: .seconds(20))

        XCTAssertEqual(try outcome?.get().statusCode, 200)
        let seen = try XCTUnwrap(received)
        XCTAssertEqual(seen.method, "POST")
        XCTAssertEqual(seen.path, "/ocsp")
        XCTAssertEqual(seen.body, body)
        XCTAssertEqual(seen.header("content-type"), "application/ocsp-request")
        XCTAssertEqual(seen.header("user-agent"), "stapler-test/1.0")
        XCTAssertEqual(seen.header("x-trace"), "abc")
        XCTAssertNil(seen.header("expect"), "no 100-continue round trip")
    }

    func testErrorStatusFailsUnlessTheRequestAcceptsIt() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { _ in .text("nope", status: 404) }
        let client = try HTTPClient(loop: loop)
        var strict: Result<HTTPResponse, HTTPError>?
        var lenient: Result<HTTPResponse, HTTPError>?
        client.start(.get(server.url("/missing"))) { strict = $0; if lenient != nil { loop.stop() } }
        var request = HTTPRequest.get(server.url("/missing"))
        request.errorStatusIsFailure = false
        client.start(request) { lenient = $0; if strict != nil { loop.stop() } }
        try loop.runForTest(deadline: .seconds(20))

        XCTAssertEqual(strict?.failure?.description, "\(server.url("/missing")): HTTP status 404")
        XCTAssertEqual(try lenient?.get().statusCode, 404)
        XCTAssertEqual(try lenient?.get().body, Array("nope".utf8))
    }

    func testBrokenServersGiveProtocolErrors() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { request in
            switch request.path {
            case "/close": return .close
            case "/garbage": return .raw(Array("\u{1}\u{2}garbage\r\n\r\n".utf8), thenClose: true)
            default: return .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".utf8), thenClose: true)
            }
        }
        let client = try HTTPClient(loop: loop)
        var outcomes: [String: Result<HTTPResponse, HTTPError>] = [:]
        for path in ["/close", "/garbage", "/short"] {
            client.start(.get(server.url(path))) { result in
                outcomes[path] = result
                if outcomes.count == 3 { loop.stop() }
            }
        }
        try loop.runForTest(deadline: .seconds(20))
        for path in ["/close", "/garbage", "/short"] {
            guard case .protocolError = outcomes[path]?.failure?.reason else {
                XCTFail("\(path): expected a protocol error, got \(String(describing: outcomes[path]))")
                continue
            }
        }
    }

    /// Answers the mutation run (contrib/fuzz/mutate-daemon.sh, seed 1) found reported in
    /// curl's words, which blame the caller or the memory: they now say what the server did.
    func testMalformedHeaderLineAndOversizedTrailerSayWhatTheServerDid() throws {
        let loop = try EventLoop()
        let trailer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-Trailer: "
            + String(repeating: "t", count: 70000) + "\r\n\r\n"
        let answers: [String: (bytes: String, reason: String)] = [
            // A bare CR before the colon: curl 7.88.1 says "A libcurl function was given a bad argument".
            "/bare-cr": ("HTTP/1.1 200 OK\r\nX\rY: 1\r\nContent-Length: 2\r\n\r\nab",
                         "protocol error: response header line that cannot be parsed (curl: "
                            + "A libcurl function was given a bad argument)"),
            // A trailer past curl's 64 KB buffer: curl says "Out of memory".
            "/trailer": (trailer, "protocol error: chunked trailer too long (curl: Out of memory in chunked-encoding)"),
            // The control: the same answer well formed.
            "/fine": ("HTTP/1.1 200 OK\r\nX-Y: 1\r\nContent-Length: 2\r\n\r\nab", ""),
        ]
        let server = try TestHTTPServer(loop: loop) { request in
            .raw(Array((answers[request.path]?.bytes ?? "").utf8), thenClose: true)
        }
        let client = try HTTPClient(loop: loop)
        var outcomes: [String: Result<HTTPResponse, HTTPError>] = [:]
        for path in answers.keys {
            client.start(.get(server.url(path))) { result in
                outcomes[path] = result
                if outcomes.count == answers.count { loop.stop() }
            }
        }
        try loop.runForTest(deadline: .seconds(20))
        XCTAssertEqual(try outcomes["/fine"]?.get().body, Array("ab".utf8))
        for (path, answer) in answers where !answer.reason.isEmpty {
            XCTAssertEqual(outcomes[path]?.failure?.description, "\(server.url(path)): \(answer.reason)")
        }
    }

    func testHeaderWithLineBreakIsRefusedWithoutSendingAnything() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { _ in .text("should not be asked") }
        let client = try HTTPClient(loop: loop)
        var outcome: Result<HTTPResponse, HTTPError>?
        client.start(.get(server.url("/"), headers: [("X-Evil", "a\r\nInjected: yes")])) { outcome = $0; loop.stop() }
        XCTAssertNil(outcome, "never completes from inside start")
        try loop.runForTest(deadline: .seconds(20))
        guard case .invalidRequest = outcome?.failure?.reason else { return XCTFail("\(String(describing: outcome))") }
        XCTAssertEqual(server.requestsServed, 0)
    }

    // MARK: Cancelling

    func testCancelledTransfersCompleteWithCancelledAndFreeTheirConnection() throws {
        let loop = try EventLoop()
        var hanging = 0
        let server = try TestHTTPServer(loop: loop) { _ in hanging += 1; return .hang }
        let client = try HTTPClient(loop: loop, configuration: .init(maxConcurrentTransfers: 1))
        var outcomes: [Int: Result<HTTPResponse, HTTPError>] = [:]
        var handles: [HTTPTransferHandle] = []
        for index in 0..<3 {
            handles.append(client.start(.get(server.url("/\(index)"))) { outcomes[index] = $0 })
        }
        XCTAssertEqual(client.activeTransferCount, 1)
        XCTAssertEqual(client.queuedTransferCount, 2)

        // Cancel the queued third one at once, the running first one once the server has it.
        XCTAssertTrue(client.cancel(handles[2]))
        XCTAssertNil(outcomes[2], "the completion is deferred, not called from inside cancel")
        XCTAssertFalse(client.cancel(handles[2]), "a second cancel finds nothing")
        try loop.runForTest(deadline: .seconds(20), until: { hanging == 1 })
        XCTAssertTrue(client.cancel(handles[0]))
        XCTAssertNil(outcomes[0])

        // The second one moves up and reaches the server; then everything is cancelled.
        try loop.runForTest(deadline: .seconds(20), until: { hanging == 2 })
        XCTAssertEqual(client.activeTransferCount, 1)
        XCTAssertEqual(client.queuedTransferCount, 0)
        client.cancelAll()
        XCTAssertEqual(client.activeTransferCount, 0)
        try loop.runForTest(deadline: .seconds(20), until: { outcomes.count == 3 && server.openConnections == 0 })

        for index in 0..<3 {
            XCTAssertEqual(outcomes[index]?.failure?.reason, .cancelled, "transfer \(index)")
        }
        XCTAssertEqual(outcomes[0]?.failure?.description, "\(server.url("/0")): cancelled")
        XCTAssertFalse(client.cancel(handles[1]), "a finished transfer cannot be cancelled")
    }

    func testCompletionMayCancelAnotherTransfer() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { request in
            request.path == "/fast" ? .text("fast") : .hang
        }
        let client = try HTTPClient(loop: loop)
        var slowOutcome: Result<HTTPResponse, HTTPError>?
        let slow = client.start(.get(server.url("/slow"))) { slowOutcome = $0; loop.stop() }
        var fastBody: [UInt8]?
        client.start(.get(server.url("/fast"))) { result in
            fastBody = try? result.get().body
            XCTAssertTrue(client.cancel(slow))
        }
        try loop.runForTest(deadline: .seconds(20))
        XCTAssertEqual(fastBody, Array("fast".utf8))
        XCTAssertEqual(slowOutcome?.failure?.reason, .cancelled)
    }

    func testDroppingTheClientClosesItsConnectionsWithoutCallingCompletions() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { request in
            request.path == "/fast" ? .text("fast") : .hang
        }
        var client: HTTPClient? = try HTTPClient(loop: loop)
        var hangingCompletions = 0
        for index in 0..<3 {
            client?.start(.get(server.url("/hang/\(index)"))) { _ in hangingCompletions += 1 }
        }
        var fastDone = false
        // Dropped from inside one of its own completions, with other transfers in flight.
        client?.start(.get(server.url("/fast"))) { _ in
            fastDone = true
            client = nil
        }
        try loop.runForTest(deadline: .seconds(20), until: { fastDone })
        XCTAssertNil(client)
        try loop.runForTest(deadline: .seconds(20), until: { server.openConnections == 0 })
        XCTAssertEqual(hangingCompletions, 0)
    }

    func testCancelAllThenDroppingTheClientStillReportsEveryTransfer() throws {
        let loop = try EventLoop()
        let server = try TestHTTPServer(loop: loop) { _ in .hang }
        var client: HTTPClient? = try HTTPClient(loop: loop, configuration: .init(maxConcurrentTransfers: 2))
        var reasons: [HTTPError.Reason] = []
        for index in 0..<5 {
            client?.start(.get(server.url("/\(index)"))) { reasons.append($0.failure?.reason ?? .curl(code: 0, message: "success")) }
        }
        try loop.runForTest(deadline: .seconds(20), until: { server.requestsServed == 2 })
        client?.cancelAll()
        client = nil
        try loop.runForTest(deadline: .seconds(20), until: { reasons.count == 5 && server.openConnections == 0 })
        XCTAssertEqual(reasons, Array(repeating: .cancelled, count: 5))
    }

    // MARK: Helpers
}


/// A TCP listener on 127.0.0.1 whose accept queue is full: further connection attempts get
/// no answer, as from a host that has gone silent.
private final class FullBacklogListener {
    let port: UInt16
    private var descriptors: [Int32] = []

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        descriptors.append(listener)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                guard bind(listener, raw, length) == 0, listen(listener, 0) == 0,
                      getsockname(listener, raw, &length) == 0 else { throw SystemError("bind/listen") }
            }
        }
        port = UInt16(bigEndian: address.sin_port)
        // Fill the queue: with backlog 0 the kernel still queues one connection (two on some
        // kernels); a non-blocking attempt that stays "in progress" shows it is full.
        for _ in 0..<8 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            descriptors.append(filler)
            let result = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, length) }
            }
            if result != 0 && errno == EINPROGRESS {
                var poller = pollfd(fd: filler, events: Int16(POLLOUT), revents: 0)
                if poll(&poller, 1, 100) == 0 { return }  // no handshake: the queue is full
            }
        }
        throw SystemError("connect", subject: "could not fill the accept queue", errno: 0)
    }

    deinit { for fd in descriptors { close(fd) } }
}

final class HTTPTransferTimingTextTests: XCTestCase {
    func testConnectFailureTextDropsCurlsTiming() {
        XCTAssertEqual(HTTPTransfer.withoutTiming(
            "Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server"),
            "Failed to connect to 127.0.0.1 port 1: Couldn't connect to server")
        XCTAssertEqual(HTTPTransfer.withoutTiming("Could not resolve host: x"), "Could not resolve host: x")
    }
}
