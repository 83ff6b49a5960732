import COpenSSL

/// Checks an OCSP response for one certificate before anything is written or pushed: the
/// same function serves a fresh answer from a responder and a staple file found at startup.
/// Every check of RFC 6960 / RFC 5019 that a client would make is made here, so a staple
/// that passes will be accepted by HAProxy and by clients.
enum OCSPResponseVerifier {
    /// OpenBSD's ocspcheck caps responses at 20 KiB; real ones are 0.5 to 4 KiB.
    static let maximumResponseSize = 20 * 1024
    /// How far thisUpdate may lie in the future (the responder's clock ahead of ours).
    /// HAProxy and nginx allow 300 s.
    static let defaultClockSkew: Int64 = 300

    /// - Parameters:
    ///   - der: the response body or staple file.
    ///   - certificate: what the response must be about, and who may have signed it.
    ///   - now: Unix seconds; a parameter so tests can move time.
    ///   - expectedNonce: the request's nonce (`OCSPRequest.nonce`) if one was sent.
    static func verify(_ der: [UInt8], for certificate: CertificateRecord, now: Int64,
                       allowedClockSkew: Int64 = defaultClockSkew,
                       expectedNonce: [UInt8]? = nil) throws(OCSPResponseError) -> VerifiedOCSPResponse {
        try verify(der, certID: certificate.certID, issuer: certificate.issuer, now: now,
                   allowedClockSkew: allowedClockSkew, expectedNonce: expectedNonce)
    }

    static func verify(_ der: [UInt8], certID: CertID, issuer: Issuer, now: Int64,
                       allowedClockSkew: Int64 = defaultClockSkew,
                       expectedNonce: [UInt8]? = nil) throws(OCSPResponseError) -> VerifiedOCSPResponse {
        // Whatever happens, leave OpenSSL's error queue empty for the next operation.
        defer { OpenSSLErrorQueue.clear() }
        try checkSize(der)
        // The common shape, checked without OpenSSL's OCSP decoder; anything else, and
        // anything it would refuse, goes on to the full check below.
        if expectedNonce == nil,
           let accepted = OCSPResponseFastPath.accept(der, certID: certID, issuer: issuer, now: now,
                                                      allowedClockSkew: allowedClockSkew) {
            return accepted
        }
        return try verifyWithOpenSSL(der, certID: certID, issuer: issuer, now: now, allowedClockSkew: allowedClockSkew,
                                     expectedNonce: expectedNonce)
    }

    /// Every check made with OpenSSL's OCSP decoder, whatever the response's shape: what
    /// `verify` does when the fast path does not accept. Internal for the tests and the fuzz
    /// target that hold the two paths to the same verdicts.
    static func verifyWithOpenSSL(_ der: [UInt8], certID: CertID, issuer: Issuer, now: Int64,
                                  allowedClockSkew: Int64 = defaultClockSkew,
                                  expectedNonce: [UInt8]? = nil) throws(OCSPResponseError) -> VerifiedOCSPResponse {
        defer { OpenSSLErrorQueue.clear() }
        try checkSize(der)
        // Certificates embedded that all passed the full check before (a delegated responder's,
        // in every answer): parse the response without them and check it with the remembered
        // ones. Only an acceptance counts; anything this path refuses is checked again as it
        // came, so every refusal and its reason are those of the full check.
        if issuer.delegatedSigners.count > 0, let layout = OCSPResponseLayout(der: der),
           let delegates = issuer.delegatedSigners.checkedCertificates(layout.certificates, at: now + allowedClockSkew),
           let verified = try? verify(parsing: layout.withoutCertificates, original: der, knownDelegates: delegates,
                                      certID: certID, issuer: issuer, now: now, allowedClockSkew: allowedClockSkew,
                                      expectedNonce: expectedNonce) {
            return verified
        }
        return try verify(parsing: der, original: der, knownDelegates: nil, certID: certID, issuer: issuer, now: now,
                          allowedClockSkew: allowedClockSkew, expectedNonce: expectedNonce)
    }

    private static func checkSize(_ der: [UInt8]) throws(OCSPResponseError) {
        guard !der.isEmpty else { throw OCSPResponseError(.empty) }
        guard der.count <= maximumResponseSize else {
            throw OCSPResponseError(.tooLarge(size: der.count, limit: maximumResponseSize))
        }
    }

