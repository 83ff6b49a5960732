import Foundation
import Glibc
import XCTest
@testable import Reactor
import TestSupport

/// `SocketListener` and `SimpleHTTPServer` on a Unix socket path: what a socket file left
/// by a crashed run, a file that is no socket and a live neighbour each do to binding, the
/// file's mode, and its removal on close.
final class UnixSocketListenerTests: XCTestCase {
    private var temp: TemporaryDirectory!

    override func setUpWithError() throws { temp = try TemporaryDirectory(prefix: "stapler-unixlisten") }
    override func tearDown() { temp = nil }

    func testServesHTTPWithMode0660AndRemovesTheFileOnClose() throws {
        let loop = try EventLoop()
        let path = temp.file("metrics.sock")
        let server = try SimpleHTTPServer(loop: loop, address: .unix(FilePath(path))) { request in
            .init(status: 200, text: "over unix: \(request.target)")
        }
        XCTAssertEqual(server.address, .unix(FilePath(path)))
        XCTAssertEqual(server.addressDescription, path)
        XCTAssertEqual(server.port, 0)
        var status = stat()
        XCTAssertEqual(lstat(path, &status), 0)
        XCTAssertEqual(status.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(status.st_mode & 0o777, 0o660, "owner and group, whatever the umask")

        let answer = try exchange(loop, server, path: path, request: "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), answer)
        XCTAssertTrue(answer.hasSuffix("\r\n\r\nover unix: /metrics"), answer)

        server.close()
        XCTAssertTrue(server.isClosed)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "the socket file is removed on close")
    }

    func testStaleSocketFileFromACrashedRunIsReplaced() throws {
        let loop = try EventLoop()
        let path = temp.file("stale.sock")
        try UnixSockets.makeStale(at: path)
        XCTAssertFalse(UnixSockets.accepts(path), "nobody answers: stale")

        var accepted: [Int32] = []
        let listener = try SocketListener(loop: loop, address: .unix(FilePath(path))) { event in
            if case .accepted(let fd) = event { accepted.append(fd) }
        }
        let client = try XCTUnwrap(UnixSockets.connect(to: path))
        defer { close(client) }
        try loop.runForTest(until: { accepted.count == 1 })
        XCTAssertNotEqual(fcntl(accepted[0], F_GETFL) & O_NONBLOCK, 0, "accepted sockets are non-blocking")
        XCTAssertNotEqual(fcntl(accepted[0], F_GETFD) & FD_CLOEXEC, 0, "and close-on-exec")
        close(accepted[0])
        listener.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testAnythingButASocketAtThePathIsRefusedAndLeftAlone() throws {
        let loop = try EventLoop()
        let regular = temp.file("regular")
        try "precious\n".write(toFile: regular, atomically: true, encoding: .utf8)
        let directory = temp.file("directory")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        // A symlink is not followed, even to a stale socket: the path itself must be a socket.
        let stale = temp.file("stale.sock")
        try UnixSockets.makeStale(at: stale)
        let link = temp.file("link.sock")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: stale)

        for path in [regular, directory, link] {
            XCTAssertThrowsError(try SocketListener(loop: loop, address: .unix(FilePath(path))) { _ in }) { error in
                XCTAssertEqual(error as? SystemError, SystemError("bind", subject: path, errno: EEXIST))
                XCTAssertEqual("\(error)", "bind(\(path)): File exists")
            }
        }
        XCTAssertEqual(try String(contentsOfFile: regular, encoding: .utf8), "precious\n")
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory))
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link), stale)
        XCTAssertTrue(FileManager.default.fileExists(atPath: stale))
    }

    func testLiveSocketIsRefusedAsInUseAndKeepsServing() throws {
        let loop = try EventLoop()
        let path = temp.file("live.sock")
        var accepted = 0
        let first = try SocketListener(loop: loop, address: .unix(FilePath(path))) { event in
            if case .accepted(let fd) = event { accepted += 1; close(fd) }
        }
        XCTAssertThrowsError(try SocketListener(loop: loop, address: .unix(FilePath(path))) { _ in }) { error in
            XCTAssertEqual(error as? SystemError, SystemError("bind", subject: path, errno: EADDRINUSE))
        }
        // The refused one neither removed nor replaced the file: the first still answers.
        let client = try XCTUnwrap(UnixSockets.connect(to: path))
        close(client)
        try loop.runForTest(until: { accepted >= 2 }) // the probe and this client

        // Another process's live socket, likewise.
        let other = temp.file("other.sock")
        let otherFD = try UnixSockets.listen(at: other)
        defer { close(otherFD) }
        XCTAssertThrowsError(try SocketListener(loop: loop, address: .unix(FilePath(other))) { _ in }) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EADDRINUSE)
        }
        XCTAssertTrue(UnixSockets.accepts(other))

        first.close()
        let second = try SocketListener(loop: loop, address: .unix(FilePath(path))) { _ in }
        XCTAssertFalse(second.isClosed, "free again once the first closed")
    }

    func testCloseLeavesAFileThatReplacedTheSocketAlone() throws {
        let loop = try EventLoop()
        let path = temp.file("replaced.sock")
        let listener = try SocketListener(loop: loop, address: .unix(FilePath(path))) { _ in }
        XCTAssertEqual(unlink(path), 0)
        try "someone else's\n".write(toFile: path, atomically: false, encoding: .utf8)
        listener.close()
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "someone else's\n")
    }

    func testPathTooLongForTheSocketAddressFailsWithItsName() throws {
        let loop = try EventLoop()
        let path = temp.file(String(repeating: "x", count: 120))
        XCTAssertThrowsError(try SocketListener(loop: loop, address: .unix(FilePath(path))) { _ in }) { error in
            XCTAssertEqual(error as? SystemError, SystemError("bind", subject: path, errno: ENAMETOOLONG))
        }
    }

    // MARK: Helpers

    /// Sends a small request over a blocking client (it fits the socket buffer at once), runs
    /// the loop until the server has answered, then reads the answer to the end.
    private func exchange(_ loop: EventLoop, _ server: SimpleHTTPServer, path: String, request: String) throws -> String {
        let fd = try XCTUnwrap(UnixSockets.connect(to: path))
        defer { close(fd) }
        let bytes = Array(request.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }, bytes.count)
        let answered = server.responsesSent + 1
        try loop.runForTest(until: { server.responsesSent >= answered })
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { break }
            received.append(contentsOf: buffer[0..<got])
        }
        return String(decoding: received, as: UTF8.self)
    }
}
