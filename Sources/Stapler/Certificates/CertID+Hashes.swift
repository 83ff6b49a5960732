/// A CertID put together from hashes computed once per issuer, instead of OpenSSL hashing
/// the issuer's name and key again for each certificate (`OCSP_cert_to_id`).
extension CertID {
    /// The DER `i2d_OCSP_CERTID` writes for `OCSP_cert_to_id(EVP_sha1(), ...)`: sha1 with
    /// NULL parameters, the two 20-byte hashes, the serial (minimal content octets).
    init(sha1IssuerNameHash nameHash: [UInt8], issuerKeyHash keyHash: [UInt8], serialContent: ArraySlice<UInt8>) {
        var content = Self.sha1Algorithm
        content += ASN1.element(tag: 0x04, wrapping: nameHash)
        content += ASN1.element(tag: 0x04, wrapping: keyHash)
        content += ASN1.element(tag: 0x02, wrapping: Array(serialContent))
        self.init(der: ASN1.sequence(wrapping: content))
    }

    /// AlgorithmIdentifier { id-sha1, NULL }.
    private static let sha1Algorithm: [UInt8] = [0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00]
}
