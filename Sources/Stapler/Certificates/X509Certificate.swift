import Reactor
import COpenSSL

/// An OpenSSL X509 object owned by Swift: freed when the last reference goes. Used while a
/// bundle is parsed and, for issuers, inside `Issuer`; never kept per certificate.
final class X509Certificate {
    let pointer: OpaquePointer

    /// Takes ownership of one reference to `pointer`.
    init(owning pointer: OpaquePointer) { self.pointer = pointer }

    /// Parses one DER certificate; nil unless the bytes are exactly one certificate.
    ///
    /// `withPublicKey: false` leaves the certificate's own public key undecoded: OpenSSL 3.0
    /// builds a decoder context for every key it parses, which made parsing a leaf half of
    /// its whole cost, and a leaf's key is never used here (the CertID and the response
    /// signature involve its issuer's key only). Such a certificate can be read (names,
    /// dates, extensions, serial) and matched with an issuer, but not used as an issuer or
    /// have its own signature checked: that takes one parsed with its key.
    convenience init?(der: [UInt8], withPublicKey: Bool = true) {
        // Without the keyless context (never seen: it is two allocations) parse in full.
        let context = withPublicKey ? nil : KeylessParsing.context
        guard let (object, consumed) = ASN1.decode(der, { input, length in
            ASN1_item_d2i_ex(nil, input, length, X509_it(), context, nil)
        }) else { return nil }
        guard consumed == der.count else {
            X509_free(object)
            return nil
        }
        self.init(owning: object)
    }

    /// False for a certificate parsed without its public key.
    var hasPublicKey: Bool { X509_get0_pubkey(pointer) != nil }

    deinit { X509_free(pointer) }

    /// True for CA certificates (basicConstraints CA:TRUE, keyCertSign, or a self-signed v1).
    var isCA: Bool { X509_check_ca(pointer) != 0 }

    /// Whether `self` issued `subject`: its name, key identifiers and key usage fit, and its
    /// key verifies `subject`'s signature unless the key identifiers already tie the two keys
    /// together (the subject's authority key identifier is the issuer's subject key
    /// identifier: every Web PKI certificate has both). Names alone can be shared by another
    /// CA, hence the signature then. Skipping it otherwise saves a signature check per
    /// certificate, a quarter of a cold start's CPU, and risks nothing: the issuer only
    /// serves to build the CertID and to check the responder's signature, and a wrong key
    /// would make every response fail that check.
    func issued(_ subject: X509Certificate) -> Bool {
        defer { OpenSSLErrorQueue.clear() }
        guard X509_check_issued(pointer, subject.pointer) == X509_V_OK else { return false }
        if X509_get0_authority_key_id(subject.pointer) != nil, X509_get0_subject_key_id(pointer) != nil { return true }
        guard let key = X509_get0_pubkey(pointer) else { return false }
        if subject.hasPublicKey { return X509_verify(subject.pointer, key) == 1 }
        // Parsed without its key (see `init(der:withPublicKey:)`): the signature check needs
        // the algorithms that parse went without. Rare: certificates without key identifiers.
        guard let der = subject.der, let full = X509Certificate(der: der) else { return false }
        return X509_verify(full.pointer, key) == 1
    }

    /// The subject as one line, e.g. `CN=example.com, O=Example`, escaped for logs.
    var subject: String { Self.oneLine(X509_get_subject_name(pointer)) }

    /// The issuer name, in the same form as `subject`.
    var issuerName: String { Self.oneLine(X509_get_issuer_name(pointer)) }

