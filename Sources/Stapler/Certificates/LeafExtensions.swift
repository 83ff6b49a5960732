/// The extensions of a `LeafCertificate`, read strictly. Nil unless every extension is
/// present at most once, in strict DER, and each one OpenSSL's extension cache
/// (`x509v3_cache_extensions`) decodes is in a form checked here, so that OpenSSL would
/// find the certificate valid too; those it decodes that are not read here (name
/// constraints, proxy certificate info, Netscape certificate type, RFC 3779 blocks) make it
/// nil. So does anything that makes `X509_check_ca` see a CA.
struct LeafExtensions {
    private(set) var authorityKeyID: ArraySlice<UInt8>?
    private(set) var ocspURLs: [String] = []
    private(set) var mustStaple = false

    private enum Kind {
        case basicConstraints, keyUsage, extendedKeyUsage, subjectKeyID, authorityKeyID
        case subjectAltName, crlDistributionPoints, authorityInfoAccess, tlsFeature
        /// Decoded by OpenSSL's cache in forms not checked here.
        case refused
    }

    /// By the content bytes of their OID.
    private static let kinds: [(oid: [UInt8], kind: Kind)] = [
        ([0x55, 0x1D, 0x13], .basicConstraints),
        ([0x55, 0x1D, 0x0F], .keyUsage),
        ([0x55, 0x1D, 0x25], .extendedKeyUsage),
        ([0x55, 0x1D, 0x0E], .subjectKeyID),
        ([0x55, 0x1D, 0x23], .authorityKeyID),
        ([0x55, 0x1D, 0x11], .subjectAltName),
        ([0x55, 0x1D, 0x1F], .crlDistributionPoints),
        ([0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01], .authorityInfoAccess),
        ([0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x18], .tlsFeature),
        ([0x55, 0x1D, 0x1E], .refused), // nameConstraints
        ([0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x0E], .refused), // proxyCertInfo
        ([0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x07], .refused), // sbgp-ipAddrBlock
        ([0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x08], .refused), // sbgp-autonomousSysNum
        ([0x60, 0x86, 0x48, 0x01, 0x86, 0xF8, 0x42, 0x01, 0x01], .refused), // nsCertType
    ]

    /// id-ad-ocsp.
    private static let ocspMethod: [UInt8] = [0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01]

    init?(_ der: [UInt8], _ list: DERCursor.Element) {
        var entries = DERCursor(der, inside: list)
        var seen: [ArraySlice<UInt8>] = []
        guard !entries.isAtEnd else { return nil }
        while !entries.isAtEnd {
            guard let entry = entries.next(0x30) else { return nil }
            var fields = DERCursor(der, inside: entry)
            guard let oidElement = fields.next(0x06) else { return nil }
            let oid = der[oidElement.content]
            guard LeafCertificate.isObjectIdentifier(oid), !seen.contains(where: { $0.elementsEqual(oid) }) else {
                return nil
            }
            seen.append(oid)
            if fields.nextTag == 0x01 {
                // DER leaves out the default (FALSE).
                guard let critical = fields.next(0x01), der[critical.content].elementsEqual([0xFF]) else { return nil }
            }
            guard let value = fields.only(0x04) else { return nil }
            let kind = Self.kinds.first { $0.oid.elementsEqual(oid) }?.kind
            guard let kind else { continue }
            guard read(kind, der, value) else { return nil }
        }
    }

