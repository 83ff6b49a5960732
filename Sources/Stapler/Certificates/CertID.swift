import Reactor
import COpenSSL
import Synchronization

/// An OCSP CertID (RFC 6960 §4.1.1) with SHA-1 hashes, as DER: hashAlgorithm, issuerNameHash,
/// issuerKeyHash, serialNumber. SHA-1 because HAProxy indexes the staples it holds by the
/// SHA-1 CertID; a SHA-256 one would never match there.
///
/// Stored in two parts, because the daemon keeps one per certificate: the hash algorithm and
/// the two issuer hashes, identical for every certificate of an issuer, in one shared
/// object; the serial number inline. A value costs no allocation of its own that way (a
/// DER array per certificate was 96 bytes of heap). `der` puts the bytes back together.
struct CertID: Hashable, Sendable, CustomStringConvertible {
    /// The DER between the outer SEQUENCE header and the serial number's INTEGER (shared);
    /// or, for bytes not in that canonical shape, the whole DER (`serialCount == whole`).
    private let head: Head
    /// The serial number's INTEGER content, left-aligned, `serialCount` bytes of it.
    private let serial: (UInt64, UInt64, UInt64)
    private let serialCount: UInt8

    private static let inlineCapacity = 24
    private static let whole = UInt8.max

    init(der: [UInt8]) {
        if let (middle, serialRange) = Self.canonicalParts(der) {
            var words: (UInt64, UInt64, UInt64) = (0, 0, 0)
            withUnsafeMutableBytes(of: &words) { buffer in
                for (offset, index) in serialRange.enumerated() { buffer[offset] = der[index] }
            }
            head = Head.shared(Array(der[middle]))
            serial = words
            serialCount = UInt8(serialRange.count)
        } else {
            head = Head(bytes: der)
            serial = (0, 0, 0)
            serialCount = Self.whole
        }
    }

    /// Computes the CertID of `certificate` as issued by `issuer`; nil if OpenSSL fails.
    init?(certificate: X509Certificate, issuer: X509Certificate) {
        defer { OpenSSLErrorQueue.clear() }
        guard let id = OCSP_cert_to_id(EVP_sha1(), certificate.pointer, issuer.pointer) else { return nil }
        defer { OCSP_CERTID_free(id) }
        guard let der = ASN1.encode({ i2d_OCSP_CERTID(id, $0) }) else { return nil }
        self.init(der: der)
    }

    var der: [UInt8] {
        guard serialCount != Self.whole else { return head.bytes }
        let count = Int(serialCount)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(4 + head.bytes.count + count)
        bytes.append(0x30)
        bytes.append(UInt8(head.bytes.count + 2 + count))
        bytes.append(contentsOf: head.bytes)
        bytes.append(0x02)
        bytes.append(serialCount)
        withSerialBytes { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// Whether `bytes` are exactly this CertID's DER (`der`), compared without building it.
    func isEncoded(by bytes: ArraySlice<UInt8>) -> Bool {
        guard serialCount != Self.whole else { return bytes.elementsEqual(head.bytes) }
        let count = Int(serialCount)
        let headCount = head.bytes.count
        guard bytes.count == 4 + headCount + count else { return false }
        let start = bytes.startIndex
        guard bytes[start] == 0x30, Int(bytes[start + 1]) == headCount + 2 + count,
              bytes[(start + 2)..<(start + 2 + headCount)].elementsEqual(head.bytes),
              bytes[start + 2 + headCount] == 0x02, bytes[start + 3 + headCount] == serialCount else { return false }
        return withSerialBytes { bytes[(start + 4 + headCount)...].elementsEqual($0) }
    }

    /// The serial number's INTEGER content (two's complement, as encoded); nil for a CertID
    /// whose bytes are not a canonical CertID.
    func withSerialContent<Result>(_ body: (UnsafeRawBufferPointer?) -> Result) -> Result {
        guard serialCount != Self.whole else { return body(nil) }
        return withSerialBytes { body($0) }
    }

    private func withSerialBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        withUnsafeBytes(of: serial) { body(UnsafeRawBufferPointer(rebasing: $0[0..<Int(serialCount)])) }
    }

    /// Lower-case hex of the DER, the form `show ssl ocsp-response` prints.
    var hex: String { ASCII.hex(der) }

    var description: String { hex }

    static func == (lhs: CertID, rhs: CertID) -> Bool {
        guard lhs.serialCount == rhs.serialCount, lhs.serial == rhs.serial else { return false }
        return lhs.head === rhs.head || lhs.head.bytes == rhs.head.bytes
    }

    func hash(into hasher: inout Hasher) {
        head.bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        hasher.combine(serialCount)
        withUnsafeBytes(of: serial) { hasher.combine(bytes: $0) }
    }

    /// A fresh OpenSSL OCSP_CERTID for this value; the caller frees it (or hands it to a
    /// function that takes ownership).
    func makeOpenSSLObject() -> OpaquePointer? {
        let der = self.der
        guard let (object, consumed) = ASN1.decode(der, { d2i_OCSP_CERTID(nil, $0, $1) }) else {
            OpenSSLErrorQueue.clear()
            return nil
        }
        guard consumed == der.count else {
            OCSP_CERTID_free(object)
            return nil
        }
        return object
    }

    /// Where the issuer part and the serial's content lie in `der`, when the DER is a
    /// SEQUENCE of three elements and an INTEGER, all with short-form lengths, the serial
    /// small enough to keep inline: then `der` rebuilds exactly these bytes. Nil otherwise.
    private static func canonicalParts(_ der: [UInt8]) -> (middle: Range<Int>, serial: Range<Int>)? {
        guard der.count >= 2, der[0] == 0x30, der[1] < 0x80, Int(der[1]) == der.count - 2 else { return nil }
        var index = 2
        for tag: UInt8 in [0x30, 0x04, 0x04] {
            guard index + 2 <= der.count, der[index] == tag, der[index + 1] < 0x80 else { return nil }
            index += 2 + Int(der[index + 1])
        }
        let middle = 2..<index
        guard index + 2 <= der.count, der[index] == 0x02, der[index + 1] < 0x80 else { return nil }
        let count = Int(der[index + 1])
        guard count <= inlineCapacity, index + 2 + count == der.count else { return nil }
        return (middle, index + 2..<der.count)
    }

    /// The issuer part of CertIDs, one object per distinct value in use.
    private final class Head: Sendable {
        let bytes: [UInt8]

        init(bytes: [UInt8]) { self.bytes = bytes }

        /// A process holds few issuers; the table is emptied if it ever grows past this (the
        /// CertIDs made before keep their objects, new ones are shared from then on).
        private static let limit = 256
        private static let table = Mutex<[[UInt8]: Head]>([:])

        static func shared(_ bytes: [UInt8]) -> Head {
            table.withLock { table in
                if let known = table[bytes] { return known }
                if table.count >= limit { table.removeAll() }
                let head = Head(bytes: bytes)
                table[bytes] = head
                return head
            }
        }
    }
}
