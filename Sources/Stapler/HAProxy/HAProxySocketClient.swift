import Reactor

/// Pushes staples into one running HAProxy through one stats socket, on the event loop.
///
/// One connection at a time, in prompt mode, kept open while staples are queued and closed
/// after `keepalive` without work; the next push opens a new one. A staple first goes with
/// `set ssl ocsp-response`; if HAProxy has no slot for its CertID (the certificate had no
/// `.ocsp` file when it started), the client learns HAProxy's name for the certificate from
/// `show ssl cert` and installs the staple with a `set ssl cert <name>.ocsp` transaction.
///
/// Failures (socket missing or refused, permission denied, HAProxy restarting mid-answer,
/// silence, garbage) close the connection and keep the staples queued; the client reconnects
/// after an exponential backoff, so pushes made while HAProxy was down land once it is back.
/// A transaction the socket may not open (below `level admin`) ends that push as rejected
/// instead: only a restart cures it, and a restarted HAProxy reads the staple file itself.
/// State changes go to `onEvent` (possibly from inside `push`, when connecting fails at
/// once); each push's ending goes to its completion.
final class HAProxySocketClient {
    struct Configuration {
        /// How long an idle connection stays open.
        var keepalive: Duration = .seconds(10)
        var connectTimeout: Duration = .seconds(5)
        /// Silence allowed while an answer is due.
        var answerTimeout: Duration = .seconds(10)
        var initialBackoff: Duration = .seconds(1)
        var maximumBackoff: Duration = .seconds(60)
        /// Certificates that may wait at once (each holds at most one staple).
        var maxQueuedPushes = 20_000
        /// `show ssl cert` for 10,000 certificates is about 1 MB.
        var maxAnswerBytes = 4 << 20
        /// HAProxy closes the connection on a command longer than its buffer (tune.bufsize,
        /// 16384 by default: 2.6.12 took 16383 bytes with the newline, not one more).
        var maxCommandBytes = 16_000
        /// The shortest time between two `show ssl cert`, so certificates this HAProxy does
        /// not serve cannot cost a listing each.
        var listingInterval: Duration = .seconds(10)

        init() {}
    }

    let socket: FilePath
    private(set) var configuration: Configuration

    /// The command whose answer is due.
    private enum Step {
        case prompt, cliTimeout, setOCSPResponse, listCertificates
        case openTransaction(name: FilePath), commit

        var verb: String {
            switch self {
            case .prompt: return "prompt"
            case .cliTimeout: return "set timeout cli"
            case .setOCSPResponse: return "set ssl ocsp-response"
            case .listCertificates: return "show ssl cert"
            case .openTransaction: return "set ssl cert"
            case .commit: return "commit ssl cert"
            }
        }
    }

    private enum Health: Equatable {
        case unknown, up
        case down(HAProxyClientError)
    }

    private struct InFlight {
        var entry: HAProxyPushQueue.Entry
        /// Whether this push already asked for a fresh `show ssl cert`.
        var listed = false
    }

    private let loop: EventLoop
    private let onEvent: (HAProxyClientEvent) -> Void
    private let resolvePath: (FilePath) -> FilePath?
    private var queue: HAProxyPushQueue
    private var names = HAProxyCertificateNames()
    private var framer: HAProxyPromptFramer
    private var stream: UnixStream?
    private var connectionID = 0
    /// Prompt mode is set up on `stream`.
    private var isReady = false
    private var awaiting: Step?
    private var current: InFlight?
    private var keepaliveTimer: TimerHandle?
    private var retryTimer: TimerHandle?
    private var consecutiveFailures = 0
    private var health = Health.unknown
    private var isShutDown = false

    /// Connections opened so far (for tests and metrics).
    private(set) var connectionAttempts = 0

