import COpenSSL

/// The delegated responder certificates (RFC 6960 §4.2.2.2) one issuer's responses were
/// signed with and that passed the full check: issued by the issuer, id-kp-OCSPSigning,
/// within their validity. Many CAs embed the same delegated certificate in every response,
/// and building its chain again for each of 10,000 responses costs more than checking the
/// response's signature. Remembered by the SHA-256 of the certificate's DER with its
/// validity, so the same bytes need only their validity and the signature checked again;
/// other bytes (a new delegate, a forged one with the same name) take the full check.
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

    private var known: [[UInt8]: Validity] = [:]

    var count: Int { known.count }

    /// Whether these exact certificate bytes passed the full check and are valid at `time`.
    func isKnown(_ fingerprint: [UInt8], at time: Int64) -> Bool {
        guard let validity = known[fingerprint] else { return false }
        return validity.notBefore <= time && time <= validity.notAfter
    }

    func remember(_ fingerprint: [UInt8], _ validity: Validity, now: Int64) {
        if known[fingerprint] == nil, known.count >= Self.capacity {
            known = known.filter { $0.value.notAfter >= now }
            if known.count >= Self.capacity, let first = known.min(by: { $0.value.notAfter < $1.value.notAfter }) {
                known[first.key] = nil
            }
        }
        known[fingerprint] = validity
    }
}
