import Foundation
import Reactor
import TestSupport
@testable import Stapler

/// A throwaway CA in a temporary directory, and helpers to turn its leaves into files and
/// records.
final class PKIFixture {
    let temp: TemporaryDirectory
    let pki: TestPKI

    init(name: String = "Stapler Test CA") throws {
        temp = try TemporaryDirectory()
        pki = try TestPKI(directory: temp.file("ca"), name: name)
    }

    /// Writes an HAProxy-style bundle into the fixture's directory; returns its path.
    func bundle(_ leaf: TestPKI.Leaf, name: String, includeIssuer: Bool = true, includeKey: Bool = true) throws -> String {
        let path = temp.file(name)
        try pki.writeBundle(leaf, to: path, includeIssuer: includeIssuer, includeKey: includeKey)
        return path
    }

    func record(_ path: String, now: Int64 = UTCTime.now(), store: IssuerStore = IssuerStore()) throws -> CertificateRecord {
        try CertificateBundle.load(path: FilePath(path), now: now, issuers: store)
    }

    /// A record for a fresh bundle of `leaf` (leaf, issuer, key).
    func record(for leaf: TestPKI.Leaf) throws -> CertificateRecord {
        try record(try bundle(leaf, name: "bundle-\(leaf.serial).pem"))
    }

    func error(_ path: String, now: Int64 = UTCTime.now()) -> CertificateBundleError? {
        do {
            _ = try CertificateBundle.load(path: FilePath(path), now: now, issuers: IssuerStore())
            return nil
        } catch {
            return error
        }
    }

    /// The request `openssl ocsp` itself would send for `leaf` (no nonce).
    func opensslRequest(leaf: TestPKI.Leaf, issuer: String? = nil) throws -> [UInt8] {
        let output = temp.file("openssl-request-\(UUID().uuidString).der")
        try Shell.run(["openssl", "ocsp", "-issuer", issuer ?? pki.certificate, "-cert", leaf.certificate,
                       "-reqout", output, "-no_nonce"])
        return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
    }

    /// The CertID inside openssl's request, cut out of the DER.
    func opensslCertID(leaf: TestPKI.Leaf, issuer: String? = nil) throws -> CertID {
        let request = try opensslRequest(leaf: leaf, issuer: issuer)
        // OCSPRequest ::= SEQ { tbsRequest SEQ { requestList SEQ OF { Request SEQ { reqCert CertID } } } }
        var offset = 0
        for _ in 0..<4 { offset = try DERWalker.enterSequence(request, at: offset) }
        let length = try DERWalker.elementLength(request, at: offset)
        return CertID(der: Array(request[offset..<offset + length]))
    }
}

/// Just enough DER walking to cut a CertID out of a request.
enum DERWalker {
    struct Failure: Error {}

    static func headerAndContentLength(_ der: [UInt8], at offset: Int) throws -> (header: Int, content: Int) {
        guard offset + 2 <= der.count else { throw Failure() }
        let first = Int(der[offset + 1])
        if first < 0x80 { return (2, first) }
        let count = first & 0x7f
        guard count <= 3, offset + 2 + count <= der.count else { throw Failure() }
        let content = der[(offset + 2)..<(offset + 2 + count)].reduce(0) { $0 << 8 | Int($1) }
        return (2 + count, content)
    }

    static func enterSequence(_ der: [UInt8], at offset: Int) throws -> Int {
        guard der[offset] == 0x30 else { throw Failure() }
        return offset + (try headerAndContentLength(der, at: offset)).header
    }

    static func elementLength(_ der: [UInt8], at offset: Int) throws -> Int {
        let (header, content) = try headerAndContentLength(der, at: offset)
        return header + content
    }
}
