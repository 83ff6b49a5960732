import CCares
import Glibc

/// Turns host names into addresses on the loop's thread, with c-ares: its sockets are
/// watched by the `EventLoop`, its timeouts are loop timers, and no thread is ever started
/// (glibc's getaddrinfo blocks, and curl runs it on a helper thread).
///
/// Like glibc it reads /etc/hosts and /etc/resolv.conf (unless `nameServers` replaces the
/// servers), asks for A and AAAA records together, and orders the addresses as RFC 6724
/// prefers. Answers are kept for their TTL (`ResolvedNameCache`); lookups of a name already
/// under way are joined, so 500 transfers to one host ask DNS once. When /etc/resolv.conf
/// changes (checked at most every `configurationCheckInterval`, and only between lookups)
/// the channel is built afresh from it (c-ares reads it only when a channel is made).
///
/// Every completion runs on the loop, never from inside `resolve`.
public final class NameResolver {
    public struct Configuration: Sendable {
        /// Servers to ask instead of those in /etc/resolv.conf.
        public var nameServers: NameServerList?
        /// How long c-ares waits for the first answer; each further round waits longer.
        public var queryTimeout: Duration
        /// Rounds over the servers before `.timedOut`.
        public var tries: Int
        /// Names whose answers are kept at once.
        public var maxCachedNames: Int
        /// An answer is kept no longer than this, whatever its TTL says.
        public var maxCacheLifetime: Duration
        /// The system's resolver configuration, watched for changes.
        public var resolvConfPath: String
        /// How often (at most) `resolvConfPath` is checked for changes.
        public var configurationCheckInterval: Duration
        /// The port of servers that `resolvConfPath` names (c-ares reads no port there);
        /// nil for 53.
        public var resolvConfServerPort: UInt16?

        public init(nameServers: NameServerList? = nil, queryTimeout: Duration = .seconds(2), tries: Int = 2,
                    maxCachedNames: Int = 256, maxCacheLifetime: Duration = .seconds(3600),
                    resolvConfPath: String = "/etc/resolv.conf", configurationCheckInterval: Duration = .seconds(30),
                    resolvConfServerPort: UInt16? = nil) {
            self.nameServers = nameServers
            self.queryTimeout = queryTimeout
            self.tries = tries
            self.maxCachedNames = maxCachedNames
            self.maxCacheLifetime = maxCacheLifetime
            self.resolvConfPath = resolvConfPath
            self.configurationCheckInterval = configurationCheckInterval
            self.resolvConfServerPort = resolvConfServerPort
        }
    }

    /// Why a resolver could not be created.
    public struct SetupError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    public typealias Completion = (Result<ResolvedAddresses, NameResolutionError>) -> Void

    /// Longest host name DNS can carry (RFC 1035: 255 bytes on the wire, 253 as text).
    public static let maxNameLength = 253

    private let loop: EventLoop
    private let configuration: Configuration
    private var channel: ares_channel?
    private var watched: [ares_socket_t: IORegistration] = [:]
    private var timer: TimerHandle?
    private var cache: ResolvedNameCache
    /// Lookups under way, by lower-cased name, with everyone waiting for them.
    private var waiting: [String: [Completion]] = [:]
    private var resolvConfIdentity: FileStamp?
    private var nextConfigurationCheck: MonotonicInstant

    /// Lookups handed to c-ares (answers from the cache and joined lookups do not count).
    public private(set) var lookupsStarted = 0

    private static let libraryInit: Int32 = ares_library_init(CCARES_LIB_INIT_ALL)

    public init(loop: EventLoop, configuration: Configuration = Configuration()) throws(SetupError) {
        guard Self.libraryInit == ARES_SUCCESS else {
            throw SetupError(description: "ares_library_init failed: \(String(cString: ares_strerror(Self.libraryInit)))")
        }
        self.loop = loop
        self.configuration = configuration
        cache = ResolvedNameCache(capacity: configuration.maxCachedNames, maxLifetime: configuration.maxCacheLifetime)
        nextConfigurationCheck = .now() + configuration.configurationCheckInterval
        resolvConfIdentity = FileStamp(path: configuration.resolvConfPath)
        channel = try makeChannel()
    }

