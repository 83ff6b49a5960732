import CCurl

/// One request on its way through the client: waiting, attached to a curl easy handle, and
/// collecting what curl's write and header callbacks deliver.
///
/// curl's data callbacks reach it through an unretained pointer (CURLOPT_WRITEDATA,
/// HEADERDATA); the client's table of active transfers keeps it alive while it is attached.
/// CURLOPT_PRIVATE holds its id (never 0), which leads back to it from a finished handle.
final class HTTPTransfer {
    let id: UInt64
    /// The URL asked for, which every report names.
    let url: String
    /// Where the current hop goes: `url`, or the target of the last redirect followed.
    private(set) var currentURL: String
    /// `HTTPClient.origin(of: currentURL)`, for the client's count of transfers per origin.
    private(set) var origin: String
    /// Redirects followed so far (the client follows them itself, after resolving).
    private(set) var redirectsFollowed = 0
    let completion: (Result<HTTPResponse, HTTPError>) -> Void
    let connectTimeout: Duration
    let totalTimeout: Duration
    let errorStatusIsFailure: Bool
    /// Straight to the URL's host, whatever the client's proxy setting.
    let bypassesProxy: Bool

    /// The method, header fields and body, kept for every hop of a redirect.
    private var method: HTTPRequest.Method
    private let headers: [(name: String, value: String)]
    private var requestBody: [UInt8]
    private(set) var easy: CurlEasyHandle?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    /// The `CURLOPT_RESOLVE` entry of this hop; curl reads it when the transfer starts.
    private var resolveList: UnsafeMutablePointer<curl_slist>?
    /// When the first hop was handed to curl: the total timeout counts from here.
    private(set) var startedAt = MonotonicInstant(nanoseconds: 0)
    private var hasStarted = false

    /// What curl's write and header callbacks have delivered so far (with the size caps).
    fileprivate(set) var response: HTTPResponseCollector

    init(id: UInt64, request: HTTPRequest, completion: @escaping (Result<HTTPResponse, HTTPError>) -> Void) {
        self.id = id
        url = request.url
        currentURL = request.url
        origin = HTTPClient.origin(of: request.url)
        self.completion = completion
        // curl treats 0 as "no limit": every transfer gets a real deadline.
        totalTimeout = max(request.totalTimeout, .milliseconds(1))
        connectTimeout = min(max(request.connectTimeout, .milliseconds(1)), totalTimeout)
        response = HTTPResponseCollector(maxBodyBytes: request.maxBodyBytes, maxHeaderBytes: request.maxHeaderBytes)
        errorStatusIsFailure = request.errorStatusIsFailure
        bypassesProxy = request.bypassesProxy
        method = request.method
        headers = request.headers
        requestBody = request.method == .post ? request.body : []
    }

    deinit { freeLists() }

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

    /// The time left of the total timeout (all of it before the first hop).
    var remainingTime: Duration {
        hasStarted ? totalTimeout - MonotonicInstant.now().duration(since: startedAt) : totalTimeout
    }

