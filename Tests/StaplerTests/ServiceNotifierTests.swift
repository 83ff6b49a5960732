import Foundation
import Reactor
@testable import Stapler
import TestSupport
import XCTest

/// systemd's `Type=notify` protocol against a real unix datagram socket standing in for
/// systemd: first the notifier alone, then the `stapler` binary started with NOTIFY_SOCKET.
final class ServiceNotifierTests: XCTestCase {
    private var temp: TemporaryDirectory!

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "stapler-notify")
    }

    override func tearDown() {
        temp = nil
    }

    // MARK: The notifier

    func testSendsEachStateAsOneDatagramToAPathSocket() throws {
        let systemd = try NotifySocket(path: temp.file("notify"))
        let notifier = try XCTUnwrap(ServiceNotifier(environment: ["NOTIFY_SOCKET": systemd.address]))

        try notifier.notify(.ready)
        try notifier.notify(.reloading)
        try notifier.notify(.stopping)

        XCTAssertEqual(systemd.receive(), "READY=1\nMAINPID=\(getpid())")
        let reloading = try XCTUnwrap(systemd.receive())
        XCTAssertTrue(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="), reloading)
        XCTAssertNotNil(UInt64(reloading.components(separatedBy: "MONOTONIC_USEC=")[1]))
        XCTAssertEqual(systemd.receive(), "STOPPING=1")
    }

    func testAbstractNamespaceSocket() throws {
        let systemd = try NotifySocket(abstract: "stapler-test-\(UUID().uuidString)")
        XCTAssertTrue(systemd.address.hasPrefix("@"))
        try ServiceNotifier(socket: systemd.address).notify(.ready)
        XCTAssertEqual(systemd.receive(), "READY=1\nMAINPID=\(getpid())")
    }

    func testNoSocketNoNotifierAndBadSocketsFailWithTheirName() throws {
        XCTAssertNil(ServiceNotifier(environment: [:]))
        XCTAssertNil(ServiceNotifier(environment: ["NOTIFY_SOCKET": ""]))

        let missing = temp.file("nobody-listens")
        XCTAssertThrowsError(try ServiceNotifier(socket: missing).notify(.ready)) { error in
            XCTAssertEqual((error as? SystemError)?.description,
                           "sendto(NOTIFY_SOCKET=\(missing)): No such file or directory")
        }
        XCTAssertThrowsError(try ServiceNotifier(socket: "vsock:2:1234").notify(.ready)) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EAFNOSUPPORT)
        }
        XCTAssertThrowsError(try ServiceNotifier(socket: "/" + String(repeating: "x", count: 200)).notify(.ready)) { error in
            XCTAssertEqual((error as? SystemError)?.errno, ENAMETOOLONG)
        }
    }

    func testAddressIsThePathWithItsNulOrTheAbstractNameWithoutOne() throws {
        func bytes(_ address: UnixSocketAddress) -> [UInt8] {
            address.withSockaddr { pointer, length in
                let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
                return Array(UnsafeRawBufferPointer(start: pointer, count: Int(length))[pathOffset...])
            }
        }
        XCTAssertEqual(bytes(try ServiceNotifier.address(of: "/run/systemd/notify")),
                       Array("/run/systemd/notify".utf8) + [0])
        XCTAssertEqual(bytes(try ServiceNotifier.address(of: "@n")), [0, UInt8(ascii: "n")])
    }

    func testTheLongestNamesThatFitAreTakenAndOneByteMoreIsRefused() throws {
        let longest = UnixSocketAddress.maxPathLength
        XCTAssertNoThrow(try ServiceNotifier.address(of: "/" + String(repeating: "p", count: longest - 1)))
        XCTAssertNoThrow(try ServiceNotifier.address(of: "@" + String(repeating: "a", count: longest)))
        for tooLong in ["/" + String(repeating: "p", count: longest), "@" + String(repeating: "a", count: longest + 1)] {
            XCTAssertThrowsError(try ServiceNotifier.address(of: tooLong)) { error in
                XCTAssertEqual((error as? SystemError)?.errno, ENAMETOOLONG)
            }
        }
        XCTAssertThrowsError(try ServiceNotifier.address(of: "relative/notify")) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EAFNOSUPPORT)
        }
    }

    // MARK: The daemon

    func testDaemonSaysReadyAfterItsFirstScanReloadingOnSIGHUPAndStoppingOnSIGTERM() throws {
        let certs = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let systemd = try NotifySocket(path: temp.file("notify"))
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = systemd.address
        let daemon = try StaplerProcess(["-r", "3600", "--verbosity", "4", certs], logPath: temp.file("stapler.log"),
                                        environment: environment)
        defer { if daemon.isRunning { daemon.signal(SIGKILL) } }

        let ready = systemd.receive(timeout: 10)
        XCTAssertEqual(ready, "READY=1\nMAINPID=\(daemon.pid)", daemon.log)
        XCTAssertTrue(daemon.log.contains("scanned:"), "READY=1 comes after the first scan: \(daemon.log)")

        daemon.signal(SIGHUP)
        let reloading = systemd.receive(timeout: 10)
        XCTAssertTrue(reloading?.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") == true, reloading ?? "nothing")
        XCTAssertEqual(systemd.receive(timeout: 10), "READY=1\nMAINPID=\(daemon.pid)")

        daemon.signal(SIGTERM)
        XCTAssertEqual(systemd.receive(timeout: 10), "STOPPING=1")
        XCTAssertEqual(daemon.waitForExit(), 0, daemon.log)
        XCTAssertFalse(daemon.log.contains("cannot notify"), daemon.log)
    }

    func testDaemonWithAnUnreachableNotifySocketRunsAndSaysWhy() throws {
        let certs = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = temp.file("gone")
        let daemon = try StaplerProcess(["-r", "3600", certs], logPath: temp.file("stapler.log"), environment: environment)
        defer { if daemon.isRunning { daemon.signal(SIGKILL) } }

        XCTAssertTrue(daemon.waitForLog("cannot notify the service manager: sendto(NOTIFY_SOCKET=\(temp.file("gone")))"),
                      daemon.log)
        XCTAssertTrue(daemon.isRunning)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(), 0, daemon.log)
    }
}

/// What systemd listens on: a bound unix datagram socket, read with a deadline.
private final class NotifySocket {
    let address: String
    private var fd: Int32

    convenience init(path: String) throws {
        try self.init(address: path, name: Array(path.utf8), nulTerminated: true)
    }

    convenience init(abstract name: String) throws {
        try self.init(address: "@" + name, name: [0] + Array(name.utf8), nulTerminated: false)
    }

    private init(address: String, name: [UInt8], nulTerminated: Bool) throws {
        self.address = address
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var storage = sockaddr_un()
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { $0.copyBytes(from: name) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + name.count + (nulTerminated ? 1 : 0))
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let code = errno
            Glibc.close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EINVAL)
        }
    }

    deinit { Glibc.close(fd) }

    /// The next datagram, or nil if none comes within `timeout` seconds.
    func receive(timeout: TimeInterval = 5) -> String? {
        var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pollFD, 1, Int32(timeout * 1000))
        guard ready == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard got >= 0 else { return nil }
        return String(decoding: buffer[0..<got], as: UTF8.self)
    }
}