    private mutating func read(_ kind: Kind, _ der: [UInt8], _ value: DERCursor.Element) -> Bool {
        var content = DERCursor(der, inside: value)
        switch kind {
        case .basicConstraints:
            // cA FALSE and no path length: anything else is a CA, or odd enough for OpenSSL.
            guard let sequence = content.only(0x30) else { return false }
            return sequence.content.isEmpty
        case .keyUsage:
            guard let bits = content.only(0x03) else { return false }
            return Self.isLeafKeyUsage(der[bits.content])
        case .extendedKeyUsage:
            guard let sequence = content.only(0x30) else { return false }
            var purposes = DERCursor(der, inside: sequence)
            guard !purposes.isAtEnd else { return false }
            while !purposes.isAtEnd {
                guard let purpose = purposes.next(0x06), LeafCertificate.isObjectIdentifier(der[purpose.content]) else {
                    return false
                }
            }
            return true
        case .subjectKeyID:
            return content.only(0x04) != nil
        case .authorityKeyID:
            // The keyIdentifier alone: with an issuer name and serial OpenSSL compares those too.
            guard let sequence = content.only(0x30) else { return false }
            var fields = DERCursor(der, inside: sequence)
            guard let keyID = fields.only(0x80), !keyID.content.isEmpty else { return false }
            authorityKeyID = der[keyID.content]
            return true
        case .subjectAltName:
            guard let sequence = content.only(0x30) else { return false }
            return Self.areSimpleGeneralNames(der, sequence, allowed: [0x81, 0x82, 0x86, 0x87])
        case .crlDistributionPoints:
            // Points with a full name of URIs only: nothing OpenSSL's setup_dp works on further.
            guard let sequence = content.only(0x30) else { return false }
            var points = DERCursor(der, inside: sequence)
            guard !points.isAtEnd else { return false }
            while !points.isAtEnd {
                guard let point = points.next(0x30) else { return false }
                var pointFields = DERCursor(der, inside: point)
                guard let name = pointFields.only(0xA0) else { return false }
                var choice = DERCursor(der, inside: name)
                guard let fullName = choice.only(0xA0),
                      Self.areSimpleGeneralNames(der, fullName, allowed: [0x86]) else { return false }
            }
            return true
        case .authorityInfoAccess:
            guard let sequence = content.only(0x30) else { return false }
            return readAuthorityInfoAccess(der, sequence)
        case .tlsFeature:
            guard let sequence = content.only(0x30) else { return false }
            var features = DERCursor(der, inside: sequence)
            while !features.isAtEnd {
                guard let feature = features.next(0x02), Self.isMinimalInteger(der[feature.content]) else { return false }
                if der[feature.content].elementsEqual([UInt8(X509Certificate.statusRequestFeature)]) { mustStaple = true }
            }
            return true
        case .refused:
            return false
        }
    }

    /// The OCSP URLs as `X509_get1_ocsp` lists them, then `X509Certificate.ocspURLs`' filter
    /// and cap. OpenSSL skips empty URIs and duplicates, and its duplicate check sorts the
    /// list gathered so far (strcmp order) before each new one is appended.
    private mutating func readAuthorityInfoAccess(_ der: [UInt8], _ sequence: DERCursor.Element) -> Bool {
        var descriptions = DERCursor(der, inside: sequence)
        guard !descriptions.isAtEnd else { return false }
        var gathered: [ArraySlice<UInt8>] = []
        var sorted = true
        while !descriptions.isAtEnd {
            guard let description = descriptions.next(0x30) else { return false }
            var fields = DERCursor(der, inside: description)
            guard let method = fields.next(0x06), LeafCertificate.isObjectIdentifier(der[method.content]),
                  let location = fields.only(0x86) else { return false }
            guard der[method.content].elementsEqual(Self.ocspMethod) else { continue }
            let uri = der[location.content]
            // OpenSSL's strings end at a NUL: leave such certificates to it.
            guard !uri.contains(0) else { return false }
            if uri.isEmpty { continue }
            if !sorted {
                gathered.sort { $0.lexicographicallyPrecedes($1) }
                sorted = true
            }
            if gathered.contains(where: { $0.elementsEqual(uri) }) { continue }
            gathered.append(uri)
            sorted = gathered.count <= 1
        }
        for uri in gathered {
            guard ocspURLs.count < X509Certificate.maximumOCSPURLs else { break }
            let url = String(decoding: uri, as: UTF8.self)
            if X509Certificate.isUsableOCSPURL(url) { ocspURLs.append(url) }
        }
        return true
    }

    /// A key usage OpenSSL reads as non-empty and without keyCertSign; DER's rules for named
    /// bits (no trailing zero bits, unused bits zero) on top.
    private static func isLeafKeyUsage(_ content: ArraySlice<UInt8>) -> Bool {
        guard (2...3).contains(content.count), let unused = content.first, unused < 8,
              let last = content.last, last != 0, last & ~(0xFF << unused) == 0 else { return false }
        let first = content[content.startIndex + 1]
        return first & 0x04 == 0
    }

    /// A SEQUENCE OF GeneralName, not empty, each of a primitive `allowed` tag (rfc822Name,
    /// dNSName, URI: IA5String; iPAddress: OCTET STRING, none of which OpenSSL checks further).
    private static func areSimpleGeneralNames(_ der: [UInt8], _ sequence: DERCursor.Element, allowed: Set<UInt8>) -> Bool {
        var names = DERCursor(der, inside: sequence)
        guard !names.isAtEnd else { return false }
        while !names.isAtEnd {
            guard let name = names.next(), allowed.contains(name.tag) else { return false }
        }
        return true
    }

    private static func isMinimalInteger(_ content: ArraySlice<UInt8>) -> Bool {
        guard let first = content.first else { return false }
        guard content.count > 1 else { return true }
        let second = content[content.startIndex + 1]
        return !(first == 0 && second & 0x80 == 0) && !(first == 0xFF && second & 0x80 != 0)
    }
}
