/// The certificates a DER OCSP response embeds (BasicOCSPResponse.certs, RFC 6960 §4.2.1),
/// found by walking the DER headers alone, and the same response encoded without them.
///
/// Why: OpenSSL decodes every embedded certificate, public key included, when it parses a
/// response. For a delegated responder's certificate embedded in every answer that was
/// 60 % of the cost of checking one. A response whose embedded certificates are all
/// delegates that passed the full check before, byte for byte, is parsed without them and
/// its signature checked with the remembered ones (`OCSPResponseVerifier`).
///
/// Only strict DER is taken apart: one-byte tags, definite lengths in their shortest form,
/// nothing after the last element at any level. Anything else gives nil, and the verifier
/// parses the response as it came. What stays (responseStatus, responseType,
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

/// Reads DER element headers one after the other within a range of bytes.
private struct DERCursor {
    struct Element {
        /// Tag, length and content.
        let whole: Range<Int>
        let content: Range<Int>
    }

    private let bytes: [UInt8]
    private var position: Int
    private let end: Int

    init(_ bytes: [UInt8], _ range: Range<Int>) {
        self.bytes = bytes
        position = range.lowerBound
        end = range.upperBound
    }

    var isAtEnd: Bool { position == end }

    /// The next element if it has `tag` and a strict DER length that fits; nil otherwise.
    /// Lengths of at most three bytes: the verifier refuses responses over 20 KiB before.
    mutating func next(_ tag: UInt8) -> Element? {
        guard end - position >= 2, bytes[position] == tag else { return nil }
        var cursor = position + 1
        let first = bytes[cursor]
        cursor += 1
        var length = Int(first)
        if first >= 0x80 {
            let count = Int(first & 0x7F)
            guard (1...3).contains(count), end - cursor >= count, bytes[cursor] != 0 else { return nil }
            length = 0
            for _ in 0..<count {
                length = length << 8 | Int(bytes[cursor])
                cursor += 1
            }
            guard length >= 0x80 else { return nil }
        }
        guard length <= end - cursor else { return nil }
        let element = Element(whole: position..<(cursor + length), content: cursor..<(cursor + length))
        position = cursor + length
        return element
    }
}
