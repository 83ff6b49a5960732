/// The common OCSP response, checked without OpenSSL's OCSP decoder: one good answer about
/// our certificate, signed by its issuer (or by a delegated responder that passed the full
/// check before), in strict DER of the one shape RFC 6960 and RFC 5019 responders send.
///
/// Why: for each response OpenSSL decodes it twice (`OCSP_response_get1_basic` copies the
/// basic response), encodes the signed part again to hash it, and looks the signer's key,
/// the digest and the signature algorithm up again; at 100,000 certificates that is about a
/// third of the CPU a staple costs besides the signature arithmetic itself.
///
/// Only acceptance counts. Whatever this path does not recognise byte for byte (a version
/// field, several answers, any extension, another signature algorithm, a non-minimal
/// encoding, an unknown embedded certificate, a nonce to compare) and whatever it would
/// refuse (a bad signature, a time out of range, revoked or unknown status) gives nil, and
/// `OCSPResponseVerifier` checks the response with OpenSSL as before: every refusal and its
/// reason stay those of the full check. What it accepts, OpenSSL's path accepts too, with
/// the same times; the `ocspfast` fuzz target holds the two to that.
enum OCSPResponseFastPath {
    /// The response's parts this path reads, as ranges into its DER.
    struct Layout {
        /// tbsResponseData, whole: what the signature covers.
        let signed: Range<Int>
        let responderID: ResponderID
        let producedAt: Int64
        /// The one SingleResponse's CertID, whole.
        let certID: Range<Int>
        let thisUpdate: Int64
        let nextUpdate: Int64
        let algorithm: SignatureAlgorithm
        /// The signature BIT STRING's bits (after its zero unused-bits byte).
        let signature: Range<Int>
        /// Each embedded certificate, whole.
        let certificates: [Range<Int>]
    }

    enum ResponderID {
        /// The Name's DER, whole.
        case name(Range<Int>)
        /// The 20-byte SHA-1 of the signer's key.
        case keyHash(Range<Int>)
    }

    /// The signature algorithms checked here, each in its one DER form (ECDSA without
    /// parameters, RFC 5758 §3.2; RSA with NULL parameters, RFC 4055 §5).
    enum SignatureAlgorithm: CaseIterable {
        case ecdsaSHA256, ecdsaSHA384, ecdsaSHA512, rsaSHA256, rsaSHA384, rsaSHA512

        var der: [UInt8] {
            switch self {
            case .ecdsaSHA256: [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]
            case .ecdsaSHA384: [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03]
            case .ecdsaSHA512: [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04]
            case .rsaSHA256: [0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B, 0x05, 0x00]
            case .rsaSHA384: [0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C, 0x05, 0x00]
            case .rsaSHA512: [0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D, 0x05, 0x00]
            }
        }

        var digest: ResponseSignerKey.Digest {
            switch self {
            case .ecdsaSHA256, .rsaSHA256: .sha256
            case .ecdsaSHA384, .rsaSHA384: .sha384
            case .ecdsaSHA512, .rsaSHA512: .sha512
            }
        }

        var keyKind: ResponseSignerKey.KeyKind {
            switch self {
            case .ecdsaSHA256, .ecdsaSHA384, .ecdsaSHA512: .ec
            case .rsaSHA256, .rsaSHA384, .rsaSHA512: .rsa
            }
        }

        init?(_ der: [UInt8], _ element: DERCursor.Element) {
            guard let known = Self.allCases.first(where: { candidate in
                let expected = candidate.der
                return expected.count == element.whole.count && der[element.whole].elementsEqual(expected)
            }) else { return nil }
            self = known
        }
    }

    /// id-pkix-ocsp-basic, as its OBJECT IDENTIFIER element.
    static let basicResponseType: [UInt8] = [0x06, 0x09, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01]

    /// The response if it is accepted here; nil when the full check must decide.
    static func accept(_ der: [UInt8], certID: CertID, issuer: Issuer, now: Int64,
                       allowedClockSkew: Int64) -> VerifiedOCSPResponse? {
        guard let layout = layout(of: der), certID.isEncoded(by: der[layout.certID]) else { return nil }
        let time = now + allowedClockSkew
        guard let signer = signer(of: layout, in: der, issuer: issuer, at: time),
              signer.keyKind == layout.algorithm.keyKind,
              signer.verifies(der[layout.signature], over: der[layout.signed], digest: layout.algorithm.digest) else {
            return nil
        }
        // The same time checks as the full path, in the same order of strictness.
        guard layout.thisUpdate <= time, layout.nextUpdate > layout.thisUpdate, layout.nextUpdate > now else {
            return nil
        }
        return VerifiedOCSPResponse(status: .good, thisUpdate: layout.thisUpdate, nextUpdate: layout.nextUpdate,
                                    producedAt: layout.producedAt, der: der)
    }