    deinit {
        if let timer { loop.cancel(timer) }
        // Pending lookups complete with ARES_EDESTRUCTION into boxes whose resolver is gone.
        if let channel { ares_destroy(channel) }
        for registration in watched.values { registration.cancel() }
    }

    /// The answer kept for `host`, if its TTL has not run out.
    public func cached(_ host: String) -> ResolvedAddresses? {
        cache.lookup(Self.key(host), now: .now())
    }

    /// Looks `host` up (or takes the kept answer) and calls `completion` on the loop.
    public func resolve(_ host: String, completion: @escaping Completion) {
        let key = Self.key(host)
        if let answer = cache.lookup(key, now: .now()) {
            loop.executeSoon { completion(.success(answer)) }
            return
        }
        if waiting[key] != nil {
            waiting[key]?.append(completion)
            return
        }
        if host.utf8.count > Self.maxNameLength || host.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) {
            let error = NameResolutionError(host: host, kind: .badName, detail: "not a valid host name")
            loop.executeSoon { completion(.failure(error)) }
            return
        }
        reloadConfigurationIfChanged()
        guard let channel else {
            let error = NameResolutionError(host: host, kind: .other,
                                            detail: "the resolver could not be set up again after \(configuration.resolvConfPath) changed")
            loop.executeSoon { completion(.failure(error)) }
            return
        }
        waiting[key] = [completion]
        lookupsStarted += 1
        var hints = ares_addrinfo_hints()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        let box = Unmanaged.passRetained(LookupBox(resolver: self, host: host, key: key)).toOpaque()
        // May answer at once (from /etc/hosts): `finished` defers every completion.
        ares_getaddrinfo(channel, host, nil, &hints, lookupFinished, box)
        rearmTimer()
    }

    // MARK: Answers

    fileprivate func finished(_ box: LookupBox, status: Int32, info: UnsafeMutablePointer<ares_addrinfo>?) {
        let result: Result<ResolvedAddresses, NameResolutionError>
        if status == ARES_SUCCESS, let info, let answer = ResolvedAddresses(info) {
            result = .success(answer)
            cache.store(answer, for: box.key, now: .now())
        } else {
            result = .failure(NameResolutionError(host: box.host, aresStatus: status == ARES_SUCCESS ? ARES_ENODATA : status))
        }
        let completions = waiting.removeValue(forKey: box.key) ?? []
        loop.executeSoon {
            for completion in completions { completion(result) }
        }
    }

    // MARK: c-ares on the loop

    private func makeChannel() throws(SetupError) -> ares_channel {
        var options = ares_options()
        options.timeout = Int32(clamping: max(1, configuration.queryTimeout.millisecondsRoundedUp))
        options.tries = Int32(clamping: max(1, configuration.tries))
        options.sock_state_cb = socketStateChanged
        options.sock_state_cb_data = Unmanaged.passUnretained(self).toOpaque()
        var mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB | ARES_OPT_RESOLVCONF
        if let port = configuration.resolvConfServerPort {
            options.udp_port = port
            options.tcp_port = port
            mask |= ARES_OPT_UDP_PORT | ARES_OPT_TCP_PORT
        }
        // c-ares copies the path during init.
        let path = strdup(configuration.resolvConfPath)
        defer { free(path) }
        options.resolvconf_path = path
        var created: ares_channel?
        let status = ares_init_options(&created, &options, mask)
        guard status == ARES_SUCCESS, let created else {
            throw SetupError(description: "ares_init_options failed: \(String(cString: ares_strerror(status)))")
        }
        if let servers = configuration.nameServers {
            let status = ares_set_servers_ports_csv(created, servers.description)
            guard status == ARES_SUCCESS else {
                ares_destroy(created)
                throw SetupError(description: "DNS servers \"\(servers)\": \(String(cString: ares_strerror(status)))")
            }
        }
        return created
    }

    /// Builds the channel again when /etc/resolv.conf was replaced or edited (or when the
    /// last attempt failed), between lookups.
    private func reloadConfigurationIfChanged() {
        let now = MonotonicInstant.now()
        guard waiting.isEmpty, now >= nextConfigurationCheck else { return }
        nextConfigurationCheck = now + configuration.configurationCheckInterval
        let identity = FileStamp(path: configuration.resolvConfPath)
        guard channel == nil || (configuration.nameServers == nil && identity != resolvConfIdentity) else { return }
        resolvConfIdentity = identity
        if let channel { ares_destroy(channel) }
        channel = try? makeChannel()
    }

    fileprivate func socketChanged(_ fd: ares_socket_t, readable: Bool, writable: Bool) {
        var interest: IOEvents = []
        if readable { interest.insert(.readable) }
        if writable { interest.insert(.writable) }
        if interest.isEmpty {
            watched.removeValue(forKey: fd)?.cancel()
            return
        }
        if let existing = watched[fd], existing.isActive, (try? existing.setInterest(interest)) != nil { return }
        watched[fd]?.cancel()
        // A socket the loop cannot watch is left to c-ares' timeout, which fails the lookup.
        watched[fd] = try? loop.register(fd: fd, interest: interest) { [weak self] events in
            self?.socketReady(fd, events)
        }
    }

    private func socketReady(_ fd: ares_socket_t, _ events: IOEvents) {
        guard let channel else { return }
        let read = events.contains(.readable) || events.contains(.hangup) || events.contains(.error)
        ares_process_fd(channel, read ? fd : CCARES_SOCKET_BAD, events.contains(.writable) ? fd : CCARES_SOCKET_BAD)
        rearmTimer()
    }

    private func rearmTimer() {
        if let timer { loop.cancel(timer) }
        timer = nil
        guard let channel else { return }
        var next = timeval()
        guard ares_timeout(channel, nil, &next) != nil else { return }
        let delay = Duration.seconds(next.tv_sec) + .microseconds(next.tv_usec)
        timer = loop.schedule(after: delay) { [weak self] in
            guard let self, let channel = self.channel else { return }
            self.timer = nil
            ares_process_fd(channel, CCARES_SOCKET_BAD, CCARES_SOCKET_BAD)
            self.rearmTimer()
        }
    }

    private static func key(_ host: String) -> String {
        String(decoding: host.utf8.map(ASCII.lowercased), as: UTF8.self)
    }
}

