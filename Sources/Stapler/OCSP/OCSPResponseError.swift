/// Why an OCSP response (fresh from a responder, or a staple file read at startup) cannot be
/// stapled. `description` is one line naming the reason; the daemon adds the certificate
/// and URL. `isTemporary` says whether asking again later, unchanged, may well succeed.
struct OCSPResponseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// responseStatus values other than successful (RFC 6960 §4.2.1).
    enum ResponderStatus: Equatable, Sendable {
        case malformedRequest, internalError, tryLater, sigRequired, unauthorized
        case other(Int32)

        init(code: Int32) {
            switch code {
            case 1: self = .malformedRequest
            case 2: self = .internalError
            case 3: self = .tryLater
            case 5: self = .sigRequired
            case 6: self = .unauthorized
            default: self = .other(code)
            }
        }

        var name: String {
            switch self {
            case .malformedRequest: return "malformedRequest"
            case .internalError: return "internalError"
            case .tryLater: return "tryLater"
            case .sigRequired: return "sigRequired"
            case .unauthorized: return "unauthorized"
            case .other(let code): return "status \(code)"
            }
        }
    }

    enum Reason: Equatable, Sendable {
        case empty
        case tooLarge(size: Int, limit: Int)
        case unparsable(detail: String)
        case trailingData(count: Int)
        case responderStatus(ResponderStatus)
        case notBasic
        /// Neither the issuer nor a certificate in the response matches the responder ID.
        case signerNotFound
        case badSignature(detail: String)
        /// A certificate issued by the issuer signed, but without id-kp-OCSPSigning.
        case signerNotAuthorised
        /// The signer is neither the issuer nor issued by it (another CA, a grandchild...).
        case signerNotTrusted(detail: String)
        case nonceMissing
        case nonceMismatch
        /// No SingleResponse carries our CertID.
        case certificateNotInResponse
        case unknownStatus
        case thisUpdateInFuture(thisUpdate: Int64, allowedSkew: Int64)
        case missingNextUpdate
        case nextUpdateNotAfterThisUpdate(thisUpdate: Int64, nextUpdate: Int64)
        case nextUpdateInPast(nextUpdate: Int64)
        case unreadableTime(field: String)
        case openSSL(detail: String)
    }

    let reason: Reason

    init(_ reason: Reason) { self.reason = reason }

    /// Temporary: the responder said so (tryLater, internalError, unauthorized, which RFC
    /// 5019 §2.2.3 allows for "not known yet"), or the response is stale or early (a cache
    /// behind, a clock ahead): asking again later may succeed. Everything else points at a
    /// broken responder or CA setup that waiting will not fix.
    var isTemporary: Bool {
        switch reason {
        case .responderStatus(let status):
            return status == .tryLater || status == .internalError || status == .unauthorized
        case .thisUpdateInFuture, .nextUpdateInPast:
            return true
        default:
            return false
        }
    }

    var description: String {
        switch reason {
        case .empty:
            return "empty OCSP response"
        case .tooLarge(let size, let limit):
            return "OCSP response of \(size) bytes exceeds the \(limit)-byte limit"
        case .unparsable(let detail):
            return "not a DER OCSP response (\(detail))"
        case .trailingData(let count):
            return "OCSP response followed by \(count) bytes of trailing data"
        case .responderStatus(let status):
            switch status {
            case .tryLater: return "responder answered tryLater: it cannot answer now"
            case .internalError: return "responder answered internalError"
            case .unauthorized: return "responder answered unauthorized: it does not (yet) serve this certificate"
            case .malformedRequest: return "responder answered malformedRequest: it rejected our request"
            case .sigRequired: return "responder answered sigRequired: it wants signed requests"
            case .other(let code): return "responder answered unknown responseStatus \(code)"
            }
        case .notBasic:
            return "OCSP response is not a basic OCSP response"
        case .signerNotFound:
            return "response signer not found: neither the issuer nor a certificate included in the response"
        case .badSignature(let detail):
            return "response signature does not verify (\(detail))"
        case .signerNotAuthorised:
            return "response signed by a certificate the issuer did not authorise (no OCSPSigning EKU)"
        case .signerNotTrusted(let detail):
            return "response signed by a certificate that is neither the issuer nor issued by it (\(detail))"
        case .nonceMissing:
            return "response carries no nonce although the request had one"
        case .nonceMismatch:
            return "response nonce does not match the request's"
        case .certificateNotInResponse:
            return "response does not cover this certificate (no SingleResponse with its CertID)"
        case .unknownStatus:
            return "responder does not know this certificate (status unknown)"
        case .thisUpdateInFuture(let thisUpdate, let skew):
            return "thisUpdate \(UTCTime.format(thisUpdate)) is more than \(skew) s in the future "
                + "(by our clock: is it behind?)"
        case .missingNextUpdate:
            return "response has no nextUpdate (it cannot be scheduled, HAProxy would not load it)"
        case .nextUpdateNotAfterThisUpdate(let thisUpdate, let nextUpdate):
            return "nextUpdate \(UTCTime.format(nextUpdate)) is not after thisUpdate \(UTCTime.format(thisUpdate))"
        case .nextUpdateInPast(let nextUpdate):
            return "nextUpdate \(UTCTime.format(nextUpdate)) is in the past"
        case .unreadableTime(let field):
            return "response \(field) cannot be read"
        case .openSSL(let detail):
            return "OCSP response cannot be checked: \(detail)"
        }
    }
}
