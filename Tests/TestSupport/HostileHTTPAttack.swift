import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// One kind of hostile client, run on its own thread against a small HTTP server until
/// stopped, as a user probing a listener open to the network would: see `Kind`.
public final class HostileHTTPAttack: @unchecked Sendable {
    public enum Kind: Sendable, CustomStringConvertible {
        /// Opens this many connections at this rate and leaves them all open, saying nothing.
        /// (Faster than the server can accept, the kernel's accept queue overflows and drops
        /// handshakes, a good client's among them, whatever the server does.)
        case idleFlood(connections: Int, perSecond: Int)
        /// Keeps this many connections sending a header one byte per interval, reopening
        /// each one the server drops (at most 500 a second).
        case slowloris(connections: Int, byteInterval: TimeInterval)
        /// One connection after another sends a request line of this many bytes.
        case hugeRequestLine(bytes: Int)
        /// One connection after another sends this many random bytes.
        case garbage(bytes: Int, seed: UInt64)
        /// One connection after another sends half a request and shuts its sending side;
        /// the last `connections` of them stay open.
        case halfClosed(connections: Int)
        /// One connection after another sends a whole request and never reads the answer
        /// (small receive buffer); the last `connections` of them stay open.
        case neverReads(connections: Int)

        public var description: String {
            switch self {
            case .idleFlood(let count, let rate): return "\(count) idle connections (\(rate) a second)"
            case .slowloris(let count, let interval): return "slowloris (\(count) connections, a byte every \(Int(interval * 1000)) ms)"
            case .hugeRequestLine(let bytes): return "request lines of \(bytes) bytes"
            case .garbage(let bytes, let seed): return "binary garbage (\(bytes) bytes, seed \(seed))"
            case .halfClosed(let count): return "half-closed sockets (\(count) held)"
            case .neverReads(let count): return "clients that never read (\(count) held)"
            }
        }
    }

    /// What the attacker saw, readable after `stop()`.
    public struct Report: Sendable, CustomStringConvertible {
        public var connectionsOpened = 0
        public var connectFailures = 0
        /// Connections the server closed under the attacker (idle flood, slowloris: which
        /// reopens them).
        public var droppedByServer = 0
        /// Answers by status; 0 counts connections closed without an HTTP answer.
        public var answers: [Int: Int] = [:]
        /// Open at the end, before `stop()` closed them.
        public var heldAtEnd = 0

        public var description: String {
            let statuses = answers.keys.sorted().map { "\($0 == 0 ? "none" : String($0)): \(answers[$0]!)" }
            return "opened \(connectionsOpened), connect failures \(connectFailures), dropped by server \(droppedByServer), "
                + "held at end \(heldAtEnd)" + (statuses.isEmpty ? "" : ", answers [\(statuses.joined(separator: ", "))]")
        }
    }

    public let kind: Kind
    private let endpoint: StreamEndpoint
    private let lock = NSLock()
    private var stopping = false
    private var report = Report()
    private var held: [Int32] = []
    private let finished = DispatchSemaphore(value: 0)
    /// Set once the idle flood has opened all its connections.
    private var floodComplete = false

