import COpenSSL

/// What checking an OCSP response's signature needs of one signer certificate (an issuer, or
/// a delegated responder that passed the full check), prepared once and kept with it.
///
/// Why: OpenSSL's `OCSP_basic_verify` finds the signer by hashing its key, encodes the signed
/// part of the response again, fetches the digest and the signature algorithm from its
/// providers and sets up a key context, for every response. For 100,000 responses signed by
/// the same few keys all of that is the same each time; only the digest and the signature
/// check itself differ (`OCSPResponseFastPath`).
///
/// Used on the daemon's one thread only (an `EVP_PKEY_CTX` is not to be shared between
/// threads while in use).
final class ResponseSignerKey {
    /// The digests a fast-path signature algorithm names (`OCSPResponseFastPath.SignatureAlgorithm`).
    enum Digest: Int, CaseIterable {
        case sha256, sha384, sha512

        var name: String {
            switch self {
            case .sha256: "SHA256"
            case .sha384: "SHA384"
            case .sha512: "SHA512"
            }
        }
    }

    /// The public key's kind, which the signature algorithm must match.
    enum KeyKind { case ec, rsa }

    let certificate: X509Certificate
    let keyKind: KeyKind
    /// The subject Name's DER, as the certificate encodes it: a responder ID by name matches
    /// these bytes exactly.
    let subjectDER: [UInt8]
    /// SHA-1 of the subjectPublicKey bits: a responder ID by key (RFC 6960 §4.2.1).
    let keyHash: [UInt8]
    let notBefore: Int64
    let notAfter: Int64

    /// One key context per digest, made on first use: `EVP_PKEY_verify` may be called again
    /// and again on a context once `EVP_PKEY_verify_init` has set it up.
    private var contexts: [OpaquePointer?] = Array(repeating: nil, count: Digest.allCases.count)

    /// Nil for a key OpenSSL cannot give us, or of a kind the fast path does not check (the
    /// response then takes OpenSSL's path, which handles every kind it knows).
    init?(_ certificate: X509Certificate) {
        defer { OpenSSLErrorQueue.clear() }
        guard let key = X509_get0_pubkey(certificate.pointer) else { return nil }
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_EC: keyKind = .ec
        case EVP_PKEY_RSA: keyKind = .rsa
        default: return nil
        }
        guard let subject = ASN1.encode({ i2d_X509_NAME(X509_get_subject_name(certificate.pointer), $0) }),
              let notBefore = certificate.notBefore, let notAfter = certificate.notAfter else { return nil }
        var hash = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_pubkey_digest(certificate.pointer, EVP_sha1(), &hash, &length) == 1, length == 20 else { return nil }
        self.certificate = certificate
        subjectDER = subject
        keyHash = Array(hash.prefix(20))
        self.notBefore = notBefore
        self.notAfter = notAfter
    }

    deinit {
        for context in contexts { EVP_PKEY_CTX_free(context) }
    }

    /// Whether `signature` is this key's signature, with `digest`, over `message`.
    func verifies(_ signature: ArraySlice<UInt8>, over message: ArraySlice<UInt8>, digest: Digest) -> Bool {
        defer { OpenSSLErrorQueue.clear() }
        guard let context = context(for: digest), let algorithm = DigestAlgorithms.shared.fetched[digest.rawValue] else {
            return false
        }
        // On the stack: this runs once per staple.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Int(EVP_MAX_MD_SIZE)) { hash in
            var length: UInt32 = 0
            let hashed = message.withUnsafeBytes { bytes in
                EVP_Digest(bytes.baseAddress, bytes.count, hash.baseAddress, &length, algorithm, nil) == 1
            }
            guard hashed else { return false }
            return signature.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return false }
                return EVP_PKEY_verify(context, base, bytes.count, hash.baseAddress, Int(length)) == 1
            }
        }
    }

    private func context(for digest: Digest) -> OpaquePointer? {
        if let made = contexts[digest.rawValue] { return made }
        guard let key = X509_get0_pubkey(certificate.pointer),
              let algorithm = DigestAlgorithms.shared.fetched[digest.rawValue],
              let context = EVP_PKEY_CTX_new(key, nil) else { return nil }
        guard EVP_PKEY_verify_init(context) == 1, EVP_PKEY_CTX_set_signature_md(context, algorithm) == 1 else {
            EVP_PKEY_CTX_free(context)
            return nil
        }
        contexts[digest.rawValue] = context
        return context
    }
}

/// The digests fetched from OpenSSL's default provider once for the process: with a fetched
/// `EVP_MD`, hashing does not look the implementation up again each time.
private final class DigestAlgorithms: @unchecked Sendable {
    static let shared = DigestAlgorithms()
    /// Indexed by `ResponseSignerKey.Digest.rawValue`; never freed (process lifetime).
    let fetched: [OpaquePointer?]

    private init() {
        fetched = ResponseSignerKey.Digest.allCases.map { EVP_MD_fetch(nil, $0.name, nil) }
        OpenSSLErrorQueue.clear()
    }
}
