import Foundation
import Glibc
import TestSupport
import XCTest
@testable import Reactor

final class DirectoryWatcherTests: XCTestCase {
    private let everything: InotifyMask = [.closeWrite, .movedTo, .movedFrom, .create, .delete, .attrib,
                                           .deleteSelf, .moveSelf]

    /// Runs `actions` one per loop pass and collects events until `done` says enough.
    private func collect(in directory: String, actions: [() -> Void],
                         until done: @escaping ([DirectoryEvent]) -> Bool) throws -> ([DirectoryEvent], WatchDescriptor) {
        let loop = try EventLoop()
        var events: [DirectoryEvent] = []
        let watcher = try DirectoryWatcher(loop: loop) { batch in
            events += batch
            if done(events) { loop.stop() }
        }
        defer { watcher.close() }
        let wd = try watcher.watch(FilePath(directory), mask: everything)
        for (index, action) in actions.enumerated() {
            loop.schedule(after: .milliseconds(Int64(index))) { action() }
        }
        loop.schedule(after: .seconds(5)) { XCTFail("expected events did not arrive: \(events)"); loop.stop() }
        try loop.run()
        return (events, wd)
    }

    private func sees(_ events: [DirectoryEvent], _ mask: InotifyMask, _ name: String) -> Bool {
        events.contains { $0.mask.contains(mask) && $0.name == FilePath(name) }
    }

    func testSeesCreateCloseWriteRenameAttribAndDelete() throws {
        let temp = try TemporaryDirectory()
        let (events, wd) = try collect(in: temp.path, actions: [
            {
                // Written in place: FileManager would write a temporary file and rename it.
                let fd = open(temp.file("a.pem"), O_CREAT | O_WRONLY, 0o644)
                _ = write(fd, "x", 1)
                close(fd)
            },
            { try? FileManager.default.moveItem(atPath: temp.file("a.pem"), toPath: temp.file("b.pem")) },
            { _ = utimes(temp.file("b.pem"), nil) },
            { try? FileManager.default.removeItem(atPath: temp.file("b.pem")) },
        ], until: { events in events.contains { $0.mask.contains(.delete) } })
        XCTAssertTrue(sees(events, .create, "a.pem"))
        XCTAssertTrue(sees(events, .closeWrite, "a.pem"))
        XCTAssertTrue(sees(events, .movedFrom, "a.pem"))
        XCTAssertTrue(sees(events, .movedTo, "b.pem"))
        XCTAssertTrue(sees(events, .attrib, "b.pem"))
        XCTAssertTrue(sees(events, .delete, "b.pem"))
        XCTAssertTrue(events.allSatisfy { $0.watch == wd })
        let from = events.first { $0.mask.contains(.movedFrom) }!
        let to = events.first { $0.mask.contains(.movedTo) }!
        XCTAssertEqual(from.cookie, to.cookie, "a rename's two halves share a cookie")
    }

    func testNonUTF8AndSpacedNamesArriveExactly() throws {
        let temp = try TemporaryDirectory()
        let odd = FilePath(temp.path).appending(FilePath(bytes: Array("caf".utf8) + [0xE9] + Array(" x.pem".utf8)))
        let (events, _) = try collect(in: temp.path, actions: [{
            let fd = odd.withCString { open($0, O_CREAT | O_WRONLY, 0o644) }
            close(fd)
        }], until: { events in events.contains { $0.mask.contains(.closeWrite) } })
        XCTAssertEqual(events.first { $0.mask.contains(.closeWrite) }?.name, odd.lastComponent)
        XCTAssertEqual(odd.lastComponent.description, "caf\\xe9 x.pem")
    }

    func testDeletedDirectoryReportsDeleteSelfThenIgnored() throws {
        let temp = try TemporaryDirectory()
        let watched = temp.file("certs")
        try FileManager.default.createDirectory(atPath: watched, withIntermediateDirectories: false)
        let (events, wd) = try collect(in: watched, actions: [
            { try? FileManager.default.removeItem(atPath: watched) },
        ], until: { events in events.contains { $0.mask.contains(.ignored) } })
        XCTAssertTrue(events.contains { $0.mask.contains(.deleteSelf) && $0.watch == wd && $0.name.isEmpty })
        XCTAssertTrue(events.contains { $0.mask.contains(.ignored) && $0.watch == wd })
    }

    func testSubdirectoryCreationIsFlaggedAsDirectory() throws {
        let temp = try TemporaryDirectory()
        let (events, _) = try collect(in: temp.path, actions: [
            { try? FileManager.default.createDirectory(atPath: temp.file("sub"), withIntermediateDirectories: false) },
        ], until: { events in events.contains { $0.mask.contains(.create) } })
        XCTAssertTrue(events.contains { $0.mask.contains([.create, .isDirectory]) && $0.name == "sub" })
    }
}
