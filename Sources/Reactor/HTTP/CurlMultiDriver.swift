import CCurl

/// Runs a curl multi handle on an `EventLoop`: curl's socket callback becomes IORegistrations,
/// its timer callback one loop timer, and readiness goes back through
/// `curl_multi_socket_action`.
///
/// libcurl 7.88.1 refuses curl calls made from inside its callbacks
/// (CURLM_RECURSIVE_API_CALL), so the callbacks here only touch the loop. Finished transfers
/// are collected from `curl_multi_info_read` after `curl_multi_socket_action` has returned
/// and handed to `onFinished`, which may add and remove handles freely.
final class CurlMultiDriver {
    let multi: UnsafeMutableRawPointer
    private let loop: EventLoop
    private var watched: [curl_socket_t: IORegistration] = [:]
    private var timer: TimerHandle?
    /// Bumped whenever curl changes its timeout, so a deferred "now" it replaced does nothing.
    private var timerGeneration: UInt64 = 0
    private var insideCurl = false
    /// Sockets the loop refused to watch, with the transfer that owns them.
    private var unwatchable: [(easy: UnsafeMutableRawPointer, error: SystemError)] = []

    /// Gets every finished easy handle with curl's result code. Must remove the handle.
    var onFinished: (_ easy: UnsafeMutableRawPointer, _ code: CURLcode) -> Void = { _, _ in }
    /// Gets a transfer whose socket the loop could not watch: it would otherwise only end at
    /// its timeout. Must remove the handle.
    var onUnwatchableSocket: (_ easy: UnsafeMutableRawPointer, _ error: SystemError) -> Void = { _, _ in }

    init?(loop: EventLoop) {
        guard let multi = curl_multi_init() else { return nil }
        self.multi = multi
        self.loop = loop
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = ccurl_multi_setopt_socket_callback(multi) { easy, socket, what, userp, _ in
            guard let userp else { return 0 }
            Unmanaged<CurlMultiDriver>.fromOpaque(userp).takeUnretainedValue()
                .socketChanged(socket, what: what, easy: easy)
            return 0
        }
        _ = ccurl_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, me)
        _ = ccurl_multi_setopt_timer_callback(multi) { _, timeoutMS, userp in
            guard let userp else { return 0 }
            Unmanaged<CurlMultiDriver>.fromOpaque(userp).takeUnretainedValue().timerChanged(timeoutMS)
            return 0
        }
        _ = ccurl_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, me)
    }

    /// Every easy handle must have been removed before the driver goes.
    deinit {
        // Silence curl first: closing cached connections would otherwise call back into a
        // half-destroyed driver.
        _ = ccurl_multi_setopt_socket_callback(multi, nil)
        _ = ccurl_multi_setopt_timer_callback(multi, nil)
        for registration in watched.values { registration.cancel() }
        watched.removeAll()
        if let timer { loop.cancel(timer) }
        curl_multi_cleanup(multi)
    }

    func setLimit(_ option: CURLMoption, _ value: Int) {
        _ = ccurl_multi_setopt_long(multi, option, value)
    }

    func add(_ easy: UnsafeMutableRawPointer) -> CURLMcode {
        precondition(!insideCurl, "curl call from inside a curl callback")
        return curl_multi_add_handle(multi, easy)
    }

    func remove(_ easy: UnsafeMutableRawPointer) {
        precondition(!insideCurl, "curl call from inside a curl callback")
        _ = curl_multi_remove_handle(multi, easy)
    }

    // MARK: curl callbacks (inside curl: loop calls only)

    private func socketChanged(_ fd: curl_socket_t, what: Int32, easy: UnsafeMutableRawPointer?) {
        if what == CCURL_POLL_REMOVE {
            // The descriptor may be closed already; cancel tolerates that.
            watched.removeValue(forKey: fd)?.cancel()
            return
        }
        var interest: IOEvents = []
        if what == CCURL_POLL_IN || what == CCURL_POLL_INOUT { interest.insert(.readable) }
        if what == CCURL_POLL_OUT || what == CCURL_POLL_INOUT { interest.insert(.writable) }
        if let existing = watched[fd], existing.isActive {
            do {
                try existing.setInterest(interest)
                return
            } catch {
                // A number curl reused without telling us: watch the new descriptor afresh.
                existing.cancel()
            }
        }
        do {
            watched[fd] = try loop.register(fd: fd, interest: interest) { [weak self] events in
                self?.socketReady(fd, events)
            }
        } catch {
            watched.removeValue(forKey: fd)
            if let easy { unwatchable.append((easy, error)) }
        }
    }

    private func timerChanged(_ timeoutMS: Int) {
        if let timer { loop.cancel(timer) }
        timer = nil
        timerGeneration &+= 1
        guard timeoutMS >= 0 else { return }
        // Even 0 goes through the loop: calling curl from here would be re-entrant. It goes
        // as deferred work, not as a timer: curl asks for "now" several times per transfer,
        // and a timer would cost a timerfd_settime and a wakeup each time.
        if timeoutMS == 0 {
            let generation = timerGeneration
            loop.executeSoon { [weak self] in
                guard let self, self.timerGeneration == generation else { return }
                self.act(on: CCURL_SOCKET_TIMEOUT, events: 0)
            }
            return
        }
        timer = loop.schedule(after: .milliseconds(timeoutMS)) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.act(on: CCURL_SOCKET_TIMEOUT, events: 0)
        }
    }

    // MARK: Loop events

    private func socketReady(_ fd: curl_socket_t, _ events: IOEvents) {
        var mask: Int32 = 0
        // A hangup is seen by reading: curl has to find the end of stream itself.
        if events.contains(.readable) || events.contains(.hangup) { mask |= CCURL_CSELECT_IN }
        if events.contains(.writable) { mask |= CCURL_CSELECT_OUT }
        if events.contains(.error) { mask |= CCURL_CSELECT_ERR }
        act(on: fd, events: mask)
    }

    private func act(on socket: curl_socket_t, events: Int32) {
        var running: Int32 = 0
        insideCurl = true
        _ = curl_multi_socket_action(multi, socket, events, &running)
        insideCurl = false
        reportFinished()
    }

    private func reportFinished() {
        while !unwatchable.isEmpty {
            let (easy, error) = unwatchable.removeFirst()
            onUnwatchableSocket(easy, error)
        }
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            // Copied out before the handle is removed, which frees the message.
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let code = ccurl_msg_result(message)
            onFinished(easy, code)
        }
    }
}