/// What one c-ares lookup needs to find its way back; retained by c-ares until its callback.
private final class LookupBox {
    weak var resolver: NameResolver?
    let host: String
    let key: String

    init(resolver: NameResolver, host: String, key: String) {
        self.resolver = resolver
        self.host = host
        self.key = key
    }
}

/// Inode, size and modification time: enough to see that a file was replaced or edited.
private struct FileStamp: Equatable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modified: timespec

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = info.st_mtim
    }

    static func == (lhs: FileStamp, rhs: FileStamp) -> Bool {
        lhs.device == rhs.device && lhs.inode == rhs.inode && lhs.size == rhs.size
            && lhs.modified.tv_sec == rhs.modified.tv_sec && lhs.modified.tv_nsec == rhs.modified.tv_nsec
    }
}

// c-ares calls these from inside its own functions: they only touch the loop and our tables.

private let lookupFinished: ares_addrinfo_callback = { arg, status, _, info in
    guard let arg else {
        ares_freeaddrinfo(info)
        return
    }
    let box = Unmanaged<LookupBox>.fromOpaque(arg).takeRetainedValue()
    box.resolver?.finished(box, status: status, info: info)
    ares_freeaddrinfo(info)
}

private let socketStateChanged: ares_sock_state_cb = { data, fd, readable, writable in
    guard let data else { return }
    Unmanaged<NameResolver>.fromOpaque(data).takeUnretainedValue()
        .socketChanged(fd, readable: readable != 0, writable: writable != 0)
}
