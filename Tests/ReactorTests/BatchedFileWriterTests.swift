import Foundation
import Glibc
import Reactor
import TestSupport
import XCTest

/// Batched atomic replacement: every target ends up whole, nothing is left behind, and a
/// target is only ever replaced by a complete file after the batch is committed.
final class BatchedFileWriterTests: XCTestCase {
    private func contents(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    private func leftovers(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(FileSystem.temporarySuffix) }
    }

    private func bytes(_ index: Int) -> [UInt8] { Array("file \(index) ".utf8) + [UInt8](repeating: UInt8(index % 251), count: index) }

    /// Both ways of making a batch durable (one syncfs, or an fsync per file) end the same.
    func testManyWritesLandWholeInWriteOrderWithNothingLeftBehind() throws {
        for threshold in [1, 1_000] {
            let temp = try TemporaryDirectory()
            try FileManager.default.createDirectory(atPath: temp.file("b"), withIntermediateDirectories: false)
            for index in 0..<300 where index % 2 == 0 {
                try Data("old \(index)".utf8).write(to: URL(fileURLWithPath: temp.file("f\(index)")))
            }
            let loop = try EventLoop()
            let writer = BatchedFileWriter(loop: loop, maximumBatch: 64, syncfsThreshold: threshold)
            var completed: [Int] = []
            for index in 0..<300 {
                // Two directories, so each is synced once per batch.
                let path = index % 3 == 0 ? temp.file("b/f\(index)") : temp.file("f\(index)")
                try writer.write(bytes(index), to: FilePath(path)) { error in
                    XCTAssertNil(error)
                    completed.append(index)
                }
            }
            XCTAssertEqual(completed, [], "completions wait for the commit")
            XCTAssertEqual(writer.pendingCount, 300)
            try loop.runForTest(until: { completed.count == 300 })
            XCTAssertEqual(completed, Array(0..<300))
            XCTAssertEqual(writer.pendingCount, 0)
            for index in 0..<300 {
                let path = index % 3 == 0 ? temp.file("b/f\(index)") : temp.file("f\(index)")
                XCTAssertEqual(try contents(path), bytes(index))
            }
            XCTAssertEqual(try leftovers(in: temp.path) + leftovers(in: temp.file("b")), [])
        }
    }

    func testTargetIsUntouchedUntilTheCommitAndACancelledWriteNeverLands() throws {
        let temp = try TemporaryDirectory()
        let kept = temp.file("kept")
        let cancelled = temp.file("cancelled")
        try Data("previous".utf8).write(to: URL(fileURLWithPath: kept))
        try Data("previous".utf8).write(to: URL(fileURLWithPath: cancelled))
        let loop = try EventLoop()
        let writer = BatchedFileWriter(loop: loop, maximumDelay: .milliseconds(30))
        var keptDone = false
        try writer.write(Array("new".utf8), to: FilePath(kept)) { XCTAssertNil($0); keptDone = true }
        let ticket = try writer.write(Array("never".utf8), to: FilePath(cancelled)) { _ in
            XCTFail("a cancelled write reports nothing")
        }
        XCTAssertEqual(try contents(kept), Array("previous".utf8), "readers see the old file until the commit")
        XCTAssertEqual(try leftovers(in: temp.path).count, 2)

        writer.cancel(ticket)
        XCTAssertEqual(try leftovers(in: temp.path).count, 1, "the cancelled temporary file is gone at once")
        try loop.runForTest(until: { keptDone })
        XCTAssertEqual(try contents(kept), Array("new".utf8))
        XCTAssertEqual(try contents(cancelled), Array("previous".utf8))
        XCTAssertEqual(try leftovers(in: temp.path), [])
        writer.cancel(ticket)  // after the fact: nothing to do
    }

