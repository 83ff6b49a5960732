import Foundation
import Glibc
import Reactor
@testable import Stapler
import TestSupport
import XCTest

/// The socket client against a scripted stand-in for HAProxy's stats socket, for what a real
/// HAProxy will not do on demand: garbage, silence, hanging up mid-answer, answers cut into
/// single bytes, a foreign transaction.
final class HAProxyClientFaultTests: XCTestCase {
    private var temp: TemporaryDirectory!
    private var loop: EventLoop!
    private var events: [HAProxyClientEvent] = []
    private let certificate: FilePath = "/fake/certs/a.pem"
    private let staple: [UInt8] = Array(0..<200)

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "stapler-fake-haproxy")
        loop = try EventLoop()
        events = []
    }

    override func tearDown() {
        loop = nil
        temp = nil
    }

    func testGarbageAnswerIsRetriedOnAFreshConnection() throws {
        let server = try FakeStatsSocket(loop: loop, path: temp.file("s.sock")) { connection, command in
            connection == 0 && command.hasPrefix("set ssl ocsp-response") ? .answer("hello there") : nil
        }
        let client = makeClient(server)
        XCTAssertEqual(try push(to: client), .updated)
        let error = HAProxyClientError(socket: FilePath(server.path),
                                       reason: .unexpectedAnswer(command: "set ssl ocsp-response", answer: "hello there"))
        XCTAssertEqual(events, [.connected(socket: FilePath(server.path)), .failed(error, retryIn: .milliseconds(20)),
                                .connected(socket: FilePath(server.path))])
        XCTAssertEqual(server.connectionsAccepted, 2)
    }

    func testHAProxyHangingUpMidAnswerIsRetried() throws {
        let server = try FakeStatsSocket(loop: loop, path: temp.file("s.sock")) { connection, command in
            connection == 0 && command.hasPrefix("set ssl ocsp-response") ? .hangUpAfter("OCSP Resp") : nil
        }
        let client = makeClient(server)
        XCTAssertEqual(try push(to: client), .updated)
        guard case .failed(let error, _)? = events.dropFirst().first else { return XCTFail("\(events)") }
        XCTAssertEqual(error.reason, .connection(.closedByPeer))
    }

    func testSilenceAfterACommandIsATimeout() throws {
        let server = try FakeStatsSocket(loop: loop, path: temp.file("s.sock")) { connection, command in
            connection == 0 && command.hasPrefix("set ssl ocsp-response") ? .silence : nil
        }
        var configuration = HAProxySocketClient.Configuration()
        configuration.answerTimeout = .milliseconds(200)
        let client = makeClient(server, configuration: configuration)
        let started = MonotonicInstant.now()
        XCTAssertEqual(try push(to: client), .updated)
        XCTAssertGreaterThanOrEqual(MonotonicInstant.now().duration(since: started), .milliseconds(200))
        guard case .failed(let error, _)? = events.dropFirst().first else { return XCTFail("\(events)") }
        XCTAssertEqual(error.reason, .connection(.timedOut(.read, after: .milliseconds(200))))
    }

    func testFloodWithoutPromptIsCutAtTheAnswerLimit() throws {
        let server = try FakeStatsSocket(loop: loop, path: temp.file("s.sock")) { connection, command in
            connection == 0 && command.hasPrefix("set ssl ocsp-response")
                ? .raw([UInt8](repeating: UInt8(ascii: "x"), count: 10_000)) : nil
        }
        var configuration = HAProxySocketClient.Configuration()
        configuration.maxAnswerBytes = 4_096
        let client = makeClient(server, configuration: configuration)
        XCTAssertEqual(try push(to: client), .updated)
        guard case .failed(let error, _)? = events.dropFirst().first else { return XCTFail("\(events)") }
        XCTAssertEqual(error.reason, .answerTooLarge(command: "set ssl ocsp-response", limit: 4_096))
    }

    func testTransactionPathWithAnswersCutIntoSingleBytes() throws {
        let name = "/etc/haproxy/certs/a b.pem"
        let server = try FakeStatsSocket(loop: loop, path: temp.file("s.sock"), dribble: true) { _, command in
            switch command.split(separator: " ").prefix(3).joined(separator: " ") {
            case "set ssl ocsp-response":
                return .answer("OCSP single response: Certificate ID does not match any certificate or issuer.")
            case "show ssl cert": return .answer("# filename\n/etc/haproxy/certs/other.pem\n\(name)")
            case "set ssl cert": return .answer("+ + Transaction created for certificate \(name)!")
            case "commit ssl cert": return .answer("Committing \(name).\nSuccess!")
            default: return nil
            }
        }
        var configuration = HAProxySocketClient.Configuration()
        configuration.keepalive = .seconds(4)
        let client = HAProxySocketClient(loop: loop, socket: FilePath(server.path), configuration: configuration,
                                         resolvePath: { $0 == self.certificate ? FilePath(name) : nil }) { self.events.append($0) }
        XCTAssertEqual(try push(to: client), .installed)
        let base64 = Base64.encode(staple)
        XCTAssertEqual(server.commands, [
            "prompt",
            "set timeout cli 15",
            "set ssl ocsp-response \(base64)",
            "show ssl cert",
            "set ssl cert /etc/haproxy/certs/a\\ b.pem.ocsp <<\n\(base64)\n",
            "commit ssl cert /etc/haproxy/certs/a\\ b.pem",
        ])
        XCTAssertEqual(events, [.connected(socket: FilePath(server.path))])
    }

    func testAnotherClientsOpenTransactionIsNotCommitted() throws {
        let server = try FakeStatsSocket(loop: loop, path: temp.file("s.sock")) { _, command in
            switch command.split(separator: " ").prefix(3).joined(separator: " ") {
            case "set ssl ocsp-response":
                return .answer("OCSP single response: Certificate ID does not match any certificate or issuer.")
            case "show ssl cert": return .answer("# transaction\n*/other.pem\n# filename\n/other.pem\n/fake/certs/a.pem")
            case "set ssl cert": return .answer("Transaction updated for certificate /other.pem!")
            default: return nil
            }
        }
        let client = makeClient(server)
        client.push(staple: staple, certificate: certificate) { _ in }
        try loop.runForTest(deadline: .seconds(10), until: { client.isBackingOff })
        XCTAssertFalse(server.commands.contains { $0.hasPrefix("commit") })
        XCTAssertEqual(events.last, .failed(HAProxyClientError(socket: FilePath(server.path),
                                                               reason: .foreignTransaction(certificate: "/other.pem")),
                                            retryIn: .milliseconds(20)))
        XCTAssertEqual(client.pendingPushCount, 1)
        client.shutDown()
    }

    func testNewerStapleArrivingWhileOneIsInFlightIsTheOneSentAfterAFailure() throws {
        let server = try FakeStatsSocket(loop: loop, path: temp.file("s.sock")) { connection, command in
            connection == 0 && command.hasPrefix("set ssl ocsp-response") ? .silence : nil
        }
        var configuration = HAProxySocketClient.Configuration()
        configuration.answerTimeout = .milliseconds(200)
        let client = makeClient(server, configuration: configuration)
        let newer: [UInt8] = Array(50..<250)
        var olderResult: HAProxyPushResult?
        var newerResult: HAProxyPushResult?
        client.push(staple: staple, certificate: certificate) { olderResult = $0 }
        // prompt, set timeout cli, set ssl ocsp-response: the older staple is on the wire.
        try loop.runForTest(deadline: .seconds(10), until: { server.commands.count == 3 })
        client.push(staple: newer, certificate: certificate) { newerResult = $0 }
        XCTAssertNil(olderResult, "a staple on the wire is not replaced in the queue")
        XCTAssertEqual(client.pendingPushCount, 2)

        // HAProxy stays silent: the connection fails, and the newer staple goes on the next one.
        try loop.runForTest(deadline: .seconds(10), until: { newerResult != nil })
        XCTAssertEqual(olderResult, .superseded)
        XCTAssertEqual(newerResult, .updated)
        XCTAssertEqual(server.commands.filter { $0.hasPrefix("set ssl ocsp-response") },
                       ["set ssl ocsp-response \(Base64.encode(staple))", "set ssl ocsp-response \(Base64.encode(newer))"])
        XCTAssertEqual(server.connectionsAccepted, 2)
        XCTAssertEqual(client.pendingPushCount, 0)
    }

    func testShutDownWithAPushInFlightCancelsItAndTheQueuedOnesAndHangsUp() throws {
        let server = try FakeStatsSocket(loop: loop, path: temp.file("s.sock")) { _, command in
            command.hasPrefix("set ssl ocsp-response") ? .silence : nil
        }
        let client = makeClient(server)
        var results: [FilePath: HAProxyPushResult] = [:]
        func push(_ certificate: FilePath) {
            client.push(staple: staple, certificate: certificate) { results[certificate] = $0 }
        }
        push("/fake/certs/a.pem")
        try loop.runForTest(deadline: .seconds(10), until: { server.commands.count == 3 && server.openConnections == 1 })
        push("/fake/certs/b.pem")
        XCTAssertEqual(client.pendingPushCount, 2)
        XCTAssertTrue(client.isConnected)

        client.shutDown()
        XCTAssertEqual(results, ["/fake/certs/a.pem": .cancelled, "/fake/certs/b.pem": .cancelled])
        XCTAssertEqual(client.pendingPushCount, 0)
        XCTAssertFalse(client.isConnected)
        push("/fake/certs/c.pem")
        XCTAssertEqual(results["/fake/certs/c.pem"], .cancelled)
        // HAProxy is not left holding a half-used CLI session.
        try loop.runForTest(deadline: .seconds(10), until: { server.openConnections == 0 })
    }

    func testConnectTimeoutOnAFullBacklogIsAFailureWithBackoff() throws {
        // An HAProxy too busy to accept: its listen backlog (0 here) is taken by another client.
        let path = temp.file("busy.sock")
        let listener = try unixSocket(bindingTo: path)
        defer { close(listener) }
        XCTAssertEqual(listen(listener, 0), 0)
        let filler = try unixSocket(connectingTo: path)
        defer { close(filler) }

        var configuration = HAProxySocketClient.Configuration()
        configuration.connectTimeout = .milliseconds(100)
        configuration.initialBackoff = .milliseconds(20)
        configuration.maximumBackoff = .milliseconds(40)
        let client = HAProxySocketClient(loop: loop, socket: FilePath(path), configuration: configuration) {
            self.events.append($0)
        }
        let started = MonotonicInstant.now()
        client.push(staple: staple, certificate: certificate) { _ in }
        try loop.runForTest(deadline: .seconds(10), until: { client.connectionAttempts >= 3 })
        XCTAssertGreaterThanOrEqual(MonotonicInstant.now().duration(since: started), .milliseconds(200 + 20))
        XCTAssertEqual(events, [.failed(HAProxyClientError(socket: FilePath(path),
                                                           reason: .connection(.timedOut(.connect, after: .milliseconds(100)))),
                                        retryIn: .milliseconds(20))])
        client.shutDown()
    }

    func testStaplesTooLargeForHAProxysLineBufferAreRefusedAtOnce() throws {
        let client = HAProxySocketClient(loop: loop, socket: "/nonexistent.sock") { self.events.append($0) }
        var result: HAProxyPushResult?
        client.push(staple: [UInt8](repeating: 1, count: 12_000), certificate: certificate) { result = $0 }
        XCTAssertEqual(result, .stapleTooLarge(limit: 16_000))
        XCTAssertEqual(client.connectionAttempts, 0)
    }

    // MARK: Helpers

    private func makeClient(_ server: FakeStatsSocket,
                            configuration: HAProxySocketClient.Configuration = .init()) -> HAProxySocketClient {
        var configuration = configuration
        configuration.initialBackoff = .milliseconds(20)
        configuration.maximumBackoff = .milliseconds(100)
        return HAProxySocketClient(loop: loop, socket: FilePath(server.path), configuration: configuration,
                                   resolvePath: { _ in nil }) { [weak self] in self?.events.append($0) }
    }

    private func push(to client: HAProxySocketClient, file: StaticString = #filePath, line: UInt = #line) throws
        -> HAProxyPushResult? {
        var result: HAProxyPushResult?
        client.push(staple: staple, certificate: certificate) { result = $0 }
        try loop.runForTest(deadline: .seconds(10), until: { result != nil }, file: file, line: line)
        return result
    }

    private func unixSocket(bindingTo path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = unixAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw SystemError("bind", subject: path) }
        return fd
    }

    private func unixSocket(connectingTo path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = unixAddress(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw SystemError("connect", subject: path) }
        return fd
    }
}

