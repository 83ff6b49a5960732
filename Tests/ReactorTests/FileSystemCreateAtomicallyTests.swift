import Foundation
import Glibc
import Reactor
import TestSupport
import XCTest

/// `FileSystem.createAtomically`: a new file appears whole, and an existing name (a file, or
/// a link, even a dangling one) is never replaced or written through.
final class FileSystemCreateAtomicallyTests: XCTestCase {
    private func leftovers(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(FileSystem.temporarySuffix) }
    }

    func testANewNameIsCreatedWithTheBytes() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-create-atomically")
        let path = temp.file("site.pem.issuer")
        try FileSystem.createAtomically(Array("issuer\n".utf8), at: FilePath(path), mode: 0o640)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "issuer\n")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, 0o640)
        XCTAssertEqual(try leftovers(in: temp.path), [])
    }

    func testAnExistingFileOrLinkIsLeftAsItWas() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-create-atomically-exists")
        let existing = temp.file("operator.issuer")
        try "the operator's\n".write(toFile: existing, atomically: false, encoding: .utf8)
        let dangling = temp.file("dangling.issuer")
        let target = temp.file("elsewhere")
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: target)
        for path in [existing, dangling] {
            XCTAssertThrowsError(try FileSystem.createAtomically(Array("ours\n".utf8), at: FilePath(path)), path) {
                XCTAssertEqual(($0 as? FileError)?.errno, EEXIST, "\($0)")
            }
        }
        XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "the operator's\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: target), "the link was not written through")
        XCTAssertEqual(try leftovers(in: temp.path), [])
    }
}
