import Foundation

/// A throwaway certificate authority made with the openssl CLI: it issues leaf certificates
/// with OCSP URLs, delegated responder certificates, revokes, and signs OCSP responses
/// offline. Keys are P-256 (fast to make); all leaves share one key, since nothing here
/// depends on their keys differing.
public final class TestPKI {
    public struct Leaf: Hashable {
        public let certificate: String
        public let key: String
        /// Upper-case hex, as in index.txt and `openssl ocsp` logs.
        public let serial: String
    }

    public let directory: String
    public let name: String
    public let certificate: String
    public let key: String
    public let index: String
    private let config: String
    private let leafKey: String
    private let leafRequest: String
    private var extensionCounter = 0

    /// Creates a root CA, or a CA signed by `parent` (an intermediate), with an EC P-256 key
    /// or, with `rsaKey`, an RSA 2048 one (its leaves keep EC keys).
    public init(directory: String, name: String = "Stapler Test CA", parent: TestPKI? = nil, rsaKey: Bool = false) throws {
        self.directory = directory
        self.name = name
        certificate = "\(directory)/ca.pem"
        key = "\(directory)/ca.key"
        index = "\(directory)/index.txt"
        config = "\(directory)/ca.cnf"
        leafKey = "\(directory)/leaf.key"
        leafRequest = "\(directory)/leaf.csr"
        try FileManager.default.createDirectory(atPath: "\(directory)/issued", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: index, contents: Data())
        try "unique_subject = no\n".write(toFile: "\(index).attr", atomically: true, encoding: .utf8)
        try "1000\n".write(toFile: "\(directory)/serial", atomically: true, encoding: .utf8)
        try """
        [ca]
        default_ca = testca
        [testca]
        dir = \(directory)
        database = \(index)
        new_certs_dir = \(directory)/issued
        serial = \(directory)/serial
        default_md = sha256
        policy = anything
        unique_subject = no
        default_days = 30
        [anything]
        commonName = supplied
        organizationName = optional
        [req]
        distinguished_name = dn
        [dn]
        [ca_ext]
        basicConstraints = critical,CA:TRUE
        keyUsage = critical,keyCertSign,cRLSign,digitalSignature
        subjectKeyIdentifier = hash
        authorityKeyIdentifier = keyid
        """.write(toFile: config, atomically: true, encoding: .utf8)

        parentRoot = parent?.rootCertificate
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        let caKey = rsaKey ? ["-newkey", "rsa:2048", "-nodes"] : curve
        if let parent {
            try Shell.run(["openssl", "req", "-new"] + caKey + ["-keyout", key, "-out", "\(directory)/ca.csr",
                           "-subj", "/CN=\(name)", "-config", config])
            try parent.sign(request: "\(directory)/ca.csr", output: certificate, extensions: """
                basicConstraints = critical,CA:TRUE
                keyUsage = critical,keyCertSign,cRLSign,digitalSignature
                subjectKeyIdentifier = hash
                authorityKeyIdentifier = keyid
                """)
        } else {
            try Shell.run(["openssl", "req", "-x509"] + caKey + ["-keyout", key, "-out", certificate,
                           "-subj", "/CN=\(name)", "-days", "60", "-config", config, "-extensions", "ca_ext"])
        }
        try Shell.run(["openssl", "req", "-new"] + curve + ["-keyout", leafKey, "-out", leafRequest,
                       "-subj", "/CN=leaf.test", "-config", config])
    }

