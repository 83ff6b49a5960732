import Foundation

/// A real DNS server for tests: Debian's dnsmasq on 127.0.0.1 and a free port, answering
/// from its own hosts file only (nothing from the machine's /etc/hosts or upstream servers).
/// Names under `.test` that the file lacks get NXDOMAIN. Point a resolver at `serverList`.
public final class DNSServerProcess {
    public let port: UInt16
    /// `127.0.0.1:PORT`, as STAPLER_DNS_SERVERS and `NameServerList` take it.
    public var serverList: String { "127.0.0.1:\(port)" }
    /// The TTL of every answer, in seconds.
    public let timeToLive: Int
    private let directory: TemporaryDirectory
    /// Started with posix_spawn, not Foundation's Process: dnsmasq closes every inherited
    /// descriptor at start, and Process takes its closed notification socket for an exit and
    /// blocks its reaper thread in waitpid until dnsmasq really exits, so no other child of
    /// the test (openssl runs) would be seen finishing meanwhile.
    private var pid: pid_t?

    /// `records` maps names to addresses (IPv4 or IPv6; one name may have several).
    public init(records: [(name: String, address: String)], timeToLive: Int = 1) throws {
        directory = try TemporaryDirectory()
        port = freeLoopbackPort()
        self.timeToLive = timeToLive
        try start(records: records)
    }

    deinit { stop() }

    /// Stops the server and starts it again on the same port with a new hosts file, as an
    /// operator changing a zone would.
    public func restart(records: [(name: String, address: String)]) throws {
        stop()
        try start(records: records)
    }

    public func stop() {
        guard let pid else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        self.pid = nil
    }

    private func start(records: [(name: String, address: String)]) throws {
        let hosts = directory.file("hosts")
        try records.map { "\($0.address) \($0.name)\n" }.joined().write(toFile: hosts, atomically: true, encoding: .utf8)
        let executable = try Shell.resolve("dnsmasq")
        let arguments = [executable, "--keep-in-foreground", "--port=\(port)", "--listen-address=127.0.0.1",
                         "--bind-interfaces", "--no-resolv", "--no-hosts", "--addn-hosts=\(hosts)", "--local=/test/",
                         "--local-ttl=\(timeToLive)", "--pid-file=", "--user=root", "--cache-size=0",
                         "--log-facility=\(directory.file("dnsmasq.log"))"]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in 0...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0) }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, nil, &argv, environ)
        guard result == 0 else { throw POSIXError(.init(rawValue: result) ?? .EIO) }
        pid = child
        // dnsmasq answers TCP on the same port once it is ready for UDP too.
        guard waitUntil(timeout: 10, { loopbackPortAccepts(port) }) else {
            stop()
            throw Shell.Failure(command: arguments, status: -1,
                                output: (try? String(contentsOfFile: directory.file("dnsmasq.log"), encoding: .utf8)) ?? "")
        }
    }
}

/// A DNS server that never answers: a UDP socket on 127.0.0.1 that takes queries and drops
/// them (the kernel queues them; nothing is ever sent back).
public final class SilentDNSServer {
    public let port: UInt16
    public var serverList: String { "127.0.0.1:\(port)" }
    private let fd: Int32

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0 else {
            close(fd)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        port = UInt16(bigEndian: address.sin_port)
        self.fd = fd
    }

    /// Queries received and dropped so far (drains them from the socket).
    public func drain() -> Int {
        var buffer = [UInt8](repeating: 0, count: 2048)
        var count = 0
        while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 { count += 1 }
        return count
    }

    deinit { close(fd) }
}
