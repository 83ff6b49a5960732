import XCTest
@testable import Stapler

final class RefreshPolicyTests: XCTestCase {
    let policy = RefreshPolicy(minimumValidity: 7200, jitterFraction: 0.05, minimumDelay: 30)
    let now: Int64 = 1_000_000
    let farFuture: Int64 = 10_000_000

    func testRefreshesAtTheMidpointOfAWeekLongStaple() {
        // Valid for 7 days: the midpoint (3.5 days) comes long before nextUpdate - 2 h.
        let due = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 7 * 86400, fetchedAt: now,
                                     cacheMaxAge: nil, certificateNotAfter: farFuture, now: now, random: 0)
        XCTAssertEqual(due, now + 7 * 86400 / 2)
    }

    func testShortStaplesRefreshMinimumValidityBeforeExpiry() {
        // Valid 3 h: the midpoint (1.5 h) is later than nextUpdate - 2 h (1 h).
        let due = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 3 * 3600, fetchedAt: now,
                                     cacheMaxAge: nil, certificateNotAfter: farFuture, now: now, random: 0)
        XCTAssertEqual(due, now + 3600)
    }

    func testJitterOnlyMakesRefreshesEarlierAndByAtMostFivePercent() {
        let plain = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400, fetchedAt: now, cacheMaxAge: nil,
                                       certificateNotAfter: farFuture, now: now, random: 0)
        let jittered = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400, fetchedAt: now, cacheMaxAge: nil,
                                          certificateNotAfter: farFuture, now: now, random: 0.999)
        XCTAssertLessThan(jittered, plain)
        XCTAssertGreaterThanOrEqual(jittered, plain - Int64(Double(plain - now) * 0.05))
        // Many certificates issued together spread over more than a thousand distinct seconds.
        let spread = Set((0..<10_000).map { index in
            policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400, fetchedAt: now, cacheMaxAge: nil,
                               certificateNotAfter: farFuture, now: now, random: Double(index) / 10_000)
        })
        XCTAssertGreaterThan(spread.count, 1000)
    }

    func testWaitsForCacheMaxAgeUnlessThatComesTooCloseToExpiry() {
        // max-age 2 days beats the 12 h midpoint when nextUpdate is 4 days out.
        let waited = policy.nextRefresh(thisUpdate: now - 86400 * 3, nextUpdate: now + 86400 * 4, fetchedAt: now,
                                        cacheMaxAge: 2 * 86400, certificateNotAfter: farFuture, now: now, random: 0.5)
        XCTAssertEqual(waited, now + 2 * 86400, "never before max-age runs out, jitter included")
        // max-age reaching past nextUpdate - minimumValidity is ignored.
        let ignored = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400, fetchedAt: now,
                                         cacheMaxAge: 86400, certificateNotAfter: farFuture, now: now, random: 0)
        XCTAssertEqual(ignored, now + 43200)
    }

    func testNeverInThePastNorAfterTheCertificateExpires() {
        let stale = policy.nextRefresh(thisUpdate: now - 86400, nextUpdate: now + 60, fetchedAt: now,
                                       cacheMaxAge: nil, certificateNotAfter: farFuture, now: now, random: 0)
        XCTAssertEqual(stale, now + 30)
        let expiring = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400 * 7, fetchedAt: now,
                                          cacheMaxAge: nil, certificateNotAfter: now + 3600, now: now, random: 0)
        XCTAssertEqual(expiring, now + 3600)
    }

    /// Times come from responders and config files: the extremes of Int64 saturate instead of
    /// trapping, and the answer stays inside [now + minimumDelay, notAfter] where that exists.
    func testExtremeTimesSaturateInsteadOfTrapping() {
        let extremes: [Int64] = [.min, .min + 1, -1, 0, 1, now, .max - 1, .max]
        for thisUpdate in extremes {
            for nextUpdate in extremes {
                for maxAge in [nil, 0, 1, CacheControl.maximumMaxAge, .max] as [Int64?] {
                    for fetchedAt in [Int64.min, now, .max] {
                        let due = policy.nextRefresh(thisUpdate: thisUpdate, nextUpdate: nextUpdate, fetchedAt: fetchedAt,
                                                     cacheMaxAge: maxAge, certificateNotAfter: farFuture, now: now,
                                                     random: 0.999)
                        XCTAssertLessThanOrEqual(due, farFuture)
                        XCTAssertGreaterThanOrEqual(due, now + 30)
                    }
                }
            }
            _ = policy.isRecyclable(nextUpdate: thisUpdate, now: now)
        }
        let huge = RefreshPolicy(minimumValidity: .max, jitterFraction: 0.05, minimumDelay: .max)
        XCTAssertEqual(huge.nextRefresh(thisUpdate: .min, nextUpdate: .max, fetchedAt: .max, cacheMaxAge: .max,
                                        certificateNotAfter: .max, now: .max, random: 1), .max)
        XCTAssertFalse(huge.isRecyclable(nextUpdate: .min, now: .min))
        let negative = RefreshPolicy(minimumValidity: .min, jitterFraction: 0.05, minimumDelay: .min)
        XCTAssertTrue(negative.isRecyclable(nextUpdate: .max, now: .max - 1))
    }

    /// The overflow found in the wild: max-age Int64.max on a staple fetched now.
    func testMaxAgeOfInt64MaxIsIgnoredLikeAnyMaxAgePastTheSafeRefresh() {
        let due = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400, fetchedAt: now,
                                     cacheMaxAge: .max, certificateNotAfter: farFuture, now: now, random: 0)
        XCTAssertEqual(due, now + 43200)
    }

    /// After a wall clock step the staple's own dates decide again.
    func testAClockStepJudgesTheStapleAgainByItsDates() {
        // A week-long staple fetched at `now`, judged after steps to three new clocks.
        let thisUpdate = now, nextUpdate = now + 7 * 86400
        func judge(_ newNow: Int64, maxAge: Int64? = nil) -> RefreshPolicy.AfterClockStep {
            policy.afterClockStep(thisUpdate: thisUpdate, nextUpdate: nextUpdate, fetchedAt: now, cacheMaxAge: maxAge,
                                  certificateNotAfter: farFuture, now: newNow, random: 0)
        }
        XCTAssertEqual(judge(nextUpdate + 1), .fetchNow, "forward past nextUpdate: expired")
        XCTAssertEqual(judge(nextUpdate - 3600), .fetchNow, "forward inside the minimum validity")
        XCTAssertEqual(judge(now + 5 * 86400), .refreshAt(now + 5 * 86400 + 30),
                       "forward past the midpoint, still valid: soon (never sooner than the minimum delay)")
        XCTAssertEqual(judge(now - 30 * 86400), .refreshAt(now + 7 * 86400 / 2),
                       "backward: the midpoint of the staple's own validity")
        XCTAssertEqual(judge(now - 30 * 86400, maxAge: 86400), .refreshAt(now + 7 * 86400 / 2),
                       "a fetch time from the old clock after a backward step counts as now")
    }

    func testRecyclesOnlyStaplesWithMoreThanMinimumValidityLeft() {
        XCTAssertTrue(policy.isRecyclable(nextUpdate: now + 7201, now: now))
        XCTAssertFalse(policy.isRecyclable(nextUpdate: now + 7200, now: now))
    }
}

