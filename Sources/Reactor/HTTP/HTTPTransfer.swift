import CCurl

/// One request on its way through the client: waiting, attached to a curl easy handle, and
/// collecting what curl's write and header callbacks deliver.
///
/// curl's data callbacks reach it through an unretained pointer (CURLOPT_WRITEDATA,
/// HEADERDATA); the client's table of active transfers keeps it alive while it is attached.
/// CURLOPT_PRIVATE holds its id (never 0), which leads back to it from a finished handle.
final class HTTPTransfer {
    let id: UInt64
    let url: String
    /// `HTTPClient.origin(of: url)`, for the client's count of transfers per origin.
    let origin: String
    let completion: (Result<HTTPResponse, HTTPError>) -> Void
    let connectTimeout: Duration
    let totalTimeout: Duration
    let errorStatusIsFailure: Bool

    /// The method, header fields and body, kept only until curl has its own copy.
    private var pending: (method: HTTPRequest.Method, headers: [(name: String, value: String)], body: [UInt8])?
    private(set) var easy: CurlEasyHandle?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private(set) var startedAt = MonotonicInstant(nanoseconds: 0)

    /// What curl's write and header callbacks have delivered so far (with the size caps).
    fileprivate(set) var response: HTTPResponseCollector

    init(id: UInt64, request: HTTPRequest, completion: @escaping (Result<HTTPResponse, HTTPError>) -> Void) {
        self.id = id
        url = request.url
        origin = HTTPClient.origin(of: request.url)
        self.completion = completion
        // curl treats 0 as "no limit": every transfer gets a real deadline.
        totalTimeout = max(request.totalTimeout, .milliseconds(1))
        connectTimeout = min(max(request.connectTimeout, .milliseconds(1)), totalTimeout)
        response = HTTPResponseCollector(maxBodyBytes: request.maxBodyBytes, maxHeaderBytes: request.maxHeaderBytes)
        errorStatusIsFailure = request.errorStatusIsFailure
        pending = (request.method, request.headers, request.method == .post ? request.body : [])
    }

    deinit { freeHeaderList() }

