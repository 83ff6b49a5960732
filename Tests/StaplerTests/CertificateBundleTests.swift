import COpenSSL
import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// Certificate files as operators have them (HAProxy bundles, leaf + `.issuer`, chains,
/// stray keys and CA files, broken files) turned into records, or refused with a clear reason.
final class CertificateBundleTests: XCTestCase {
    func testHAProxyBundleWithKeyAndIssuerGivesTheLeafAndItsFacts() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(commonName: "www.example.test", ocspURLs: ["http://127.0.0.1:8888/ocsp"])
        let path = try fixture.bundle(leaf, name: "site.pem")
        let before = UTCTime.now()
        let record = try CertificateBundle.load(path: FilePath(path), now: before, issuers: IssuerStore())

        XCTAssertEqual(record.subject, "CN=www.example.test")
        XCTAssertEqual(record.serialHex, leaf.serial)
        XCTAssertEqual(record.ocspURLs, ["http://127.0.0.1:8888/ocsp"])
        XCTAssertFalse(record.mustStaple)
        XCTAssertEqual(record.issuer.subject, "CN=Stapler Test CA")
        XCTAssertLessThanOrEqual(record.notBefore, before + 1)
        XCTAssertEqual(Double(record.notAfter - before), 30 * 86400, accuracy: 120)
        // The dates are the ones openssl reads from the certificate.
        let enddate = try Shell.run(["openssl", "x509", "-in", leaf.certificate, "-noout", "-enddate", "-dateopt", "iso_8601"])
        XCTAssertTrue(enddate.output.contains(String(UTCTime.format(record.notAfter).dropLast(4))), enddate.output)
    }

    func testParsingWipesTheTextThatHeldThePrivateKey() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let path = try fixture.bundle(leaf, name: "site.pem")
        var text = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertTrue(String(decoding: text, as: UTF8.self).contains("PRIVATE KEY"))
        _ = try CertificateBundle.parse(pem: &text, path: FilePath(path), now: UTCTime.now(), issuers: IssuerStore())
        XCTAssertTrue(text.allSatisfy { $0 == 0 }, "the PEM text must be zeroed after parsing")

        // Also when parsing fails (a truncated key after a certificate without an OCSP URL).
        var broken = Array("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n".utf8)
        XCTAssertThrowsError(try CertificateBundle.parse(pem: &broken, path: "x.pem", now: 0, issuers: IssuerStore()))
        XCTAssertTrue(broken.allSatisfy { $0 == 0 })
    }

    func testLeafOnlyFileFindsItsIssuerInTheDotIssuerFile() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let path = try fixture.bundle(leaf, name: "leaf.pem", includeIssuer: false, includeKey: false)
        XCTAssertEqual(fixture.error(path)?.reason, .issuerNotFound)
        XCTAssertEqual(fixture.error(path)?.description,
                       "\(path): issuer of certificate \"CN=leaf.test\" found neither in the file nor in \(path).issuer")

        try FileManager.default.copyItem(atPath: fixture.pki.certificate, toPath: path + ".issuer")
        let record = try fixture.record(path)
        XCTAssertEqual(record.issuer.subject, "CN=Stapler Test CA")
    }

    func testWithAStapleDirectoryTheIssuerIsAlsoLookedForBelowIt() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"], caIssuersURL: "http://127.0.0.1:8888/ca.der")
        let path = try fixture.bundle(leaf, name: "leaf.pem", includeIssuer: false, includeKey: false)
        let location = StapleLocation.under(FilePath(fixture.temp.file("staples")))
        let below = location.issuerPath(forCertificate: FilePath(path))
        XCTAssertEqual(below.description, fixture.temp.file("staples") + path + ".issuer")
        func load() throws -> CertificateRecord {
            try CertificateBundle.load(path: FilePath(path), now: UTCTime.now(), issuers: IssuerStore(), issuerLocation: location)
        }
        XCTAssertThrowsError(try load()) {
            let error = $0 as? CertificateBundleError
            XCTAssertEqual(error?.description, "\(path): issuer of certificate \"CN=leaf.test\" found neither in the file "
                           + "nor in \(path).issuer nor \(below)")
            XCTAssertEqual(error?.missingIssuer?.caIssuersURLs, ["http://127.0.0.1:8888/ca.der"])
            XCTAssertEqual(error?.missingIssuer?.issuerName, "CN=Stapler Test CA")
        }
        try FileManager.default.createDirectory(atPath: below.directory.description, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixture.pki.certificate, toPath: below.description)
        XCTAssertEqual(try load().issuer.subject, "CN=Stapler Test CA")
    }

    func testIssuerIsMatchedBySignatureNotJustByName() throws {
        // Another CA with the same name: the name matches, the signature does not.
        let fixture = try PKIFixture()
        let impostorDirectory = try TemporaryDirectory()
        let impostor = try TestPKI(directory: impostorDirectory.path, name: "Stapler Test CA")
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let path = fixture.temp.file("leaf.pem")
        try (String(contentsOfFile: leaf.certificate, encoding: .utf8)
             + String(contentsOfFile: impostor.certificate, encoding: .utf8)).write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(fixture.error(path)?.reason, .issuerNotFound)
        // The real issuer in the .issuer file wins; the impostor in the bundle is ignored.
        try FileManager.default.copyItem(atPath: fixture.pki.certificate, toPath: path + ".issuer")
        XCTAssertEqual(try fixture.record(path).certID, try fixture.opensslCertID(leaf: leaf))
    }

    /// Without key identifiers only the signature tells two CAs of the same name apart.
    func testWithoutKeyIdentifiersTheSignatureDecidesBetweenCAsOfOneName() throws {
        let fixture = try PKIFixture()
        let impostorDirectory = try TemporaryDirectory()
        let impostor = try TestPKI(directory: impostorDirectory.path, name: "Stapler Test CA")
        let leaf = try fixture.pki.issueLeaves(ocspURLs: ["http://127.0.0.1:8888/"], authorityKeyIdentifier: false)[0]
        XCTAssertFalse(try Shell.run(["openssl", "x509", "-in", leaf.certificate, "-noout", "-text"]).output
            .contains("Authority Key Identifier"))
        let pem = { (paths: [String]) in try paths.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined() }
        let path = fixture.temp.file("leaf.pem")
        try pem([leaf.certificate, impostor.certificate]).write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(fixture.error(path)?.reason, .issuerNotFound)
        try pem([leaf.certificate, impostor.certificate, fixture.pki.certificate])
            .write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try fixture.record(path).certID, try fixture.opensslCertID(leaf: leaf))
    }

    func testLeafOfAnIntermediateIsIssuedByTheIntermediateWhateverTheOrder() throws {
        let fixture = try PKIFixture()
        let intermediateDirectory = try TemporaryDirectory()
        let intermediate = try TestPKI(directory: intermediateDirectory.path, name: "Stapler Intermediate",
                                       parent: fixture.pki)
        let leaf = try intermediate.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let parts = try [fixture.pki.certificate, intermediate.certificate, leaf.key, leaf.certificate]
            .map { try String(contentsOfFile: $0, encoding: .utf8) }
        let path = fixture.temp.file("chain.pem")
        try parts.joined().write(toFile: path, atomically: true, encoding: .utf8)

        let record = try fixture.record(path)
        XCTAssertEqual(record.subject, "CN=leaf.test")
        XCTAssertEqual(record.issuer.subject, "CN=Stapler Intermediate")
        XCTAssertEqual(record.certID, try fixture.opensslCertID(leaf: leaf, issuer: intermediate.certificate))
    }

    func testKeyOnlyAndCAOnlyFilesAreSkippedQuietly() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let keyError = fixture.error(leaf.key)
        XCTAssertEqual(keyError?.reason, .noCertificate)
        XCTAssertEqual(keyError?.isQuiet, true)

        let intermediateDirectory = try TemporaryDirectory()
        let intermediate = try TestPKI(directory: intermediateDirectory.path, name: "Intermediate", parent: fixture.pki)
        let chain = fixture.temp.file("ca-chain.pem")
        try (String(contentsOfFile: intermediate.certificate, encoding: .utf8)
             + String(contentsOfFile: fixture.pki.certificate, encoding: .utf8)).write(toFile: chain, atomically: true, encoding: .utf8)
        let caError = fixture.error(chain)
        XCTAssertEqual(caError?.reason, .noEndEntity)
        XCTAssertEqual(caError?.isQuiet, true)
        XCTAssertEqual(fixture.error(fixture.pki.certificate)?.reason, .noEndEntity)
    }

    func testBrokenFilesAreMalformedOrIgnoredNeverACrash() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let good = try String(contentsOfFile: leaf.certificate, encoding: .utf8)

        let truncated = fixture.temp.file("truncated.pem")
        try String(good.prefix(good.count / 2)).write(toFile: truncated, atomically: true, encoding: .utf8)
        guard case .malformed(let why)? = fixture.error(truncated)?.reason else {
            return XCTFail("truncated PEM must be malformed")
        }
        XCTAssertTrue(why.contains("no END line"), why)
        XCTAssertFalse(fixture.error(truncated)!.isQuiet)

        // Valid PEM framing around a certificate cut short: base64 fine, DER not.
        let lines = good.split(separator: "\n")
        let cut = fixture.temp.file("cut.pem")
        try (lines.prefix(5) + [lines.last!]).joined(separator: "\n").write(toFile: cut, atomically: true, encoding: .utf8)
        guard case .malformed(let derWhy)? = fixture.error(cut)?.reason else { return XCTFail("cut DER must be malformed") }
        XCTAssertTrue(derWhy.contains("not an X.509 certificate"), derWhy)

        let badBase64 = fixture.temp.file("bad64.pem")
        try "-----BEGIN CERTIFICATE-----\nMII*notbase64*\n-----END CERTIFICATE-----\n".write(toFile: badBase64, atomically: true, encoding: .utf8)
        XCTAssertEqual(fixture.error(badBase64)?.reason, .malformed("PEM block 1 (CERTIFICATE): invalid base64"))

        // Random bytes hold no PEM block at all: not a certificate file, skipped.
        var generator = SeededGenerator.announced("random bundle bytes")
        for round in 0..<20 {
            let random = fixture.temp.file("random-\(round).bin")
            try Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: random))
            XCTAssertEqual(fixture.error(random)?.reason, .noCertificate)
        }
        // Random bytes inside a certificate block.
        let randomBody = fixture.temp.file("random-body.pem")
        let body = Base64.encode((0..<900).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try "-----BEGIN CERTIFICATE-----\n\(body)\n-----END CERTIFICATE-----\n".write(toFile: randomBody, atomically: true, encoding: .utf8)
        guard case .malformed? = fixture.error(randomBody)?.reason else { return XCTFail("random DER must be malformed") }

        let empty = fixture.temp.file("empty.pem")
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        XCTAssertEqual(fixture.error(empty)?.reason, .noCertificate)

        let huge = fixture.temp.file("huge.pem")
        try Data(count: CertificateBundle.maximumFileSize + 1).write(to: URL(fileURLWithPath: huge))
        XCTAssertEqual(fixture.error(huge)?.reason,
                       .unreadable(FileError(path: FilePath(huge), operation: "read",
                                             reason: .tooLarge(limit: CertificateBundle.maximumFileSize))))
        XCTAssertEqual(fixture.error(fixture.temp.file("missing.pem"))?.reason,
                       .unreadable(FileError(path: FilePath(fixture.temp.file("missing.pem")), operation: "open",
                                             reason: .system(errno: ENOENT))))
    }

    func testCRLFLineEndingsAndJunkBetweenBlocksAreTolerated() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let text = try Shell.run(["openssl", "x509", "-in", leaf.certificate, "-text"]).output
            + "# a comment an operator left\r\n"
            + (try String(contentsOfFile: fixture.pki.certificate, encoding: .utf8))
            + "trailing junk without newline"
        let path = fixture.temp.file("crlf.pem")
        try text.replacingOccurrences(of: "\n", with: "\r\n").write(toFile: path, atomically: true, encoding: .utf8)
        let record = try fixture.record(path)
        XCTAssertEqual(record.serialHex, leaf.serial)
        XCTAssertEqual(record.certID, try fixture.opensslCertID(leaf: leaf))
    }

    func testCertificateWithoutOCSPURLIsReportedAsSuch() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(commonName: "no-ocsp.test", ocspURLs: [])
        let path = try fixture.bundle(leaf, name: "no-ocsp.pem")
        let error = fixture.error(path)
        XCTAssertEqual(error?.reason, .noOCSPURL)
        XCTAssertEqual(error?.subject, "CN=no-ocsp.test")
        XCTAssertEqual(error?.description, "\(path): certificate \"CN=no-ocsp.test\" has no OCSP responder URL, nothing to staple")
    }

    func testAllHTTPOCSPURLsAreKeptInOrderAndOthersDropped() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8001/first", "ldap://ldap.test/ocsp",
                                                        "https://127.0.0.1:8002/second"])
        let record = try fixture.record(try fixture.bundle(leaf, name: "two.pem"))
        XCTAssertEqual(record.ocspURLs, ["http://127.0.0.1:8001/first", "https://127.0.0.1:8002/second"])

        let ldapOnly = try fixture.pki.issueLeaf(ocspURLs: ["ldap://ldap.test/ocsp"])
        XCTAssertEqual(fixture.error(try fixture.bundle(ldapOnly, name: "ldap.pem"))?.reason, .noOCSPURL)
    }

    func testMustStapleIsDetected() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"], mustStaple: true)
        XCTAssertTrue(try fixture.record(try fixture.bundle(leaf, name: "must.pem")).mustStaple)
        // A TLS feature other than status_request is not must-staple.
        let other = try fixture.pki.issueLeaves(ocspURLs: ["http://127.0.0.1:8888/"],
                                               extraExtensions: "tlsfeature = status_request_v2")[0]
        XCTAssertFalse(try fixture.record(try fixture.bundle(other, name: "v2.pem")).mustStaple)
    }

    func testExpiredCertificateIsNotQueried() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"], expired: true)
        let path = try fixture.bundle(leaf, name: "old.pem")
        let error = fixture.error(path)
        XCTAssertEqual(error?.reason, .expired(notAfter: 1_580_515_200)) // 2020-02-01 00:00:00 UTC
        XCTAssertEqual(error?.description,
                       "\(path): certificate \"CN=leaf.test\" expired at 2020-02-01 00:00:00 UTC, not querying OCSP")
        // Judged against the `now` given: in January 2020 it was valid.
        XCTAssertNoThrow(try CertificateBundle.load(path: FilePath(path), now: 1_579_000_000, issuers: IssuerStore()))
    }

    /// Leaves are parsed without their public key (OpenSSL 3.0's key decoding was half the
    /// cost of a parse) and still give every fact the daemon uses; an issuer keeps its key.
    func testLeafParsedWithoutItsKeyGivesTheSameFacts() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"], mustStaple: true)
        let text = try String(contentsOfFile: leaf.certificate, encoding: .utf8)
        let der = try XCTUnwrap(Base64.decode(Array(text.split(separator: "\n").filter { !$0.hasPrefix("-----") }
            .joined().utf8)))
        let full = try XCTUnwrap(X509Certificate(der: der))
        let keyless = try XCTUnwrap(X509Certificate(der: der, withPublicKey: false))
        XCTAssertTrue(full.hasPublicKey)
        XCTAssertFalse(keyless.hasPublicKey)
        XCTAssertEqual(keyless.subject, full.subject)
        XCTAssertEqual(keyless.serialHex, full.serialHex)
        XCTAssertEqual(keyless.notAfter, full.notAfter)
        XCTAssertEqual(keyless.ocspURLs, ["http://127.0.0.1:8888/"])
        XCTAssertTrue(keyless.mustStaple)
        XCTAssertFalse(keyless.isCA)
        XCTAssertEqual(keyless.der, der)

        let path = try fixture.bundle(leaf, name: "site.pem")
        var pem = Array(try String(contentsOfFile: path, encoding: .utf8).utf8)
        let parsed = try CertificateBundle.decodeCertificates(pem)
        pem.removeAll()
        XCTAssertEqual(parsed.map(\.hasPublicKey), [false, true], "the leaf keyless, the CA in full")
    }

    func testCertIDIsTheOneOpenSSLPutsInItsRequest() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let record = try fixture.record(try fixture.bundle(leaf, name: "site.pem"))
        XCTAssertEqual(record.certID, try fixture.opensslCertID(leaf: leaf))
        // SHA-1 CertID, the form HAProxy's `show ssl ocsp-response` prints.
        XCTAssertTrue(record.certID.hex.hasPrefix("30"))
        XCTAssertTrue(record.certID.hex.contains("300906052b0e03021a0500"), record.certID.hex)
        XCTAssertTrue(record.certID.hex.hasSuffix(leaf.serial.lowercased()), record.certID.hex)
    }

    func testCertificatesOfOneIssuerShareOneIssuerObject() throws {
        let fixture = try PKIFixture()
        let leaves = try fixture.pki.issueLeaves(count: 3, ocspURLs: ["http://127.0.0.1:8888/"])
        let store = IssuerStore()
        var records: [CertificateRecord] = []
        for (index, leaf) in leaves.enumerated() {
            // Alternate issuer sources: in the bundle, in a .issuer file.
            let path = try fixture.bundle(leaf, name: "\(index).pem", includeIssuer: index % 2 == 0)
            if index % 2 == 1 { try FileManager.default.copyItem(atPath: fixture.pki.certificate, toPath: path + ".issuer") }
            records.append(try CertificateBundle.load(path: FilePath(path), now: UTCTime.now(), issuers: store))
        }
        XCTAssertTrue(records[0].issuer === records[1].issuer)
        XCTAssertTrue(records[1].issuer === records[2].issuer)
        XCTAssertEqual(store.count, 1)
        // The responder URL list is shared too.
        XCTAssertTrue(records[0].ocspURLs.withUnsafeBufferPointer { first in
            records[2].ocspURLs.withUnsafeBufferPointer { $0.baseAddress == first.baseAddress } })
        weak let issuer = records[0].issuer
        records.removeAll()
        XCTAssertNil(issuer, "the issuer (and its X509) goes when no certificate uses it")
        XCTAssertEqual(store.count, 0)
    }

    /// The daemon holds 10,000 records: measure what they cost. Real records of 50 bundles
    /// are deep-copied (every string and array reallocated, as 10,000 parses would leave
    /// them) into 20,000 records, and the growth of the resident set is divided among them.
    func testRecordIsCompact() throws {
        let fixture = try PKIFixture()
        let leaves = try fixture.pki.issueLeaves(count: 50, commonName: "www.example-site.test",
                                                 ocspURLs: ["http://ocsp.example-ca.test/"])
        let store = IssuerStore()
        let parsed = try leaves.enumerated().map { index, leaf in
            try CertificateBundle.load(path: FilePath(try fixture.bundle(leaf, name: "\(index).pem")),
                                       now: UTCTime.now(), issuers: store)
        }
        XCTAssertEqual(store.count, 1)
        func deepCopy(_ record: CertificateRecord) -> CertificateRecord {
            func copy(_ text: String) -> String { String(decoding: Array(text.utf8), as: UTF8.self) }
            return CertificateRecord(subject: copy(record.subject), serialHex: copy(record.serialHex),
                                     notBefore: record.notBefore, notAfter: record.notAfter,
                                     ocspURLs: store.intern(urls: record.ocspURLs.map(copy)), mustStaple: record.mustStaple,
                                     certID: CertID(der: record.certID.der.map { $0 }), issuer: record.issuer)
        }
        let count = 20_000
        var records: [CertificateRecord] = []
        records.reserveCapacity(count)
        let before = try residentBytes()
        for index in 0..<count { records.append(deepCopy(parsed[index % parsed.count])) }
        let after = try residentBytes()
        let perRecord = (after - before) / count
        print("CertificateRecord: \(MemoryLayout<CertificateRecord>.stride) bytes inline, about \(perRecord) bytes "
              + "resident per record with its heap (subject \(parsed[0].subject.utf8.count) B, "
              + "URL \(parsed[0].ocspURLs[0].utf8.count) B, CertID \(parsed[0].certID.der.count) B); "
              + "10,000 records: about \(perRecord * 10_000 / 1024) KiB")
        XCTAssertEqual(records.count, count)
        // AddressSanitizer pads every allocation, so the figure means nothing under it.
        let sanitized = dlsym(nil, "__asan_init") != nil
        if !sanitized { XCTAssertLessThan(perRecord, 1024, "a record should stay under 1 KiB") }
    }

    private func residentBytes() throws -> Int {
        let statm = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8).split(separator: " ")
        return Int(statm[1])! * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    func testTimeFormatting() {
        XCTAssertEqual(UTCTime.format(0), "1970-01-01 00:00:00 UTC")
        XCTAssertEqual(UTCTime.format(1_795_600_800), "2026-11-25 10:00:00 UTC")
        XCTAssertEqual(UTCTime.format(253_402_300_799), "9999-12-31 23:59:59 UTC")
    }
}
