import CCurl

extension HTTPTransfer {
    /// Turns curl's verdict on a finished transfer into the caller's result. Reads from the
    /// easy handle, so it must run before the handle is reset or reused.
    func outcome(for code: CURLcode, maxRedirects: Int) -> Result<HTTPResponse, HTTPError> {
        guard let handle = easy else { return .failure(HTTPError(url: url, reason: .cancelled)) }
        if code == CURLE_OK {
            var status = 0
            _ = ccurl_easy_getinfo_long(handle.pointer, CURLINFO_RESPONSE_CODE, &status)
            if errorStatusIsFailure && status >= 400 {
                return .failure(HTTPError(url: url, reason: .httpStatus(status)))
            }
            var effective: UnsafePointer<CChar>?
            _ = ccurl_easy_getinfo_string(handle.pointer, CURLINFO_EFFECTIVE_URL, &effective)
            return .success(HTTPResponse(url: url, finalURL: effective.map { String(cString: $0) } ?? url,
                                         statusCode: status, contentType: response.contentType,
                                         cacheControl: response.cacheControl, body: response.body))
        }
        return .failure(HTTPError(url: url, reason: reason(for: code, message: handle.errorMessage, maxRedirects: maxRedirects)))
    }

    private var reachedServer: Bool {
        guard let handle = easy else { return false }
        var address: UnsafePointer<CChar>?
        _ = ccurl_easy_getinfo_string(handle.pointer, CURLINFO_PRIMARY_IP, &address)
        return address.map { $0.pointee != 0 } ?? false
    }

    private func reason(for code: CURLcode, message: String?, maxRedirects: Int) -> HTTPError.Reason {
        let message = message ?? String(cString: curl_easy_strerror(code))
        switch code {
        case CURLE_WRITE_ERROR where response.overflow == .body, CURLE_FILESIZE_EXCEEDED:
            return .tooLarge(limit: response.maxBodyBytes)
        case CURLE_WRITE_ERROR where response.overflow == .headers:
            return .headersTooLarge(limit: response.maxHeaderBytes)
        case CURLE_OPERATION_TIMEDOUT:
            // curl says only "timed out". The total limit cannot fire before totalTimeout has
            // passed since attaching (curl starts its clock later than we do), so anything
            // earlier was the connect limit.
            let elapsed = MonotonicInstant.now().duration(since: startedAt)
            return elapsed >= totalTimeout ? .timedOut(after: totalTimeout) : .connectTimedOut(after: connectTimeout)
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            return .connectFailed(Self.withoutTiming(message))
        case CURLE_PEER_FAILED_VERIFICATION:
            return .tlsFailed(Self.certificateRefusal(message))
        case CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_SSL_CACERT_BADFILE,
             CURLE_SSL_ISSUER_ERROR:
            return .tlsFailed(message)
        case CURLE_TOO_MANY_REDIRECTS:
            return .tooManyRedirects(limit: maxRedirects)
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT:
            // Our URL, unless a server was reached: then it sent HTTP/0.9 or a redirect to a
            // URL we refuse to follow.
            return reachedServer ? .protocolError(message) : .invalidRequest(message)
        case CURLE_BAD_FUNCTION_ARGUMENT where reachedServer:
            // Every option was accepted when the transfer was attached; 7.88.1 reports a
            // header line with a bare CR before its colon this way (its header store cannot
            // split it into name and value).
            return .protocolError("response header line that cannot be parsed (curl: \(message))")
        case CURLE_RECV_ERROR where message == Self.chunkedTrailerTooLong:
            return .protocolError("chunked trailer too long (curl: \(message))")
        case CURLE_GOT_NOTHING, CURLE_WEIRD_SERVER_REPLY, CURLE_PARTIAL_FILE, CURLE_RECV_ERROR,
             CURLE_SEND_ERROR, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_BAD_CONTENT_ENCODING,
             CURLE_HTTP3:
            return .protocolError(message)
        default:
            return .curl(code: Int(code.rawValue), message: message)
        }
    }

    /// What 7.88.1 says when a chunked body's trailer outgrows its 64 KB buffer: no memory
    /// ran out, the server sent too much.
    static let chunkedTrailerTooLong = "Out of memory in chunked-encoding"

    /// curl words a refused server certificate as "SSL certificate problem: certificate has
    /// expired" or "SSL: no alternative certificate subject name matches target host name
    /// 'x'": the prefix says nothing, and without it nothing says whose certificate it was.
    static func certificateRefusal(_ message: String) -> String {
        var detail = Substring(message)
        for prefix in ["SSL certificate problem: ", "SSL: "] where detail.hasPrefix(prefix) {
            detail = detail.dropFirst(prefix.count)
        }
        return "server certificate refused: \(detail)"
    }

    /// curl adds how long it tried ("... port 80 after 3 ms: ..."), which makes every
    /// repeat of the same failure look new to whoever logs only changes.
    static func withoutTiming(_ message: String) -> String {
        let words = message.split(separator: " ", omittingEmptySubsequences: false)
        var kept: [Substring] = []
        var index = 0
        while index < words.count {
            if words[index] == "after", index + 2 < words.count, words[index + 1].allSatisfy(\.isNumber),
               words[index + 2].hasPrefix("ms") {
                // Keep what followed "ms" (a colon) on the previous word.
                let rest = words[index + 2].dropFirst(2)
                if !rest.isEmpty, let last = kept.popLast() { kept.append(last + rest) }
                index += 3
                continue
            }
            kept.append(words[index])
            index += 1
        }
        return kept.joined(separator: " ")
    }
}