    /// Issues `count` leaf certificates in one openssl run. `subjectAltName` defaults to
    /// `DNS:<commonName>` (`IP:127.0.0.1` makes a certificate for a loopback TLS server).
    public func issueLeaves(count: Int = 1, commonName: String = "leaf.test", ocspURLs: [String],
                            mustStaple: Bool = false, expired: Bool = false,
                            authorityKeyIdentifier: Bool = true, extraExtensions: String = "",
                            subjectAltName: String? = nil,
                            caIssuersURL: String = "http://127.0.0.1:1/ca.der") throws -> [Leaf] {
        var lines = [
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature",
            "extendedKeyUsage = serverAuth",
            "subjectAltName = \(subjectAltName ?? "DNS:\(commonName)")",
            "authorityKeyIdentifier = " + (authorityKeyIdentifier ? "keyid" : "none"),
        ]
        if !ocspURLs.isEmpty {
            lines.append("authorityInfoAccess = " + ocspURLs.map { "OCSP;URI:\($0)" }.joined(separator: ",")
                         + ",caIssuers;URI:\(caIssuersURL)")
        }
        if mustStaple { lines.append("tlsfeature = status_request") }
        if !extraExtensions.isEmpty { lines.append(extraExtensions) }
        let before = try String(contentsOfFile: "\(directory)/serial", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        var dates: [String] = []
        if expired { dates = ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"] }
        let extfile = try writeExtensions(lines.joined(separator: "\n"))
        try Shell.run(["openssl", "ca", "-batch", "-config", config, "-cert", certificate, "-keyfile", key,
                       "-extfile", extfile, "-notext", "-outdir", "\(directory)/issued", "-subj", "/CN=\(commonName)"]
                      + dates + ["-infiles"] + Array(repeating: leafRequest, count: count))
        var serial = Int(before, radix: 16)!
        var leaves: [Leaf] = []
        for _ in 0..<count {
            let hex = String(serial, radix: 16, uppercase: true)
            let padded = hex.count % 2 == 1 ? "0" + hex : hex
            leaves.append(Leaf(certificate: "\(directory)/issued/\(padded).pem", key: leafKey, serial: padded))
            serial += 1
        }
        return leaves
    }

    public func issueLeaf(commonName: String = "leaf.test", ocspURLs: [String], mustStaple: Bool = false,
                          expired: Bool = false, caIssuersURL: String = "http://127.0.0.1:1/ca.der") throws -> Leaf {
        try issueLeaves(count: 1, commonName: commonName, ocspURLs: ocspURLs, mustStaple: mustStaple,
                        expired: expired, caIssuersURL: caIssuersURL)[0]
    }

    /// A certificate for a delegated OCSP responder, issued by this CA, with or without the
    /// id-kp-OCSPSigning extended key usage.
    public func issueResponder(name: String = "Test OCSP Responder", withOCSPSigning: Bool = true) throws
        -> (certificate: String, key: String) {
        let base = "\(directory)/responder-\(extensionCounter + 1)"
        try Shell.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                       "-nodes", "-keyout", "\(base).key", "-out", "\(base).csr", "-subj", "/CN=\(name)",
                       "-config", config])
        try sign(request: "\(base).csr", output: "\(base).pem", extensions: """
            basicConstraints = critical,CA:FALSE
            keyUsage = critical,digitalSignature
            extendedKeyUsage = \(withOCSPSigning ? "OCSPSigning" : "serverAuth")
            """)
        return ("\(base).pem", "\(base).key")
    }

    public func revoke(_ leaf: Leaf) throws {
        try Shell.run(["openssl", "ca", "-config", config, "-cert", certificate, "-keyfile", key,
                       "-revoke", leaf.certificate, "-crl_reason", "keyCompromise"])
    }