private func unixAddress(_ path: String) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    return address
}

/// A unix socket on the test's loop that speaks the runtime API's prompt mode. `script` sees
/// each command (payload included, after a newline) with the connection's number and may
/// return a special reply; nil gives HAProxy's usual success answer.
private final class FakeStatsSocket {
    enum Reply {
        case answer(String)
        case raw([UInt8])
        case hangUpAfter(String)
        case silence
    }

    let path: String
    private(set) var commands: [String] = []
    private(set) var connectionsAccepted = 0
    /// Connections the client has not hung up yet.
    var openConnections: Int { connections.filter { $0.registration != nil }.count }
    private let fd: Int32
    private let loop: EventLoop
    private let dribble: Bool
    private let script: (Int, String) -> Reply?
    private var registration: IORegistration?
    private var connections: [Connection] = []

    private final class Connection {
        let fd: Int32
        let number: Int
        var registration: IORegistration?
        var input: [UInt8] = []
        var pendingCommand: String?

        init(fd: Int32, number: Int) {
            self.fd = fd
            self.number = number
        }

        func close() {
            guard let registration else { return }
            registration.cancel()
            self.registration = nil
            Glibc.close(fd)
        }
    }

    init(loop: EventLoop, path: String, dribble: Bool = false, script: @escaping (Int, String) -> Reply?) throws {
        self.loop = loop
        self.path = path
        self.dribble = dribble
        self.script = script
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = unixAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { throw SystemError("bind/listen", subject: path) }
        registration = try loop.register(fd: fd, interest: .readable) { [weak self] _ in self?.accept() }
    }

