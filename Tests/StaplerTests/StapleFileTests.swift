import Foundation
import Glibc
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// `<certificate>.ocsp` as HAProxy reads it: replaced atomically, left alone when unchanged,
/// never written through a link leaving the directory, intact when a write fails.
final class StapleFileTests: XCTestCase {
    private func inode(_ path: String) throws -> UInt64 { try FileSystem.status(FilePath(path)).inode }

    private enum Written: Equatable { case written, unchanged }

    /// Writes as the daemon does, through a batch writer, and waits for the commit; a commit
    /// failure is thrown like a failure before it.
    @discardableResult
    private func writeStaple(_ der: [UInt8], forCertificate certificate: FilePath) throws -> Written {
        let loop = try EventLoop()
        let writer = BatchedFileWriter(loop: loop)
        var committed: StapleFileError?? = nil
        let outcome = try StapleFile.write(der, forCertificate: certificate, using: writer) { committed = .some($0) }
        guard case .staged = outcome else { return .unchanged }
        try loop.runForTest(until: { committed != nil })
        if case .some(.some(let error)) = committed { throw error }
        return .written
    }

    private func temporaryFiles(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(FileSystem.temporarySuffix) }
    }

    func testWriteThenReadAndOpenSSLAcceptsTheStaple() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let certificate = try fixture.bundle(leaf, name: "site.pem")
        XCTAssertEqual(StapleFile.path(forCertificate: FilePath(certificate)), FilePath(certificate + ".ocsp"))
        XCTAssertNil(try StapleFile.read(forCertificate: FilePath(certificate)), "no staple yet is not an error")

        let der = Array(try fixture.pki.ocspResponse(for: leaf))
        XCTAssertEqual(try writeStaple(der, forCertificate: FilePath(certificate)), .written)
        XCTAssertEqual(try StapleFile.read(forCertificate: FilePath(certificate)), der)
        XCTAssertEqual(try fixture.pki.verifyWithOpenSSL(staple: certificate + ".ocsp", for: leaf), "good")
        XCTAssertEqual(try temporaryFiles(in: fixture.temp.path), [])
        let mode = try FileSystem.status(FilePath(certificate + ".ocsp")).mode & 0o777
        XCTAssertEqual(mode, 0o644)
    }

    func testIdenticalBytesAreNotRewrittenNewBytesReplaceAtomically() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let certificate = FilePath(try fixture.bundle(leaf, name: "site.pem"))
        let staple = certificate.description + ".ocsp"
        let first = Array(try fixture.pki.ocspResponse(for: leaf))
        try writeStaple(first, forCertificate: certificate)
        let firstInode = try inode(staple)
        let firstModified = try FileSystem.status(FilePath(staple)).modified

        XCTAssertEqual(try writeStaple(first, forCertificate: certificate), .unchanged)
        XCTAssertEqual(try inode(staple), firstInode)
        XCTAssertEqual(try FileSystem.status(FilePath(staple)).modified, firstModified)

        let second = Array(try fixture.pki.ocspResponse(for: leaf, validForDays: 2))
        XCTAssertNotEqual(first, second)
        XCTAssertEqual(try writeStaple(second, forCertificate: certificate), .written)
        XCTAssertNotEqual(try inode(staple), firstInode, "a new file renamed in, not the old one rewritten")
        XCTAssertEqual(try StapleFile.read(forCertificate: certificate), second)
    }

    func testSymlinkLeavingTheDirectoryIsRefused() throws {
        let fixture = try PKIFixture()
        let certificates = fixture.temp.file("certs")
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true)
        let outside = fixture.temp.file("precious.txt")
        try "precious".write(toFile: outside, atomically: true, encoding: .utf8)
        let certificate = FilePath(certificates + "/site.pem")
        try FileManager.default.createSymbolicLink(atPath: certificates + "/site.pem.ocsp", withDestinationPath: "../precious.txt")

        let resolvedOutside = try FileSystem.realPath(FilePath(outside))
        XCTAssertThrowsError(try writeStaple([0x30, 0x03, 0x0a, 0x01, 0x00], forCertificate: certificate)) { error in
            let failure = error as? StapleFileError
            XCTAssertEqual(failure?.reason, .symlinkOutsideDirectory(target: resolvedOutside))
            XCTAssertTrue(failure?.description.contains("outside the certificate's directory") ?? false)
        }
        XCTAssertEqual(try String(contentsOfFile: outside, encoding: .utf8), "precious")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: certificates + "/site.pem.ocsp"),
                       "../precious.txt")

        // A dangling link out of the directory is no better.
        try FileManager.default.removeItem(atPath: certificates + "/site.pem.ocsp")
        try FileManager.default.createSymbolicLink(atPath: certificates + "/site.pem.ocsp",
                                                   withDestinationPath: fixture.temp.file("new-file-elsewhere"))
        XCTAssertThrowsError(try writeStaple([1, 2, 3], forCertificate: certificate))
        XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.temp.file("new-file-elsewhere")))
    }

    func testSymlinkInsideTheDirectoryIsWrittenThrough() throws {
        let fixture = try PKIFixture()
        let certificates = fixture.temp.file("certs")
        try FileManager.default.createDirectory(atPath: certificates + "/staples", withIntermediateDirectories: true)
        let certificate = FilePath(certificates + "/site.pem")
        try FileManager.default.createSymbolicLink(atPath: certificates + "/site.pem.ocsp", withDestinationPath: "staples/site.der")

        // Dangling at first: the target is created.
        XCTAssertEqual(try writeStaple([1, 2, 3], forCertificate: certificate), .written)
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: certificates + "/staples/site.der"))), [1, 2, 3])
        XCTAssertEqual(try writeStaple([4, 5], forCertificate: certificate), .written)
        XCTAssertEqual(try StapleFile.read(forCertificate: certificate), [4, 5])
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: certificates + "/site.pem.ocsp"),
                       "staples/site.der", "the operator's link is kept")
        XCTAssertEqual(try writeStaple([4, 5], forCertificate: certificate), .unchanged)
    }

    /// As root, permissions do not stop a write, so the failure is made with RLIMIT_FSIZE:
    /// the kernel refuses to grow any file past the limit (EFBIG, with SIGXFSZ ignored),
    /// root included, just like a full disk would stop the write half way.
    func testFailedWriteLeavesThePreviousStapleByteIdentical() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:8888/"])
        let certificate = FilePath(try fixture.bundle(leaf, name: "site.pem"))
        let previous: [UInt8] = [0x30, 0x03, 0x0a, 0x01, 0x03]
        try writeStaple(previous, forCertificate: certificate)
        let previousInode = try inode(certificate.description + ".ocsp")
        let replacement = Array(try fixture.pki.ocspResponse(for: leaf))
        XCTAssertGreaterThan(replacement.count, 64)

        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved), 0)
        let oldHandler = signal(SIGXFSZ, SIG_IGN)
        var limited = saved
        limited.rlim_cur = 64
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limited), 0)
        // Nothing may write to a file (test logs included) until the limit is restored.
        let outcome = Result { try writeStaple(replacement, forCertificate: certificate) }
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved)
        signal(SIGXFSZ, oldHandler)

        guard case .failure(let error) = outcome, let failure = error as? StapleFileError,
              case .file(let fileError) = failure.reason else {
            return XCTFail("the write should have failed: \(outcome)")
        }
        XCTAssertEqual(fileError.errno, EFBIG)
        XCTAssertEqual(fileError.operation, "write")
        XCTAssertEqual(try StapleFile.read(forCertificate: certificate), previous)
        XCTAssertEqual(try inode(certificate.description + ".ocsp"), previousInode)
        XCTAssertEqual(try temporaryFiles(in: fixture.temp.path), [], "the half-written temporary file is removed")
        // With the limit gone the same write goes through.
        XCTAssertEqual(try writeStaple(replacement, forCertificate: certificate), .written)
    }

    func testOversizedOrUnreadableStapleIsAnError() throws {
        let temp = try TemporaryDirectory()
        let certificate = FilePath(temp.file("site.pem"))
        try Data(count: StapleFile.maximumSize + 1).write(to: URL(fileURLWithPath: temp.file("site.pem.ocsp")))
        XCTAssertThrowsError(try StapleFile.read(forCertificate: certificate)) {
            XCTAssertEqual(($0 as? StapleFileError)?.reason,
                           .file(FileError(path: FilePath(temp.file("site.pem.ocsp")), operation: "read",
                                           reason: .tooLarge(limit: StapleFile.maximumSize))))
        }
        // An oversized file is still replaced by a good staple (the comparison just fails).
        XCTAssertEqual(try writeStaple([1], forCertificate: certificate), .written)
        try FileManager.default.removeItem(atPath: temp.file("site.pem.ocsp"))
        try FileManager.default.createDirectory(atPath: temp.file("site.pem.ocsp"), withIntermediateDirectories: false)
        XCTAssertThrowsError(try StapleFile.read(forCertificate: certificate))
        XCTAssertThrowsError(try writeStaple([1], forCertificate: certificate))
    }
}