    /// Starts attacking at once on a thread of its own.
    public init(_ kind: Kind, against endpoint: StreamEndpoint) {
        self.kind = kind
        self.endpoint = endpoint
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    deinit { _ = stop() }

    /// Whether an idle flood has opened every connection (always true for the other kinds).
    public var isEstablished: Bool {
        lock.withLock { if case .idleFlood = kind { return floodComplete } else { return true } }
    }

    /// Stops the attacker, closes every connection it holds and returns what it saw.
    @discardableResult
    public func stop() -> Report {
        let first = lock.withLock {
            defer { stopping = true }
            return !stopping
        }
        if first { finished.wait() }
        return lock.withLock { report }
    }

    private var shouldStop: Bool { lock.withLock { stopping } }

    private func count(_ change: (inout Report) -> Void) {
        lock.withLock { change(&report) }
    }

    private func run() {
        switch kind {
        case .idleFlood(let connections, let rate): idleFlood(connections, perSecond: rate)
        case .slowloris(let connections, let interval): slowloris(connections, interval: interval)
        case .hugeRequestLine(let bytes):
            let line = Array("GET /".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: bytes) + Array(" HTTP/1.1\r\n\r\n".utf8)
            while !shouldStop { paced { sendAndReadAnswer(line) } }
        case .garbage(let bytes, let seed):
            var random = SeededGenerator(seed: seed)
            while !shouldStop { paced { sendAndReadAnswer((0..<bytes).map { _ in UInt8(truncatingIfNeeded: random.next()) }) } }
        case .halfClosed(let connections):
            churn(keeping: connections, receiveBuffer: nil) { fd in
                HostileHTTPClients.sendSome(fd, Array("GET /metrics HTTP/1.1\r\nHost: loc".utf8)[...])
                shutdown(fd, Int32(SHUT_WR))
            }
        case .neverReads(let connections):
            churn(keeping: connections, receiveBuffer: 1024) { fd in
                HostileHTTPClients.sendSome(fd, Array("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)[...])
            }
        }
        var stillOpen = 0
        for fd in held {
            if !HostileHTTPClients.isClosedByPeer(fd) { stillOpen += 1 }
            close(fd)
        }
        held = []
        count { $0.heldAtEnd = stillOpen }
    }

    private func open(receiveBuffer: Int32? = nil) -> Int32? {
        guard let fd = HostileHTTPClients.connect(endpoint, receiveBuffer: receiveBuffer, timeout: 2) else {
            count { $0.connectFailures += 1 }
            return nil
        }
        count { $0.connectionsOpened += 1 }
        return fd
    }

    private func idleFlood(_ connections: Int, perSecond: Int) {
        let started = Date()
        var attempts = 0
        while attempts < connections && !shouldStop {
            // Ahead of the rate: wait for it in steps of at most 10 ms.
            let due = started + Double(attempts) / Double(perSecond)
            // Read the clock once: on a loaded machine `due` can pass between two readings.
            let wait = min(due.timeIntervalSinceNow, 0.01)
            if wait > 0 { usleep(useconds_t(wait * 1_000_000)) }
            attempts += 1
            if let fd = open() { held.append(fd) }
        }
        lock.withLock { floodComplete = true }
        while !shouldStop { usleep(10_000) }
        count { report in report.droppedByServer = held.filter(HostileHTTPClients.isClosedByPeer).count }
    }

    private func slowloris(_ connections: Int, interval: TimeInterval) {
        let header = Array("GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".utf8)
        var sockets: [(fd: Int32, sent: Int)] = []
        while !shouldStop {
            let tick = Date()
            while sockets.count < connections && !shouldStop {
                var opened: Int32?
                paced { opened = open() }
                guard let fd = opened else { break }
                sockets.append((fd, 0))
            }
            for index in sockets.indices {
                let (fd, sent) = sockets[index]
                let byte = sent < header.count ? header[sent] : UInt8(ascii: "a")
                if HostileHTTPClients.isClosedByPeer(fd) || HostileHTTPClients.sendSome(fd, [byte][...]) == nil {
                    close(fd)
                    sockets[index].fd = -1
                    count { $0.droppedByServer += 1 }
                } else {
                    sockets[index].sent += 1
                }
            }
            sockets.removeAll { $0.fd < 0 }
            let left = interval - Date().timeIntervalSince(tick)
            if left > 0 { usleep(useconds_t(left * 1_000_000)) }
        }
        held = sockets.map(\.fd)
    }

    /// Sends `bytes` (as much as the server takes), then reads its answer.
    private func sendAndReadAnswer(_ bytes: [UInt8]) {
        guard let fd = open() else { return }
        defer { close(fd) }
        let deadline = Date() + 5
        var sent = 0
        while sent < bytes.count && Date() < deadline {
            guard let count = HostileHTTPClients.sendSome(fd, bytes[sent...]) else { break } // the server is gone
            sent += count
            if count == 0 { _ = HostileHTTPClients.wait(fd, for: Int16(POLLOUT), until: min(deadline, Date() + 0.05)) }
        }
        let answer = HostileHTTPClients.readToEnd(fd, until: deadline) ?? []
        let words = String(decoding: answer.prefix(32), as: UTF8.self).split(separator: " ")
        let status = words.count >= 2 && words[0].hasPrefix("HTTP/1.") ? Int(words[1]) ?? 0 : 0
        count { $0.answers[status, default: 0] += 1 }
    }

    /// Opens connection after connection, does `act` on each and keeps the last `keeping`.
    private func churn(keeping: Int, receiveBuffer: Int32?, _ act: (Int32) -> Void) {
        while !shouldStop {
            paced {
                guard let fd = open(receiveBuffer: receiveBuffer) else { return }
                act(fd)
                held.append(fd)
                if held.count > keeping { close(held.removeFirst()) }
            }
        }
    }

    /// Runs one connection's worth of attack, taking at least `minimumConnectionInterval`:
    /// thousands of connections a second would run the client out of ephemeral ports
    /// (closed ones wait in TIME_WAIT) long before the server notices anything.
    private func paced(_ body: () -> Void) {
        let started = Date()
        body()
        let left = Self.minimumConnectionInterval - Date().timeIntervalSince(started)
        if left > 0 { usleep(useconds_t(left * 1_000_000)) }
    }

    private static let minimumConnectionInterval: TimeInterval = 0.002
}

extension HostileHTTPAttack {
    /// What one attack did to good scrapes made meanwhile.
    public struct Outcome: Sendable, CustomStringConvertible {
        public let kind: Kind
        public let report: Report
        public let scrapes: [HostileHTTPClients.Scrape]

        public var worstSeconds: Double { scrapes.map(\.seconds).max() ?? 0 }
        /// Scrapes that got no 200 (closed, reset, timed out, another status).
        public var failed: [HostileHTTPClients.Scrape] { scrapes.filter { $0.status != 200 } }

        /// Fails the test unless every good scrape got its 200 within a second, the attack
        /// really ran, and the attacker saw what this kind should meet: a server that keeps at
        /// most `maxConnections` silent connections (plus what the kernel holds back over
        /// TCP), drops slow heads, answers 431 to a 1 MB request line.
        public func assertWithstood(maxConnections: Int, endpoint: StreamEndpoint,
                                    file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertTrue(failed.isEmpty, "\(kind): scrapes without a 200: \(failed)", file: file, line: line)
            XCTAssertLessThan(worstSeconds, 1, "\(kind): a good scrape waited too long", file: file, line: line)
            XCTAssertGreaterThan(report.connectionsOpened, 0, "\(kind): the attack ran", file: file, line: line)
            switch kind {
            case .idleFlood(let connections, _):
                XCTAssertEqual(report.connectionsOpened, connections, "\(kind): \(report)", file: file, line: line)
                XCTAssertLessThanOrEqual(report.heldAtEnd,
                                         maxConnections + HostileHTTPClients.silentConnectionsHeldByTheKernel(endpoint),
                                         "\(kind): \(report)", file: file, line: line)
            case .slowloris:
                XCTAssertGreaterThan(report.droppedByServer, 0, "\(kind): slow heads lose their slots", file: file, line: line)
            case .hugeRequestLine:
                XCTAssertGreaterThan(report.answers[431, default: 0], 0, "\(kind): \(report)", file: file, line: line)
            case .garbage, .halfClosed, .neverReads:
                break
            }
        }

        public var description: String {
            "\(kind): \(scrapes.count) scrapes, worst \(String(format: "%.3f", worstSeconds)) s, "
                + "\(failed.count) failed; attacker: \(report)"
        }
    }

    /// Every kind a listener facing the network must withstand, each with how long it runs
    /// once established: 10,000 idle connections (at 2,000 a second: faster than a
    /// single-threaded server accepts, the kernel's queue overflows and drops handshakes,
    /// good ones included, whatever the server does), slowloris on 193 connections, 1 MB
    /// request lines, binary garbage, half-closed sockets, clients that never read.
    public static func fullBattery(seed: UInt64) -> [(kind: Kind, seconds: TimeInterval)] {
        [(.idleFlood(connections: 10_000, perSecond: 2_000), 1),
         (.slowloris(connections: 193, byteInterval: 0.1), 2),
         (.hugeRequestLine(bytes: 1 << 20), 2),
         (.garbage(bytes: 64 << 10, seed: seed), 2),
         (.halfClosed(connections: 500), 2),
         (.neverReads(connections: 200), 2)]
    }

    /// A few hundred connections of the kinds that hold slots, for a Unix socket (which only
    /// local clients allowed by its mode can reach).
    public static let briefBattery: [(kind: Kind, seconds: TimeInterval)] = [
        (.idleFlood(connections: 300, perSecond: 2_000), 0.5),
        (.slowloris(connections: 100, byteInterval: 0.1), 1),
        (.halfClosed(connections: 100), 1),
    ]

    /// Attacks `endpoint` with `kind`, scraping every 100 ms, for `seconds` once the attack
    /// is established and until `alsoUntil` holds (at most a minute in all); `sample` runs
    /// between scrapes.
    public static func run(_ kind: Kind, against endpoint: StreamEndpoint, for seconds: TimeInterval,
                           alsoUntil: () -> Bool = { true }, sample: () -> Void = {}) -> Outcome {
        let attacker = HostileHTTPAttack(kind, against: endpoint)
        var established: Date?
        let scrapes = HostileHTTPClients.scrapeRepeatedly(endpoint, sample: sample) {
            if established == nil, attacker.isEstablished { established = Date() }
            guard let established, Date().timeIntervalSince(established) >= seconds else { return false }
            return alsoUntil()
        }
        return Outcome(kind: kind, report: attacker.stop(), scrapes: scrapes)
    }
}
