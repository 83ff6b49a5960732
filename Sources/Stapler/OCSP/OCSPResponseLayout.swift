/// The certificates a DER OCSP response embeds (BasicOCSPResponse.certs, RFC 6960 §4.2.1),
/// found by walking the DER headers alone, and the same response encoded without them.
///
/// Why: OpenSSL decodes every embedded certificate, public key included, when it parses a
/// response. For a delegated responder's certificate embedded in every answer that was
/// 60 % of the cost of checking one. A response whose embedded certificates are all
/// delegates that passed the full check before, byte for byte, is parsed without them and
/// its signature checked with the remembered ones (`OCSPResponseVerifier`).
///
/// Only strict DER is taken apart (`DERCursor`): one-byte tags, definite lengths in their
/// shortest form, nothing after the last element at any level. Anything else gives nil, and
/// the verifier parses the response as it came. What stays (responseStatus, responseType,
/// tbsResponseData, signatureAlgorithm, signature) is copied byte for byte; the signature
/// covers tbsResponseData only, so removing the certificates changes nothing it signs.
struct OCSPResponseLayout {
    /// Each embedded certificate's whole DER element, in order.
    let certificates: [ArraySlice<UInt8>]
    /// The response without its certs field (only the enclosing lengths re-encoded).
    let withoutCertificates: [UInt8]

    /// Nil unless `der` is one strictly encoded OCSPResponse carrying a BasicOCSPResponse
    /// with a certs field.
    init?(der: [UInt8]) {
        var top = DERCursor(der, 0..<der.count)
        guard let response = top.next(0x30), top.isAtEnd else { return nil }
        var fields = DERCursor(der, response.content)
        guard let status = fields.next(0x0A), let bytesField = fields.next(0xA0), fields.isAtEnd else { return nil }
        var explicit = DERCursor(der, bytesField.content)
        guard let responseBytes = explicit.next(0x30), explicit.isAtEnd else { return nil }
        var typed = DERCursor(der, responseBytes.content)
        guard let type = typed.next(0x06), let octets = typed.next(0x04), typed.isAtEnd else { return nil }
        var inner = DERCursor(der, octets.content)
        guard let basic = inner.next(0x30), inner.isAtEnd else { return nil }
        var parts = DERCursor(der, basic.content)
        guard let tbs = parts.next(0x30), let algorithm = parts.next(0x30), let signature = parts.next(0x03),
              let certsField = parts.next(0xA0), parts.isAtEnd else { return nil }
        var certsExplicit = DERCursor(der, certsField.content)
        guard let list = certsExplicit.next(0x30), certsExplicit.isAtEnd else { return nil }
        var elements = DERCursor(der, list.content)
        var certificates: [ArraySlice<UInt8>] = []
        while !elements.isAtEnd {
            guard let certificate = elements.next(0x30) else { return nil }
            certificates.append(der[certificate.whole])
        }
        self.certificates = certificates

        let newBasic = ASN1.sequence(wrapping: Array(der[tbs.whole]) + der[algorithm.whole] + der[signature.whole])
        let newResponseBytes = ASN1.sequence(wrapping: Array(der[type.whole])
                                             + ASN1.element(tag: 0x04, wrapping: newBasic))
        withoutCertificates = ASN1.sequence(wrapping: Array(der[status.whole])
                                            + ASN1.element(tag: 0xA0, wrapping: newResponseBytes))
    }
}
