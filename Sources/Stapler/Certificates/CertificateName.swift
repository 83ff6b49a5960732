import COpenSSL

/// A certificate's subject as `X509Certificate.subject` prints it (one line, RFC 2253
/// escaping, `CN=a, O=b`), from the Name's DER alone. Plain names (one attribute per RDN,
/// a common attribute type, a printable string of letters, digits and a few punctuation
/// marks that no escaping touches) are written here; any other is decoded by OpenSSL on its
/// own (no whole certificate) and printed as before.
enum CertificateName {
    /// Nil when OpenSSL does not decode `der` as exactly one Name: the certificate would not
    /// parse either.
    static func oneLine(der: [UInt8], name: Range<Int>) -> String? {
        if let plain = plainOneLine(der: der, name: name) { return plain }
        let bytes = Array(der[name])
        guard let (object, consumed) = ASN1.decode(bytes, { d2i_X509_NAME(nil, $0, $1) }) else {
            OpenSSLErrorQueue.clear()
            return nil
        }
        defer { X509_NAME_free(object) }
        guard consumed == bytes.count else { return nil }
        return X509Certificate.oneLine(object)
    }

    /// Short names OpenSSL prints (`XN_FLAG_FN_SN`) for the attribute types written here, by
    /// the content bytes of their OID.
    private static let shortNames: [(oid: [UInt8], name: String)] = [
        ([0x55, 0x04, 0x03], "CN"), ([0x55, 0x04, 0x06], "C"), ([0x55, 0x04, 0x07], "L"),
        ([0x55, 0x04, 0x08], "ST"), ([0x55, 0x04, 0x0A], "O"), ([0x55, 0x04, 0x0B], "OU"),
        ([0x55, 0x04, 0x05], "serialNumber"), ([0x55, 0x04, 0x09], "street"), ([0x55, 0x04, 0x11], "postalCode"),
        ([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01], "emailAddress"),
        ([0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19], "DC"),
    ]

    /// PrintableString, UTF8String, IA5String: each prints ASCII bytes as they are.
    private static let plainStringTags: Set<UInt8> = [0x13, 0x0C, 0x16]

    /// Bytes no flag of `X509Certificate.oneLine` escapes anywhere in a value; a space only
    /// between others (RFC 2253 escapes leading and trailing ones).
    private static func isPlain(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "/"),
             UInt8(ascii: "@"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"): true
        default: false
        }
    }

    /// Nil unless the name is plain (see above).
    static func plainOneLine(der: [UInt8], name: Range<Int>) -> String? {
        var whole = DERCursor(der, name)
        guard let sequence = whole.only(0x30) else { return nil }
        var rdns = DERCursor(der, inside: sequence)
        var text: [UInt8] = []
        while !rdns.isAtEnd {
            guard let rdn = rdns.next(0x31) else { return nil }
            var set = DERCursor(der, inside: rdn)
            guard let attribute = set.only(0x30) else { return nil }
            var fields = DERCursor(der, inside: attribute)
            guard let type = fields.next(0x06), let value = fields.next(), fields.isAtEnd,
                  plainStringTags.contains(value.tag), !value.content.isEmpty else { return nil }
            let oid = der[type.content]
            guard let shortName = shortNames.first(where: { $0.oid.elementsEqual(oid) })?.name else { return nil }
            let characters = der[value.content]
            guard characters.allSatisfy(isPlain) || characters.allSatisfy({ isPlain($0) || $0 == 0x20 })
                    && characters.first != 0x20 && characters.last != 0x20 else { return nil }
            if !text.isEmpty { text += Array(", ".utf8) }
            text += Array(shortName.utf8)
            text.append(UInt8(ascii: "="))
            text += characters
        }
        guard !text.isEmpty else { return nil }
        return LogText.sanitised(String(decoding: text, as: UTF8.self), limit: 256)
    }
}
