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
        guard let request = OCSP_REQUEST_new() else { throw OCSPRequestError.openSSL("OCSP_REQUEST_new failed") }
        defer { OCSP_REQUEST_free(request) }
        guard let id = certID.makeOpenSSLObject() else { throw OCSPRequestError.invalidCertID }
        guard OCSP_request_add0_id(request, id) != nil else {
            OCSP_CERTID_free(id)
            throw OCSPRequestError.openSSL(OpenSSLErrorQueue.drainDescription(fallback: "cannot add the CertID"))
        }
        if includeNonce {
            // A nil value makes OpenSSL fill the nonce from its CSPRNG.
            guard OCSP_request_add1_nonce(request, nil, Self.nonceLength) == 1 else {
                throw OCSPRequestError.openSSL(OpenSSLErrorQueue.drainDescription(fallback: "cannot add a nonce"))
            }
            let index = OCSP_REQUEST_get_ext_by_NID(request, NID_id_pkix_OCSP_Nonce, -1)
            guard index >= 0, let extensionValue = X509_EXTENSION_get_data(OCSP_REQUEST_get_ext(request, index)) else {
                throw OCSPRequestError.openSSL("nonce extension missing after adding it")
            }
            nonce = ASN1.bytes(extensionValue)
        } else {
            nonce = nil
        }
        guard let der = ASN1.encode({ i2d_OCSP_REQUEST(request, $0) }) else {
            throw OCSPRequestError.openSSL(OpenSSLErrorQueue.drainDescription(fallback: "cannot encode the request"))
        }
        self.der = der
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
        var encoded = ""
        for character in Base64.encode(der).unicodeScalars {
            switch character {
            case "+": encoded += "%2B"
            case "/": encoded += "%2F"
            case "=": encoded += "%3D"
            default: encoded.unicodeScalars.append(character)
            }
        }
        return base.hasSuffix("/") ? base + encoded : base + "/" + encoded
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
