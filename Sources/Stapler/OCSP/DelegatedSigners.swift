import Glibc
import COpenSSL

/// The delegated responder certificates (RFC 6960 §4.2.2.2) one issuer's responses were
/// signed with and that passed the full check: issued by the issuer, id-kp-OCSPSigning,
/// within their validity. Many CAs embed the same delegated certificate in every response,
/// and building its chain again for each of 10,000 responses costs more than checking the
/// response's signature. Remembered by the SHA-256 of the certificate's DER with its
/// validity, so the same bytes need only their validity and the signature checked again;
/// other bytes (a new delegate, a forged one with the same name) take the full check.
///
/// Each also keeps the checked certificate itself (parsed, with its key, and its DER): a
/// response that embeds only remembered delegates is then parsed without its certificates
/// (`OCSPResponseLayout`) and checked with these, sparing OpenSSL a certificate and key
/// decoding per response.
///
/// One per `Issuer`: a delegate is trusted for the issuer that delegated to it, no other.
/// Bounded: CAs rotate delegates every few days, so a handful are live at once.
final class DelegatedSigners {
    struct Validity {
        let notBefore: Int64
        let notAfter: Int64
    }

    /// The most delegates remembered per issuer; the one expiring first goes to make room.
    static let capacity = 8

    /// A delegate's certificate as it passed the full check.
    struct Checked {
        let certificate: X509Certificate
        let der: [UInt8]
        /// Its key prepared for signature checks (`OCSPResponseFastPath`); nil for a key
        /// kind only OpenSSL's path checks.
        let signerKey: ResponseSignerKey?

        init(certificate: X509Certificate, der: [UInt8]) {
            self.certificate = certificate
            self.der = der
            signerKey = ResponseSignerKey(certificate)
        }
    }

    private struct Entry {
        let validity: Validity
        let checked: Checked?
    }

    private var known: [[UInt8]: Entry] = [:]

    var count: Int { known.count }

    /// Whether these exact certificate bytes passed the full check and are valid at `time`.
    func isKnown(_ fingerprint: [UInt8], at time: Int64) -> Bool {
        guard let entry = known[fingerprint] else { return false }
        return entry.validity.notBefore <= time && time <= entry.validity.notAfter
    }

    /// The remembered certificates that are `candidates`, byte for byte, when every one of
    /// them is remembered and valid at `time`; nil otherwise.
    func checkedCertificates(_ candidates: [ArraySlice<UInt8>], at time: Int64) -> [X509Certificate]? {
        checked(candidates, at: time)?.map(\.certificate)
    }

    /// Their prepared keys, when every one of them also has one; nil otherwise.
    func checkedKeys(_ candidates: [ArraySlice<UInt8>], at time: Int64) -> [ResponseSignerKey]? {
        guard let entries = checked(candidates, at: time) else { return nil }
        let keys = entries.compactMap(\.signerKey)
        return keys.count == entries.count ? keys : nil
    }

    private func checked(_ candidates: [ArraySlice<UInt8>], at time: Int64) -> [Checked]? {
        guard !candidates.isEmpty, !known.isEmpty else { return nil }
        var found: [Checked] = []
        for candidate in candidates {
            guard let entry = known.values.first(where: { $0.checked.map { Self.equal($0.der, candidate) } ?? false }),
                  let checked = entry.checked,
                  entry.validity.notBefore <= time, time <= entry.validity.notAfter else { return nil }
            found.append(checked)
        }
        return found
    }

    func remember(_ fingerprint: [UInt8], _ validity: Validity, checked: Checked? = nil, now: Int64) {
        if known[fingerprint] == nil, known.count >= Self.capacity {
            known = known.filter { $0.value.validity.notAfter >= now }
            if known.count >= Self.capacity,
               let first = known.min(by: { $0.value.validity.notAfter < $1.value.validity.notAfter }) {
                known[first.key] = nil
            }
        }
        known[fingerprint] = Entry(validity: validity, checked: checked)
    }

    private static func equal(_ remembered: [UInt8], _ candidate: ArraySlice<UInt8>) -> Bool {
        !remembered.isEmpty && remembered.count == candidate.count && remembered.withUnsafeBytes { left in
            candidate.withUnsafeBytes { right in memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0 }
        }
    }
}