    /// `resolvePath` gives the real path of a certificate file (symlinks resolved), to match
    /// the daemon's paths with HAProxy's names.
    init(loop: EventLoop, socket: FilePath, configuration: Configuration = .init(),
         resolvePath: @escaping (FilePath) -> FilePath? = { try? FileSystem.realPath($0) },
         onEvent: @escaping (HAProxyClientEvent) -> Void) {
        self.loop = loop
        self.socket = socket
        self.configuration = configuration
        self.resolvePath = resolvePath
        self.onEvent = onEvent
        queue = HAProxyPushQueue(limit: configuration.maxQueuedPushes)
        framer = HAProxyPromptFramer(limit: configuration.maxAnswerBytes)
    }

    deinit {
        stream?.close()
        for timer in [keepaliveTimer, retryTimer] { if let timer { loop.cancel(timer) } }
    }

    /// Pushes not ended yet: queued, plus the one in flight.
    var pendingPushCount: Int { queue.count + (current == nil ? 0 : 1) }
    var isConnected: Bool { isReady }
    var isBackingOff: Bool { retryTimer != nil }

    // MARK: Pushing

    /// Queues `staple` (DER) for `certificate`. The completion runs once, from the loop or,
    /// for a push refused at once (too large, queue full, shut down), before this returns.
    func push(staple: [UInt8], certificate: FilePath, completion: @escaping (HAProxyPushResult) -> Void) {
        guard !isShutDown else { return completion(.cancelled) }
        guard HAProxyCommand.setOCSPResponseLength(stapleBytes: staple.count) <= configuration.maxCommandBytes else {
            return completion(.stapleTooLarge(limit: configuration.maxCommandBytes))
        }
        switch queue.enqueue(.init(certificate: certificate, staple: staple, completion: completion)) {
        case .added: break
        case .replaced(let older): older.completion(.superseded)
        case .full: return completion(.queueFull(limit: configuration.maxQueuedPushes))
        }
        pump()
    }

    /// A new keepalive (SIGHUP) applies from the next idle period. An open connection keeps
    /// the CLI timeout it was given; if HAProxy closes it first, that only costs a reconnect.
    func setKeepalive(_ keepalive: Duration) {
        configuration.keepalive = keepalive
    }

    /// Closes the connection and ends every waiting push with `.cancelled`.
    func shutDown() {
        guard !isShutDown else { return }
        isShutDown = true
        if let retryTimer { loop.cancel(retryTimer) }
        retryTimer = nil
        closeConnection()
        var ended = current.map { [$0.entry] } ?? []
        current = nil
        ended += queue.removeAll()
        for entry in ended { entry.completion(.cancelled) }
    }

    /// Starts the next piece of work, if the client is free for it.
    private func pump() {
        guard !isShutDown, awaiting == nil, current == nil else { return }
        if stream != nil && isReady {
            guard let entry = queue.popFirst() else { return armKeepalive() }
            cancelKeepalive()
            current = InFlight(entry: entry)
            send(.setOCSPResponse(base64: Base64.encode(entry.staple)), expecting: .setOCSPResponse)
        } else if stream == nil && retryTimer == nil && !queue.isEmpty {
            connect()
        }
    }

    // MARK: Connection

    private func connect() {
        connectionAttempts += 1
        connectionID += 1
        let id = connectionID
        framer.reset()
        let stream = UnixStream(loop: loop, path: socket, configuration: .init(
            connectTimeout: configuration.connectTimeout, maxQueuedBytes: configuration.maxCommandBytes + 64)) {
            [weak self] event in
            guard let self, self.connectionID == id else { return }
            self.handle(event)
        }
        self.stream = stream
        do {
            try stream.connect()
        } catch {
            fail(.connection(error.reason))
        }
    }

