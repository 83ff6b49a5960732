import COpenSSL

/// What an `Issuer` contributes to reading its leaves without OpenSSL's X.509 decoder
/// (`LeafCertificate`), worked out once per issuer: the facts `X509Certificate.issued`
/// checks, and the SHA-1 hashes of its name and key every CertID it issues starts with.
struct IssuerLeafCheck: Sendable {
    /// The subject Name's DER, which a leaf's issuer Name must equal byte for byte (OpenSSL
    /// compares canonical forms; different bytes are left to it).
    let subjectDER: [UInt8]
    /// Nil when there is none: `issued` then checks the signature, which is OpenSSL's work.
    let subjectKeyID: [UInt8]?
    /// OpenSSL finds the extensions valid, and a key usage, if any, allows keyCertSign.
    let mayIssue: Bool
    /// `X509_check_ca`'s view: a bundle holding a known issuer that is no CA leaves the choice
    /// of its end entity to `CertificateBundle.endEntity`.
    let isCA: Bool
    let keyType: LeafCertificate.SignatureKeyType?
    let nameHash: [UInt8]
    let keyHash: [UInt8]

    init?(_ certificate: X509Certificate) {
        defer { OpenSSLErrorQueue.clear() }
        let pointer = certificate.pointer
        var derPointer: UnsafePointer<UInt8>?
        var derLength = 0
        guard let name = X509_get_subject_name(pointer), X509_NAME_get0_der(name, &derPointer, &derLength) == 1,
              let derPointer, let key = X509_get0_pubkey_bitstr(pointer),
              let keyObject = X509_get0_pubkey(pointer) else { return nil }
        subjectDER = Array(UnsafeBufferPointer(start: derPointer, count: derLength))
        subjectKeyID = X509_get0_subject_key_id(pointer).map { ASN1.bytes($0) }
        mayIssue = X509_check_purpose(pointer, -1, 0) == 1 && X509_get_key_usage(pointer) & UInt32(KU_KEY_CERT_SIGN) != 0
        isCA = certificate.isCA
        switch EVP_PKEY_get_base_id(keyObject) {
        case NID_X9_62_id_ecPublicKey: keyType = .ec
        case NID_rsaEncryption: keyType = .rsa
        case NID_ED25519: keyType = .ed25519
        default: keyType = nil
        }
        nameHash = Self.sha1(subjectDER)
        keyHash = Self.sha1(ASN1.bytes(key))
    }

    /// What `X509Certificate.issued` says for a leaf whose authority key identifier is
    /// present (`LeafCertificate` requires one): the names match, the key identifiers match,
    /// the issuer may sign certificates with a key of the type the leaf's signature needs.
    /// False also when OpenSSL might say yes (names equal only once canonicalised): the
    /// caller then asks OpenSSL.
    func issued(_ leaf: LeafCertificate) -> Bool {
        guard mayIssue, let subjectKeyID, leaf.signatureKeyType == keyType else { return false }
        return leaf.authorityKeyID.elementsEqual(subjectKeyID) && leaf.issuerName.elementsEqual(subjectDER)
    }

    /// The SHA-1 CertID of `leaf` (which this issuer issued), as `CertID(certificate:issuer:)`
    /// computes it: OpenSSL hashes the leaf's issuer Name, which is this subject's DER.
    func certID(of leaf: LeafCertificate) -> CertID {
        CertID(sha1IssuerNameHash: nameHash, issuerKeyHash: keyHash, serialContent: leaf.serial)
    }

    private static func sha1(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(SHA_DIGEST_LENGTH))
        _ = bytes.withUnsafeBufferPointer { input in
            digest.withUnsafeMutableBufferPointer { SHA1(input.baseAddress, input.count, $0.baseAddress) }
        }
        return digest
    }
}