    /// Also `CertificateName.oneLine` for names decoded without their certificate.
    static func oneLine(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        // RFC 2253 escaping (control bytes and non-ASCII as \XX), fields in certificate order.
        let escaping = ASN1_STRFLGS_ESC_2253 | ASN1_STRFLGS_ESC_CTRL | ASN1_STRFLGS_ESC_MSB
            | ASN1_STRFLGS_UTF8_CONVERT | ASN1_STRFLGS_DUMP_UNKNOWN | ASN1_STRFLGS_DUMP_DER
        let flags = UInt(escaping) | UInt(XN_FLAG_SEP_CPLUS_SPC) | UInt(XN_FLAG_FN_SN)
            | UInt(XN_FLAG_DUMP_UNKNOWN_FIELDS)
        guard X509_NAME_print_ex(bio, name, 0, flags) >= 0 else {
            OpenSSLErrorQueue.clear()
            return ""
        }
        let pending = min(Int(BIO_ctrl_pending(bio)), 4096)
        var buffer = [UInt8](repeating: 0, count: pending)
        let read = buffer.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32($0.count)) }
        OpenSSLErrorQueue.clear()
        return LogText.sanitised(String(decoding: buffer.prefix(max(0, Int(read))), as: UTF8.self), limit: 256)
    }

    /// The serial number in upper-case hex, as `openssl` and index.txt show it.
    var serialHex: String {
        guard let serial = X509_get0_serialNumber(pointer) else { return "" }
        let magnitude = ASN1.bytes(serial)
        let sign = ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER ? "-" : ""
        return sign + (magnitude.isEmpty ? "00" : ASCII.hex(magnitude, uppercase: true))
    }

    var notBefore: Int64? { ASN1.unixTime(X509_get0_notBefore(pointer)) }
    var notAfter: Int64? { ASN1.unixTime(X509_get0_notAfter(pointer)) }

    /// The OCSP responder URLs of the Authority Information Access extension, in certificate
    /// order. Only http and https: that is all an OCSP client can use (RFC 6960 §A.1).
    var ocspURLs: [String] {
        guard let list = X509_get1_ocsp(pointer) else {
            OpenSSLErrorQueue.clear()
            return []
        }
        defer { X509_email_free(list) }
        var urls: [String] = []
        for index in 0..<copenssl_sk_OPENSSL_STRING_num(list) {
            guard urls.count < Self.maximumOCSPURLs,
                  let value = copenssl_sk_OPENSSL_STRING_value(list, index) else { break }
            let url = String(cString: value)
            if Self.isUsableOCSPURL(url) { urls.append(url) }
        }
        return urls
    }

    /// The CA Issuers URLs of the Authority Information Access extension (where the issuer's
    /// certificate can be downloaded), in certificate order. Only plain http: RFC 5280
    /// §4.2.2.1 names http and ldap, and an https URL would need the chain it is fetching.
    var caIssuersURLs: [String] {
        defer { OpenSSLErrorQueue.clear() }
        guard let raw = X509_get_ext_d2i(pointer, NID_info_access, nil, nil) else { return [] }
        let access = OpaquePointer(raw)
        defer { AUTHORITY_INFO_ACCESS_free(access) }
        var urls: [String] = []
        for index in 0..<copenssl_sk_ACCESS_DESCRIPTION_num(access) {
            guard urls.count < Self.maximumOCSPURLs,
                  let description = copenssl_sk_ACCESS_DESCRIPTION_value(access, index) else { break }
            guard OBJ_obj2nid(description.pointee.method) == NID_ad_ca_issuers,
                  let location = description.pointee.location, location.pointee.type == GEN_URI,
                  let uri = location.pointee.d.uniformResourceIdentifier else { continue }
            let url = String(decoding: ASN1.bytes(uri), as: UTF8.self)
            if Self.isUsableOCSPURL(url) && url.lowercased().hasPrefix("http://") { urls.append(url) }
        }
        return urls
    }

    static let maximumOCSPURLs = 8
    static let maximumURLLength = 2048

    /// http(s), printable ASCII without spaces, of sane length.
    static func isUsableOCSPURL(_ url: String) -> Bool {
        let bytes = Array(url.utf8)
        guard bytes.count <= maximumURLLength, bytes.allSatisfy({ (0x21...0x7e).contains($0) }) else { return false }
        let lower = url.lowercased()
        return lower.hasPrefix("http://") && bytes.count > 7 || lower.hasPrefix("https://") && bytes.count > 8
    }

    /// Whether the TLS Feature extension (RFC 7633) asks for status_request (5), i.e. the
    /// certificate is "must-staple". An extension present but undecodable counts as
    /// must-staple: wrongly assuming so only makes the daemon more careful.
    var mustStaple: Bool {
        defer { OpenSSLErrorQueue.clear() }
        var critical: Int32 = 0
        guard let raw = X509_get_ext_d2i(pointer, NID_tlsfeature, &critical, nil) else {
            return critical != -1 // -1: absent; -2: present more than once; other: undecodable
        }
        let features = OpaquePointer(raw)
        defer { TLS_FEATURE_free(features) }
        for index in 0..<copenssl_sk_ASN1_INTEGER_num(features) {
            if let value = copenssl_sk_ASN1_INTEGER_value(features, index),
               ASN1_INTEGER_get(value) == Self.statusRequestFeature { return true }
        }
        return false
    }

    /// TLS extension number of status_request (RFC 6066 §8).
    static let statusRequestFeature = 5

    /// The DER encoding.
    var der: [UInt8]? { ASN1.encode { i2d_X509(pointer, $0) } }

    /// SHA-256 of the DER encoding: identity for interning issuers.
    var sha256Fingerprint: [UInt8]? {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(pointer, EVP_sha256(), &digest, &length) == 1 else {
            OpenSSLErrorQueue.clear()
            return nil
        }
        return Array(digest.prefix(Int(length)))
    }
}
