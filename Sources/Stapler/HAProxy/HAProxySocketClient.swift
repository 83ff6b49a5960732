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
        /// Stay connected (reconnecting after each keepalive period and after HAProxy closes
        /// the connection), ask `show info` at each connection and report a new HAProxy
        /// process (`HAProxyClientEvent.newProcess`): with `--staple-dir`, a restarted or
        /// reloaded HAProxy finds no staple files and must be given every staple again.
        var watchesProcess = false

        init() {}
    }

    let socket: FilePath
    private(set) var configuration: Configuration

    /// One connection to the socket and the answer bytes it has delivered so far.
    private final class Connection {
        let stream: UnixStream
        /// The attempt that opened it: events of an older stream are ignored.
        let attempt: Int
        var framer: HAProxyPromptFramer

        init(stream: UnixStream, attempt: Int, framer: HAProxyPromptFramer) {
            self.stream = stream
            self.attempt = attempt
            self.framer = framer
        }
    }

    /// The push whose command is on the wire.
    private struct InFlight {
        var entry: HAProxyPushQueue.Entry
        /// The command whose answer is due.
        var awaiting: HAProxyCommand
        /// Whether this push already asked for a fresh `show ssl cert`.
        var listed = false
    }

    /// Where the connection stands. Each case holds what exists in it and nothing else: a
    /// stream only while connected, a timer only while one runs, a push only while its
    /// command is on the wire.
    private enum State {
        /// No connection and none wanted: the next push dials.
        case closed
        /// The last attempt failed; queued pushes wait for `retry`.
        case backingOff(retry: TimerHandle)
        case connecting(Connection)
        /// Putting the new connection in prompt mode: `awaiting` is `prompt`, then
        /// `set timeout cli`.
        case settingUp(Connection, awaiting: HAProxyCommand)
        /// Prompt mode is on and nothing is in flight, while the callbacks of what just
        /// happened (the connection came up, a push ended) run; `pump` then starts the next
        /// push or idles.
        case ready(Connection)
        /// Nothing to push: `keepalive` closes the connection unless a push comes first.
        case idle(Connection, keepalive: TimerHandle)
        case busy(Connection, InFlight)
        /// For good: every push ends with `.cancelled`.
        case shutDown

        var connection: Connection? {
            switch self {
            case .connecting(let connection), .settingUp(let connection, _), .ready(let connection),
                 .idle(let connection, _), .busy(let connection, _):
                return connection
            case .closed, .backingOff, .shutDown:
                return nil
            }
        }

        var awaiting: HAProxyCommand? {
            switch self {
            case .settingUp(_, let command): return command
            case .busy(_, let push): return push.awaiting
            case .closed, .backingOff, .connecting, .ready, .idle, .shutDown: return nil
            }
        }
    }

    private enum Health: Equatable {
        case unknown, up
        case down(HAProxyClientError)
    }

    private let loop: EventLoop
    private let onEvent: (HAProxyClientEvent) -> Void
    private let resolvePath: (FilePath) -> FilePath?
    private var state = State.closed
    // Outside `state`, because they outlive any one connection: staples wait in the queue
    // through reconnects and backoff; HAProxy's names serve a burst of pushes across a
    // reconnect with one listing; the failure count grows the backoff across attempts, and
    // health makes one log line per change, not per attempt.
    private var queue: HAProxyPushQueue
    private var names = HAProxyCertificateNames()
    private var consecutiveFailures = 0
    private var health = Health.unknown
    /// The HAProxy process that answered last (`Configuration.watchesProcess`).
    private var lastProcess: HAProxyProcessIdentity?

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
    }

    deinit {
        release(state)
    }

    /// Pushes not ended yet: queued, plus the one in flight.
    var pendingPushCount: Int {
        if case .busy = state { return queue.count + 1 }
        return queue.count
    }

    var isConnected: Bool {
        switch state {
        case .ready, .idle, .busy: return true
        case .closed, .backingOff, .connecting, .settingUp, .shutDown: return false
        }
    }

    var isBackingOff: Bool {
        if case .backingOff = state { return true }
        return false
    }

    // MARK: Pushing

    /// Queues `staple` (DER) for `certificate`. The completion runs once, from the loop or,
    /// for a push refused at once (too large, queue full, shut down), before this returns.
    func push(staple: [UInt8], certificate: FilePath, completion: @escaping (HAProxyPushResult) -> Void) {
        if case .shutDown = state { return completion(.cancelled) }
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

    /// Connects now when watching the process (`Configuration.watchesProcess`), without
    /// waiting for a first push.
    func startWatching() {
        guard configuration.watchesProcess else { return }
        pump()
    }

    /// A new keepalive (SIGHUP) applies from the next idle period. An open connection keeps
    /// the CLI timeout it was given; if HAProxy closes it first, that only costs a reconnect.
    func setKeepalive(_ keepalive: Duration) {
        configuration.keepalive = keepalive
    }

    /// Closes the connection and ends every waiting push with `.cancelled`.
    func shutDown() {
        let previous = state
        if case .shutDown = previous { return }
        state = .shutDown
        release(previous)
        var ended: [HAProxyPushQueue.Entry] = []
        if case .busy(_, let push) = previous { ended.append(push.entry) }
        ended += queue.removeAll()
        for entry in ended { entry.completion(.cancelled) }
    }

    /// Starts the next piece of work, if the client is free for it.
    private func pump() {
        switch state {
        case .closed:
            // Watching the process means being connected: a closed connection is the first
            // sign of a restart, and the next process must be asked who it is.
            if !queue.isEmpty || configuration.watchesProcess { connect() }
        case .ready(let connection):
            if let entry = queue.popFirst() {
                start(entry, on: connection)
            } else {
                idle(connection)
            }
        case .idle(let connection, let keepalive):
            guard let entry = queue.popFirst() else { return }
            loop.cancel(keepalive)
            start(entry, on: connection)
        case .backingOff, .connecting, .settingUp, .busy, .shutDown:
            return
        }
    }

    private func start(_ entry: HAProxyPushQueue.Entry, on connection: Connection) {
        let command = HAProxyCommand.setOCSPResponse(base64: Base64.encode(entry.staple))
        send(command, for: InFlight(entry: entry, awaiting: command), on: connection)
    }

    // MARK: Connection

    private func connect() {
        connectionAttempts += 1
        let attempt = connectionAttempts
        let stream = UnixStream(loop: loop, path: socket, configuration: .init(
            connectTimeout: configuration.connectTimeout, maxQueuedBytes: configuration.maxCommandBytes + 64)) {
            [weak self] event in
            guard let self, let connection = self.state.connection, connection.attempt == attempt else { return }
            self.handle(event, on: connection)
        }
        state = .connecting(Connection(stream: stream, attempt: attempt,
                                       framer: HAProxyPromptFramer(limit: configuration.maxAnswerBytes)))
        do {
            try stream.connect()
        } catch {
            fail(.connection(error.reason))
        }
    }

    private func handle(_ event: UnixStream.Event, on connection: Connection) {
        switch event {
        case .connected:
            setUp(.prompt, on: connection)
        case .received(let chunk):
            switch connection.framer.append(chunk) {
            case .incomplete:
                return
            case .answer(let text):
                connection.stream.setReadTimeout(nil)
                handle(answer: text, on: connection)
            case .tooLarge(let limit):
                fail(.answerTooLarge(command: awaitingVerb, limit: limit))
            case .trailingBytes:
                fail(.unexpectedAnswer(command: awaitingVerb, answer: "more bytes after the prompt"))
            }
        case .closed(let error):
            switch state {
            case .ready, .idle:
                // HAProxy closed an idle connection (its CLI timeout, a reload): not a
                // failure; the next push reconnects.
                close()
                pump()
            default:
                fail(.connection(error.reason))
            }
        }
    }

    private var awaitingVerb: String { state.awaiting?.verb ?? "(none)" }

    /// Sends one of the commands that put a new connection in prompt mode.
    private func setUp(_ command: HAProxyCommand, on connection: Connection) {
        state = .settingUp(connection, awaiting: command)
        write(command.bytes, on: connection)
    }

    /// Sends `push`'s next command; one too long for HAProxy's line buffer ends the push.
    private func send(_ command: HAProxyCommand, for push: InFlight, on connection: Connection) {
        var push = push
        push.awaiting = command
        let bytes = command.bytes
        guard bytes.count <= configuration.maxCommandBytes else {
            return finish(push, .stapleTooLarge(limit: configuration.maxCommandBytes), on: connection)
        }
        state = .busy(connection, push)
        write(bytes, on: connection)
    }

    /// The state must already say which answer is due: a failed write fails from it.
    private func write(_ bytes: [UInt8], on connection: Connection) {
        do {
            try connection.stream.write(bytes)
        } catch {
            return fail(.connection(error.reason))
        }
        connection.stream.setReadTimeout(configuration.answerTimeout)
    }

    private func idle(_ connection: Connection) {
        let keepalive = loop.schedule(after: configuration.keepalive) { [weak self] in
            guard let self, case .idle(let idle, _) = self.state, idle === connection else { return }
            self.close()
            // Idle means no burst is going on: the listing is cheap to fetch again if needed.
            self.names.forget()
            // Watching the process: a fresh connection asks `show info` again, which is how
            // a reload (the new process took over the socket) shows.
            if self.configuration.watchesProcess { self.pump() }
        }
        state = .idle(connection, keepalive: keepalive)
    }

    /// Ends the connection without a failure.
    private func close() {
        release(state)
        state = .closed
    }

    /// Closes the stream and cancels the timer `state` holds; a push it holds is the
    /// caller's to end or requeue.
    private func release(_ state: State) {
        switch state {
        case .backingOff(let retry):
            loop.cancel(retry)
        case .idle(let connection, let keepalive):
            loop.cancel(keepalive)
            connection.stream.close()
        case .connecting(let connection), .settingUp(let connection, _), .ready(let connection),
             .busy(let connection, _):
            connection.stream.close()
        case .closed, .shutDown:
            break
        }
    }

    // MARK: Answers

    private func handle(answer text: [UInt8], on connection: Connection) {
        let answer = HAProxyAnswer(text)
        switch state {
        case .settingUp(_, let command):
            handleSetUp(answer, text, to: command, on: connection)
        case .busy(_, let push):
            handle(answer, text, to: push, on: connection)
        case .closed, .backingOff, .connecting, .ready, .idle, .shutDown:
            let excerpt = HAProxyAnswer.excerpt(String(decoding: text, as: UTF8.self))
            fail(.unexpectedAnswer(command: "(none)", answer: excerpt))
        }
    }

    private func handleSetUp(_ answer: HAProxyAnswer, _ text: [UInt8], to command: HAProxyCommand,
                             on connection: Connection) {
        if case .prompt = command {
            guard answer == .empty else { return unexpected(answer, text, to: command) }
            // Outlive the keepalive, so HAProxy never closes a connection the client still
            // counts on.
            let seconds = (configuration.keepalive + configuration.answerTimeout).components.seconds + 1
            return setUp(.setCLITimeout(seconds: Int(seconds)), on: connection)
        }
        if case .setCLITimeout = command, configuration.watchesProcess {
            // Whatever the timeout's answer, the connection works (see below).
            return setUp(.showInfo, on: connection)
        }
        if case .showInfo = command {
            guard let process = HAProxyProcessIdentity(showInfo: text) else { return unexpected(answer, text, to: command) }
            if process != lastProcess {
                lastProcess = process
                onEvent(.newProcess(socket: socket, process))
            }
        }
        // The answer to `set timeout cli` (or `show info`), the last command of the set-up.
        // Whatever the timeout's answer says, the connection works; an HAProxy that refuses
        // the timeout closes idle connections sooner, which only costs a reconnect.
        state = .ready(connection)
        // A refused command is cured by a command going through, not by connecting.
        if !lastFailureWasARefusal { markHealthy() }
        pump()
    }

    private func handle(_ answer: HAProxyAnswer, _ text: [UInt8], to push: InFlight, on connection: Connection) {
        switch push.awaiting {
        case .setOCSPResponse:
            switch answer {
            case .ocspResponseUpdated: finish(push, .updated, on: connection)
            case .certificateIDNotFound: installThroughTransaction(push, on: connection)
            case .ocspResponseRejected:
                finish(push, .rejected(answer: String(decoding: text, as: UTF8.self)), on: connection)
            default: unexpected(answer, text, to: push.awaiting)
            }

        case .showCertificates:
            guard let listing = HAProxyCertificateListing(text) else {
                return unexpected(answer, text, to: push.awaiting)
            }
            names.update(from: listing, at: .now(), resolve: resolvePath)
            installThroughTransaction(push, on: connection)

        case .setCertificateOCSP(let name, _):
            switch answer {
            case .transactionOpened(let certificate) where certificate == name:
                send(.commitCertificate(name), for: push, on: connection)
            case .transactionOpened(let certificate):
                fail(.foreignTransaction(certificate: certificate))
            case .certificateNotInConfiguration:
                // The cached name is stale (HAProxy was reloaded with other files).
                names.forget()
                installThroughTransaction(push, on: connection)
            case .permissionDenied, .unknownCommand:
                // Only a restart cures this (the socket's level, HAProxy's version), and a
                // restarted HAProxy loads the staple file by itself. Retrying would hold up
                // every staple behind this one for minutes, so the push ends here.
                finish(push, .rejected(answer: Self.cannotInstall(answer, command: push.awaiting.verb)), on: connection)
            default:
                unexpected(answer, text, to: push.awaiting)
            }

        case .commitCertificate:
            if answer == .committed { return finish(push, .installed, on: connection) }
            unexpected(answer, text, to: push.awaiting)

        case .prompt, .setCLITimeout, .showInfo:
            // Set-up commands, never sent for a push.
            unexpected(answer, text, to: push.awaiting)
        }
    }

    /// The staple's CertID matched no staple slot: find HAProxy's name for the certificate
    /// (listing again if the cached names do not have it) and open a transaction.
    private func installThroughTransaction(_ push: InFlight, on connection: Connection) {
        var push = push
        if let name = names.name(for: push.entry.certificate, resolve: resolvePath) {
            send(.setCertificateOCSP(certificate: name, base64: Base64.encode(push.entry.staple)),
                 for: push, on: connection)
        } else if !push.listed && names.mayRefresh(now: .now(), interval: configuration.listingInterval) {
            push.listed = true
            send(.showCertificates, for: push, on: connection)
        } else {
            finish(push, .certificateNotServed, on: connection)
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

    private func unexpected(_ answer: HAProxyAnswer, _ text: [UInt8], to command: HAProxyCommand) {
        switch answer {
        case .permissionDenied: fail(.permissionDenied(command: command.verb))
        case .unknownCommand: fail(.unknownCommand(command: command.verb))
        default:
            let excerpt = HAProxyAnswer.excerpt(String(decoding: text, as: UTF8.self))
            fail(.unexpectedAnswer(command: command.verb, answer: excerpt.isEmpty ? "(empty)" : excerpt))
        }
    }

    // MARK: Endings

    private func finish(_ push: InFlight, _ result: HAProxyPushResult, on connection: Connection) {
        state = .ready(connection)
        markHealthy()
        push.entry.completion(result)
        pump()
    }

    /// Closes the connection, puts a push in flight back in the queue and retries after the
    /// backoff.
    private func fail(_ reason: HAProxyClientError.Reason) {
        let previous = state
        if case .shutDown = previous { return }
        let error = HAProxyClientError(socket: socket, reason: reason)
        release(previous)
        consecutiveFailures += 1
        let delay = Self.backoff(failures: consecutiveFailures, initial: configuration.initialBackoff,
                                 maximum: configuration.maximumBackoff)
        // Set before any callback runs, so a push made from one waits for the retry.
        state = .backingOff(retry: loop.schedule(after: delay) { [weak self] in
            guard let self, case .backingOff = self.state else { return }
            self.state = .closed
            self.pump()
        })
        if case .busy(_, let push) = previous {
            queue.requeue(push.entry)?.completion(.superseded)
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
