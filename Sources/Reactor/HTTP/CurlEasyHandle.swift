import CCurl

/// One curl easy handle and the error buffer curl writes its messages into.
///
/// The buffer lives exactly as long as the handle, so CURLOPT_ERRORBUFFER can never point at
/// freed memory. Whoever holds the handle must remove it from the multi handle before letting
/// it go.
final class CurlEasyHandle {
    let pointer: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>

    init?() {
        guard let pointer = curl_easy_init() else { return nil }
        self.pointer = pointer
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(pointer)
        errorBuffer.deallocate()
    }

    /// curl's message for the last failure, or nil when it left none.
    var errorMessage: String? {
        errorBuffer[Int(CURL_ERROR_SIZE) - 1] = 0
        guard errorBuffer[0] != 0 else { return nil }
        var message = String(cString: errorBuffer)
        while message.last == "\n" || message.last == " " { message.removeLast() }
        return message
    }

    /// Forgets every option of the last transfer (connections stay in the multi handle's
    /// cache), ready for the next one.
    func reset() {
        curl_easy_reset(pointer)
        errorBuffer[0] = 0
    }
}

/// A few idle easy handles kept for the next transfers, so a busy client does not create and
/// destroy one per request; beyond `capacity` they are freed.
struct CurlEasyPool {
    private var idle: [CurlEasyHandle] = []
    let capacity: Int

    init(capacity: Int) { self.capacity = max(0, capacity) }

    mutating func take() -> CurlEasyHandle? {
        idle.popLast() ?? CurlEasyHandle()
    }

    mutating func give(_ handle: CurlEasyHandle) {
        guard idle.count < capacity else { return }
        handle.reset()
        idle.append(handle)
    }

}
