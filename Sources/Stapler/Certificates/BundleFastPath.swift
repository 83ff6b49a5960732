/// Reads a bundle whose chain is already known without OpenSSL's X.509 decoder: every
/// CERTIFICATE block but one is an interned `Issuer` that is a CA, the remaining one is a
/// `LeafCertificate`, and the first of those issuers issued it (`IssuerLeafCheck`). That is
/// the common case after the first bundle of each CA: thousands of bundles carry the same
/// chain. Anything else is nil, and `CertificateBundle.parse` reads the bundle with OpenSSL
/// as before; a nil costs one more PEM split and base64 decoding.
struct BundleFastPath {
    let leaf: LeafCertificate
    let issuer: Issuer
    let certID: CertID

    /// Only CERTIFICATE blocks are decoded: private keys stay in `text`, which the caller wipes.
    init?(text: [UInt8], issuers: IssuerStore) {
        guard let blocks = try? PEMParser.blocks(in: text) else { return nil }
        var leaf: LeafCertificate?
        var chain: [Issuer] = []
        for block in blocks where block.isCertificate {
            guard let der = Base64.decode(text[block.body]), !der.isEmpty else { return nil }
            if let known = issuers.knownIssuer(der: der) {
                guard known.leafCheck?.isCA == true else { return nil }
                chain.append(known)
                continue
            }
            guard leaf == nil, let decoded = LeafCertificate(der: der) else { return nil }
            leaf = decoded
        }
        // The issuer OpenSSL's path picks is the first certificate of the bundle that issued
        // the leaf; when the first one does not, leave the search to it.
        guard let leaf, let issuer = chain.first, let check = issuer.leafCheck, check.issued(leaf) else { return nil }
        self.leaf = leaf
        self.issuer = issuer
        certID = check.certID(of: leaf)
    }
}