    /// Who may have signed: the issuer when the response embeds no certificate, or one of the
    /// embedded ones when each of them is a delegate that passed the full check before and is
    /// valid at `time`; picked by the responder ID. The issuer must be valid at `time` too,
    /// as on the full path.
    private static func signer(of layout: Layout, in der: [UInt8], issuer: Issuer, at time: Int64) -> ResponseSignerKey? {
        guard let issuerKey = issuer.responseSignerKey,
              issuerKey.notBefore <= time, time <= issuerKey.notAfter else { return nil }
        var candidates = [issuerKey]
        if !layout.certificates.isEmpty {
            guard let delegates = issuer.delegatedSigners.checkedKeys(layout.certificates.map { der[$0] }, at: time) else {
                return nil
            }
            candidates += delegates
        }
        switch layout.responderID {
        case .name(let range):
            return candidates.first { $0.subjectDER.count == range.count && der[range].elementsEqual($0.subjectDER) }
        case .keyHash(let range):
            return candidates.first { der[range].elementsEqual($0.keyHash) }
        }
    }

    /// The parts of `der` when it is exactly
    ///
    ///     OCSPResponse { successful, responseBytes { id-pkix-ocsp-basic, OCTET STRING {
    ///       BasicOCSPResponse { ResponseData { responderID, producedAt, responses { one
    ///         SingleResponse { certID, good, thisUpdate, nextUpdate } } },
    ///       signatureAlgorithm, signature, [certs] } } } }
    ///
    /// in strict DER (no version, no extensions anywhere, GeneralizedTime in its one DER form,
    /// the signature's unused-bits byte zero), with nothing after it. Nil otherwise.
    static func layout(of der: [UInt8]) -> Layout? {
        var top = DERCursor(der, 0..<der.count)
        guard let response = top.only(0x30) else { return nil }
        var fields = DERCursor(der, inside: response)
        guard let status = fields.next(0x0A), status.content.count == 1, der[status.content.lowerBound] == 0,
              let bytesField = fields.only(0xA0) else { return nil }
        var explicit = DERCursor(der, inside: bytesField)
        guard let responseBytes = explicit.only(0x30) else { return nil }
        var typed = DERCursor(der, inside: responseBytes)
        guard let type = typed.next(0x06), der[type.whole].elementsEqual(basicResponseType),
              let octets = typed.only(0x04) else { return nil }
        var inner = DERCursor(der, inside: octets)
        guard let basic = inner.only(0x30) else { return nil }
        var parts = DERCursor(der, inside: basic)
        guard let tbs = parts.next(0x30), let algorithmElement = parts.next(0x30),
              let algorithm = SignatureAlgorithm(der, algorithmElement),
              let signature = parts.next(0x03), signature.content.count >= 2,
              der[signature.content.lowerBound] == 0 else { return nil }
        var certificates: [Range<Int>] = []
        if !parts.isAtEnd {
            guard let certsField = parts.only(0xA0) else { return nil }
            var certsExplicit = DERCursor(der, inside: certsField)
            guard let list = certsExplicit.only(0x30) else { return nil }
            var elements = DERCursor(der, inside: list)
            while !elements.isAtEnd {
                guard let certificate = elements.next(0x30) else { return nil }
                certificates.append(certificate.whole)
            }
            guard !certificates.isEmpty else { return nil }
        }

        var data = DERCursor(der, inside: tbs)
        let responderID: ResponderID
        switch data.nextTag {
        case 0xA1:
            guard let field = data.next(0xA1) else { return nil }
            var name = DERCursor(der, inside: field)
            guard let sequence = name.only(0x30) else { return nil }
            responderID = .name(sequence.whole)
        case 0xA2:
            guard let field = data.next(0xA2) else { return nil }
            var key = DERCursor(der, inside: field)
            guard let hash = key.only(0x04), hash.content.count == 20 else { return nil }
            responderID = .keyHash(hash.content)
        default:
            return nil
        }
        guard let producedAt = generalizedTime(&data, der), let responses = data.only(0x30) else { return nil }
        var list = DERCursor(der, inside: responses)
        guard let single = list.only(0x30) else { return nil }
        var answer = DERCursor(der, inside: single)
        guard let certID = answer.next(0x30), let good = answer.next(0x80), good.content.isEmpty,
              let thisUpdate = generalizedTime(&answer, der), let nextField = answer.only(0xA0) else { return nil }
        var next = DERCursor(der, inside: nextField)
        guard let nextUpdate = generalizedTime(&next, der), next.isAtEnd else { return nil }
        return Layout(signed: tbs.whole, responderID: responderID, producedAt: producedAt, certID: certID.whole,
                      thisUpdate: thisUpdate, nextUpdate: nextUpdate, algorithm: algorithm,
                      signature: signature.content.dropFirst(), certificates: certificates)
    }

    /// The next element as a GeneralizedTime in its DER form `YYYYMMDDHHMMSSZ`.
    private static func generalizedTime(_ cursor: inout DERCursor, _ der: [UInt8]) -> Int64? {
        guard let element = cursor.next(DERTime.generalizedTimeTag) else { return nil }
        return DERTime.unixTime(tag: DERTime.generalizedTimeTag, der[element.content])
    }
}
