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

    func testOtherNamesMayBeDirectoryLinksOnlyWhenRecursive() {
        let events = [event(.create, "live"), event([.movedFrom], "old-live"), event(.closeWrite, "notes.txt"),
                      event(.movedTo, "a.pem.ocsp"), event(.closeWrite, "a.key"), event(.create, ".a.pem.ocsp.1.1.stapler-tmp")]
        XCTAssertEqual(absorb(events, recursive: true).possibleDirectories, ["/certs/live", "/certs/old-live"],
                       "a name that appeared or went away; never staples, keys or hidden files")
        XCTAssertTrue(absorb(events).isEmpty, "without -R no link to a directory matters")
    }

    func testOverflowAndVanishedDirectories() {
        let overflow = DirectoryEvent(watch: .none, mask: .queueOverflow, cookie: 0, name: FilePath(""))
        XCTAssertTrue(absorb([overflow]).everything)
        XCTAssertEqual(absorb([event(.deleteSelf, ""), event(.ignored, "")]).directories, ["/certs"])
        let unknown = DirectoryEvent(watch: WatchDescriptor(rawValue: 9), mask: .closeWrite, cookie: 0, name: "x.pem")
        XCTAssertTrue(absorb([unknown]).isEmpty, "events of a forgotten watch are dropped")
    }
}

final class FileSystemChangesParentTests: XCTestCase {
    private let parent = WatchDescriptor(rawValue: 5)

    private func absorb(_ events: [(InotifyMask, String)], watch: WatchDescriptor? = nil) -> FileSystemChanges {
        var changes = FileSystemChanges()
        let locations: Set<FilePath> = ["/srv/certs", "/srv/site.pem"]
        changes.absorbParentEvents(events.map { DirectoryEvent(watch: watch ?? parent, mask: $0.0, cookie: 0, name: FilePath($0.1)) },
                                   parent: { $0 == self.parent ? "/srv" : nil }, isLocation: { locations.contains($0) })
        return changes
    }

    func testOnlyConfiguredNamesInAParentAskForARescan() {
        XCTAssertEqual(absorb([([.create, .isDirectory], "certs")]).directories, ["/srv/certs"],
                       "a configured directory made again")
        XCTAssertEqual(absorb([(.movedTo, "site.pem"), (.attrib, "site.pem")]).directories, ["/srv/site.pem"],
                       "a configured file replaced or touched")
        XCTAssertTrue(absorb([(.closeWrite, "other.pem"), ([.create, .isDirectory], "logs"),
                              (.movedTo, "site.pem.ocsp")]).isEmpty, "the rest of the parent is not ours")
        XCTAssertTrue(absorb([(.deleteSelf, "")]).isEmpty, "the parent itself going away is its own watch's business")
        XCTAssertTrue(absorb([(.create, "certs")], watch: WatchDescriptor(rawValue: 1)).isEmpty,
                      "events of other watches are not parent events")
    }
}
