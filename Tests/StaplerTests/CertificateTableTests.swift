import XCTest
@testable import Reactor
@testable import Stapler

/// The daemon's table of certificates by path behaves as a dictionary would through
/// additions, replacements, removals in any order, growth and shrinking.
final class CertificateTableTests: XCTestCase {
    private func certificate(_ path: String) -> TrackedCertificate {
        TrackedCertificate(path: FilePath(path), location: 0, fileStatus: FileStatus(stat()))
    }

    func testFollowsADictionaryThroughRandomChanges() {
        var table = CertificateTable()
        var model: [FilePath: TrackedCertificate] = [:]
        var random = SystemRandomNumberGenerator()
        let paths = (0..<3_000).map { FilePath("/etc/haproxy/certs/site-\($0).pem") }
        for round in 0..<40_000 {
            let path = paths[Int.random(in: 0..<(round < 20_000 ? paths.count : paths.count / 10), using: &random)]
            if Bool.random(using: &random) || round < 5_000 {
                let value = certificate(path.description)
                table[path] = value
                model[path] = value
            } else {
                table[path] = nil
                model[path] = nil
            }
            if round % 997 == 0 {
                XCTAssertEqual(table.count, model.count)
                for path in paths { XCTAssertTrue(table[path] === model[path], "\(path) at round \(round)") }
                XCTAssertEqual(Set(table.values.map { ObjectIdentifier($0) }), Set(model.values.map { ObjectIdentifier($0) }))
            }
        }
        for path in paths { table[path] = nil }
        XCTAssertEqual(table.count, 0)
        var iterator = table.values.makeIterator()
        XCTAssertNil(iterator.next())
        XCTAssertNil(table["/etc/haproxy/certs/site-1.pem"])
    }

    func testRemovingWhileWalkingSeesEveryCertificateOnce() {
        var table = CertificateTable()
        for index in 0..<1_000 { table[FilePath("/c/\(index).pem")] = certificate("/c/\(index).pem") }
        var walked = 0
        for certificate in table.values {
            walked += 1
            table[certificate.path] = nil
        }
        XCTAssertEqual(walked, 1_000)
        XCTAssertTrue(table.isEmpty)
    }
}