    deinit {
        connections.forEach { $0.close() }
        registration?.cancel()
        Glibc.close(fd)
    }

    private func accept() {
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { return }
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        let connection = Connection(fd: client, number: connectionsAccepted)
        connectionsAccepted += 1
        connections.append(connection)
        connection.registration = try? loop.register(fd: client, interest: .readable) { [weak self, weak connection] _ in
            guard let self, let connection else { return }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let got = read(connection.fd, &buffer, buffer.count)
            if got <= 0 {
                if got == 0 || errno != EAGAIN { connection.close() }
                return
            }
            connection.input += buffer[..<got]
            self.takeCommands(from: connection)
        }
    }

    /// Commands are lines; a line ending in ` <<` is followed by payload lines up to an empty one.
    private func takeCommands(from connection: Connection) {
        while let newline = connection.input.firstIndex(of: 0x0A) {
            let line = String(decoding: connection.input[..<newline], as: UTF8.self)
            connection.input.removeSubrange(...newline)
            if var command = connection.pendingCommand {
                if line.isEmpty {
                    connection.pendingCommand = nil
                    respond(to: command, on: connection)
                } else {
                    command += line + "\n"
                    connection.pendingCommand = command
                }
            } else if line.hasSuffix(" <<") {
                connection.pendingCommand = line + "\n"
            } else {
                respond(to: line, on: connection)
            }
        }
    }

    private func respond(to command: String, on connection: Connection) {
        commands.append(command)
        switch script(connection.number, command) ?? .answer(Self.usualAnswer(to: command)) {
        case .answer(let text):
            send(Array((text.isEmpty ? "\n> " : text + "\n\n> ").utf8), on: connection)
        case .raw(let bytes):
            send(bytes, on: connection)
        case .hangUpAfter(let text):
            send(Array(text.utf8), on: connection)
            connection.close()
        case .silence:
            break
        }
    }

    private static func usualAnswer(to command: String) -> String {
        command.hasPrefix("set ssl ocsp-response") ? "OCSP Response updated!" : ""
    }

    private func send(_ bytes: [UInt8], on connection: Connection) {
        guard dribble else {
            _ = bytes.withUnsafeBytes { Glibc.send(connection.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            return
        }
        for (index, byte) in bytes.enumerated() {
            loop.schedule(after: .microseconds(200 * (index + 1))) { [weak connection] in
                guard let connection, connection.registration != nil else { return }
                var single = byte
                _ = Glibc.send(connection.fd, &single, 1, Int32(MSG_NOSIGNAL))
            }
        }
    }
}
