import Reactor

/// An end-entity certificate read by our own strict DER decoder, for the facts a
/// `CertificateRecord` needs and the check that an already known issuer issued it.
///
/// Why: decoding a leaf with OpenSSL (its X.509 decoder, the extension cache, the subject
/// printed through a BIO, the AIA and TLS Feature extensions decoded again, the CertID
/// hashing the issuer for every certificate) was two thirds of the cost of loading a bundle.
///
/// Only what is fully understood is accepted: a v3 certificate in strict DER, a positive
/// serial, validity in the RFC 5280 DER forms, parameters of algorithm identifiers absent,
/// NULL or an OID, no unique identifiers, each extension once, and the extensions OpenSSL's
/// extension cache decodes either absent, in a form checked here, or refused. A certificate
/// that looks like a CA to `X509_check_ca` (basicConstraints cA, or keyCertSign) is refused.
/// Refused means nil: the bundle is then parsed by OpenSSL exactly as before, so the outcome
/// for every input stays what it was, errors and strictness included.
struct LeafCertificate {
    /// Content octets of the serial number (positive, minimal: DER).
    let serial: ArraySlice<UInt8>
    let notBefore: Int64
    let notAfter: Int64
    /// The whole DER of the issuer Name. Not checked here: it only counts when equal byte for
    /// byte to the subject of an issuer OpenSSL decoded (`IssuerLeafCheck.issued`).
    let issuerName: ArraySlice<UInt8>
    /// As `X509Certificate.subject` prints it.
    let subject: String
    /// The authority key identifier's keyIdentifier.
    let authorityKeyID: ArraySlice<UInt8>
    /// The key type the tbsCertificate's signature algorithm needs its issuer to have.
    let signatureKeyType: SignatureKeyType
    /// As `X509Certificate.ocspURLs` gives them.
    let ocspURLs: [String]
    /// As `X509Certificate.mustStaple` says.
    let mustStaple: Bool

    /// Upper-case hex, as `X509Certificate.serialHex`.
    var serialHex: String { ASCII.hex(Array(serial.drop { $0 == 0 }), uppercase: true) }

    /// The issuer key types signature algorithms belong with (`check_sig_alg_match` in
    /// OpenSSL's `X509_check_issued`).
    enum SignatureKeyType: Equatable {
        case ec, rsa, ed25519
    }

    init?(der: [UInt8]) {
        var top = DERCursor(der, 0..<der.count)
        guard let certificate = top.only(0x30) else { return nil }
        var parts = DERCursor(der, inside: certificate)
        guard let tbs = parts.next(0x30), let outerAlgorithm = parts.next(0x30), let signature = parts.next(0x03),
              parts.isAtEnd, Self.algorithmOID(der, outerAlgorithm) != nil,
              Self.isBitString(der, signature) else { return nil }

        var fields = DERCursor(der, inside: tbs)
        guard let version = fields.next(0xA0), der[version.content].elementsEqual([0x02, 0x01, 0x02]),
              let serial = fields.next(0x02), Self.isPositiveInteger(der[serial.content]),
              let algorithm = fields.next(0x30), let oid = Self.algorithmOID(der, algorithm),
              let keyType = Self.signatureKeyTypes.first(where: { $0.oid.elementsEqual(der[oid]) })?.type,
              let issuer = fields.next(0x30), let validity = fields.next(0x30),
              let subject = fields.next(0x30), let publicKey = fields.next(0x30),
              let extensionsField = fields.next(0xA3), fields.isAtEnd else { return nil }
        self.serial = der[serial.content]
        signatureKeyType = keyType
        issuerName = der[issuer.whole]

        var times = DERCursor(der, inside: validity)
        guard let start = times.next(), let end = times.next(), times.isAtEnd,
              let notBefore = DERTime.unixTime(tag: start.tag, der[start.content]),
              let notAfter = DERTime.unixTime(tag: end.tag, der[end.content]) else { return nil }
        self.notBefore = notBefore
        self.notAfter = notAfter

        var key = DERCursor(der, inside: publicKey)
        guard let keyAlgorithm = key.next(0x30), Self.algorithmOID(der, keyAlgorithm, oidParameters: true) != nil,
              let keyBits = key.next(0x03), key.isAtEnd, Self.isBitString(der, keyBits) else { return nil }

        var explicit = DERCursor(der, inside: extensionsField)
        guard let list = explicit.only(0x30),
              let extensions = LeafExtensions(der, list) else { return nil }
        guard let authorityKeyID = extensions.authorityKeyID else { return nil }
        self.authorityKeyID = authorityKeyID
        ocspURLs = extensions.ocspURLs
        mustStaple = extensions.mustStaple

        guard let subjectText = CertificateName.oneLine(der: der, name: subject.whole) else { return nil }
        self.subject = subjectText
    }

