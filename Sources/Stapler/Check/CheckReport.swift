import Reactor

/// What `stapler check` prints, in the monitoring-plugins format that Nagios, Icinga,
/// Zabbix agents and Sensu read (monitoring-plugins development guidelines):
///
///     STAPLER CRITICAL - 3 certificates: /c/b.pem: staple missing (and 1 more CRITICAL) | '/c/a.pem'=86000s;7200:;0:;0 ... ok=1;;;0 warning=0;;;0 critical=2;;;0
///     OK: /c/a.pem: staple good, valid for 86000 s (until 2026-12-08 03:00:00 UTC)
///     CRITICAL: /c/b.pem: staple missing
///
/// Line 1 carries the worst status and the reason of the most urgent certificate with it,
/// then the performance data: per certificate the seconds of staple validity left (0 when
/// there is no valid staple; a certificate without an OCSP URL has nothing to measure and
/// no entry), with the thresholds as ranges (`7200:` = "alert below 7200"), then the counts
/// by status. One line per certificate follows, and with `-v` every detail.
/// Nothing from outside can add a line or start the performance data early: line breaks
/// and `|` in paths and messages are escaped.
struct CheckReport {
    enum Status: Int32, Comparable {
        case ok = 0, warning = 1, critical = 2, unknown = 3

        static func < (lhs: Status, rhs: Status) -> Bool { lhs.rawValue < rhs.rawValue }

        var label: String {
            switch self {
            case .ok: return "OK"
            case .warning: return "WARNING"
            case .critical: return "CRITICAL"
            case .unknown: return "UNKNOWN"
            }
        }
    }

    /// One certificate's verdict.
    struct Result {
        var path: FilePath
        var status: Status
        /// One line, without the path: "staple missing".
        var summary: String
        /// Shown with `-v`.
        var details: [String] = []
        /// What `--fetch` got; shown whenever it was asked for.
        var fetch: String?
        /// Seconds of validity left in a verified staple; 0 without one; nil when there is
        /// nothing to staple (no performance data then).
        var secondsLeft: Int64?
    }

    static let pluginName = "STAPLER"

    let results: [Result]
    let warning: Int64
    let critical: Int64
    let verbose: Bool

    /// The worst certificate's status.
    var status: Status { results.map(\.status).max() ?? .unknown }

    var text: String {
        var lines = [firstLine]
        for result in results {
            lines.append("\(result.status.label): \(Self.clean(result.path.description)): \(Self.clean(result.summary))")
            if verbose { lines += result.details.map { "    " + Self.clean($0) } }
            if let fetch = result.fetch { lines.append("    fetch: " + Self.clean(fetch)) }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// What a usage or internal error prints: the plugin's line with status UNKNOWN.
    static func unknown(_ message: String) -> String {
        "\(pluginName) \(Status.unknown.label) - \(clean(message))\n"
    }

    private var firstLine: String {
        let worst = status
        let count = results.count == 1 ? "1 certificate" : "\(results.count) certificates"
        var reason = ""
        let atWorst = results.filter { $0.status == worst }
        // The most urgent of those: least validity left; for a problem, no staple at all first.
        if let urgent = atWorst.min(by: { urgency($0) < urgency($1) }) {
            reason = ": \(Self.clean(urgent.path.description)): \(Self.clean(urgent.summary))"
            if atWorst.count > 1 { reason += " (and \(atWorst.count - 1) more \(worst.label))" }
        }
        return "\(Self.pluginName) \(worst.label) - \(count)\(reason) | \(performanceData)"
    }

    private func urgency(_ result: Result) -> Int64 {
        result.secondsLeft ?? (result.status == .ok ? .max : .min)
    }

    /// `'label'=value[UOM];[warn];[crit];[min];[max]`, space-separated.
    private var performanceData: String {
        var items: [String] = []
        for result in results {
            guard let left = result.secondsLeft else { continue }
            items.append("\(Self.label(result.path.description))=\(left)s;\(warning):;\(critical):;0")
        }
        for counted in [Status.ok, .warning, .critical] {
            items.append("\(counted.label.lowercased())=\(results.count(where: { $0.status == counted }));;;0")
        }
        return items.joined(separator: " ")
    }

    /// A performance data label: quoted, a quote doubled, `=` (which no label may hold)
    /// replaced, ASCII only.
    static func label(_ text: String) -> String {
        var escaped = ""
        for character in LogText.sanitised(text, limit: labelLimit) {
            switch character {
            case "'": escaped += "''"
            case "=": escaped += "_"
            case "|": escaped += "\\x7c"
            default: escaped.append(character)
            }
        }
        return "'" + escaped + "'"
    }

    /// Longest label kept (a path); the rest becomes "...".
    static let labelLimit = 200

    /// Text that stays on its line and before the performance data.
    static func clean(_ text: String) -> String {
        let single = LogText.singleLine(text)
        guard single.contains("|") else { return single }
        return single.replacingAll("|", with: "\\x7c")
    }
}

private extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}