    /// Every check on `parseable`, which is `original` or `original` without its embedded
    /// certificates when these are all `knownDelegates`. The verified response keeps
    /// `original`, the bytes to staple.
    private static func verify(parsing parseable: [UInt8], original der: [UInt8], knownDelegates: [X509Certificate]?,
                               certID: CertID, issuer: Issuer, now: Int64, allowedClockSkew: Int64,
                               expectedNonce: [UInt8]?) throws(OCSPResponseError) -> VerifiedOCSPResponse {
        defer { OpenSSLErrorQueue.clear() }
        guard let (response, consumed) = ASN1.decode(parseable, { d2i_OCSP_RESPONSE(nil, $0, $1) }) else {
            throw OCSPResponseError(.unparsable(detail: OpenSSLErrorQueue.drainDescription(fallback: "no detail")))
        }
        defer { OCSP_RESPONSE_free(response) }
        guard consumed == parseable.count else {
            throw OCSPResponseError(.trailingData(count: parseable.count - consumed))
        }

        let responseStatus = OCSP_response_status(response)
        guard responseStatus == OCSP_RESPONSE_STATUS_SUCCESSFUL else {
            throw OCSPResponseError(.responderStatus(.init(code: responseStatus)))
        }
        guard let basic = OCSP_response_get1_basic(response) else { throw OCSPResponseError(.notBasic) }
        defer { OCSP_BASICRESP_free(basic) }

        if let knownDelegates {
            guard isSignedDirectlyByIssuer(basic, issuer: issuer, at: now + allowedClockSkew)
                || isSignedByCheckedDelegate(basic, knownDelegates, issuer: issuer, at: now + allowedClockSkew) else {
                throw OCSPResponseError(.signerNotTrusted(detail: "not signed by a known delegate"))
            }
        } else {
            try verifySigner(basic, issuer: issuer, at: now + allowedClockSkew)
        }
        if let expectedNonce { try verifyNonce(basic, expected: expectedNonce) }

        guard let id = certID.makeOpenSSLObject() else {
            throw OCSPResponseError(.openSSL(detail: "our CertID is not valid DER"))
        }
        defer { OCSP_CERTID_free(id) }
        var status: Int32 = -1
        var reason: Int32 = -1
        var revocationTime: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        var thisUpdateTime: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        var nextUpdateTime: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        guard OCSP_resp_find_status(basic, id, &status, &reason, &revocationTime, &thisUpdateTime,
                                    &nextUpdateTime) == 1 else {
            throw OCSPResponseError(.certificateNotInResponse)
        }

        guard let thisUpdate = ASN1.unixTime(thisUpdateTime) else {
            throw OCSPResponseError(.unreadableTime(field: "thisUpdate"))
        }
        guard thisUpdate <= now + allowedClockSkew else {
            throw OCSPResponseError(.thisUpdateInFuture(thisUpdate: thisUpdate, allowedSkew: allowedClockSkew))
        }
        guard nextUpdateTime != nil else { throw OCSPResponseError(.missingNextUpdate) }
        guard let nextUpdate = ASN1.unixTime(nextUpdateTime) else {
            throw OCSPResponseError(.unreadableTime(field: "nextUpdate"))
        }
        guard nextUpdate > thisUpdate else {
            throw OCSPResponseError(.nextUpdateNotAfterThisUpdate(thisUpdate: thisUpdate, nextUpdate: nextUpdate))
        }
        guard nextUpdate > now else { throw OCSPResponseError(.nextUpdateInPast(nextUpdate: nextUpdate)) }
        guard let producedAt = ASN1.unixTime(OCSP_resp_get0_produced_at(basic)) else {
            throw OCSPResponseError(.unreadableTime(field: "producedAt"))
        }

        let certificateStatus: VerifiedOCSPResponse.Status
        switch status {
        case V_OCSP_CERTSTATUS_GOOD:
            certificateStatus = .good
        case V_OCSP_CERTSTATUS_REVOKED:
            guard let time = ASN1.unixTime(revocationTime) else {
                throw OCSPResponseError(.unreadableTime(field: "revocationTime"))
            }
            certificateStatus = .revoked(time: time, reason: reason >= 0 ? Int(reason) : nil)
        default:
            throw OCSPResponseError(.unknownStatus)
        }
        return VerifiedOCSPResponse(status: certificateStatus, thisUpdate: thisUpdate, nextUpdate: nextUpdate,
                                    producedAt: producedAt, der: der)
    }