    /// Signature algorithms by the content bytes of their OID: ECDSA with SHA-1 and SHA-2,
    /// PKCS #1 v1.5 RSA with SHA-1 and SHA-2, Ed25519. Others (RSASSA-PSS with its
    /// parameters, unusual ones) are refused.
    private static let signatureKeyTypes: [(oid: [UInt8], type: SignatureKeyType)] = [
        ([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02], .ec), // ecdsa-with-SHA256
        ([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03], .ec), // ecdsa-with-SHA384
        ([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04], .ec), // ecdsa-with-SHA512
        ([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x01], .ec), // ecdsa-with-SHA224
        ([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x01], .ec), // ecdsa-with-SHA1
        ([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B], .rsa), // sha256WithRSAEncryption
        ([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C], .rsa), // sha384WithRSAEncryption
        ([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D], .rsa), // sha512WithRSAEncryption
        ([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0E], .rsa), // sha224WithRSAEncryption
        ([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x05], .rsa), // sha1WithRSAEncryption
        ([0x2B, 0x65, 0x70], .ed25519),
    ]

    /// The OID content range of an AlgorithmIdentifier whose parameters are absent or NULL
    /// (or, for a public key's, an OID such as a named curve).
    static func algorithmOID(_ der: [UInt8], _ algorithm: DERCursor.Element, oidParameters: Bool = false)
        -> Range<Int>? {
        var fields = DERCursor(der, inside: algorithm)
        guard let oid = fields.next(0x06), isObjectIdentifier(der[oid.content]) else { return nil }
        if fields.isAtEnd { return oid.content }
        guard let parameters = fields.next(), fields.isAtEnd else { return nil }
        switch parameters.tag {
        case 0x05 where parameters.content.isEmpty: return oid.content
        case 0x06 where oidParameters && isObjectIdentifier(der[parameters.content]): return oid.content
        default: return nil
        }
    }

    /// An OID's content as OpenSSL accepts it (`c2i_ASN1_OBJECT`), which is also DER's rule:
    /// not empty, no subidentifier padded with a leading 0x80, the last one complete.
    static func isObjectIdentifier(_ content: ArraySlice<UInt8>) -> Bool {
        guard let last = content.last, last & 0x80 == 0 else { return false }
        var startsSubidentifier = true
        for byte in content {
            if startsSubidentifier && byte == 0x80 { return false }
            startsSubidentifier = byte & 0x80 == 0
        }
        return true
    }

    /// A BIT STRING of whole bytes (signatures and keys are).
    static func isBitString(_ der: [UInt8], _ element: DERCursor.Element) -> Bool {
        der[element.content].first == 0
    }

    /// Minimal two's complement, positive, not zero.
    static func isPositiveInteger(_ content: ArraySlice<UInt8>) -> Bool {
        guard let first = content.first, first & 0x80 == 0 else { return false }
        if first == 0 {
            guard content.count > 1 else { return false }
            return content[content.startIndex + 1] & 0x80 != 0
        }
        return true
    }
}
