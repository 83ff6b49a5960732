import Reactor
import XCTest
@testable import Stapler

final class FileSystemChangesTests: XCTestCase {
    let certs = WatchDescriptor(rawValue: 1)
    let directories: [WatchDescriptor: FilePath] = [WatchDescriptor(rawValue: 1): "/certs"]

    private func absorb(_ events: [DirectoryEvent], recursive: Bool = false) -> FileSystemChanges {
        var changes = FileSystemChanges()
        changes.absorb(events, rules: DiscoveryRules(recursive: recursive)) { self.directories[$0] }
        return changes
    }

    private func event(_ mask: InotifyMask, _ name: String) -> DirectoryEvent {
        DirectoryEvent(watch: certs, mask: mask, cookie: 0, name: FilePath(name))
    }

    func testABurstOnOneCertificateIsOneLookAndOwnWritesAreNothing() {
        let changes = absorb([
            event(.create, "a.pem"), event(.closeWrite, "a.pem"), event(.attrib, "a.pem"),
            event(.create, ".a.pem.ocsp.1.1.stapler-tmp"), event(.closeWrite, ".a.pem.ocsp.1.1.stapler-tmp"),
            event(.movedFrom, ".a.pem.ocsp.1.1.stapler-tmp"), event(.movedTo, "a.pem.ocsp"),
            event(.closeWrite, "a.key"), event(.delete, "b.crt"),
        ])
        XCTAssertEqual(changes.paths, ["/certs/a.pem", "/certs/b.crt"])
        XCTAssertEqual(changes.created, ["/certs/a.pem"], "a creation alone waits for its close-write")
        XCTAssertTrue(changes.directories.isEmpty)
        XCTAssertFalse(changes.everything)
    }

    func testKubernetesDataSwapRescansTheDirectory() {
        let changes = absorb([event(.create, "..2026_11_25_17_00_00.123"), event(.create, "..data_tmp"),
                              event(.movedFrom, "..data_tmp"), event(.movedTo, "..data")])
        XCTAssertEqual(changes.directories, ["/certs"])
        XCTAssertTrue(changes.paths.isEmpty)
    }

    func testNewSubdirectoriesMatterOnlyWhenRecursive() {
        let created = event([.create, .isDirectory], "sub")
        XCTAssertEqual(absorb([created], recursive: true).directories, ["/certs/sub"])
        XCTAssertTrue(absorb([created]).isEmpty)
    }

    func testOverflowAndVanishedDirectories() {
        let overflow = DirectoryEvent(watch: .none, mask: .queueOverflow, cookie: 0, name: FilePath(""))
        XCTAssertTrue(absorb([overflow]).everything)
        XCTAssertEqual(absorb([event(.deleteSelf, ""), event(.ignored, "")]).directories, ["/certs"])
        let unknown = DirectoryEvent(watch: WatchDescriptor(rawValue: 9), mask: .closeWrite, cookie: 0, name: "x.pem")
        XCTAssertTrue(absorb([unknown]).isEmpty, "events of a forgotten watch are dropped")
    }
}