    /// RFC 6960 §4.2.2.2: the signer is the issuer itself, or a certificate issued directly
    /// by the issuer that carries id-kp-OCSPSigning. The issuer is the only trust anchor
    /// (partial chain: it may be an intermediate; the chain above it is not our business).
    /// No OCSP_TRUSTOTHER: it would skip the delegation check for certificates we supply.
    /// OCSP_NOEXPLICIT: "explicitly trusted for OCSP signing" is a property of a CA file's
    /// auxiliary data, which our issuers never carry; it must not widen who may sign.
    ///
    /// Certificates are judged at `time`, which is `now` plus the allowed skew: a responder
    /// certificate issued seconds ago by a CA whose clock runs ahead is accepted like a
    /// thisUpdate would be, and one about to expire is refused a little early, which costs
    /// nothing since clients would refuse the staple a moment later.
    private static func verifySigner(_ basic: OpaquePointer, issuer: Issuer, at time: Int64) throws(OCSPResponseError) {
        if isSignedDirectlyByIssuer(basic, issuer: issuer, at: time) { return }
        let delegate = embeddedSigner(basic)
        if let delegate, isSignedByKnownDelegate(basic, delegate, issuer: issuer, at: time) { return }
        guard let store = X509_STORE_new() else { throw OCSPResponseError(.openSSL(detail: "X509_STORE_new failed")) }
        defer { X509_STORE_free(store) }
        guard X509_STORE_add_cert(store, issuer.certificate.pointer) == 1,
              X509_STORE_set_flags(store, UInt(X509_V_FLAG_PARTIAL_CHAIN)) == 1,
              let parameters = X509_STORE_get0_param(store) else {
            throw OCSPResponseError(.openSSL(detail: OpenSSLErrorQueue.drainDescription(fallback: "trust store setup failed")))
        }
        X509_VERIFY_PARAM_set_time(parameters, time_t(time))
        // The issuer also goes in the candidate list, which OpenSSL searches for the signer
        // before the certificates the response carries: a response signed by the issuer
        // finds it even when it omits the signer certificate (allowed) or carries another
        // variant of it (a cross-signed CA: same name and key, chaining elsewhere).
        guard let candidates = copenssl_sk_X509_new_null() else {
            throw OCSPResponseError(.openSSL(detail: "out of memory"))
        }
        defer { copenssl_sk_X509_free(candidates) }
        guard copenssl_sk_X509_push(candidates, issuer.certificate.pointer) > 0 else {
            throw OCSPResponseError(.openSSL(detail: "out of memory"))
        }
        if OCSP_basic_verify(basic, candidates, store, UInt(OCSP_NOEXPLICIT)) == 1 {
            if let delegate, let validity = delegate.validity {
                issuer.delegatedSigners.remember(delegate.fingerprint, validity, checked: delegate.checked, now: time)
            }
            return
        }

        let errors = OpenSSLErrorQueue.drain()
        let detail = errors.isEmpty ? "no detail" : errors.map(\.text).joined(separator: "; ")
        func has(_ reason: Int32) -> Bool { errors.contains { $0.library == ERR_LIB_OCSP && $0.reason == reason } }
        if has(OCSP_R_SIGNER_CERTIFICATE_NOT_FOUND) { throw OCSPResponseError(.signerNotFound) }
        if has(OCSP_R_MISSING_OCSPSIGNING_USAGE) { throw OCSPResponseError(.signerNotAuthorised) }
        if has(OCSP_R_SIGNATURE_FAILURE) || has(OCSP_R_NO_SIGNER_KEY) {
            throw OCSPResponseError(.badSignature(detail: detail))
        }
        if let verifyError = errors.first(where: { $0.library == ERR_LIB_OCSP && $0.reason == OCSP_R_CERTIFICATE_VERIFY_ERROR }) {
            // OpenSSL's detail reads "Verify error: <what X509_verify_cert said>".
            var why = verifyError.detail ?? verifyError.text
            if why.hasPrefix("Verify error:") { why = String(why.dropFirst("Verify error:".count)) }
            throw OCSPResponseError(.signerNotTrusted(detail: why.trimmingASCIISpaces))
        }
        // The chain verified but leads to a certificate that is not the issuer of this CertID
        // (OpenSSL then says nothing).
        throw OCSPResponseError(.signerNotTrusted(detail: errors.isEmpty ? "signer is not the CA of this certificate" : detail))
    }

    /// The common case, checked cheaply: the issuer itself signed. The signer is looked for
    /// only among [issuer] (OCSP_NOINTERN) and its signature checked (OCSP_NOVERIFY skips
    /// building a chain, pointless when the signer is the trust anchor itself), so success
    /// proves the issuer's key signed this response. Anything else, a delegated responder
    /// included, takes the full check below, which also explains failures.
    private static func isSignedDirectlyByIssuer(_ basic: OpaquePointer, issuer: Issuer, at time: Int64) -> Bool {
        defer { OpenSSLErrorQueue.clear() }
        guard let notBefore = issuer.certificate.notBefore, let notAfter = issuer.certificate.notAfter,
              notBefore <= time, time <= notAfter,
              let candidates = copenssl_sk_X509_new_null() else { return false }
        defer { copenssl_sk_X509_free(candidates) }
        guard copenssl_sk_X509_push(candidates, issuer.certificate.pointer) > 0 else { return false }
        return OCSP_basic_verify(basic, candidates, nil, UInt(OCSP_NOINTERN | OCSP_NOVERIFY | OCSP_NOEXPLICIT)) == 1
    }