    /// A target that cannot be replaced fails alone; the rest of its batch lands.
    func testFailedRenameIsReportedWithThePathAndSparesTheBatch() throws {
        let temp = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: temp.file("occupied"), withIntermediateDirectories: false)
        let loop = try EventLoop()
        let writer = BatchedFileWriter(loop: loop, syncfsThreshold: 1)
        var results: [String: FileError?] = [:]
        for name in ["one", "occupied", "two"] {
            try writer.write([1, 2, 3], to: FilePath(temp.file(name))) { results[name] = $0 }
        }
        try loop.runForTest(until: { results.count == 3 })
        XCTAssertNil(results["one"]!)
        XCTAssertNil(results["two"]!)
        let failure = try XCTUnwrap(results["occupied"]!)
        XCTAssertEqual(failure.operation, "rename")
        XCTAssertEqual(failure.path, FilePath(temp.file("occupied")))
        XCTAssertEqual(failure.errno, EISDIR)
        XCTAssertEqual(try contents(temp.file("two")), [1, 2, 3])
        XCTAssertEqual(try leftovers(in: temp.path), [])
    }

    /// A failure before the commit (here: no such directory) is thrown at once, naming the file.
    func testWriteIntoAMissingDirectoryThrowsAtOnce() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        let writer = BatchedFileWriter(loop: loop)
        XCTAssertThrowsError(try writer.write([1], to: FilePath(temp.file("missing/file"))) { _ in }) { error in
            let failure = error as? FileError
            XCTAssertEqual(failure?.operation, "create")
            XCTAssertEqual(failure?.errno, ENOENT)
            XCTAssertTrue(failure?.path.description.hasPrefix(temp.file("missing/")) ?? false)
        }
        XCTAssertEqual(writer.pendingCount, 0)
    }

    /// A full batch does not wait for the delay; an explicit commit does not wait either.
    func testFullBatchAndExplicitCommitDoNotWaitForTheDelay() throws {
        let temp = try TemporaryDirectory()
        let loop = try EventLoop()
        let writer = BatchedFileWriter(loop: loop, maximumDelay: .seconds(3600), maximumBatch: 3)
        var done = 0
        for index in 0..<3 {
            try writer.write([UInt8(index)], to: FilePath(temp.file("f\(index)"))) { _ in done += 1 }
        }
        try loop.runForTest(deadline: .seconds(10), until: { done == 3 })

        try writer.write([9], to: FilePath(temp.file("f9"))) { _ in done += 1 }
        writer.commit()
        XCTAssertEqual(done, 4)
        XCTAssertEqual(try contents(temp.file("f9")), [9])
    }

    /// Dropping the writer with writes pending leaves the targets as they were, and no litter.
    func testAbandonedWriterLeavesTargetsAndNoTemporaryFiles() throws {
        let temp = try TemporaryDirectory()
        try Data("previous".utf8).write(to: URL(fileURLWithPath: temp.file("f")))
        let loop = try EventLoop()
        var writer: BatchedFileWriter? = BatchedFileWriter(loop: loop)
        try writer?.write([1, 2], to: FilePath(temp.file("f"))) { _ in XCTFail("never committed") }
        writer = nil
        XCTAssertEqual(try contents(temp.file("f")), Array("previous".utf8))
        XCTAssertEqual(try leftovers(in: temp.path), [])
    }

    /// Files get the mode asked for whatever the umask: the writer reads the umask once and
    /// chmods only files it would have narrowed (under 022, a 0644 file needs nothing).
    func testFilesGetTheirModeWhateverTheUmask() throws {
        for mask: mode_t in [0o022, 0o077, 0o027] {
            let previous = umask(mask)
            defer { umask(previous) }
            let temp = try TemporaryDirectory()
            let loop = try EventLoop()
            let writer = BatchedFileWriter(loop: loop)
            var done = 0
            for (name, mode) in [("public", mode_t(0o644)), ("private", mode_t(0o600))] {
                try writer.write(Array(name.utf8), to: FilePath(temp.file(name)), mode: mode) { error in
                    XCTAssertNil(error)
                    done += 1
                }
            }
            try loop.runForTest(until: { done == 2 })
            XCTAssertEqual(try FileSystem.status(FilePath(temp.file("public"))).mode & 0o777, 0o644, "umask \(mask)")
            XCTAssertEqual(try FileSystem.status(FilePath(temp.file("private"))).mode & 0o777, 0o600, "umask \(mask)")
        }
    }
}