    private func handle(_ event: UnixStream.Event) {
        switch event {
        case .connected:
            send(.prompt, expecting: .prompt)
        case .received(let chunk):
            switch framer.append(chunk) {
            case .incomplete:
                return
            case .answer(let text):
                stream?.setReadTimeout(nil)
                guard let step = awaiting else {
                    let excerpt = HAProxyAnswer.excerpt(String(decoding: text, as: UTF8.self))
                    return fail(.unexpectedAnswer(command: "(none)", answer: excerpt))
                }
                awaiting = nil
                handle(answer: text, to: step)
            case .tooLarge(let limit):
                fail(.answerTooLarge(command: awaitingVerb, limit: limit))
            case .trailingBytes:
                fail(.unexpectedAnswer(command: awaitingVerb, answer: "more bytes after the prompt"))
            }
        case .closed(let error):
            if isReady && awaiting == nil && current == nil {
                // HAProxy closed an idle connection (its CLI timeout, a reload): not a
                // failure; the next push reconnects.
                closeConnection()
                pump()
            } else {
                fail(.connection(error.reason))
            }
        }
    }

    private var awaitingVerb: String { awaiting?.verb ?? "(none)" }

    private func send(_ command: HAProxyCommand, expecting step: Step) {
        let bytes = command.bytes
        guard bytes.count <= configuration.maxCommandBytes else {
            return finish(.stapleTooLarge(limit: configuration.maxCommandBytes))
        }
        guard let stream else { return fail(.connection(.notConnected)) }
        do {
            try stream.write(bytes)
        } catch {
            return fail(.connection(error.reason))
        }
        awaiting = step
        stream.setReadTimeout(configuration.answerTimeout)
    }

    private func closeConnection() {
        cancelKeepalive()
        stream?.close()
        stream = nil
        isReady = false
        awaiting = nil
        framer.reset()
    }

    private func armKeepalive() {
        guard keepaliveTimer == nil else { return }
        keepaliveTimer = loop.schedule(after: configuration.keepalive) { [weak self] in
            guard let self else { return }
            self.keepaliveTimer = nil
            guard self.awaiting == nil && self.current == nil else { return }
            self.closeConnection()
            // Idle means no burst is going on: the listing is cheap to fetch again if needed.
            self.names.forget()
        }
    }

    private func cancelKeepalive() {
        if let keepaliveTimer { loop.cancel(keepaliveTimer) }
        keepaliveTimer = nil
    }

    // MARK: Answers

    private func handle(answer text: [UInt8], to step: Step) {
        let answer = HAProxyAnswer(text)
        switch step {
        case .prompt:
            guard answer == .empty else { return unexpected(answer, text, to: step) }
            // Outlive the keepalive, so HAProxy never closes a connection the client still
            // counts on.
            let seconds = (configuration.keepalive + configuration.answerTimeout).components.seconds + 1
            send(.setCLITimeout(seconds: Int(seconds)), expecting: .cliTimeout)

        case .cliTimeout:
            // Whatever the answer, the connection works; an HAProxy that refuses the timeout
            // closes idle connections sooner, which only costs a reconnect.
            isReady = true
            // A refused command is cured by a command going through, not by connecting.
            if !lastFailureWasARefusal { markHealthy() }
            pump()

        case .setOCSPResponse:
            switch answer {
            case .ocspResponseUpdated: finish(.updated)
            case .certificateIDNotFound: installThroughTransaction()
            case .ocspResponseRejected:
                finish(.rejected(answer: String(decoding: text, as: UTF8.self)))
            default: unexpected(answer, text, to: step)
            }

        case .listCertificates:
            guard let listing = HAProxyCertificateListing(text) else {
                return unexpected(answer, text, to: step)
            }
            names.update(from: listing, at: .now(), resolve: resolvePath)
            installThroughTransaction()

        case .openTransaction(let name):
            switch answer {
            case .transactionOpened(let certificate) where certificate == name:
                send(.commitCertificate(name), expecting: .commit)
            case .transactionOpened(let certificate):
                fail(.foreignTransaction(certificate: certificate))
            case .certificateNotInConfiguration:
                // The cached name is stale (HAProxy was reloaded with other files).
                names.forget()
                installThroughTransaction()
            case .permissionDenied, .unknownCommand:
                // Only a restart cures this (the socket's level, HAProxy's version), and a
                // restarted HAProxy loads the staple file by itself. Retrying would hold up
                // every staple behind this one for minutes, so the push ends here.
                finish(.rejected(answer: Self.cannotInstall(answer, command: step.verb)))
            default:
                unexpected(answer, text, to: step)
            }

        case .commit:
            if answer == .committed { return finish(.installed) }
            unexpected(answer, text, to: step)
        }
    }