    /// Writes an HAProxy-style bundle: leaf, then optionally the issuer, then optionally the key.
    public func writeBundle(_ leaf: Leaf, to path: String, includeIssuer: Bool = true, includeKey: Bool = true) throws {
        var pem = try String(contentsOfFile: leaf.certificate, encoding: .utf8)
        if includeIssuer { pem += try String(contentsOfFile: certificate, encoding: .utf8) }
        if includeKey { pem += try String(contentsOfFile: leaf.key, encoding: .utf8) }
        try pem.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Signs an OCSP response for `leaf` offline, as `openssl ocsp` would serve it. The signer
    /// is the CA unless a delegated responder (or any other certificate and key) is given.
    /// `alsoEmbedding`: a PEM file of further certificates the response carries (`-rother`).
    /// `embeddingSigner: false` leaves the signer's certificate out (`-resp_no_certs`, as
    /// Let's Encrypt answers); `responderIDByKey` names the signer by its key hash
    /// (`-resp_key_id`) instead of its name.
    public func ocspResponse(for leaf: Leaf, signer: (certificate: String, key: String)? = nil,
                             validForMinutes: Int? = nil, validForDays: Int = 1,
                             alsoEmbedding others: String? = nil, embeddingSigner: Bool = true,
                             responderIDByKey: Bool = false, digest: String? = nil) throws -> Data {
        let output = "\(directory)/response-\(leaf.serial)-\(UUID().uuidString).der"
        let signerCert = signer?.certificate ?? certificate
        let signerKey = signer?.key ?? key
        var validity = ["-ndays", String(validForDays)]
        if let validForMinutes { validity = ["-nmin", String(validForMinutes)] }
        try Shell.run(["openssl", "ocsp", "-index", index, "-rsigner", signerCert, "-rkey", signerKey,
                       "-CA", certificate, "-issuer", certificate, "-cert", leaf.certificate,
                       "-respout", output, "-no_nonce"] + validity + (others.map { ["-rother", $0] } ?? [])
                       + (embeddingSigner ? [] : ["-resp_no_certs"]) + (responderIDByKey ? ["-resp_key_id"] : [])
                       + (digest.map { ["-rmd", $0] } ?? []))
        defer { try? FileManager.default.removeItem(atPath: output) }
        return try Data(contentsOf: URL(fileURLWithPath: output))
    }

    /// Checks a staple the way an operator would: `openssl ocsp -respin`. Returns the status
    /// line openssl prints for the certificate ("good", "revoked") or throws if it does not verify.
    public func verifyWithOpenSSL(staple path: String, for leaf: Leaf) throws -> String {
        let result = try Shell.run(["openssl", "ocsp", "-respin", path, "-issuer", certificate,
                                    "-cert", leaf.certificate, "-CAfile", rootCertificate, "-no_nonce",
                                    "-verify_other", certificate])
        guard result.output.contains("Response verify OK") else {
            throw Shell.Failure(command: ["openssl", "ocsp", "-respin", path], status: 1, output: result.output)
        }
        let line = result.output.split(separator: "\n").first { $0.hasPrefix(leaf.certificate + ":") } ?? ""
        return line.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
    }

    /// The root of this CA's chain (itself unless it is an intermediate).
    public var rootCertificate: String { parentRoot ?? certificate }
    private var parentRoot: String?

    func sign(request: String, output: String, extensions: String) throws {
        let extfile = try writeExtensions(extensions)
        try Shell.run(["openssl", "ca", "-batch", "-config", config, "-cert", certificate, "-keyfile", key,
                       "-extfile", extfile, "-notext", "-outdir", "\(directory)/issued",
                       "-in", request, "-out", output])
    }

    private func writeExtensions(_ text: String) throws -> String {
        extensionCounter += 1
        let path = "\(directory)/ext-\(extensionCounter).cnf"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

// Added for the certificate and OCSP tests.
extension TestPKI {
    /// A response without nextUpdate: `openssl ocsp` omits it when neither -ndays nor -nmin
    /// is given. Such a response cannot be scheduled and HAProxy refuses it.
    public func ocspResponseWithoutNextUpdate(for leaf: Leaf) throws -> Data {
        let output = "\(directory)/response-\(leaf.serial)-\(UUID().uuidString).der"
        try Shell.run(["openssl", "ocsp", "-index", index, "-rsigner", certificate, "-rkey", key,
                       "-CA", certificate, "-issuer", certificate, "-cert", leaf.certificate,
                       "-respout", output, "-no_nonce"])
        defer { try? FileManager.default.removeItem(atPath: output) }
        return try Data(contentsOf: URL(fileURLWithPath: output))
    }

    /// Answers a DER request file offline, as the CA's responder would (`openssl ocsp -index
    /// ... -reqin`). Nonces in the request are copied into the answer.
    public func answer(requestFile: String, validForDays: Int = 1) throws -> Data {
        let output = "\(directory)/answer-\(UUID().uuidString).der"
        try Shell.run(["openssl", "ocsp", "-index", index, "-rsigner", certificate, "-rkey", key,
                       "-CA", certificate, "-reqin", requestFile, "-respout", output,
                       "-ndays", String(validForDays)])
        defer { try? FileManager.default.removeItem(atPath: output) }
        return try Data(contentsOf: URL(fileURLWithPath: output))
    }

    /// Removes a leaf from the CA database, so the responder answers "unknown" for it.
    public func forget(_ leaf: Leaf) throws {
        let lines = try String(contentsOfFile: index, encoding: .utf8).split(separator: "\n")
        let kept = lines.filter { $0.split(separator: "\t", omittingEmptySubsequences: false).dropFirst(3).first
            .map(String.init) != leaf.serial }
        try (kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).write(toFile: index, atomically: true,
                                                                               encoding: .utf8)
    }
}