final class RetryBackoffTests: XCTestCase {
    let backoff = RetryBackoff(initial: 30, maximum: 3600, urgentMaximum: 300, jitterFraction: 0.1)

    func testDoublesFromThirtySecondsUpToAnHour() {
        let delays = (1...10).map { backoff.delay(failures: $0, urgent: false, random: 0.5) }
        XCTAssertEqual(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600])
        XCTAssertEqual(backoff.delay(failures: 1000, urgent: false, random: 0.5), 3600, "no overflow")
        XCTAssertEqual(backoff.delay(failures: .max, urgent: false, random: 0.5), 3600)
        XCTAssertEqual(backoff.delay(failures: .min, urgent: false, random: 0.5), 30)
    }

    func testUrgentRetriesStayWithinFiveMinutes() {
        XCTAssertEqual(backoff.delay(failures: 8, urgent: true, random: 0.5), 300)
    }

    func testExtremeSettingsSaturate() {
        let huge = RetryBackoff(initial: .max, maximum: .max, urgentMaximum: .max, jitterFraction: 1)
        XCTAssertEqual(huge.delay(failures: 40, urgent: false, random: 1), .max)
        XCTAssertGreaterThanOrEqual(huge.delay(failures: 40, urgent: true, random: 0), 1)
    }

    func testJitterStaysWithinTenPercent() {
        XCTAssertEqual(backoff.delay(failures: 3, urgent: false, random: 0), 108)
        XCTAssertEqual(backoff.delay(failures: 3, urgent: false, random: 1), 132)
    }
}