    /// The staple's CertID matched no staple slot: find HAProxy's name for the certificate
    /// (listing again if the cached names do not have it) and open a transaction.
    private func installThroughTransaction() {
        guard let push = current else { return }
        if let name = names.name(for: push.entry.certificate, resolve: resolvePath) {
            send(.setCertificateOCSP(certificate: name, base64: Base64.encode(push.entry.staple)),
                 expecting: .openTransaction(name: name))
        } else if !push.listed && names.mayRefresh(now: .now(), interval: configuration.listingInterval) {
            current?.listed = true
            send(.showCertificates, expecting: .listCertificates)
        } else {
            finish(.certificateNotServed)
        }
    }

    /// Why a staple that needs a transaction cannot have one through this socket.
    private static func cannotInstall(_ answer: HAProxyAnswer, command: String) -> String {
        let refusal = answer == .permissionDenied
            ? "Permission denied for '\(command)' (it needs a stats socket with 'level admin')"
            : "this HAProxy does not know '\(command)'"
        return "\(refusal); the certificate had no staple when HAProxy started, so only that command could "
            + "give it one; HAProxy loads the staple file when it next starts or reloads"
    }

    private func unexpected(_ answer: HAProxyAnswer, _ text: [UInt8], to step: Step) {
        switch answer {
        case .permissionDenied: fail(.permissionDenied(command: step.verb))
        case .unknownCommand: fail(.unknownCommand(command: step.verb))
        default:
            let excerpt = HAProxyAnswer.excerpt(String(decoding: text, as: UTF8.self))
            fail(.unexpectedAnswer(command: step.verb, answer: excerpt.isEmpty ? "(empty)" : excerpt))
        }
    }

    // MARK: Endings

    private func finish(_ result: HAProxyPushResult) {
        guard let push = current else { return }
        current = nil
        awaiting = nil
        markHealthy()
        push.entry.completion(result)
        pump()
    }

    private func fail(_ reason: HAProxyClientError.Reason) {
        let error = HAProxyClientError(socket: socket, reason: reason)
        closeConnection()
        if let push = current {
            current = nil
            queue.requeue(push.entry)?.completion(.superseded)
        }
        consecutiveFailures += 1
        let delay = Self.backoff(failures: consecutiveFailures, initial: configuration.initialBackoff,
                                 maximum: configuration.maximumBackoff)
        if let retryTimer { loop.cancel(retryTimer) }
        retryTimer = loop.schedule(after: delay) { [weak self] in
            guard let self else { return }
            self.retryTimer = nil
            self.pump()
        }
        if health != .down(error) {
            health = .down(error)
            onEvent(.failed(error, retryIn: delay))
        }
    }

    private var lastFailureWasARefusal: Bool {
        if case .down(let error) = health { return !error.isConnectionFailure }
        return false
    }

    private func markHealthy() {
        consecutiveFailures = 0
        guard health != .up else { return }
        health = .up
        onEvent(.connected(socket: socket))
    }

    /// `initial` doubled for each failure after the first, up to `maximum`.
    static func backoff(failures: Int, initial: Duration, maximum: Duration) -> Duration {
        var delay = initial
        for _ in 1..<max(failures, 1) {
            if delay >= maximum { break }
            delay *= 2
        }
        return min(delay, maximum)
    }
}