    /// The certificate the response says signed it, when the response carries it (a
    /// delegated responder's), with what the delegate memory keys and checks.
    private struct EmbeddedSigner {
        let pointer: OpaquePointer
        let fingerprint: [UInt8]
        let validity: DelegatedSigners.Validity?

        /// A reference of its own to the certificate, with its DER, for the delegate memory.
        var checked: DelegatedSigners.Checked? {
            guard X509_up_ref(pointer) == 1 else { return nil }
            let certificate = X509Certificate(owning: pointer)
            return certificate.der.map { DelegatedSigners.Checked(certificate: certificate, der: $0) }
        }
    }

    private static func embeddedSigner(_ basic: OpaquePointer) -> EmbeddedSigner? {
        defer { OpenSSLErrorQueue.clear() }
        var signer: OpaquePointer?
        guard OCSP_resp_get0_signer(basic, &signer, nil) == 1, let signer else { return nil }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(signer, EVP_sha256(), &digest, &length) == 1 else { return nil }
        let validity = ASN1.unixTime(X509_get0_notBefore(signer)).flatMap { notBefore in
            ASN1.unixTime(X509_get0_notAfter(signer)).map { DelegatedSigners.Validity(notBefore: notBefore, notAfter: $0) }
        }
        return EmbeddedSigner(pointer: signer, fingerprint: Array(digest.prefix(Int(length))), validity: validity)
    }

    /// A delegate whose exact bytes passed the full check before and that is still valid
    /// (and its issuer too) needs only the response's signature checked: the signer is
    /// looked for only among [delegate] (OCSP_NOINTERN), no chain is built (OCSP_NOVERIFY).
    /// Anything else takes the full check, which also explains failures.
    private static func isSignedByKnownDelegate(_ basic: OpaquePointer, _ delegate: EmbeddedSigner, issuer: Issuer,
                                                at time: Int64) -> Bool {
        defer { OpenSSLErrorQueue.clear() }
        guard issuer.delegatedSigners.isKnown(delegate.fingerprint, at: time),
              let notBefore = issuer.certificate.notBefore, let notAfter = issuer.certificate.notAfter,
              notBefore <= time, time <= notAfter,
              let candidates = copenssl_sk_X509_new_null() else { return false }
        defer { copenssl_sk_X509_free(candidates) }
        guard copenssl_sk_X509_push(candidates, delegate.pointer) > 0 else { return false }
        return OCSP_basic_verify(basic, candidates, nil, UInt(OCSP_NOINTERN | OCSP_NOVERIFY | OCSP_NOEXPLICIT)) == 1
    }

    /// The response, parsed without its embedded certificates, was signed by one of them,
    /// all of which passed the full check before and are valid at `time` (and the issuer
    /// too): the signer is looked for only among them (OCSP_NOINTERN, by the responder ID)
    /// and the signature checked (OCSP_NOVERIFY: their chains were built when they were
    /// first checked).
    private static func isSignedByCheckedDelegate(_ basic: OpaquePointer, _ delegates: [X509Certificate], issuer: Issuer,
                                                  at time: Int64) -> Bool {
        defer { OpenSSLErrorQueue.clear() }
        guard let notBefore = issuer.certificate.notBefore, let notAfter = issuer.certificate.notAfter,
              notBefore <= time, time <= notAfter,
              let candidates = copenssl_sk_X509_new_null() else { return false }
        defer { copenssl_sk_X509_free(candidates) }
        for delegate in delegates {
            guard copenssl_sk_X509_push(candidates, delegate.pointer) > 0 else { return false }
        }
        return OCSP_basic_verify(basic, candidates, nil, UInt(OCSP_NOINTERN | OCSP_NOVERIFY | OCSP_NOEXPLICIT)) == 1
    }

    /// The response's nonce extension must carry exactly the value the request sent.
    private static func verifyNonce(_ basic: OpaquePointer, expected: [UInt8]) throws(OCSPResponseError) {
        let index = OCSP_BASICRESP_get_ext_by_NID(basic, NID_id_pkix_OCSP_Nonce, -1)
        guard index >= 0 else { throw OCSPResponseError(.nonceMissing) }
        guard let value = X509_EXTENSION_get_data(OCSP_BASICRESP_get_ext(basic, index)),
              ASN1.bytes(value) == expected else { throw OCSPResponseError(.nonceMismatch) }
    }
}

private extension String {
    var trimmingASCIISpaces: String {
        String(decoding: Array(utf8).drop(while: { $0 == 0x20 }).reversed().drop(while: { $0 == 0x20 }).reversed(),
               as: UTF8.self)
    }
}
