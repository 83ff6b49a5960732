/// A certificate's validity time in the two forms RFC 5280 §4.1.2.5 allows in DER, as Unix
/// seconds: UTCTime `YYMMDDHHMMSSZ` (years 1950 to 2049) and GeneralizedTime
/// `YYYYMMDDHHMMSSZ`. Anything else (fractions, offsets, missing seconds, impossible dates)
/// is nil: the caller then lets OpenSSL read the certificate, as before.
enum DERTime {
    static let utcTimeTag: UInt8 = 0x17
    static let generalizedTimeTag: UInt8 = 0x18

    static func unixTime(tag: UInt8, _ text: ArraySlice<UInt8>) -> Int64? {
        var digits = text.makeIterator()
        func number(_ count: Int) -> Int? {
            var value = 0
            for _ in 0..<count {
                guard let byte = digits.next(), (0x30...0x39).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        let year: Int
        switch (tag, text.count) {
        case (utcTimeTag, 13):
            guard let short = number(2) else { return nil }
            year = short < 50 ? 2000 + short : 1900 + short
        case (generalizedTimeTag, 15):
            guard let long = number(4), long >= 1950 else { return nil }
            year = long
        default:
            return nil
        }
        guard let month = number(2), let day = number(2), let hour = number(2), let minute = number(2),
              let second = number(2), digits.next() == UInt8(ascii: "Z") else { return nil }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
              hour < 24, minute < 60, second < 60 else { return nil }
        let seconds = daysSinceEpoch(year: year, month: month, day: day) * 86400 + hour * 3600 + minute * 60 + second
        return Int64(seconds)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    private static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
