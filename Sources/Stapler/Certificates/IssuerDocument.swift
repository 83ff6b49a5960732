import COpenSSL

/// What a CA publishes at a certificate's CA Issuers URL, decoded into certificates: one DER
/// certificate (the usual `.crt`/`.cer`), PEM (CERTIFICATE or PKCS7 blocks), or a PKCS#7
/// "certs-only" bag (`.p7c`) in DER. These bytes come from the network: capped, counted,
/// parsed exactly (no trailing bytes), and never trusted until `IssuerAcceptance` says so.
enum IssuerDocument {
    /// Largest answer accepted. A CA certificate is 1 to 2 KiB; a bag holds a few.
    static let maximumSize = 64 * 1024
    /// Certificates kept from one answer (a bag may hold a whole chain).
    static let maximumCertificates = 16

    static func certificates(in bytes: [UInt8]) throws(IssuerDocumentError) -> [X509Certificate] {
        defer { OpenSSLErrorQueue.clear() }
        guard !bytes.isEmpty else { throw IssuerDocumentError(reason: "empty answer") }
        guard bytes.count <= maximumSize else {
            throw IssuerDocumentError(reason: "answer larger than \(maximumSize) bytes")
        }
        let certificates: [X509Certificate]
        if looksLikePEM(bytes) {
            certificates = try fromPEM(bytes)
        } else if let certificate = X509Certificate(der: bytes) {
            certificates = [certificate]
        } else if let bag = fromPKCS7(der: bytes) {
            certificates = bag
        } else {
            throw IssuerDocumentError(reason: "neither a DER nor a PEM certificate nor a PKCS#7 bag of certificates")
        }
        guard !certificates.isEmpty else { throw IssuerDocumentError(reason: "no certificate in the answer") }
        return Array(certificates.prefix(maximumCertificates))
    }

    /// DER starts with a SEQUENCE tag (0x30); PEM with text. Leading blanks are allowed.
    private static func looksLikePEM(_ bytes: [UInt8]) -> Bool {
        bytes.first != 0x30
    }

    private static func fromPEM(_ text: [UInt8]) throws(IssuerDocumentError) -> [X509Certificate] {
        let blocks: [PEMBlock]
        do {
            blocks = try PEMParser.blocks(in: text)
        } catch {
            throw IssuerDocumentError(reason: "PEM: \(error.reason)")
        }
        var certificates: [X509Certificate] = []
        for (number, block) in blocks.enumerated() where block.isCertificate || block.label == "PKCS7" {
            guard let der = Base64.decode(text[block.body]), !der.isEmpty else {
                throw IssuerDocumentError(reason: "PEM block \(number + 1) (\(block.label)): invalid base64")
            }
            if block.isCertificate {
                guard let certificate = X509Certificate(der: der) else {
                    throw IssuerDocumentError(reason: "PEM block \(number + 1) (\(block.label)) is not an X.509 certificate")
                }
                certificates.append(certificate)
            } else {
                guard let bag = fromPKCS7(der: der) else {
                    throw IssuerDocumentError(reason: "PEM block \(number + 1) (PKCS7) is not a bag of certificates")
                }
                certificates += bag
            }
            if certificates.count >= maximumCertificates { break }
        }
        return certificates
    }

    /// The certificates of a PKCS#7 SignedData that is exactly `der`; nil otherwise.
    private static func fromPKCS7(der: [UInt8]) -> [X509Certificate]? {
        guard let (object, consumed) = ASN1.decode(der, { input, length in
            OpaquePointer(d2i_PKCS7(nil, input, length))
        }) else { return nil }
        let bag = UnsafeMutablePointer<PKCS7>(object)
        defer { PKCS7_free(bag) }
        guard consumed == der.count, let stack = copenssl_pkcs7_certificates(bag) else { return nil }
        var certificates: [X509Certificate] = []
        for index in 0..<min(copenssl_sk_X509_num(stack), Int32(maximumCertificates)) {
            // Re-encoded and parsed as our own object: the bag frees its copies.
            guard let member = copenssl_sk_X509_value(stack, index),
                  let memberDER = ASN1.encode({ i2d_X509(member, $0) }),
                  let certificate = X509Certificate(der: memberDER) else { return nil }
            certificates.append(certificate)
        }
        return certificates
    }
}

/// Why a CA Issuers answer holds no usable certificate.
struct IssuerDocumentError: Error, Equatable, Sendable, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}

/// Whether a downloaded certificate really is the issuer of a leaf. A CA Issuers URL is plain
/// http: whoever answers may send anything, so the certificate must prove itself: a CA
/// (basicConstraints CA:TRUE: the only form RFC 5280 allows for a certificate that signs
/// others), its subject equal to the leaf's issuer name, its key verifying the leaf's
/// signature, and `X509Certificate.issued` agreeing (the bundle loader uses that test when it
/// reads the `.issuer` file back, so nothing is written that the loader would then refuse).
enum IssuerAcceptance {
    /// The first of `candidates` that issued `leaf` (parsed with its key), or why none did.
    static func issuer(of leaf: X509Certificate, among candidates: [X509Certificate])
        -> Result<X509Certificate, IssuerDocumentError> {
        defer { OpenSSLErrorQueue.clear() }
        var firstRefusal: String?
        for candidate in candidates {
            if let refusal = refusal(of: candidate, for: leaf) {
                if firstRefusal == nil { firstRefusal = "\"\(candidate.subject)\" \(refusal)" }
            } else {
                return .success(candidate)
            }
        }
        let refusal = firstRefusal ?? "no certificate"
        guard candidates.count > 1 else { return .failure(IssuerDocumentError(reason: refusal)) }
        return .failure(IssuerDocumentError(reason: "none of \(candidates.count) certificates is the issuer; the first: \(refusal)"))
    }

    private static func refusal(of candidate: X509Certificate, for leaf: X509Certificate) -> String? {
        guard X509_check_ca(candidate.pointer) == basicConstraintsCA else {
            return "is not a CA certificate (no basicConstraints CA:TRUE)"
        }
        guard X509_NAME_cmp(X509_get_subject_name(candidate.pointer), X509_get_issuer_name(leaf.pointer)) == 0 else {
            return "is not the certificate's issuer: its subject differs from the certificate's issuer name"
        }
        guard let key = X509_get0_pubkey(candidate.pointer), X509_verify(leaf.pointer, key) == 1 else {
            return "did not sign the certificate: its key does not verify the certificate's signature"
        }
        guard candidate.issued(leaf) else {
            return "does not fit the certificate's key identifiers or key usage"
        }
        return nil
    }

    /// X509_check_ca's answer for basicConstraints CA:TRUE (other non-zero answers are
    /// legacy forms: v1 self-signed, keyCertSign or Netscape type without the extension).
    private static let basicConstraintsCA: Int32 = 1
}
