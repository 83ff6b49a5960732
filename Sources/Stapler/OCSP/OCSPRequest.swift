import COpenSSL
import Reactor

/// A DER OCSPRequest for one certificate (RFC 6960 §4.1): one SHA-1 CertID, no extensions
/// unless a nonce was asked for (RFC 5019 §2.1.1: responders may ignore nonces and serve
/// pre-signed answers, so by default there is none).
struct OCSPRequest: Equatable, Sendable {
    let der: [UInt8]
    /// The nonce extension's value (extnValue) exactly as sent; the verifier compares the
    /// response's nonce extension against it. Nil when the request carries no nonce.
    let nonce: [UInt8]?

    /// Length of a nonce's random part: RFC 8954 asks for 1 to 32 bytes, 16 is common.
    static let nonceLength: Int32 = 16

    init(certID: CertID, includeNonce: Bool = false) throws(OCSPRequestError) {
        defer { OpenSSLErrorQueue.clear() }
        guard let id = certID.makeOpenSSLObject() else { throw OCSPRequestError.invalidCertID }
        guard includeNonce else {
            OCSP_CERTID_free(id)
            der = Self.encodeWithoutExtensions(certID: certID.der)
            nonce = nil
            return
        }
        guard let request = OCSP_REQUEST_new() else {
            OCSP_CERTID_free(id)
            throw OCSPRequestError.openSSL("OCSP_REQUEST_new failed")
        }
        defer { OCSP_REQUEST_free(request) }
        guard OCSP_request_add0_id(request, id) != nil else {
            OCSP_CERTID_free(id)
            throw OCSPRequestError.openSSL(OpenSSLErrorQueue.drainDescription(fallback: "cannot add the CertID"))
        }
        // A nil value makes OpenSSL fill the nonce from its CSPRNG.
        guard OCSP_request_add1_nonce(request, nil, Self.nonceLength) == 1 else {
            throw OCSPRequestError.openSSL(OpenSSLErrorQueue.drainDescription(fallback: "cannot add a nonce"))
        }
        let index = OCSP_REQUEST_get_ext_by_NID(request, NID_id_pkix_OCSP_Nonce, -1)
        guard index >= 0, let extensionValue = X509_EXTENSION_get_data(OCSP_REQUEST_get_ext(request, index)) else {
            throw OCSPRequestError.openSSL("nonce extension missing after adding it")
        }
        nonce = ASN1.bytes(extensionValue)
        guard let der = ASN1.encode({ i2d_OCSP_REQUEST(request, $0) }) else {
            throw OCSPRequestError.openSSL(OpenSSLErrorQueue.drainDescription(fallback: "cannot encode the request"))
        }
        self.der = der
    }

    /// The request without extensions, as OpenSSL encodes it: the CertID (checked by the
    /// caller to be valid DER) inside four SEQUENCEs, Request, requestList, TBSRequest (its
    /// version v1 is the DEFAULT, so omitted) and OCSPRequest. Built here because it runs for
    /// every fetch, and OpenSSL's object round trip cost five times as much.
    static func encodeWithoutExtensions(certID: [UInt8]) -> [UInt8] {
        var der = certID
        for _ in 0..<4 { der = ASN1.sequence(wrapping: der) }
        return der
    }

    /// RFC 5019 §5: GET only when the whole URL is at most 255 bytes.
    static let maximumGETURLLength = 255

    /// How to send this request to `responderURL`: GET with the request in the path when
    /// the whole URL fits in 255 bytes (RFC 5019 §5, so caches can serve it), else POST. The
    /// answer is capped at what the verifier accepts.
    func httpRequest(responderURL: String) -> HTTPRequest {
        let getURL = Self.getURL(base: responderURL, der: der)
        var request = getURL.utf8.count <= Self.maximumGETURLLength
            ? HTTPRequest.get(getURL)
            : HTTPRequest.post(responderURL, body: der, contentType: "application/ocsp-request")
        request.maxBodyBytes = OCSPResponseVerifier.maximumResponseSize
        return request
    }

    /// `{url}/{url-encoded base64(DER)}`; a base URL ending in "/" gets no second slash.
    static func getURL(base: String, der: [UInt8]) -> String {
        var url = Array(base.utf8)
        url.reserveCapacity(url.count + 1 + (der.count + 2) / 3 * 4 * 3)
        if url.last != UInt8(ascii: "/") { url.append(UInt8(ascii: "/")) }
        for byte in Base64.encodedBytes(der) {
            let escape: UInt8 = switch byte {
            case UInt8(ascii: "+"): UInt8(ascii: "B")
            case UInt8(ascii: "/"): UInt8(ascii: "F")
            case UInt8(ascii: "="): UInt8(ascii: "D")
            default: 0
            }
            if escape == 0 {
                url.append(byte)
            } else {
                url.append(UInt8(ascii: "%"))
                url.append(byte == UInt8(ascii: "=") ? UInt8(ascii: "3") : UInt8(ascii: "2"))
                url.append(escape)
            }
        }
        return String(decoding: url, as: UTF8.self)
    }
}

/// Why no request could be built: only a corrupt CertID or an OpenSSL failure (out of memory).
enum OCSPRequestError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidCertID
    case openSSL(String)

    var description: String {
        switch self {
        case .invalidCertID: return "cannot build an OCSP request: the CertID is not valid DER"
        case .openSSL(let detail): return "cannot build an OCSP request: \(detail)"
        }
    }
}