    /// Why the request cannot be sent as given, or nil.
    static func problem(with request: HTTPRequest) -> String? {
        if request.url.utf8.contains(0) { return "URL contains a NUL byte" }
        for (name, value) in request.headers {
            if name.isEmpty || name.utf8.contains(where: { $0 == 0x3A || $0 <= 0x20 || $0 == 0x7F }) {
                return "header name \"\(name)\" is not a valid token"
            }
            if value.utf8.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) {
                return "header \(name) contains a line break or NUL"
            }
        }
        return nil
    }

    // MARK: Attaching to curl

    /// Sets every option of `handle` for this transfer; on failure the handle is left to the
    /// caller, still unattached.
    func attach(to handle: CurlEasyHandle, userAgent: String?, maxRedirects: Int,
                trustedCAFile: String?, trustedCADirectory: String?) throws(HTTPError) {
        guard let pending else { return }
        let easy = handle.pointer
        let me = Unmanaged.passUnretained(self).toOpaque()
        var failure: (CURLcode, String)?
        func check(_ code: CURLcode, _ what: String) {
            if code != CURLE_OK && failure == nil { failure = (code, what) }
        }

        check(ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1), "NOSIGNAL")
        check(ccurl_easy_setopt_string(easy, CURLOPT_URL, url), "URL")
        check(ccurl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"), "PROTOCOLS_STR")
        check(ccurl_easy_setopt_string(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"), "REDIR_PROTOCOLS_STR")
        check(ccurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 1), "FOLLOWLOCATION")
        check(ccurl_easy_setopt_long(easy, CURLOPT_MAXREDIRS, max(0, maxRedirects)), "MAXREDIRS")
        check(ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(connectTimeout.millisecondsRoundedUp)), "CONNECTTIMEOUT_MS")
        check(ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(totalTimeout.millisecondsRoundedUp)), "TIMEOUT_MS")
        // Stops an announced oversize body before it is read; unannounced ones are cut by
        // the write callback (7.88.1 does not apply MAXFILESIZE to them).
        check(ccurl_easy_setopt_off_t(easy, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(response.maxBodyBytes)), "MAXFILESIZE_LARGE")
        check(ccurl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, handle.errorBuffer), "ERRORBUFFER")
        check(ccurl_easy_setopt_data_callback(easy, CURLOPT_WRITEFUNCTION, transferWriteCallback), "WRITEFUNCTION")
        check(ccurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, me), "WRITEDATA")
        check(ccurl_easy_setopt_data_callback(easy, CURLOPT_HEADERFUNCTION, transferHeaderCallback), "HEADERFUNCTION")
        check(ccurl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, me), "HEADERDATA")
        // The id, not a pointer: the client looks it up before trusting anything.
        check(ccurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, UnsafeMutableRawPointer(bitPattern: UInt(id))), "PRIVATE")
        if let userAgent { check(ccurl_easy_setopt_string(easy, CURLOPT_USERAGENT, userAgent), "USERAGENT") }
        if let trustedCAFile { check(ccurl_easy_setopt_string(easy, CURLOPT_CAINFO, trustedCAFile), "CAINFO") }
        if let trustedCADirectory { check(ccurl_easy_setopt_string(easy, CURLOPT_CAPATH, trustedCADirectory), "CAPATH") }

        freeHeaderList()
        var fields = pending.headers.map { "\($0.name): \($0.value)" }
        if pending.method == .post && !pending.headers.contains(where: { $0.name.lowercased() == "expect" }) {
            // No "Expect: 100-continue" round trip (and its 1 s wait on servers that ignore it).
            fields.append("Expect:")
        }
        for field in fields {
            guard let extended = curl_slist_append(headerList, field) else {
                check(CURLE_OUT_OF_MEMORY, "HTTPHEADER")
                break
            }
            headerList = extended
        }
        if let headerList { check(ccurl_easy_setopt_pointer(easy, CURLOPT_HTTPHEADER, headerList), "HTTPHEADER") }

        switch pending.method {
        case .get:
            check(ccurl_easy_setopt_long(easy, CURLOPT_HTTPGET, 1), "HTTPGET")
        case .post:
            check(ccurl_easy_setopt_long(easy, CURLOPT_POST, 1), "POST")
            check(ccurl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(pending.body.count)), "POSTFIELDSIZE_LARGE")
            // COPYPOSTFIELDS: curl keeps its own copy, so the Swift array can go right away.
            let code = pending.body.withUnsafeBytes { bytes -> CURLcode in
                guard let base = bytes.baseAddress else {
                    return ccurl_easy_setopt_string(easy, CURLOPT_COPYPOSTFIELDS, "")
                }
                return ccurl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: base))
            }
            check(code, "COPYPOSTFIELDS")
        }

        if let (code, what) = failure {
            freeHeaderList()
            let message = String(cString: curl_easy_strerror(code))
            throw HTTPError(url: url, reason: code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT
                ? .invalidRequest(message)
                : .curl(code: Int(code.rawValue), message: "setting \(what): \(message)"))
        }
        self.pending = nil
        self.easy = handle
        startedAt = .now()
    }

    /// Takes the easy handle back (already removed from the multi handle by the caller).
    func detach() -> CurlEasyHandle? {
        freeHeaderList()
        defer { easy = nil }
        return easy
    }

    private func freeHeaderList() {
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
    }
}

// MARK: Data from curl (called inside curl: no curl calls here)

private let transferWriteCallback: ccurl_data_callback = { data, size, count, userdata in
    guard let userdata else { return 0 }
    let transfer = Unmanaged<HTTPTransfer>.fromOpaque(userdata).takeUnretainedValue()
    return transfer.response.receiveBody(UnsafeRawBufferPointer(start: data, count: size * count))
}

private let transferHeaderCallback: ccurl_data_callback = { data, size, count, userdata in
    guard let userdata else { return 0 }
    let transfer = Unmanaged<HTTPTransfer>.fromOpaque(userdata).takeUnretainedValue()
    return transfer.response.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: size * count))
}