    /// Sets every option of `handle` for the current hop; on failure the handle is left to
    /// the caller, still unattached. `resolveEntry` ("host:port:addresses") gives curl the
    /// addresses of the host it connects to (the proxy's through a proxy), so that curl
    /// resolves nothing itself.
    func attach(to handle: CurlEasyHandle, userAgent: String?, route: ProxyRoute, resolveEntry: String?,
                trustedCAFile: String?, trustedCADirectory: String?) throws(HTTPError) {
        let easy = handle.pointer
        let remaining = max(remainingTime, .milliseconds(1))
        let me = Unmanaged.passUnretained(self).toOpaque()
        var failure: (CURLcode, String)?
        func check(_ code: CURLcode, _ what: String) {
            if code != CURLE_OK && failure == nil { failure = (code, what) }
        }

        check(ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1), "NOSIGNAL")
        check(ccurl_easy_setopt_string(easy, CURLOPT_URL, currentURL), "URL")
        check(ccurl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"), "PROTOCOLS_STR")
        // Redirects are followed by the client, after resolving the new host on the loop:
        // curl following them would resolve it on its own thread.
        check(ccurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0), "FOLLOWLOCATION")
        check(ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS,
                                     Int(min(connectTimeout, remaining).millisecondsRoundedUp)), "CONNECTTIMEOUT_MS")
        check(ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(remaining.millisecondsRoundedUp)), "TIMEOUT_MS")
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
        // The route is decided by the client: an empty CURLOPT_PROXY keeps curl from reading
        // the environment, an empty CURLOPT_NOPROXY from exempting a host it was told to proxy.
        switch route {
        case .direct:
            check(ccurl_easy_setopt_string(easy, CURLOPT_PROXY, ""), "PROXY")
        case .proxy(let proxy):
            check(ccurl_easy_setopt_string(easy, CURLOPT_PROXY, proxy.text), "PROXY")
            // The port the client resolved for, also when the URL names none.
            check(ccurl_easy_setopt_long(easy, CURLOPT_PROXYPORT, Int(proxy.port)), "PROXYPORT")
            check(ccurl_easy_setopt_string(easy, CURLOPT_NOPROXY, ""), "NOPROXY")
        case .unparsedProxy(let text):
            check(ccurl_easy_setopt_string(easy, CURLOPT_PROXY, text), "PROXY")
            check(ccurl_easy_setopt_string(easy, CURLOPT_NOPROXY, ""), "NOPROXY")
        }

        freeLists()
        if let resolveEntry {
            // Permanent entries (no "+"): curl replaces them on the next transfer and never
            // lets one expire between adding it and connecting, which would make it resolve.
            if let list = curl_slist_append(nil, resolveEntry) {
                resolveList = list
                check(ccurl_easy_setopt_pointer(easy, CURLOPT_RESOLVE, list), "RESOLVE")
            } else {
                check(CURLE_OUT_OF_MEMORY, "RESOLVE")
            }
        }
        var fields = headers.map { "\($0.name): \($0.value)" }
        if method == .post && !headers.contains(where: { $0.name.lowercased() == "expect" }) {
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

        switch method {
        case .get:
            check(ccurl_easy_setopt_long(easy, CURLOPT_HTTPGET, 1), "HTTPGET")
        case .post:
            check(ccurl_easy_setopt_long(easy, CURLOPT_POST, 1), "POST")
            check(ccurl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(requestBody.count)), "POSTFIELDSIZE_LARGE")
            // COPYPOSTFIELDS: curl keeps its own copy, so the Swift array can go right away.
            let code = requestBody.withUnsafeBytes { bytes -> CURLcode in
                guard let base = bytes.baseAddress else {
                    return ccurl_easy_setopt_string(easy, CURLOPT_COPYPOSTFIELDS, "")
                }
                return ccurl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: base))
            }
            check(code, "COPYPOSTFIELDS")
        }

        if let (code, what) = failure {
            freeLists()
            let message = String(cString: curl_easy_strerror(code))
            throw HTTPError(url: url, reason: code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT
                ? .invalidRequest(message)
                : .curl(code: Int(code.rawValue), message: "setting \(what): \(message)"))
        }
        self.easy = handle
        if !hasStarted {
            hasStarted = true
            startedAt = .now()
        }
    }

    /// Takes the easy handle back (already removed from the multi handle by the caller).
    func detach() -> CurlEasyHandle? {
        freeLists()
        defer { easy = nil }
        return easy
    }

    private func freeLists() {
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
        if let resolveList { curl_slist_free_all(resolveList) }
        resolveList = nil
    }

    // MARK: Redirects

    /// Where a finished hop redirects to: its status is 3xx and curl worked out the
    /// absolute target from its Location. Nil for any other ending.
    func redirectTarget(for code: CURLcode) -> (status: Int, url: String)? {
        guard code == CURLE_OK, let handle = easy else { return nil }
        var status = 0
        _ = ccurl_easy_getinfo_long(handle.pointer, CURLINFO_RESPONSE_CODE, &status)
        guard (300..<400).contains(status) else { return nil }
        var target: UnsafePointer<CChar>?
        guard ccurl_easy_getinfo_string(handle.pointer, CURLINFO_REDIRECT_URL, &target) == CURLE_OK, let target
        else { return nil }
        return (status, String(cString: target))
    }

    /// Points the transfer at a redirect's target (detached first). A POST becomes a GET on
    /// 301, 302 and 303, as curl and browsers do; 307 and 308 repeat it.
    func follow(redirectTo target: String, status: Int) {
        currentURL = target
        origin = HTTPClient.origin(of: target)
        redirectsFollowed += 1
        if method == .post && (301...303).contains(status) {
            method = .get
            requestBody = []
        }
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
