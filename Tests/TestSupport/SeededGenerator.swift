import Foundation

/// A deterministic generator (SplitMix64), so a randomised test can be replayed. Every
/// randomised test makes one with `announced`, which prints the seed: a failure's log says
/// how to run the same inputs again (`STAPLER_TEST_SEED=<seed> swift test --filter ...`).
public struct SeededGenerator: RandomNumberGenerator {
    public let seed: UInt64
    private var state: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    /// `STAPLER_TEST_SEED` when set, else `fixed` when the test wants the same inputs every
    /// run, else a fresh seed; printed with the test's name either way.
    public static func announced(_ test: String, fixed: UInt64? = nil) -> SeededGenerator {
        let seed = ProcessInfo.processInfo.environment["STAPLER_TEST_SEED"].flatMap { UInt64($0) }
            ?? fixed ?? UInt64.random(in: 0...UInt64.max)
        print("\(test): seed \(seed) (replay with STAPLER_TEST_SEED=\(seed))")
        return SeededGenerator(seed: seed)
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
