import XCTest
@testable import Stapler

/// The jitter generator: the published xoshiro256** sequence, a fresh seed per daemon, and
/// fractions spread over [0, 1) as the refresh windows expect.
final class JitterRandomTests: XCTestCase {
    func testFollowsTheReferenceSequence() {
        var random = JitterRandom(seed: (1, 2, 3, 4))
        XCTAssertEqual((0..<4).map { _ in random.next() }, [11520, 0, 1_509_978_240, 1_215_971_899_390_074_240])
    }

    func testEachGeneratorHasItsOwnSeedAndSpreadsFractions() {
        var first = JitterRandom()
        var second = JitterRandom()
        XCTAssertNotEqual((0..<4).map { _ in first.next() }, (0..<4).map { _ in second.next() },
                          "two daemons started together must not refresh in step")
        let fractions = (0..<10_000).map { _ in Double.random(in: 0..<1, using: &first) }
        XCTAssertTrue(fractions.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = fractions.reduce(0, +) / Double(fractions.count)
        XCTAssertEqual(mean, 0.5, accuracy: 0.02)
        XCTAssertGreaterThan(fractions.filter { $0 < 0.1 }.count, 800, "the low tenth is reached")
        XCTAssertGreaterThan(fractions.filter { $0 >= 0.9 }.count, 800, "the high tenth is reached")
    }
}
